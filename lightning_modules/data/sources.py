"""Source configs for real data: which files, which format, which splits -> ``Splits`` / documents.

A task's ``source:`` block names a ``type`` (the format) and its files; ``suite.task_splits`` hands
every type but ``builtin`` to ``task_splits_from_source`` here. Options common to file types:

    root: folder that relative file paths resolve against (itself relative to the working
        directory; Hydra does not chdir in this project)
    path: one file (or file spec) holding all the data: read as train, then validation and test
        are carved from it
    train / validation / test: a file (spec) per split; splits not given are carved from train
    fractions: {validation: 0.1, test: 0.1}: shares of train carved for the missing splits
    n_train / n_val / n_test: at most this many examples per split (a seeded sample; null = all)
    encoding: the files' text encoding (utf-8)

The carving is seeded by the data seed and the task name; see ``splitting.split_off``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lightning_modules.data import readers
from lightning_modules.data.code import CodeExample, code_to_text
from lightning_modules.data.errors import DataError
from lightning_modules.data.examples import (
    PairExample,
    QAExample,
    Splits,
    TextExample,
    TokenExample,
)
from lightning_modules.data.splitting import DEFAULT_FRACTIONS, check_fractions, limit, split_off

SPLITS = ("train", "validation", "test")
LIMITS = {"train": "n_train", "validation": "n_val", "test": "n_test"}
COMMON = {"type", "root", "path", *SPLITS, "fractions", *LIMITS.values(), "encoding"}

# What each source type yields, and the options it takes on top of COMMON.
SOURCE_TYPES: dict[str, tuple[str, set[str]]] = {
    "squad": ("qa", set()),
    "classification": (
        "text",
        {"format", "text", "label", "text_pair", "header", "labels", "stratify"},
    ),
    "polarity": ("text", {"labels", "stratify"}),
    "conll": ("token", {"token_col", "tag_col", "scheme", "sep", "comment", "labels"}),
    "parallel": ("pair", {"source_key", "target_key"}),
    "code_jsonl": ("code", set()),  # HumanEval / MBPP JSON lines
    "hf": (
        "",  # from the task kind (or `example:`)
        {
            "name",
            "data_files",
            "splits",
            "columns",
            "example",
            "labels",
            "stratify",
            "scheme",
            "cache_dir",
            "options",
        },
    ),
}
EXAMPLE_TYPES = {"qa": QAExample, "text": TextExample, "token": TokenExample, "pair": PairExample}

CORPUS_TYPES: dict[str, set[str]] = {
    "text": {
        "root",
        "path",
        "format",
        "key",
        "headings",
        "detokenize",
        "encoding",
        "max_documents",
    },
    "hf": {
        "path",
        "name",
        "split",
        "column",
        "data_files",
        "cache_dir",
        "options",
        "max_documents",
    },
}


def resolve(path: Any, root: Any = None) -> Path:
    """``path`` with ``~`` expanded, joined to ``root`` when relative (both may stay relative:
    they then resolve against the working directory, which Hydra leaves alone here)."""
    p = Path(str(path)).expanduser()
    if not p.is_absolute() and root is not None:
        p = Path(str(root)).expanduser() / p
    return p


def _check_keys(cfg: Mapping[str, Any], known: set[str], where: str, kind: str) -> None:
    for key, value in cfg.items():
        # null means unset: an experiment that turns a built-in source into a file source can
        # null the built-in's own keys (OmegaConf merges blocks, it cannot delete keys).
        if key not in known and value is not None:
            raise DataError(
                f"{where}: unknown option '{key}' for type '{kind}' "
                f"(known: {', '.join(sorted(known))})"
            )


def _positive_or_none(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DataError(f"{where}={value!r} must be a positive integer or null")
    return value


# --------------------------------------------------------------------------------------- tasks


def task_splits_from_source(
    name: str,
    source: Mapping[str, Any],
    seed: int,
    kind: str | None = None,
    wanted: str | None = None,
) -> Splits:
    """The examples of task ``name`` from a file or hub ``source`` config.

    Args:
        name: The task name (error messages; the seeded split's purpose).
        source: The ``source:`` block (``type`` plus the options in this module's docstring).
        seed: The data seed (``data.seed``).
        kind: The task kind (``span``, ``sequence``, ...), for messages.
        wanted: The example type the kind fine-tunes on (its task class's ``example``:
            ``qa``, ``text``, ``token``, ``pair``, ``code``), checked against what a file source
            yields; ``hf`` sources build it (unless ``source.example`` says otherwise).

    Raises:
        DataError: Unknown type or option, unreadable file, empty split, and every reader error.
    """
    where = f"task '{name}'"
    typ = source.get("type")
    if typ not in SOURCE_TYPES:
        known = ", ".join(["builtin", *SOURCE_TYPES])
        raise DataError(f"{where}: unknown source type '{typ}' (known: {known})")
    example, extra = SOURCE_TYPES[typ]
    _check_keys(source, COMMON | extra, f"{where}: source", typ)
    if typ == "hf":
        example = source.get("example") or wanted or ""
        if example not in EXAMPLE_TYPES:
            raise DataError(
                f"{where}: source.example must be one of {', '.join(EXAMPLE_TYPES)} "
                f"(or give the task a kind), not '{example}'"
            )
    elif wanted and wanted != example:
        raise DataError(
            f"{where}: source type '{typ}' gives {example} examples but kind '{kind}' needs "
            f"{wanted} examples"
        )
    limits = {
        s: _positive_or_none(source.get(k), f"{where}: source.{k}") for s, k in LIMITS.items()
    }
    if typ == "hf":
        raw, labels = _hf_splits(name, source, example)
    else:
        raw, labels = _file_splits(name, typ, source)
    for split, examples in raw.items():
        if not examples:
            raise DataError(
                f"{where}: split '{split}' has no examples ({_describe(source, split)})"
            )
    fractions = check_fractions(source.get("fractions") or DEFAULT_FRACTIONS, f"{where}: source")
    missing = {
        s: fractions.get(s, DEFAULT_FRACTIONS[s]) for s in ("validation", "test") if s not in raw
    }
    if missing:
        stratify = source.get("stratify", True) and example == "text"
        raw |= split_off(
            raw.pop("train"),
            missing,
            seed,
            where,
            group=(lambda ex: ex.group) if example == "qa" else None,
            stratify=(lambda ex: ex.label) if stratify else None,
        )
    out = {s: limit(raw[s], limits[s], seed, f"{name}|{s}") for s in SPLITS}
    return Splits(out["train"], out["validation"], out["test"], labels=labels)


def _describe(source: Mapping[str, Any], split: str) -> str:
    spec = source.get(split, source.get("path"))
    return f"from {spec}" if spec is not None else "after filtering"


def _split_specs(name: str, source: Mapping[str, Any]) -> dict[str, Any]:
    """``{split: file spec}`` from ``path`` or ``train``/``validation``/``test``."""
    where = f"task '{name}': source"
    given = {s: source[s] for s in SPLITS if source.get(s) is not None}
    if source.get("path") is not None:
        if given:
            raise DataError(f"{where}: give either path or train/validation/test, not both")
        return {"train": source["path"]}
    if "train" not in given:
        raise DataError(f"{where}: no data: set path (one file) or train (and validation, test)")
    return given


def _file_splits(
    name: str, typ: str, source: Mapping[str, Any]
) -> tuple[dict[str, list], list[str]]:
    """Read every split file of a file source; map labels across all splits at once."""
    root = source.get("root")
    enc = source.get("encoding", "utf-8")
    specs = _split_specs(name, source)
    where = f"task '{name}': source"
    labels: list[str] = []
    out: dict[str, list] = {}
    if typ == "squad":
        for split, spec in specs.items():
            out[split] = readers.read_squad(resolve(spec, root), enc)
    elif typ in ("classification", "polarity"):
        records = {}
        for split, spec in specs.items():
            if typ == "polarity":
                if isinstance(spec, Mapping):
                    files = {str(k): resolve(v, root) for k, v in spec.items()}
                elif isinstance(spec, (list, tuple)):
                    files = [resolve(v, root) for v in spec]
                else:
                    raise DataError(
                        f"{where}.{split}: polarity files are {{label: file}} or a list of "
                        f"files named <stem>.<label>, not {spec!r}"
                    )
                records[split] = readers.read_polarity(files, enc)
            else:
                records[split] = readers.read_classification(
                    resolve(spec, root),
                    format=source.get("format"),
                    text=source.get("text", "text"),
                    label=source.get("label", "label"),
                    text_pair=source.get("text_pair"),
                    header=bool(source.get("header", True)),
                    encoding=enc,
                )
        explicit = source.get("labels")
        all_records = [r for split in records.values() for r in split]
        _, labels = readers.label_texts(all_records, explicit)
        for split, recs in records.items():
            out[split] = readers.label_texts(recs, labels)[0]
    elif typ == "conll":
        explicit = source.get("labels")
        for split, spec in specs.items():
            out[split] = readers.read_conll(
                resolve(spec, root),
                token_col=int(source.get("token_col", 0)),
                tag_col=int(source.get("tag_col", -1)),
                scheme=source.get("scheme", "iob2"),
                sep=source.get("sep"),
                comment=source.get("comment", "#"),
                labels=explicit,
                encoding=enc,
            )
        labels = list(explicit) if explicit else _tag_set(out.values())
    elif typ == "parallel":
        for split, spec in specs.items():
            if isinstance(spec, Mapping):
                if set(spec) != {"source", "target"}:
                    raise DataError(
                        f"{where}.{split}: a file pair is {{source: file, target: file}}, "
                        f"got keys {sorted(spec)}"
                    )
                out[split] = readers.read_parallel(
                    resolve(spec["source"], root), resolve(spec["target"], root), enc
                )
            else:
                out[split] = readers.read_parallel_jsonl(
                    resolve(spec, root),
                    source.get("source_key", "source"),
                    source.get("target_key", "target"),
                    enc,
                )
    elif typ == "code_jsonl":
        for split, spec in specs.items():
            out[split] = readers.read_code_jsonl(resolve(spec, root), enc)
    return out, labels


def _tag_set(splits) -> list[str]:
    """Sorted IOB2 tags of every sentence, ``O`` included (the built-in NER's convention)."""
    return sorted({t for examples in splits for ex in examples for t in ex.tags} | {"O"})


# ------------------------------------------------------------------------------------------ hub


def _hf_splits(
    name: str, source: Mapping[str, Any], example: str
) -> tuple[dict[str, list], list[str]]:
    """Examples from a ``datasets`` source: ``path``, ``name``, ``splits``, ``columns``."""
    where = f"task '{name}': source"
    if not source.get("path"):
        raise DataError(f"{where}: type 'hf' needs path (a hub dataset name, or json/csv)")
    split_names = dict(source.get("splits") or {"train": "train"})
    for split in split_names:
        if split not in SPLITS:
            raise DataError(f"{where}.splits.{split}: unknown split (known: {', '.join(SPLITS)})")
    if "train" not in split_names:
        raise DataError(f"{where}.splits: needs train (e.g. splits: {{train: train}})")
    columns = dict(source.get("columns") or {})
    rows: dict[str, list[tuple[str, dict]]] = {}
    features = None
    for split, hf_split in split_names.items():
        ds = readers.load_hf(
            str(source["path"]),
            name=source.get("name"),
            split=str(hf_split),
            data_files=source.get("data_files"),
            cache_dir=source.get("cache_dir"),
            options=source.get("options"),
        )
        features = features or ds.features
        what = f"hf dataset '{source['path']}' split '{hf_split}'"
        rows[split] = [(f"{what} record {i}", r) for i, r in enumerate(ds)]
    convert = _HF_CONVERT[example]
    return convert(rows, columns, features, source)


def _col(row: Mapping[str, Any], columns: Mapping[str, str], role: str, where: str) -> Any:
    key = columns.get(role, role)
    try:
        return readers.dig(row, key)
    except KeyError:
        raise DataError(
            f"{where}: no column '{key}' for {role} (columns: {', '.join(row)})"
        ) from None


def _class_names(features, columns, role) -> list[str] | None:
    """Label names from a ``ClassLabel`` feature (plain or inside a ``Sequence``)."""
    if features is None:
        return None
    feat = features.get(columns.get(role, role))
    feat = getattr(feat, "feature", feat)  # Sequence(ClassLabel) for token tags
    names = getattr(feat, "names", None)
    return list(names) if names else None


def _hf_qa(rows, columns, features, source):
    out = {}
    for split, records in rows.items():
        examples = []
        for where, r in records:
            context = _col(r, columns, "context", where)
            answers = _col(r, columns, "answers", where)
            if isinstance(answers, list):  # [{text, answer_start}, ...] rather than SQuAD's columns
                answers = {
                    "text": [a.get("text") for a in answers if isinstance(a, Mapping)],
                    "answer_start": [
                        a.get("answer_start") for a in answers if isinstance(a, Mapping)
                    ],
                }
            if not isinstance(answers, Mapping):
                raise DataError(f"{where}: answers must hold text and answer_start lists")
            texts, starts = answers.get("text") or [], answers.get("answer_start") or []
            typed = all(isinstance(t, str) for t in texts) and all(
                isinstance(s, int) for s in starts
            )
            if len(texts) != len(starts) or not typed:
                raise DataError(f"{where}: answers need as many texts as integer answer_starts")
            pairs = []
            for t, s in zip(texts, starts, strict=True):
                if context[s : s + len(t)] != t:
                    raise DataError(f"{where}: answer {t!r:.60} is not at {s} of its context")
                pairs.append((t, int(s)))
            if pairs:
                group = r.get(columns.get("group", "title"), "")
                examples.append(
                    QAExample(
                        str(r.get(columns.get("id", "id"), where)),
                        _col(r, columns, "question", where),
                        context,
                        tuple(pairs),
                        group=str(group),
                    )
                )
        out[split] = examples
    return out, []


def _hf_text(rows, columns, features, source):
    explicit = source.get("labels") or _class_names(features, columns, "label")
    records = {}
    for split, recs in rows.items():
        records[split] = []
        for where, r in recs:
            pair_key = columns.get("text_pair")
            records[split].append(
                readers.LabelledText(
                    str(_col(r, columns, "text", where)),
                    str(_col(r, columns, "label", where)),
                    where,
                    str(_col(r, columns, "text_pair", where)) if pair_key else None,
                )
            )
    _, labels = readers.label_texts([x for v in records.values() for x in v], explicit)
    return {s: readers.label_texts(v, labels)[0] for s, v in records.items()}, labels


def _hf_token(rows, columns, features, source):
    names = _class_names(features, columns, "tags")
    scheme = source.get("scheme", "iob2")
    if scheme not in readers.TAG_SCHEMES:
        raise DataError(f"hf source: unknown tag scheme '{scheme}'")
    out = {}
    for split, recs in rows.items():
        out[split] = []
        for where, r in recs:
            tokens = [str(t) for t in _col(r, columns, "tokens", where)]
            tags = [
                names[t] if names and isinstance(t, int) else str(t)
                for t in _col(r, columns, "tags", where)
            ]
            bad = next((t for t in tags if not readers._tag_ok(t, scheme)), None)
            if bad is not None:
                raise DataError(f"{where}: tag '{bad}' is not {scheme.upper()}")
            if len(tokens) != len(tags):
                raise DataError(f"{where}: {len(tokens)} tokens but {len(tags)} tags")
            if tokens:
                out[split].append(TokenExample(tuple(tokens), tuple(readers.to_iob2(tags, scheme))))
    labels = list(source["labels"]) if source.get("labels") else _tag_set(out.values())
    return out, labels


def _hf_pair(rows, columns, features, source):
    out = {}
    for split, recs in rows.items():
        out[split] = []
        for where, r in recs:
            pair = []
            for role, first in (("source", False), ("target", True)):
                value = _col(r, columns, role, where)
                pair.append(readers._pair_text(value, where, 0, role, first))
            if pair[0] and pair[1]:
                out[split].append(PairExample(*pair))
    return out, []


_HF_CONVERT: dict[str, Callable] = {
    "qa": _hf_qa,
    "text": _hf_text,
    "token": _hf_token,
    "pair": _hf_pair,
}


# -------------------------------------------------------------------------------------- corpus


def corpus_from_source(corpus: Mapping[str, Any]) -> list[str]:
    """Pretraining documents from a ``data.corpus`` block of type ``text`` or ``hf``.

    ``text``: ``path`` (a file or a list of files, under ``root``), ``format`` (lines,
    paragraphs, jsonl), ``key``, ``headings``, ``detokenize``, ``encoding``; ``hf``: ``path``,
    ``name``, ``split``, ``column``, ``data_files``. Both: ``max_documents`` (the first N).

    Raises:
        DataError: Unknown type or option, unreadable files, no documents.
    """
    typ = corpus.get("type")
    if typ not in CORPUS_TYPES:
        known = ", ".join(["builtin", *CORPUS_TYPES])
        raise DataError(f"data.corpus: unknown type '{typ}' (known: {known})")
    _check_keys(corpus, CORPUS_TYPES[typ] | {"type"}, "data.corpus", typ)
    cap = _positive_or_none(corpus.get("max_documents"), "data.corpus.max_documents")
    if not corpus.get("path"):
        raise DataError(f"data.corpus: type '{typ}' needs path")
    docs: list[str] = []
    if typ == "text":
        paths = corpus["path"]
        for p in paths if isinstance(paths, (list, tuple)) else [paths]:
            docs += readers.read_corpus(
                resolve(p, corpus.get("root")),
                format=corpus.get("format", "lines"),
                key=corpus.get("key", "text"),
                headings=corpus.get("headings", "drop"),
                detokenize=corpus.get("detokenize"),
                encoding=corpus.get("encoding", "utf-8"),
            )
    else:
        ds = readers.load_hf(
            str(corpus["path"]),
            name=corpus.get("name"),
            split=str(corpus.get("split", "train")),
            data_files=corpus.get("data_files"),
            cache_dir=corpus.get("cache_dir"),
            options=corpus.get("options"),
        )
        column = corpus.get("column", "text")
        if column not in ds.column_names:
            raise DataError(
                f"data.corpus: hf dataset '{corpus['path']}' has no column '{column}' "
                f"(columns: {', '.join(ds.column_names)})"
            )
        docs = [t.strip() for t in ds[column] if isinstance(t, str) and t.strip()]
    if not docs:
        raise DataError(f"data.corpus: no documents in {corpus['path']}")
    return docs[:cap] if cap else docs


def training_texts(splits: Splits) -> list[str]:
    """The text of a task's training split, for fitting the tokenizer (never held-out text)."""
    texts: list[str] = []
    seen_contexts: set[str] = set()
    for ex in splits.train:
        if isinstance(ex, QAExample):
            texts.append(ex.question)
            if ex.context not in seen_contexts:  # SQuAD repeats a context for each question
                seen_contexts.add(ex.context)
                texts.append(ex.context)
        elif isinstance(ex, TextExample):
            texts += [ex.text] + ([ex.text_pair] if ex.text_pair else [])
        elif isinstance(ex, TokenExample):
            texts.append(" ".join(ex.tokens))
        elif isinstance(ex, PairExample):
            texts += [ex.source, ex.target]
        elif isinstance(ex, CodeExample):  # as the code task encodes it (newline markers)
            texts += [code_to_text(ex.source), code_to_text(ex.target)]
    return texts
