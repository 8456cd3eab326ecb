"""The Optuna study: storage and opening, finalists, pruning, the kept weights of the best."""
