"""The run config: its schema (``schema``), composition by Hydra (``compose``), errors, helpers."""
