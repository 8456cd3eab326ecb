"""Search spaces of adaptnas: a small YAML language over ``TransformerConfig`` fields.

See :mod:`search_spaces.space` for the format. Built-in spaces: ``tiny`` (tests, CPU seconds),
``small`` (the CLI default) and ``base`` (GPU).
"""

from search_spaces.space import (
    DATA_FIELDS,
    PARAM_TYPES,
    PER_LAYER_FIELDS,
    SPACES_DIR,
    Param,
    SearchSpace,
    SearchSpaceError,
    builtin_spaces,
    load_space,
)

__all__ = [
    "DATA_FIELDS",
    "PARAM_TYPES",
    "PER_LAYER_FIELDS",
    "SPACES_DIR",
    "Param",
    "SearchSpace",
    "SearchSpaceError",
    "builtin_spaces",
    "load_space",
]
