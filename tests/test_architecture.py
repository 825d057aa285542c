"""The layout's rules, checked on the source: dependencies point one way, no import circle
anywhere (bench included), only loop/cli/wiring.py imports connectors, SQL only under
loop/store/, modules of about 400 lines at most, and no stage that branches on the name of
a task (it asks the task, :mod:`loop.tasks`)."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("loop", "connectors", "bench")
# a stage may import the stages after it in this list, never those before it
LAYERS = [
    ("loop.cli",),
    ("loop.rounds",),
    ("loop.reports",),
    ("loop.learn", "loop.annotate", "loop.data"),
    ("loop.models", "loop.store"),
    ("loop.core", "loop.tasks"),
]


def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def imports(path: Path, known: set[str]) -> set[str]:
    """The project modules ``path`` imports, anywhere in it (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


@pytest.fixture(scope="module")
def graph():
    mods = modules()
    known = set(mods)
    return {
        name: {d for d in imports(path, known) if d != name and not name.startswith(d + ".")}
        for name, path in mods.items()
    }


def layer(module: str) -> int | None:
    for i, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return None


def test_no_import_circle(graph):
    """Tarjan's strongly connected components: every one is a single module."""
    index, low, stack, on, circles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                circles.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert circles == []


def test_dependencies_point_one_way(graph):
    upward = [
        (a, b)
        for a, deps in graph.items()
        for b in deps
        if layer(a) is not None and layer(b) is not None and layer(b) < layer(a)
    ]
    assert upward == []


def test_only_the_wiring_imports_connectors(graph):
    users = sorted(
        a
        for a, deps in graph.items()
        if a.startswith("loop.") and any(d.startswith("connectors") for d in deps)
    )
    assert users == ["loop.cli.wiring"]


def test_sql_only_in_the_store_and_modules_stay_small():
    sql = (".execute(", "rows_where(", 'db["', "db.query(", "sqlite3.connect")
    offenders, large = [], []
    for name, path in modules().items():
        text = path.read_text()
        if name.startswith(("loop.", "connectors.")) and not name.startswith("loop.store"):
            offenders += [(name, s) for s in sql if s in text]
        if name.startswith(("loop", "connectors")) and len(text.splitlines()) > 425:
            large.append((name, len(text.splitlines())))
    assert offenders == []
    assert large == []


def task_branches(tree: ast.AST, names: set[str]) -> list[int]:
    """Lines that compare something to a task's name (``config.task == "segmentation"``) or
    key a table by task names: what a registered :class:`loop.tasks.Task` says instead."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(isinstance(x, ast.Constant) and x.value in names for x in sides):
                lines.append(node.lineno)
        elif isinstance(node, ast.Dict):
            if any(isinstance(k, ast.Constant) and k.value in names for k in node.keys):
                lines.append(node.lineno)
    return lines


def test_no_stage_branches_on_a_task_name():
    from loop.tasks import TASKS

    found = {
        name: lines
        for name, path in modules().items()
        if name.startswith(("loop.", "connectors.")) and not name.startswith("loop.tasks")
        if (lines := task_branches(ast.parse(path.read_text()), set(TASKS)))
    }
    assert found == {}
    planted = ast.parse(
        'if study.config.task == "classification":\n    pass\nx = {"segmentation": 1}'
    )
    assert task_branches(planted, set(TASKS)) == [1, 3]  # the check finds what it forbids


CELLPOSE_COMPILED = ("cellpose.core", "cellpose.dynamics", "cellpose.metrics", "cellpose.models")


def cellpose_imports(source: str) -> set[str]:
    """The modules of Cellpose that compile with numba (or import those that do) that
    ``source`` imports itself."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        else:
            continue
        found |= {n for n in names if n in CELLPOSE_COMPILED}
    return found


def test_cellpose_is_imported_through_numbas_cache():
    """Only loop/models/cellpose_numba.py imports the Cellpose modules that numba compiles
    (others take them from it), so that no process compiles them without the cache."""
    found = {
        name: sorted(hits)
        for name, path in modules().items()
        if name != "loop.models.cellpose_numba"
        if (hits := cellpose_imports(path.read_text()))
    }
    assert found == {}
    planted = "from cellpose import dynamics, resnet_torch\nimport cellpose.models\n"
    assert cellpose_imports(planted) == {"cellpose.dynamics", "cellpose.models"}
