"""How a copy of the pretrained backbone adapts to a task: ``finetune.method``.

* ``full``: every backbone weight trains (the default, and what adaptnas always did).
* ``lora``: low-rank updates ``W + (alpha / r) B A`` on chosen matrices (Hu et al., 2021); the
  matrices themselves stay frozen. Targets are named after ``model.py``'s modules: ``q``, ``k``,
  ``v`` (the three row blocks of the fused ``attn.qkv``, each with its own ``A`` and ``B``), ``o``
  (``attn.proj``), and ``w1``, ``w2``, ``w3`` (the MLP's matrices; ``w3`` only with SwiGLU).
* ``adapter``: bottleneck adapters (Houlsby et al., 2019) ``y + up(gelu(down(y)))`` on the
  output of every block's attention (``attn.proj``) and MLP (``mlp.w2``), before the residual
  add; ``up`` starts at zero, so an adapted model starts as the pretrained one.
* ``probe``: a linear probe: nothing of the backbone trains. Generation tasks have no head of
  their own (they decode with the LM head), so their probe trains the LM head and the final norm
  (``norm_f``, pre-norm models); with tied embeddings the LM head *is* the token embedding, which
  then trains too.

Each method is one ``AdaptationMethod`` in ``METHODS``: what it inserts, what trains, its
analytic count, whether it keeps an adapter file, whether it merges, which export format cannot
take it. Every other file asks that object instead of comparing method names.

Task heads always train. Frozen weights get ``requires_grad=False`` and so never reach the
optimizer (``optim.adamw_with_schedule`` skips them): they stay bit-identical.

Both wrappers subclass ``nn.Linear`` and keep its ``weight``, so a state dict of an adapted model
has the base model's keys unchanged plus the new ones (``...qkv.lora_A.q``,
``...proj.adapter.down.weight``): the base part of a LoRA model's weights file is the pretrained
model's, and ``lora_state_dict`` picks the adapter part alone.

Why not ``peft``: it does wrap these modules (``inject_adapter_in_model`` with
``target_modules=["qkv", "proj"]`` works), but it sees the fused ``qkv`` as one matrix, so ``q``,
``k`` and ``v`` cannot be targeted separately (one shared ``A``: a different count and a different
method), it has no bottleneck adapters (those are the ``adapters`` library's, built for
``transformers`` classes), and its ``base_layer`` wrappers rename every wrapped weight, which
each export format would have to map back. Two small modules here avoid all three.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_modules.config import TransformerConfig

__all__ = [
    "LORA_TARGETS",
    "METHODS",
    "AdaptationMethod",
    "AdaptationSpec",
    "AdaptedLinear",
    "LoRALinear",
    "adapt",
    "count_trainable",
    "expected_trainable",
    "insert_modules",
    "lora_state_dict",
    "merged",
    "method_problem",
    "per_million",
    "task_trainable",
]

LORA_TARGETS = ("q", "k", "v", "o", "w1", "w2", "w3")


@dataclass
class AdaptationSpec:
    """``finetune.method`` and its settings (``finetune.lora``, ``finetune.adapter``).

    Attributes:
        method: A key of ``METHODS``.
        rank: LoRA rank r.
        alpha: LoRA scale numerator: the update is ``(alpha / rank) B A``.
        targets: LoRA target matrices (``LORA_TARGETS``).
        dropout: Dropout on the LoRA branch's input.
        size: Bottleneck width of an adapter.
    """

    method: str = "full"
    rank: int = 8
    alpha: float = 16.0
    targets: tuple[str, ...] = ("q", "k", "v", "o")
    dropout: float = 0.0
    size: int = 16

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"finetune.method={self.method!r} must be one of {', '.join(METHODS)}")
        self.targets = tuple(self.targets)
        bad = [t for t in self.targets if t not in LORA_TARGETS]
        if bad or not self.targets:
            raise ValueError(
                f"finetune.lora.targets={list(self.targets)!r} must be a non-empty list of "
                f"{', '.join(LORA_TARGETS)}"
            )

    @classmethod
    def from_config(cls, finetune: Mapping[str, Any] | None) -> AdaptationSpec:
        """The spec of a ``finetune`` block (missing keys: the defaults above)."""
        f = dict(finetune or {})
        lora = dict(f.get("lora") or {})
        adapter = dict(f.get("adapter") or {})
        base = cls()
        return cls(
            method=str(f.get("method") or "full"),
            rank=int(lora.get("rank", base.rank)),
            alpha=float(lora.get("alpha", base.alpha)),
            targets=tuple(lora.get("targets", base.targets)),
            dropout=float(lora.get("dropout", base.dropout)),
            size=int(adapter.get("size", base.size)),
        )

    def to_json(self) -> str:
        """One-line JSON (kept in a weights file's metadata)."""
        return json.dumps({**asdict(self), "targets": list(self.targets)})

    @classmethod
    def from_json(cls, text: str | None) -> AdaptationSpec:
        """Inverse of ``to_json``; ``None`` (a file written before methods existed): ``full``."""
        return cls(**json.loads(text)) if text else cls()


# ---- the two wrappers ----------------------------------------------------------------------------
class LoRALinear(nn.Linear):
    """A frozen ``nn.Linear`` plus low-rank updates of some of its output row blocks.

    ``slices`` names row blocks of the output (``{"q": (0, d), "k": (d, d + kv), ...}`` for the
    fused ``qkv``; ``{"o": (0, d)}`` for a plain matrix); each gets its own ``A (r, in)`` and
    ``B (rows, r)``. ``B`` starts at zero, so the wrapped layer starts equal to the original.
    """

    def __init__(
        self,
        base: nn.Linear,
        slices: Mapping[str, tuple[int, int]],
        rank: int,
        alpha: float,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(base.in_features, base.out_features, bias=base.bias is not None)
        self.weight = base.weight  # the very Parameter: the base weights are not copied
        if base.bias is not None:
            self.bias = base.bias
        self.slices = dict(slices)
        self.scale = alpha / rank
        self.lora_dropout = nn.Dropout(dropout)
        self.lora_A = nn.ParameterDict()
        self.lora_B = nn.ParameterDict()
        for name, (start, end) in self.slices.items():
            a = torch.empty(rank, base.in_features, device=base.weight.device)
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # as peft and the paper's code do
            self.lora_A[name] = nn.Parameter(a)
            self.lora_B[name] = nn.Parameter(
                torch.zeros(end - start, rank, device=base.weight.device)
            )

    def delta(self) -> Tensor:
        """The merged update ``(out, in)``: zero on the rows no slice covers."""
        out = self.weight.new_zeros(self.out_features, self.in_features)
        for name, (start, end) in self.slices.items():
            out[start:end] = (self.lora_B[name] @ self.lora_A[name]) * self.scale
        return out

    def forward(self, x: Tensor) -> Tensor:
        """``(..., in)`` -> ``(..., out)``: the base layer plus each slice's update."""
        y = F.linear(x, self.weight, self.bias)  # (..., out)
        h = self.lora_dropout(x)
        pieces, at = [], 0
        for name, (start, end) in sorted(self.slices.items(), key=lambda kv: kv[1]):
            if start > at:  # rows without an update
                pieces.append(y.new_zeros(*y.shape[:-1], start - at))
            low = F.linear(h, self.lora_A[name].to(h.dtype))  # (..., r)
            pieces.append(F.linear(low, self.lora_B[name].to(h.dtype)) * self.scale)
            at = end
        if at < self.out_features:
            pieces.append(y.new_zeros(*y.shape[:-1], self.out_features - at))
        return y + torch.cat(pieces, dim=-1).to(y.dtype)

    def plain(self) -> nn.Linear:
        """A plain ``nn.Linear`` whose weight is the base weight plus the update (merged)."""
        out = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None)
        out = out.to(self.weight.device)
        with torch.no_grad():
            out.weight.copy_(self.weight + self.delta().to(self.weight.dtype))
            if self.bias is not None:
                out.bias.copy_(self.bias)
        return out


class Bottleneck(nn.Module):
    """``y + up(gelu(down(y)))``, width ``size``; ``up`` starts at zero (identity at first)."""

    def __init__(self, d_model: int, size: int, std: float) -> None:
        super().__init__()
        self.down = nn.Linear(d_model, size)
        self.up = nn.Linear(size, d_model)
        nn.init.normal_(self.down.weight, mean=0.0, std=std)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, y: Tensor) -> Tensor:
        """``(..., d)`` -> ``(..., d)``."""
        return y + self.up(F.gelu(self.down(y)))


