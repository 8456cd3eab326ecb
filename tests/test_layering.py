"""Imports point one way: nas -> search_spaces -> lightning_modules, and inside lightning_modules
the data package sits below the tasks, models and suite (../shared/DESIGN.md, README layout).

Checked statically (every ``import`` statement of every module, lazy ones inside functions too),
so a violation fails here even when no test happens to run the importing code path.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package (as a path under the repo) -> module prefixes it must never import
RULES = {
    "lightning_modules": ("nas", "search_spaces"),
    "search_spaces": ("nas",),
    "lightning_modules/data": (
        "lightning_modules.tasks",
        "lightning_modules.suite",
        "lightning_modules.model",
        "lightning_modules.heads",
        "lightning_modules.pretrain",
        "lightning_modules.finetune",
        "lightning_modules.export",
        "lightning_modules.supernet",
    ),
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in the file at ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in imported_modules(path):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return bad


@pytest.mark.parametrize("package", list(RULES))
def test_imports_point_one_way(package):
    assert violations(package, RULES[package]) == []


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    pkg = tmp_path / "lightning_modules" / "data"
    pkg.mkdir(parents=True)
    (pkg / "x.py").write_text("def f():\n    from lightning_modules.tasks import Task\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert violations("lightning_modules/data", RULES["lightning_modules/data"]) == [
        "lightning_modules/data/x.py:2 imports lightning_modules.tasks"
    ]
