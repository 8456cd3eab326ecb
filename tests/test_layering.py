"""Imports point one way: nas -> search_spaces -> lightning_modules, and inside lightning_modules
the data package sits below the tasks, models and suite (../shared/DESIGN.md, README layout).

Inside ``nas`` the concept packages are layered, each importing only those below it::

    entry scripts (nas/search.py, train.py, export.py, report.py, sweep.py, validate.py)
    engine                                  the search loop, the Optuna objective, workers, sweeps
    strategies | validity | exporting       side by side: none imports another
    reporting                               leaderboard, plots, tracking, progress
    study                                   storage, finalists, pruning, kept weights
    trial                                   run_trial, stages, hooks, the record, resources
    config                                  schema, composition, errors

No library module imports an entry script, and no module of ``nas`` is part of an import circle.

Checked statically (every ``import`` statement of every module, lazy ones inside functions too),
so a violation fails here even when no test happens to run the importing code path.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# nas's layers, lowest first; a tuple holds side-by-side packages that never import each other.
NAS_LAYERS: list[tuple[str, ...]] = [
    ("config",),
    ("trial",),
    ("study",),
    ("reporting",),
    ("strategies", "validity", "exporting"),
    ("engine",),
]
# The thin @hydra.main scripts: they import the library, never the other way round.
ENTRY_SCRIPTS = ("search", "train", "export", "report", "sweep", "validate")
ENTRY_MODULES = tuple(f"nas.{name}" for name in ENTRY_SCRIPTS)


def nas_rules() -> dict[str, tuple[str, ...]]:
    """Each nas package -> what it must not import: the layers above it, its siblings, entries."""
    rules = {}
    for i, layer in enumerate(NAS_LAYERS):
        above = [f"nas.{p}" for upper in NAS_LAYERS[i + 1 :] for p in upper]
        for package in layer:
            siblings = [f"nas.{p}" for p in layer if p != package]
            rules[f"nas/{package}"] = (*above, *siblings, *ENTRY_MODULES)
    return rules


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
    **nas_rules(),
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


def test_the_nas_layers_cover_every_package():
    """A new package of nas gets its place in NAS_LAYERS (and so rules of its own)."""
    packages = {p.parent.name for p in (ROOT / "nas").glob("*/__init__.py")}
    assert packages == {p for layer in NAS_LAYERS for p in layer}


def test_the_check_sees_an_import_against_the_nas_layers(tmp_path, monkeypatch):
    for package, line in [
        ("trial", "from nas.study.finalists import is_repeat"),  # a layer above
        ("validity", "import nas.strategies.supernet"),  # a sibling
        ("engine", "from nas.validate import main"),  # an entry script
    ]:
        (tmp_path / "nas" / package).mkdir(parents=True)
        (tmp_path / "nas" / package / "x.py").write_text(f"def f():\n    {line}\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    rules = nas_rules()
    assert violations("nas/trial", rules["nas/trial"]) == [
        "nas/trial/x.py:2 imports nas.study.finalists"
    ]
    assert violations("nas/validity", rules["nas/validity"]) == [
        "nas/validity/x.py:2 imports nas.strategies.supernet"
    ]
    assert violations("nas/engine", rules["nas/engine"]) == [
        "nas/engine/x.py:2 imports nas.validate"
    ]


@pytest.mark.parametrize("script", ENTRY_SCRIPTS)
def test_entry_scripts_import_only_the_library(script):
    path = ROOT / "nas" / f"{script}.py"
    assert [m for _, m in imported_modules(path) if m in ENTRY_MODULES] == []


# ---- no import circle ------------------------------------------------------------------------
def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, package: str = "nas") -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports (lazy imports inside functions too).

    ``from a.b import c`` counts as an import of ``a.b.c`` where that is a module, else of ``a.b``.
    The implicit import of a module's parent packages is left out (Python runs a package's
    ``__init__`` before its modules: that is no circle a reader has to follow).
    """
    modules = {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    targets.append(sub if sub in modules else node.module)
            graph[name] |= {m for m in targets if m in modules and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_among_nas_modules():
    graph = import_graph(ROOT)
    assert len(graph) > 40  # the whole package was read
    assert cycles(graph) == []


def test_the_circle_check_sees_a_lazy_circle(tmp_path):
    pkg = tmp_path / "nas" / "engine"
    pkg.mkdir(parents=True)
    (tmp_path / "nas" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from nas.engine import b\n")
    (pkg / "b.py").write_text("def f():\n    from nas.engine.a import g\n")
    (pkg / "c.py").write_text("import nas.engine.a\n")
    assert cycles(import_graph(tmp_path)) == [["nas.engine.a", "nas.engine.b"]]