class AdaptedLinear(nn.Linear):
    """A frozen ``nn.Linear`` whose output goes through a ``Bottleneck`` adapter."""

    def __init__(self, base: nn.Linear, size: int, std: float) -> None:
        super().__init__(base.in_features, base.out_features, bias=base.bias is not None)
        self.weight = base.weight
        if base.bias is not None:
            self.bias = base.bias
        self.adapter = Bottleneck(base.out_features, size, std).to(base.weight.device)

    def forward(self, x: Tensor) -> Tensor:
        """``(..., in)`` -> ``(..., out)``."""
        return self.adapter(F.linear(x, self.weight, self.bias))


# ---- the methods ---------------------------------------------------------------------------------
def _transformer(backbone: nn.Module) -> nn.Module:
    """The ``Transformer`` of a backbone that may be a whole ``LanguageModel``."""
    return backbone.backbone if hasattr(backbone, "lm_head") else backbone


def _lora_sites(block: nn.Module, cfg: TransformerConfig, targets: Iterable[str]):
    """``(owner, attribute, slices)`` of the matrices of ``block`` that ``targets`` names."""
    d, kv = cfg.d_model, cfg.kv_dim
    rows = {"q": (0, d), "k": (d, d + kv), "v": (d + kv, d + 2 * kv)}
    qkv = {t: rows[t] for t in targets if t in rows}
    if qkv:
        yield block.attn, "qkv", qkv
    if "o" in targets:
        yield block.attn, "proj", {"o": (0, d)}
    for name in ("w1", "w2", "w3"):
        layer = getattr(block.mlp, name)
        if name in targets and layer is not None:
            yield block.mlp, name, {name: (0, layer.out_features)}


