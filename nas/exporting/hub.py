"""``push_to_hub=<repo id>``: upload an export folder to the Hugging Face Hub."""

from __future__ import annotations

import logging
from pathlib import Path

from nas.config.errors import ConfigError

log = logging.getLogger("adaptnas")


def push_export(folder: Path, repo_id: str, path_in_repo: str | None = None) -> str:
    """Upload an export folder to the Hugging Face Hub (``push_to_hub=<repo id>``).

    The repository is created when missing (a model repo, private per the account's default);
    the token is huggingface_hub's own (``hf auth login`` or ``HF_TOKEN``).

    Args:
        folder: The export folder.
        repo_id: ``<user or org>/<name>``.
        path_in_repo: A subfolder of the repository (``trial=pareto``: one per trial).

    Returns:
        The URL of the commit.

    Raises:
        ConfigError: A malformed repo id, or the Hub refused (no token, no rights, offline).
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ConfigError(f"push_to_hub={repo_id}: {str(err).splitlines()[0]}") from None
    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="model", exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            path_in_repo=path_in_repo,
            repo_type="model",
            commit_message=f"adaptnas export of {folder.name}",
        )
    except (OSError, ValueError) as err:  # HfHubHTTPError is an OSError; offline mode a ValueError
        lines = str(err).strip().splitlines() or [type(err).__name__]
        raise ConfigError(f"push_to_hub={repo_id}: {lines[0]}") from None
    url = str(getattr(info, "commit_url", None) or info)
    log.info("pushed %s to the Hub: %s", folder, url)
    return url
