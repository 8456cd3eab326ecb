"""Readers for real data formats: each turns one file (or file pair) into raw examples.

Every reader is a small function that returns the plain records of ``examples.py`` and raises a
one-line ``DataError`` naming the file, the line (or record) and what is wrong. Readers know
nothing about splits or configs: ``sources.py`` resolves paths, picks splits and maps labels.

Formats:
    * SQuAD v1.1 JSON (``read_squad``): extractive QA, several answers per question.
    * CSV / TSV / JSONL text classification (``read_classification``) and one-sentence-per-line
      files whose name carries the label (``read_polarity``); ``label_texts`` maps label names to
      indices.
    * CoNLL-style token/tag columns (``read_conll``): IOB1, IOB2 or BIOES in, IOB2 out.
    * Parallel text (``read_parallel`` for two line-aligned files, ``read_parallel_jsonl``).
    * HumanEval / MBPP-style programming problems in JSON lines (``read_code_jsonl``).
    * Pretraining text (``read_corpus``): one document per line, per paragraph or per JSONL record.
    * A Hugging Face ``datasets`` split (``load_hf``), for users who are online.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

from lightning_modules.data.code import CodeExample
from lightning_modules.data.errors import DataError
from lightning_modules.data.examples import PairExample, QAExample, TokenExample

PathArg = str | PathLike[str]


# ---------------------------------------------------------------------------------------- text


def read_text(path: PathArg, encoding: str = "utf-8") -> str:
    """The whole text of a file, gunzipped when it is gzip data (whatever its name).

    Args:
        path: The file.
        encoding: Its text encoding (``utf-8``, ``latin-1``, ...).

    Raises:
        DataError: Missing file, unreadable or broken gzip data, unknown encoding, or bytes that
            are not valid in ``encoding`` (the message names line and column).
    """
    p = Path(path)
    if not p.exists():
        where = "" if p.is_absolute() else f" (relative to {Path.cwd()})"
        raise DataError(f"{p}: no such file{where}")
    if p.is_dir():
        raise DataError(f"{p}: is a folder, expected a file")
    try:
        raw = p.read_bytes()
    except OSError as err:
        raise DataError(f"{p}: cannot read ({err.strerror or err})") from None
    if raw[:2] == b"\x1f\x8b":  # gzip magic: Multi30k ships .gz files
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"{p}: broken gzip data ({err})") from None
    try:
        text = raw.decode(encoding)
    except LookupError:
        raise DataError(f"{p}: unknown encoding '{encoding}'") from None
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        col = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise DataError(
            f"{p}:{line}:{col}: byte 0x{raw[err.start]:02x} is not valid {encoding}; "
            "set the source's encoding (e.g. encoding: latin-1)"
        ) from None
    return text[1:] if text.startswith("\ufeff") else text  # drop a byte-order mark


def read_lines(path: PathArg, encoding: str = "utf-8") -> list[str]:
    """The lines of a text file without their line ends (``\\n`` or ``\\r\\n``).

    Only ``\\n`` ends a line: ``str.splitlines`` would also split on characters such as U+0085 or
    U+2028 that occur inside real sentences and would shift every line number after them.
    """
    lines = read_text(path, encoding).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _json_error(path: PathArg, err: json.JSONDecodeError, line: int | None = None) -> DataError:
    where = f"{path}:{line if line is not None else err.lineno}:{err.colno}"
    return DataError(f"{where}: malformed JSON: {err.msg}")


def read_jsonl(path: PathArg, encoding: str = "utf-8") -> list[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` for every non-blank line of a JSON-lines file.

    Raises:
        DataError: A line that is not JSON, or not a JSON object (names file:line:column).
    """
    out = []
    for n, line in enumerate(read_lines(path, encoding), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise _json_error(path, err, n) from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{n}: expected a JSON object, got {type(record).__name__}")
        out.append((n, record))
    return out


def dig(record: Mapping[str, Any], key: str) -> Any:
    """``record[key]``, where a dotted key reaches into nested objects (``translation.en``).

    Raises:
        KeyError: With the part of the key that is missing.
    """
    value: Any = record
    for part in str(key).split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(part)
        value = value[part]
    return value


# ---------------------------------------------------------------------------------------- SQuAD


def _field(obj: Any, key: str, kind: type, path: PathArg, where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise DataError(f"{path}: {where}: no key '{key}'")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DataError(f"{path}: {where}.{key}: expected {kind.__name__}, got {value!r:.40}")
    return value


def read_squad(path: PathArg, encoding: str = "utf-8") -> list[QAExample]:
    """Questions of a SQuAD v1.1 JSON file (``data -> paragraphs -> qas``).

    Every answer is checked against its context; questions without answers (SQuAD 2.0's
    unanswerable ones) are skipped, since a span task has nothing to learn from them.

    Args:
        path: The JSON file.
        encoding: Its text encoding.

    Returns:
        One ``QAExample`` per answered question, all its answers kept (duplicates too, as in the
        file); ``group`` is the article title, so seeded splits can keep articles whole.

    Raises:
        DataError: Missing file, malformed JSON (line and column), a missing key (its place in
            the tree), or an answer that is not at its ``answer_start`` (the question id).
    """
    text = read_text(path, encoding)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise _json_error(path, err) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise DataError(f"{path}: not SQuAD JSON (no top-level 'data' list)")
    out: list[QAExample] = []
    for a, article in enumerate(doc["data"]):
        art_where = f"data[{a}]"
        title = article.get("title", f"article-{a}") if isinstance(article, dict) else ""
        for p, para in enumerate(_field(article, "paragraphs", list, path, art_where)):
            para_where = f"{art_where}.paragraphs[{p}]"
            context = _field(para, "context", str, path, para_where)
            for q, qa in enumerate(_field(para, "qas", list, path, para_where)):
                where = f"{para_where}.qas[{q}]"
                qid = str(qa.get("id", where)) if isinstance(qa, dict) else where
                question = _field(qa, "question", str, path, where)
                answers = []
                for i, ans in enumerate(_field(qa, "answers", list, path, where)):
                    ans_text = _field(ans, "text", str, path, f"{where}.answers[{i}]")
                    start = _field(ans, "answer_start", int, path, f"{where}.answers[{i}]")
                    found = context[start : start + len(ans_text)]
                    if start < 0 or found != ans_text:
                        raise DataError(
                            f"{path}: question '{qid}': answer {ans_text!r:.60} is not at "
                            f"answer_start {start} of its context (found {found!r:.60})"
                        )
                    answers.append((ans_text, start))
                if answers:
                    out.append(QAExample(qid, question, context, tuple(answers), group=str(title)))
    return out


# ------------------------------------------------------------------------------- classification


@dataclass(frozen=True)
class LabelledText:
    """A text with its label as written in the file, and where it was read (``file:line``)."""

    text: str
    label: str
    where: str
    text_pair: str | None = None


FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def guess_format(path: PathArg) -> str:
    """``csv``, ``tsv`` or ``jsonl`` from a file name (a ``.gz`` ending is looked through)."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    fmt = FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise DataError(
            f"{path}: cannot tell the format from the file name; set the source's format "
            "(csv, tsv or jsonl)"
        )
    return fmt


def _column(spec: str | int, header: list[str] | None, path: PathArg, role: str) -> int:
    """The index of the column named (or numbered) ``spec``."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        return spec
    if header is None:
        if str(spec).lstrip("-").isdigit():
            return int(spec)
        raise DataError(
            f"{path}: {role} column '{spec}' is a name but the file has no header; "
            "give a column index or set header: true"
        )
    if spec not in header:
        raise DataError(f"{path}:1: no {role} column '{spec}' (columns: {', '.join(header)})")
    return header.index(spec)


def read_classification(
    path: PathArg,
    *,
    format: str | None = None,
    text: str | int = "text",
    label: str | int = "label",
    text_pair: str | int | None = None,
    header: bool = True,
    encoding: str = "utf-8",
) -> list[LabelledText]:
    """Labelled texts from a CSV, TSV or JSONL file.

    TSV is read without quoting (as GLUE's files are written: a ``"`` is part of the text); CSV
    follows the usual quoting rules.

    Args:
        path: The file.
        format: ``csv``, ``tsv`` or ``jsonl``; ``None`` guesses from the file name.
        text: The text column (CSV/TSV: header name or 0-based index) or key (JSONL, dotted
            keys reach into nested objects).
        label: The label column or key.
        text_pair: The second text of a pair task, or ``None``.
        header: Whether a CSV/TSV file starts with a header line.
        encoding: The file's text encoding.

    Returns:
        The records with labels as written (strings); ``label_texts`` maps them to indices.

    Raises:
        DataError: Missing file or column, a short row, malformed JSON, a non-text value.
    """
    fmt = format or guess_format(path)
    if fmt == "jsonl":
        return _read_classification_jsonl(path, text, label, text_pair, encoding)
    if fmt not in ("csv", "tsv"):
        raise DataError(f"{path}: unknown format '{fmt}' (known: csv, tsv, jsonl)")
    body = read_text(path, encoding)
    if fmt == "tsv":
        reader = csv.reader(io.StringIO(body, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(io.StringIO(body, newline=""))
    rows = iter(reader)
    names = None
    if header:
        names = [c.strip() for c in next(rows, [])]
        if not names:
            raise DataError(f"{path}: empty file, expected a header line")
    roles = {"text": text, "label": label} | (
        {"text_pair": text_pair} if text_pair is not None else {}
    )
    cols = {role: _column(spec, names, path, role) for role, spec in roles.items()}
    out = []
    try:
        for row in rows:
            if not row or all(not c.strip() for c in row):
                continue
            line = reader.line_num
            values = {}
            for role, c in cols.items():
                if not -len(row) <= c < len(row):
                    raise DataError(
                        f"{path}:{line}: row has {len(row)} column(s), no {role} column {c}"
                    )
                values[role] = row[c]
            out.append(
                LabelledText(
                    values["text"].strip(),
                    values["label"].strip(),
                    f"{path}:{line}",
                    values["text_pair"].strip() if "text_pair" in values else None,
                )
            )
    except csv.Error as err:
        raise DataError(f"{path}:{reader.line_num}: malformed {fmt.upper()}: {err}") from None
    return out


def _read_classification_jsonl(path, text, label, text_pair, encoding) -> list[LabelledText]:
    out = []
    for n, record in read_jsonl(path, encoding):
        values = {}
        for role, key in (("text", text), ("label", label), ("text_pair", text_pair)):
            if key is None:
                continue
            try:
                value = dig(record, str(key))
            except KeyError:
                raise DataError(
                    f"{path}:{n}: no {role} key '{key}' (keys: {', '.join(record)})"
                ) from None
            if role == "label":
                if isinstance(value, (dict, list)) or value is None:
                    raise DataError(f"{path}:{n}: label {value!r:.40} is not a name or index")
                value = str(value)
            elif not isinstance(value, str):
                raise DataError(f"{path}:{n}: {role} is {type(value).__name__}, expected text")
            values[role] = value
        out.append(
            LabelledText(
                values["text"].strip(),
                values["label"].strip(),
                f"{path}:{n}",
                values["text_pair"].strip() if "text_pair" in values else None,
            )
        )
    return out


def read_polarity(
    files: Mapping[str, PathArg] | Sequence[PathArg], encoding: str = "utf-8"
) -> list[LabelledText]:
    """One text per line, the label given by the file (sentence polarity: ``rt-polarity.pos``).

    Blank lines are skipped and surrounding spaces stripped (the MR snippets end in a space).

    Args:
        files: ``{label: file}``, or a list of files whose last suffix is the label
            (``rt-polarity.neg`` -> ``neg``).
        encoding: The files' text encoding. The MR files in the shared data are UTF-8 (NLTK's
            copy); the original Cornell release is ``latin-1``.
    """
    if isinstance(files, Mapping):
        items = [(str(k), v) for k, v in files.items()]
    else:
        items = []
        for f in files:
            suffix = Path(f).suffix.lstrip(".")
            if not suffix:
                raise DataError(f"{f}: no label in the file name (expected e.g. rt-polarity.pos)")
            items.append((suffix, f))
    out = []
    for name, f in items:
        for n, line in enumerate(read_lines(f, encoding), 1):
            if line.strip():
                out.append(LabelledText(line.strip(), name, f"{f}:{n}"))
    return out


def _label_order(name: str) -> tuple[int, float | str]:
    try:
        return (0, float(name))  # numeric labels sort as numbers: 2 before 10
    except ValueError:
        return (1, name)


def label_texts(
    records: Iterable[LabelledText], labels: Sequence[str] | None = None
) -> tuple[list, list[str]]:
    """Map written labels to indices.

    Args:
        records: Labelled texts (from every split, so all splits share one mapping).
        labels: Explicit label names in index order; ``None`` sorts the names found (numerically
            when they are all numbers). With an explicit list a written integer is taken as an
            index (SST-2's ``0``/``1`` with ``labels: [negative, positive]``).

    Returns:
        ``(TextExample list, label names)``.

    Raises:
        DataError: A label that is not in the list, or an index out of range (names file:line).
    """
    from lightning_modules.data.examples import TextExample

    records = list(records)
    if labels is None:
        names = sorted({r.label for r in records}, key=_label_order)
    else:
        names = [str(x) for x in labels]
        if len(set(names)) != len(names):
            raise DataError(f"labels {names} has duplicates")
    index = {n: i for i, n in enumerate(names)}
    out = []
    for r in records:
        if r.label in index:
            y = index[r.label]
        elif labels is not None and r.label.lstrip("-").isdigit():
            y = int(r.label)
            if not 0 <= y < len(names):
                raise DataError(
                    f"{r.where}: label {y} out of range 0..{len(names) - 1} ({', '.join(names)})"
                )
        else:
            raise DataError(f"{r.where}: unknown label '{r.label}' (labels: {', '.join(names)})")
        out.append(TextExample(text=r.text, label=y, text_pair=r.text_pair))
    return out, names


# ---------------------------------------------------------------------------------------- CoNLL

TAG_SCHEMES = {"iob1": "BI", "iob2": "BI", "bioes": "BIES"}
_TAG = re.compile(r"([A-Z])-(\S+)")


def _tag_ok(tag: str, scheme: str) -> bool:
    m = _TAG.fullmatch(tag)
    return tag == "O" or (m is not None and m.group(1) in TAG_SCHEMES[scheme])


def to_iob2(tags: Sequence[str], scheme: str) -> list[str]:
    """Convert a sentence's tags from ``scheme`` (iob1, iob2, bioes) to IOB2.

    IOB1 opens an entity with ``I-`` (``B-`` only separates two adjacent entities of one type):
    an ``I-X`` after ``O`` or after another type becomes ``B-X``. BIOES: ``S-`` -> ``B-``,
    ``E-`` -> ``I-``. IOB2 is returned unchanged.
    """
    if scheme == "iob2":
        return list(tags)
    out = []
    prev = "O"
    for tag in tags:
        if scheme == "bioes":
            new = "B-" + tag[2:] if tag[:2] == "S-" else "I-" + tag[2:] if tag[:2] == "E-" else tag
        elif tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            new = "B-" + tag[2:]
        else:
            new = tag
        out.append(new)
        prev = tag
    return out


def read_conll(
    path: PathArg,
    *,
    token_col: int = 0,
    tag_col: int = -1,
    scheme: str = "iob2",
    sep: str | None = None,
    comment: str | None = "#",
    labels: Sequence[str] | None = None,
    encoding: str = "utf-8",
) -> list[TokenExample]:
    """Sentences of a CoNLL-style file: one token per line, a blank line between sentences.

    ``-DOCSTART-`` lines end a sentence and are dropped; extra columns are ignored. A line that
    starts with ``comment`` is a comment unless it parses as a token line (a token and a valid
    tag): CoNLL-U comments (``# text = ...``) have no tab, while WNUT-17 has real ``#`` tokens
    (``#<TAB>O``).

    Args:
        path: The file.
        token_col: 0-based column of the token (UNER: 1, after the index column).
        tag_col: Column of the tag (negative counts from the end).
        scheme: The tags' scheme: ``iob1``, ``iob2`` or ``bioes``; output is always IOB2.
        sep: Column separator; ``None``: tab when the file has any tab, else runs of spaces.
        comment: Comment prefix, or ``None`` for no comments.
        labels: Allowed IOB2 tags; ``None`` allows any type.
        encoding: The file's text encoding.

    Raises:
        DataError: Missing columns, or a tag outside the scheme (``X-PER``, or ``S-PER`` under
            IOB), or outside ``labels``; the message names file:line.
    """
    if scheme not in TAG_SCHEMES:
        raise DataError(f"{path}: unknown tag scheme '{scheme}' (known: {', '.join(TAG_SCHEMES)})")
    lines = read_lines(path, encoding)
    if sep is None:
        sep = "\t" if any("\t" in line for line in lines) else None
    allowed = set(labels) if labels is not None else None
    out: list[TokenExample] = []
    tokens: list[str] = []
    tags: list[str] = []
    where: list[int] = []

    def flush() -> None:
        if tokens:
            iob2 = to_iob2(tags, scheme)
            if allowed is not None:
                for tag, n in zip(iob2, where, strict=True):
                    if tag not in allowed:
                        raise DataError(
                            f"{path}:{n}: tag '{tag}' is not one of the labels "
                            f"({', '.join(sorted(allowed))})"
                        )
            out.append(TokenExample(tuple(tokens), tuple(iob2)))
        tokens.clear()
        tags.clear()
        where.clear()

    for n, line in enumerate(lines, 1):
        if not line.strip():
            flush()
            continue
        if line.lstrip().startswith("-DOCSTART-"):
            flush()
            continue
        cols = [c.strip() for c in line.split(sep)] if sep else line.split()
        try:
            token, tag = cols[token_col], cols[tag_col]
        except IndexError:
            token = tag = None
        if comment and line.startswith(comment) and (tag is None or not _tag_ok(tag, scheme)):
            continue
        if token is None or tag is None:
            raise DataError(
                f"{path}:{n}: {len(cols)} column(s); expected the token in column {token_col} "
                f"and the tag in column {tag_col}"
            )
        if not _tag_ok(tag, scheme):
            expected = ", ".join(f"{p}-<type>" for p in TAG_SCHEMES[scheme])
            raise DataError(
                f"{path}:{n}: tag '{tag}' is not {scheme.upper()} (expected O, {expected}); "
                "set the source's scheme if the file uses another one"
            )
        tokens.append(token)
        tags.append(tag)
        where.append(n)
    flush()
    return out


# ------------------------------------------------------------------------------------- parallel


def read_parallel(source: PathArg, target: PathArg, encoding: str = "utf-8") -> list[PairExample]:
    """Pairs from two line-aligned files (plain or gzip): line i of ``source`` <-> line i of target.

    Pairs where either side is blank are dropped.

    Raises:
        DataError: Missing file, or the files have different line counts (names both and counts).
    """
    src = read_lines(source, encoding)
    tgt = read_lines(target, encoding)
    if len(src) != len(tgt):
        raise DataError(
            f"{source} has {len(src)} lines but {target} has {len(tgt)}: "
            "parallel files must be line-aligned"
        )
    return [
        PairExample(s.strip(), t.strip())
        for s, t in zip(src, tgt, strict=True)
        if s.strip() and t.strip()
    ]


def _pair_text(value: Any, path: PathArg, n: int, key: str, pick_first: bool) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        # Sentence lists (SciTLDR's abstract) are joined; reference lists give their first one.
        return value[0].strip() if pick_first else " ".join(v.strip() for v in value)
    raise DataError(f"{path}:{n}: '{key}' is {type(value).__name__}, expected text or a text list")


def read_parallel_jsonl(
    path: PathArg,
    source_key: str = "source",
    target_key: str = "target",
    encoding: str = "utf-8",
) -> list[PairExample]:
    """Pairs from a JSON-lines file with a source and a target key (dotted keys reach inside).

    A list of strings as source is joined with spaces (sentences of one abstract); a list as
    target gives its first entry (the first reference of several).

    Raises:
        DataError: Malformed JSON, a missing key, a value that is not text (names file:line).
    """
    out = []
    for n, record in read_jsonl(path, encoding):
        texts = []
        for key, first in ((source_key, False), (target_key, True)):
            try:
                value = dig(record, key)
            except KeyError:
                raise DataError(f"{path}:{n}: no key '{key}' (keys: {', '.join(record)})") from None
            texts.append(_pair_text(value, path, n, key, first))
        if texts[0] and texts[1]:
            out.append(PairExample(texts[0], texts[1]))
    return out


# ----------------------------------------------------------------------------------------- code

_DEF = re.compile(r"^def\s+(\w+)\s*\(", re.MULTILINE)


def _code_field(record: Mapping[str, Any], key: str, path: PathArg, n: int, kind: type) -> Any:
    if key not in record:
        raise DataError(f"{path}:{n}: no key '{key}' (keys: {', '.join(record)})")
    value = record[key]
    ok = isinstance(value, kind) and (
        kind is not list or (value and all(isinstance(v, str) for v in value))
    )
    if not ok or (kind is str and not value.strip()):
        what = "a non-empty list of strings" if kind is list else "non-empty text"
        raise DataError(f"{path}:{n}: '{key}' must be {what}, got {value!r:.40}")
    return value


def read_code_jsonl(path: PathArg, encoding: str = "utf-8") -> list[CodeExample]:
    """Programming problems from a JSON-lines file, HumanEval or MBPP style (per record).

    * HumanEval (``prompt``, ``canonical_solution``, ``test``, ``entry_point``): the model
      reads the prompt (signature and docstring) and writes the body; the program run is
      prompt + body + ``test`` + ``check(entry_point)``.
    * MBPP (``text``, ``code``, ``test_list``, optional ``test_setup_code``): the model reads the
      description plus the first test (as the MBPP paper's prompt does, for the function's name
      and signature) and writes the whole function; the program run is code + setup + asserts.

    Raises:
        DataError: Malformed JSON, a record with neither set of keys, a field of the wrong type
            (names file:line).
    """
    out = []
    for n, record in read_jsonl(path, encoding):
        if "prompt" in record:
            prompt = _code_field(record, "prompt", path, n, str)
            entry = _code_field(record, "entry_point", path, n, str).strip()
            test = _code_field(record, "test", path, n, str)
            body = _code_field(record, "canonical_solution", path, n, str)
            tests = f"{test.rstrip()}\n\ncheck({entry})"
            out.append(CodeExample(prompt, body.rstrip(), entry, tests, prefix=prompt))
        elif "text" in record:
            text = _code_field(record, "text", path, n, str).strip()
            code = _code_field(record, "code", path, n, str).replace("\r\n", "\n").rstrip()
            asserts = _code_field(record, "test_list", path, n, list)
            setup = record.get("test_setup_code") or ""
            if not isinstance(setup, str):
                raise DataError(f"{path}:{n}: 'test_setup_code' must be text, got {setup!r:.40}")
            names = _DEF.findall(code)
            if not names:
                raise DataError(f"{path}:{n}: 'code' defines no function (no 'def name(')")
            entry = next((f for f in names if f in asserts[0]), names[-1])
            source = f"{text} Your code should pass: {asserts[0].strip()}"
            tests = "\n".join([setup.strip(), *(a.strip() for a in asserts)]).strip()
            out.append(CodeExample(source, code, entry, tests))
        else:
            raise DataError(
                f"{path}:{n}: neither a HumanEval record (prompt, canonical_solution, test, "
                f"entry_point) nor an MBPP one (text, code, test_list); keys: {', '.join(record)}"
            )
    return out


# --------------------------------------------------------------------------------------- corpus

_HEADING = re.compile(r"\s*(=+)\s+(.*?)\s+\1\s*")
CORPUS_FORMATS = ("lines", "paragraphs", "jsonl")


def detokenize_wikitext(text: str) -> str:
    """Undo WikiText's tokenisation marks so pretraining text looks like task text.

    ``@-@``, ``@,@`` and ``@.@`` join their neighbours (``1 @,@ 000`` -> ``1,000``); the space
    before ``, . ; : ! ? ) ]`` and ``'s``/``n't`` and after ``( [`` goes. Quotes are left alone
    (whether a ``"`` opens or closes is ambiguous) and so is ``<unk>``.
    """
    text = text.replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".")
    text = re.sub(r" ([.,;:!?)\]]|'s\b|'re\b|'ve\b|'m\b|'d\b|'ll\b|n't\b)", r"\1", text)
    text = re.sub(r"([(\[]) ", r"\1", text)
    return text


def read_corpus(
    path: PathArg,
    *,
    format: str = "lines",
    key: str = "text",
    headings: str = "drop",
    detokenize: str | None = None,
    encoding: str = "utf-8",
) -> list[str]:
    """Pretraining documents from a text or JSON-lines file.

    Args:
        path: The file (plain or gzip).
        format: ``lines``: every non-blank line is a document (WikiText: a line is a paragraph);
            ``paragraphs``: blank-line-separated blocks (tiny-shakespeare's speeches);
            ``jsonl``: the ``key`` of every record.
        key: The text key of JSONL records.
        headings: WikiText's `` = Title = `` / `` = = Section = = `` lines: ``drop`` (default: a
            title alone teaches little and repeats the next paragraph's subject) or ``keep`` (as a
            document of its own, without the ``=`` marks).
        detokenize: ``wikitext`` undoes WikiText's tokenisation marks (``detokenize_wikitext``);
            ``None`` keeps the text as it is.
        encoding: The file's text encoding.
    """
    if format not in CORPUS_FORMATS:
        raise DataError(
            f"{path}: unknown corpus format '{format}' (known: {', '.join(CORPUS_FORMATS)})"
        )
    if headings not in ("drop", "keep"):
        raise DataError(f"{path}: headings must be drop or keep, not '{headings}'")
    if detokenize not in (None, "wikitext"):
        raise DataError(f"{path}: detokenize must be wikitext or null, not '{detokenize}'")
    if format == "jsonl":
        docs = []
        for n, record in read_jsonl(path, encoding):
            try:
                value = dig(record, key)
            except KeyError:
                raise DataError(f"{path}:{n}: no key '{key}' (keys: {', '.join(record)})") from None
            if not isinstance(value, str):
                raise DataError(f"{path}:{n}: '{key}' is {type(value).__name__}, expected text")
            docs.append(value)
    elif format == "paragraphs":
        docs = [b for b in re.split(r"\n\s*\n", read_text(path, encoding).replace("\r\n", "\n"))]
    else:
        docs = []
        for line in read_lines(path, encoding):
            m = _HEADING.fullmatch(line)
            if m:
                if headings == "keep":
                    docs.append(m.group(2))
                continue
            docs.append(line)
    docs = [d.strip() for d in docs if d.strip()]
    if detokenize == "wikitext":
        docs = [detokenize_wikitext(d) for d in docs]
    return docs


# ------------------------------------------------------------------------------------------- hub


def load_hf(
    path: str,
    *,
    name: str | None = None,
    split: str = "train",
    data_files: Any = None,
    cache_dir: str | None = None,
    options: Mapping[str, Any] | None = None,
):
    """One split of a Hugging Face ``datasets`` dataset (hub name, or a local loader such as
    ``json``/``csv`` with ``data_files``).

    Returns:
        The ``datasets.Dataset``.

    Raises:
        DataError: ``datasets`` not installed, or the dataset/split cannot be loaded (the first
            line of the library's message, with the dataset named).
    """
    try:
        import datasets
    except ImportError:
        raise DataError(
            "source type 'hf' needs the 'datasets' package (pip install 'adaptnas[hub]')"
        ) from None
    what = f"hf dataset '{path}'" + (f" ({name})" if name else "") + f" split '{split}'"
    try:
        return datasets.load_dataset(
            path,
            name,
            split=split,
            data_files=dict(data_files) if isinstance(data_files, Mapping) else data_files,
            cache_dir=cache_dir,
            **dict(options or {}),
        )
    except Exception as err:  # noqa: BLE001 - the hub raises many types; all mean "cannot load"
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise DataError(f"{what}: cannot load: {first}") from None