class AdaptationMethod:
    """One ``finetune.method``: the answers every reader of a method asks for, in one place.

    Training (``adapt``), the analytic count (``expected_trainable``), the kept weights
    (``nas.study.kept_weights``), the loaders (``lightning_modules.export.safetensors``,
    ``adaptnas.load``) and the export formats read these instead of comparing method names.
    A new method is a subclass here and its entry in ``METHODS``, its name in the choices of
    ``finetune.method`` (``nas/config/schema.py``, which stays free of torch; a test holds the
    two equal) and, if it has settings, their section there and their fields on
    ``AdaptationSpec``.

    Attributes:
        name: The ``finetune.method`` value.
        inserted: Pieces of the names of the parameters it inserts (``.lora_A.``): they train,
            and an adapter file holds them (with the head).
        adapter_file: The kept weights and exports hold ``tasks/<task>.adapter.safetensors``
            beside the task's weights: its tensors and the head alone, which the pretrained
            backbone turns into the task model.
        merges: ``merged`` gives its task model the keys of an unadapted model. If not, a task
            weights file holds its modules too, and the loader inserts them before loading.
        export_problems: Export format name (``ExportFormat.name``) -> why that format cannot
            hold a task model of this method.
    """

    name: ClassVar[str]
    inserted: ClassVar[tuple[str, ...]] = ()
    adapter_file: ClassVar[bool] = False
    merges: ClassVar[bool] = True
    export_problems: ClassVar[Mapping[str, str]] = {}

    def adapt(self, backbone: nn.Module, spec: AdaptationSpec) -> None:
        """Make ``backbone`` adapt (in place): insert the modules, then freeze."""
        insert_modules(backbone, spec)
        self.freeze(backbone, spec)

    def insert(self, block: nn.Module, cfg: TransformerConfig, spec: AdaptationSpec) -> None:
        """Put this method's modules into one ``Block`` in place (default: none)."""

    def freeze(self, backbone: nn.Module, spec: AdaptationSpec) -> None:
        """Set ``requires_grad`` of the backbone: by default only the inserted parameters train."""
        for name, p in backbone.named_parameters():
            p.requires_grad_(_new_param(name))

    def trainable(self, cfg: TransformerConfig, spec: AdaptationSpec, lm: bool) -> int:
        """The backbone parameters that train (the head's not included), analytically."""
        raise NotImplementedError


