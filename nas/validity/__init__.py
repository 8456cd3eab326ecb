"""How far to trust a study's winner: the validity study, its statistics, baselines, report."""
