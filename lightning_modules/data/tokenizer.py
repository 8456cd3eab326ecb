"""A BPE tokenizer trained locally with Hugging Face ``tokenizers`` and cached on disk.

Nothing is downloaded: every run trains its tokenizer on its own pretraining corpus (a second or
two) or loads the cached file whose name is a hash of the corpus and the vocabulary size.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

PAD, UNK, CLS, SEP, MASK, BOS, EOS = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[BOS]", "[EOS]"
SPECIAL_TOKENS = [PAD, UNK, CLS, SEP, MASK, BOS, EOS]
PAD_ID = 0  # padding is id 0 everywhere; models and collators rely on it


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> Tokenizer:
    """Train a BPE tokenizer on ``texts``.

    Words keep their leading-space marker (Metaspace) so decoding restores the spacing that
    generation tasks are scored on, and punctuation is split off so that ``Paris.`` and ``Paris``
    share a token: extractive answers map onto whole tokens.

    Args:
        texts: Training texts (the pretraining corpus).
        vocab_size: Target vocabulary size, special tokens included.

    Returns:
        The trained tokenizer; ``[PAD]`` has id 0.
    """
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation()]
    )
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
        # Every printable ASCII character gets a token even when the corpus lacks it (the
        # built-in corpus has no 'z'), so task text never turns into [UNK].
        initial_alphabet=[chr(c) for c in range(33, 127)],
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    assert tok.token_to_id(PAD) == PAD_ID
    return tok


def with_task_template(tok: Tokenizer) -> Tokenizer:
    """A copy of ``tok`` whose special tokens follow the layout the tasks were trained on.

    ``tok(text)`` gives ``[CLS] text [SEP]`` and ``tok(question, context)`` gives
    ``[CLS] question [SEP] context [SEP]``, as ``lightning_modules/tasks`` build their inputs
    (sequence, token and span tasks); every segment has type id 0, since the models have no
    token-type embeddings. What an export ships, so that ``AutoTokenizer`` users get the inputs
    the model expects; training itself encodes with ``add_special_tokens=False`` and adds them.
    """
    out = Tokenizer.from_str(tok.to_str())
    special = [(CLS, tok.token_to_id(CLS)), (SEP, tok.token_to_id(SEP))]
    out.post_processor = processors.TemplateProcessing(
        single=f"{CLS} $A {SEP}", pair=f"{CLS} $A {SEP} $B:0 {SEP}:0", special_tokens=special
    )
    return out


def same_vocabulary(a: Tokenizer, b: Tokenizer) -> bool:
    """Whether ``a`` and ``b`` encode alike, whatever post-processor each carries."""

    def core(tok: Tokenizer) -> dict:
        doc = json.loads(tok.to_str())
        doc.pop("post_processor", None)
        return doc

    return core(a) == core(b)


def corpus_fingerprint(texts: Sequence[str], vocab_size: int) -> str:
    """A short hash naming a tokenizer trained on ``texts`` with ``vocab_size``."""
    h = hashlib.sha256(f"bpe-v2|{vocab_size}|{len(texts)}|".encode())
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def load_or_train_tokenizer(
    texts: Sequence[str], vocab_size: int, cache_dir: str | Path | None
) -> Tokenizer:
    """Load the cached tokenizer for this corpus, or train it and cache it atomically.

    Args:
        texts: The pretraining corpus.
        vocab_size: Target vocabulary size.
        cache_dir: Folder for ``tokenizer-<hash>.json``; ``None`` disables the cache.
    """
    if cache_dir is None:
        return train_tokenizer(texts, vocab_size)
    path = Path(cache_dir) / f"tokenizer-{corpus_fingerprint(texts, vocab_size)}.json"
    if path.is_file():
        return Tokenizer.from_file(str(path))
    tok = train_tokenizer(texts, vocab_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename: concurrent workers may train the same tokenizer; neither sees half a file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    tok.save(tmp)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600; the cache is shared like its folder
    os.replace(tmp, path)
    return tok
