"""Hand-designed baselines of a validity study, sized to the winner: GPT-2-, Llama-, BERT-like.

``match_baseline`` builds one at about the winner's parameter count; ``baseline_names`` says
which of them can serve every task of the suite (an encoder cannot generate).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightning_modules.config import ArchitectureError, TransformerConfig
from nas.config.families import allowed_families
from nas.study.references import DESIGNS

#: Hand-designed baselines: the knobs that make each one (the size is matched to the winner);
#: the reference designs of nas.study.references that a decoder-only grid can size.
BASELINES: dict[str, dict[str, Any]] = {
    n: dict(DESIGNS[n].knobs) for n in ("gpt2", "llama", "bert")
}
BASELINE_NAMES = {n: DESIGNS[n].title for n in BASELINES}
FF_RATIO = {"gelu": 4.0, "swiglu": 8.0 / 3.0}  # each design's own MLP width, tried first


def baseline_names(wanted: list[str], tasks: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Which of ``wanted`` baselines can serve every task: name -> ``""`` or why it cannot.

    A BERT-like encoder cannot generate, so a suite with a generation task leaves it out.
    """
    allowed = allowed_families(tasks)
    out: dict[str, str] = {}
    for name in wanted:
        family = BASELINES[name]["family"]
        if family in allowed:
            out[name] = ""
        else:
            kinds = sorted(
                {str(t.get("kind")) for t in tasks.values() if family not in _families_of(t)}
            )
            article = "an" if family[0] in "aeiou" else "a"
            out[name] = f"{article} {family} cannot serve tasks of kind {', '.join(kinds)}"
    return out


def _families_of(task: Mapping[str, Any]) -> tuple[str, ...]:
    from lightning_modules.tasks import TASK_KINDS

    kind = TASK_KINDS.get(str(task.get("kind")))
    return tuple(kind.families) if kind is not None else ()


def _heads(d_model: int) -> int:
    """Heads of 16 dimensions for narrow models, 32 for wider ones (always even: RoPE)."""
    return max(1, d_model // 16) if d_model <= 64 else d_model // 32


def match_baseline(name: str, winner: TransformerConfig, tolerance: float = 0.15):
    """The baseline ``name`` whose parameter count is closest to the winner's.

    Searches a small grid (``d_model`` 16-512 by 16, ``n_layer`` 1-12, ``d_ff`` at the design's
    own ratio to ``d_model`` or at 2, 3 or 4 times it) with ``TransformerConfig.num_params()``.
    Among the shapes within ``tolerance`` it prefers the winner's depth, then the design's own MLP
    ratio, then the closest count; vocabulary and length are the winner's.

    Returns:
        ``(arch, relative_difference)``: the baseline and ``|params / winner's - 1|``.
    """
    knobs = BASELINES[name]
    target = winner.num_params()
    own = FF_RATIO[knobs["mlp"]]
    best, best_key = None, None
    for d_model in range(16, 513, 16):
        if d_model > 64 and d_model % 32:
            continue
        for n_layer in range(1, 13):
            for ratio in dict.fromkeys((own, 2.0, 3.0, 4.0)):
                d_ff = max(16, int(round(ratio * d_model / 16)) * 16)
                try:
                    arch = TransformerConfig(
                        **knobs,
                        vocab_size=winner.vocab_size,
                        max_seq_len=winner.max_seq_len,
                        n_layer=n_layer,
                        d_model=d_model,
                        n_head=_heads(d_model),
                        d_ff=d_ff,
                        dropout=0.0,
                    )
                except ArchitectureError:
                    continue
                rel = abs(arch.num_params() / target - 1.0)
                key = (rel > tolerance, abs(n_layer - winner.n_layer), ratio != own, rel)
                if best_key is None or key < best_key:
                    best, best_key = arch, key
    assert best is not None and best_key is not None
    return best, best_key[-1]