class Full(AdaptationMethod):
    """Every backbone weight trains."""

    name = "full"

    def adapt(self, backbone: nn.Module, spec: AdaptationSpec) -> None:
        """Nothing to insert, nothing frozen."""

    def trainable(self, cfg: TransformerConfig, spec: AdaptationSpec, lm: bool) -> int:
        d, V = cfg.d_model, cfg.vocab_size
        return cfg.num_params() - (0 if lm else (0 if cfg.tie_embeddings else V * d))


class LoRA(AdaptationMethod):
    """``LoRALinear`` on the matrices ``spec.targets`` names; merges into the weights."""

    name = "lora"
    inserted = (".lora_A.", ".lora_B.")
    adapter_file = True

    def insert(self, block: nn.Module, cfg: TransformerConfig, spec: AdaptationSpec) -> None:
        for owner, attr, slices in _lora_sites(block, cfg, spec.targets):
            base = getattr(owner, attr)
            setattr(owner, attr, LoRALinear(base, slices, spec.rank, spec.alpha, spec.dropout))

    def trainable(self, cfg: TransformerConfig, spec: AdaptationSpec, lm: bool) -> int:
        d, kv = cfg.d_model, cfg.kv_dim
        total = 0
        for f in cfg.d_ff:
            shapes = {
                "q": (d, d),
                "k": (d, kv),
                "v": (d, kv),
                "o": (d, d),
                "w1": (d, f),
                "w2": (f, d),
            }
            if cfg.mlp == "swiglu":
                shapes["w3"] = (d, f)
            total += sum(spec.rank * (i + o) for t, (i, o) in shapes.items() if t in spec.targets)
        return total


class Adapter(AdaptationMethod):
    """``AdaptedLinear`` on every block's ``attn.proj`` and ``mlp.w2``; cannot merge."""

    name = "adapter"
    inserted = (".adapter.",)
    adapter_file = True
    merges = False
    # no transformers class has bottleneck adapters
    export_problems = {"transformers": "adapters do not merge (full or lora)"}

    def insert(self, block: nn.Module, cfg: TransformerConfig, spec: AdaptationSpec) -> None:
        for owner, attr in ((block.attn, "proj"), (block.mlp, "w2")):
            setattr(owner, attr, AdaptedLinear(getattr(owner, attr), spec.size, cfg.init_std))

    def trainable(self, cfg: TransformerConfig, spec: AdaptationSpec, lm: bool) -> int:
        d, size = cfg.d_model, spec.size
        return len(cfg.d_ff) * 2 * (d * size + size + size * d + d)


class Probe(AdaptationMethod):
    """Nothing of the backbone trains; generation's probe is the LM head (+ the final norm)."""

    name = "probe"

    def freeze(self, backbone: nn.Module, spec: AdaptationSpec) -> None:
        super().freeze(backbone, spec)
        if hasattr(backbone, "lm_head"):
            # Generation has no head of its own: its probe is the LM head (+ the final norm).
            backbone.lm_head.weight.requires_grad_(True)
            tf = backbone.backbone
            norm = tf.dec_norm_f if tf.cfg.n_dec_layer else tf.norm_f  # the norm the head reads
            if norm is not None:
                for p in norm.parameters():
                    p.requires_grad_(True)

    def trainable(self, cfg: TransformerConfig, spec: AdaptationSpec, lm: bool) -> int:
        if not lm:
            return 0
        d = cfg.d_model
        norm = 0 if cfg.norm_position != "pre" else d * (2 if cfg.norm == "layernorm" else 1)
        return cfg.vocab_size * d + norm


#: ``finetune.method`` -> its method; what every other file reads.
METHODS: dict[str, AdaptationMethod] = {m.name: m for m in (Full(), LoRA(), Adapter(), Probe())}


