"""One trial of one architecture: the staged run (``run``, ``stages``), its hooks, its record."""
