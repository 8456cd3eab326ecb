"""The search: ``run_search`` and ``run_train``, the Optuna objective, the workers, W&B sweeps."""
