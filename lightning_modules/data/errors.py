"""The one user-facing error of the data layer, in a module of its own so readers can raise it."""

from __future__ import annotations


class DataError(ValueError):
    """A data source that cannot be used; the message names the source and what is wrong."""
