"""User-facing errors: bad config, search space, data or storage. Each prints as one line."""

from __future__ import annotations

from lightning_modules.config import ArchitectureError
from lightning_modules.data.suite import DataError
from lightning_modules.export import ExportError
from search_spaces import SearchSpaceError


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


# Everything a user can cause with their input. Anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    ArchitectureError,
    SearchSpaceError,
    DataError,
    ExportError,  # an export that cannot be made or does not reproduce the model
)
