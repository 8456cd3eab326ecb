"""The adaptnas search engine: studies, the staged trial, results. Entry points live beside it.

Importing the package registers the config schemas (``nas.config.schema``) with Hydra, so any
composition of ``conf/`` (entry points, ``hydra.compose`` in code and tests) validates keys.
"""

from nas.config.schema import register as _register_schemas

_register_schemas()
