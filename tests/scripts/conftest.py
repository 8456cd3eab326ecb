"""The service fixtures of tests/nas (the scripts start what those tests use)."""

from tests.nas.conftest import postgres_url, slurm_cluster  # noqa: F401
