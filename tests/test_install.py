"""``pip install .`` (not editable): the console commands run from anywhere, configs included.

The slow test builds a venv once per session under a temporary folder and installs a copy of the
source tree into it, without ``-e``. By default the dependencies come from the venv running the
tests (a ``.pth`` line puts its site-packages after the new venv's own, so the installed
``nas``/``adaptnas`` win, and neither ``PYTHONPATH`` nor the checkout is on the path: every
command runs from another folder). ``ADAPTNAS_INSTALL_TEST=full`` installs every dependency
from the package index into a bare venv instead (minutes; what a user's fresh venv does).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (pyproject's requires-python): the backport, which the dev extra installs
    import tomli as tomllib
from setuptools import find_packages

from tests.conftest import REPO, TINY

COMMANDS = ["search", "train", "export", "report", "sweep", "validate"]


def test_the_package_list_covers_the_source_tree():
    """pyproject.toml lists the packages by hand (conf/ is mapped to adaptnas.conf): a new
    subpackage must be added there, or a non-editable install would lack it."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    listed = set(project["tool"]["setuptools"]["packages"])
    found = set(
        find_packages(str(REPO), include=["nas*", "search_spaces*", "lightning_modules*"])
        + find_packages(str(REPO), include=["adaptnas*"])
    )
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert project["tool"]["setuptools"]["package-dir"] == {"adaptnas.conf": "conf"}
    scripts = project["project"]["scripts"]
    assert set(scripts) == {f"adaptnas-{c}" for c in COMMANDS}
    for name, target in scripts.items():
        module, _, function = target.partition(":")
        path = (REPO / Path(*module.split("."))).with_suffix(".py")
        assert f"def {function}(" in path.read_text(), name


def _copy_source(dest: Path) -> Path:
    skip = shutil.ignore_patterns(
        ".git", ".venv", "outputs", "build", "dist", "*.egg-info", "__pycache__", "wandb", "shared"
    )
    shutil.copytree(REPO, dest, ignore=skip)
    return dest


def _env(bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["OMP_NUM_THREADS"] = "1"
    env["HYDRA_FULL_ERROR"] = "0"
    return env


@pytest.fixture(scope="session")
def installed(tmp_path_factory):
    """``(bin folder, env, work folder)`` of a venv with adaptnas installed from a copy."""
    root = tmp_path_factory.mktemp("install")
    source = _copy_source(root / "src")
    env_dir = root / "venv"
    full = os.environ.get("ADAPTNAS_INSTALL_TEST") == "full"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    bin_dir = env_dir / "bin"
    py = bin_dir / "python"
    env = _env(bin_dir)
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if full:
        subprocess.run([*pip, "torch==2.13.0"], check=True, env=env, timeout=1800)
        cmd = [*pip, str(source)]
    else:
        site = subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout.strip()
        # After the venv's own site-packages: the installed copy is what imports.
        (Path(site) / "_adaptnas_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        # The venv's own old setuptools would shadow the shared one (which builds wheels).
        subprocess.run([str(py), "-m", "pip", "uninstall", "-q", "-y", "setuptools"], env=env)
        cmd = [*pip, "--no-deps", "--no-build-isolation", str(source)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shutil.rmtree(source)  # nothing of the source tree is left to import from
    work = root / "elsewhere"
    work.mkdir()
    return bin_dir, env, work


def _run(installed, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    bin_dir, env, work = installed
    exe = args[0] if args[0].startswith("/") else str(bin_dir / args[0])
    return subprocess.run(
        [exe, *args[1:]], capture_output=True, text=True, cwd=work, env=env, timeout=timeout
    )


@pytest.mark.slow
def test_installed_package_imports_from_the_venv_with_its_configs(installed):
    bin_dir, _, _ = installed
    proc = _run(
        installed,
        str(bin_dir / "python"),
        "-c",
        "import nas, adaptnas, search_spaces; from nas.config.compose import CONF_DIR; "
        "print(nas.__file__); print(adaptnas.__file__); print(CONF_DIR)",
    )
    assert proc.returncode == 0, proc.stderr
    venv_root = bin_dir.parent
    paths = [Path(line) for line in proc.stdout.split()]
    assert all(venv_root in p.parents for p in paths), paths  # not the checkout
    assert (paths[2] / "search.yaml").is_file() and (paths[2] / "task" / "qa.yaml").is_file()
    assert (paths[2] / "hydra" / "launcher" / "slurm.yaml").is_file()


@pytest.mark.slow
def test_console_commands_run_a_tiny_search_from_another_folder(installed):
    _, _, work = installed
    root = work / "runs"
    search = _run(
        installed,
        "adaptnas-search",
        "task=qa",
        *TINY,
        "n_trials=1",
        "study_name=installed",
        f"paths.root={root}",
        "tasks.qa.source.n_train=96",
        "tasks.qa.source.n_val=32",
        "tasks.qa.source.n_test=32",
        "tasks.qa.max_len=96",
    )
    assert search.returncode == 0, search.stderr[-3000:]
    study = root / "studies" / "installed"
    assert (study / "leaderboard.csv").is_file() and (study / "best_architecture.yaml").is_file()
    report = _run(
        installed, "adaptnas-report", "study=installed", f"paths.root={root}", "plots=false"
    )
    assert report.returncode == 0, report.stderr[-3000:]
    cfg = _run(installed, "adaptnas-sweep", "--cfg", "job", "task=qa")
    assert cfg.returncode == 0, cfg.stderr
    assert list(yaml.safe_load(cfg.stdout)["tasks"]) == ["qa"]
    bad = _run(installed, "adaptnas-train", "sampler=tpee")
    assert bad.returncode == 2 and bad.stderr.startswith("adaptnas: error: ")
    help_ = _run(installed, "adaptnas-export", "--help")
    assert help_.returncode == 0 and "== Config ==" in help_.stdout
