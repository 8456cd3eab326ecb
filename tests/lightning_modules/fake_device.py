"""A stand-in accelerator for CPU-only machines: tensors that say they are elsewhere.

Inside ``other_device()`` a tensor moved (``.to``) or created on the ``meta`` device is a
``Remote`` tensor: it reports ``device == meta`` but carries real CPU values, so code runs to the
end (``.tolist()``, ``float(loss)``, data-dependent shapes, backward) while every operation checks
devices as CUDA does: a real CPU tensor with more than zero dimensions meeting a ``Remote`` one
raises ``DeviceMismatch``. A tensor built without ``device=`` where the model's device was meant
(``torch.ones(T, T)`` next to GPU logits) therefore fails here exactly where it would crash on a
GPU, which neither plain ``meta`` tensors (no values: the first ``.tolist()`` stops the run) nor
``FakeTensorMode`` (no values either) can show for code with data-dependent control flow.

What CUDA itself allows passes: 0-dim CPU tensors as scalars, ``copy_`` across devices, and
``.to``/``.cpu()`` moves. One thing CUDA allows fails here: indexing a device tensor with a CPU
index tensor (CUDA copies the indices over, a hidden sync); code that branches on
``device.type == "cuda"`` takes its non-CUDA branch here.
"""

from __future__ import annotations

import contextlib

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

OTHER = torch.device("meta")

__all__ = ["OTHER", "DeviceMismatch", "Remote", "other_device", "to_other"]


class DeviceMismatch(RuntimeError):
    """A CPU tensor met a tensor of the other device in one operation."""


class Remote(torch.Tensor):
    """A CPU tensor (``elem``) dressed as a tensor of ``OTHER``."""

    elem: torch.Tensor

    @staticmethod
    def __new__(cls, elem: torch.Tensor):
        out = torch.Tensor._make_wrapper_subclass(
            cls,
            elem.size(),
            strides=elem.stride(),
            storage_offset=elem.storage_offset(),
            dtype=elem.dtype,
            layout=elem.layout,
            device=OTHER,
            requires_grad=elem.requires_grad,
        )
        out.elem = elem
        return out

    def __repr__(self) -> str:
        return f"Remote({self.elem!r})"

    # Python-level reads that torch refuses for any subclass: served from the values (a GPU
    # tensor copies them to the host; ``.numpy()`` needs ``.cpu()`` first there, as here).
    def tolist(self):
        return self.elem.tolist()

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _dispatch(func, args, kwargs or {})


# Ops whose CPU/other-device mixing is legal on CUDA too.
_CROSS_DEVICE = {torch.ops.aten.copy_.default, torch.ops.aten._to_copy.default}


def _dispatch(func, args, kwargs):
    remote = False
    cpu: list[torch.Tensor] = []

    def look(t):
        nonlocal remote
        if isinstance(t, Remote):
            remote = True
        elif isinstance(t, torch.Tensor) and t.device.type == "cpu" and t.dim() > 0:
            cpu.append(t)
        return t

    tree_map(look, (args, kwargs))
    if remote and cpu and func not in _CROSS_DEVICE:
        shapes = ", ".join(str(tuple(t.shape)) for t in cpu)
        raise DeviceMismatch(
            f"{func}: CPU tensor(s) of shape {shapes} met tensors on the model's device"
        )
    device = kwargs.get("device")
    make_remote = remote
    if device is not None:
        make_remote = torch.device(device) == OTHER
        kwargs = {**kwargs, "device": torch.device("cpu")}

    def unwrap(t):
        return t.elem if isinstance(t, Remote) else t

    out = func(*tree_map(unwrap, args), **tree_map(unwrap, kwargs))
    if not make_remote:
        return out
    return tree_map(lambda t: Remote(t) if isinstance(t, torch.Tensor) else t, out)


class _Factories(TorchFunctionMode):
    """``torch.tensor(data, device=...)`` builds its tensor below the dispatcher, so no dispatch
    mode sees it: build it on the CPU and move it (what the dispatch mode then turns Remote)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        device = kwargs.get("device")
        if func in _DATA_FACTORIES and device is not None and torch.device(device) == OTHER:
            return func(*args, **{**kwargs, "device": "cpu"}).to(OTHER)
        return func(*args, **kwargs)


_DATA_FACTORIES = {torch.tensor, torch.as_tensor, torch.asarray}


class _Mode(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return _dispatch(func, args, kwargs or {})


@contextlib.contextmanager
def other_device():
    """Within: ``x.to(OTHER)`` / ``torch.zeros(..., device=OTHER)`` make ``Remote`` tensors.

    ``module.to(OTHER)`` swaps each parameter's contents in place (as ``.to("cuda")`` keeps the
    Parameter objects), so a tied LM head stays tied.
    """
    swap = torch.__future__.get_swap_module_params_on_conversion()
    torch.__future__.set_swap_module_params_on_conversion(True)
    try:
        with _Mode(), _Factories():
            yield
    finally:
        torch.__future__.set_swap_module_params_on_conversion(swap)


def to_other(batch):
    """Move a tensor or a dict/list of tensors to ``OTHER`` (as Lightning moves a batch)."""
    return tree_map(lambda t: t.to(OTHER) if isinstance(t, torch.Tensor) else t, batch)
