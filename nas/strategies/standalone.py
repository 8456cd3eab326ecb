"""``strategy=standalone`` (the default): every candidate is built and pretrained from scratch."""

from __future__ import annotations

from nas.strategies.base import Strategy


class Standalone(Strategy):
    """Each trial pretrains its own candidate: the space as it is, no per-trial seam."""

    name = "standalone"