def _new_param(name: str) -> bool:
    """A parameter some method inserted (by its name)."""
    return any(piece in f".{name}" for m in METHODS.values() for piece in m.inserted)


# ---- applying a method ---------------------------------------------------------------------------
def insert_modules(backbone: nn.Module, spec: AdaptationSpec) -> nn.Module:
    """Put ``spec``'s modules (LoRA, adapters) into ``backbone`` in place (no freezing).

    Also what a loader calls to give a freshly built model the shape of an adapted one.
    """
    method = METHODS[spec.method]
    tf = _transformer(backbone)
    for block in [*tf.blocks, *tf.dec_blocks]:  # an encoder_decoder adapts both stacks
        method.insert(block, tf.cfg, spec)
    return backbone


def adapt(backbone: nn.Module, spec: AdaptationSpec) -> nn.Module:
    """Make ``backbone`` adapt by ``spec.method``: insert modules, freeze what must not train.

    Args:
        backbone: The task's copy of the pretrained ``Transformer`` (or ``LanguageModel`` for
            generation); changed in place. The task head is not part of it and always trains.
        spec: The method.

    Returns:
        ``backbone``.
    """
    METHODS[spec.method].adapt(backbone, spec)
    return backbone


def method_problem(method: str | None, fmt: str) -> str:
    """Why export format ``fmt`` cannot hold a task model adapted by ``method`` (empty: it can)."""
    why = METHODS[method].export_problems.get(fmt) if method in METHODS else None
    return f"finetune.method={method}: {why}" if why else ""


def count_trainable(module: nn.Module) -> int:
    """Parameters of ``module`` that receive gradients (each shared tensor once)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def expected_trainable(
    cfg: TransformerConfig, spec: AdaptationSpec, head: nn.Module, lm: bool = False
) -> int:
    """The analytic trainable count of one task (tests compare it with ``count_trainable``).

    Args:
        cfg: The architecture.
        spec: The method.
        head: The task's head (all of it trains).
        lm: The task adapts the whole ``LanguageModel`` (generation).
    """
    head_n = sum(p.numel() for p in head.parameters())
    return METHODS[spec.method].trainable(cfg, spec, lm) + head_n


def merged(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with every ``LoRALinear`` merged into a plain ``nn.Linear``.

    The copy has exactly the keys of an unadapted model (what ONNX, ``transformers`` and a plain
    ``load_safetensors`` expect); bottleneck adapters cannot merge and stay. ``module`` itself is
    untouched; without LoRA it is returned as it is.
    """
    if not any(isinstance(m, LoRALinear) for m in module.modules()):
        return module
    out = copy.deepcopy(module)
    for parent in list(out.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LoRALinear):
                setattr(parent, name, child.plain())
    return out


def lora_state_dict(module: nn.Module, head_prefix: str | None = "head.") -> dict[str, Tensor]:
    """The adapter part of ``module``'s state: LoRA/adapter tensors, plus the head's.

    Args:
        module: A ``TaskModel``-like module (``backbone`` + ``head``).
        head_prefix: Keys starting with it are the task head's and are kept too (``None``: no
            head).
    """
    state = module.state_dict()
    keep = {}
    for k, v in state.items():
        if _new_param(k) or (head_prefix and k.startswith(head_prefix)):
            keep[k] = v.detach().clone().contiguous()
    return keep


def task_trainable(cfg: TransformerConfig, spec: AdaptationSpec, tasks: Mapping[str, Any]) -> dict:
    """Per task, ``expected_trainable`` of its head and backbone (known before any training)."""
    return {
        name: expected_trainable(
            cfg, spec, task.make_head(cfg), lm=bool(getattr(task, "needs_lm_head", False))
        )
        for name, task in tasks.items()
    }


def per_million(adaptability: float, trainable: Iterable[int]) -> float:
    """``adaptability`` per million trainable parameters (their mean over the tasks).

    What ``objective.per_trainable_param=true`` maximises: the score a parameter budget buys.
    """
    counts = list(trainable)
    return adaptability / (sum(counts) / len(counts) / 1e6)
