"""User-facing errors: bad config, search space, data or storage. Each prints as one line."""

from __future__ import annotations

from lightning_modules.config import ArchitectureError
from lightning_modules.export import ExportError
from lightning_modules.suite import DataError
from search_spaces import SearchSpaceError


def first_line(err: BaseException) -> str:
    """The first non-blank line of ``err``'s message, or its type's name when it has none."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def describe(err: BaseException) -> str:
    """``ValueError: <first line of the message>`` (just the type's name for an empty message)."""
    text = first_line(err)
    name = type(err).__name__
    return name if text == name else f"{name}: {text}"


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


def checked(schema, values):
    """``schema.of(values)``: a section of a schema of ``nas.config.schema``, typed and held to
    its rules (a typed one passes through).

    Raises:
        ConfigError: A bad value, one line naming the key.
    """
    try:
        return schema.of(values)
    except ValueError as err:
        raise ConfigError(str(err)) from None


# Everything a user can cause with their input. Anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    ArchitectureError,
    SearchSpaceError,
    DataError,
    ExportError,  # an export that cannot be made or does not reproduce the model
)
