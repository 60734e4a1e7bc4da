"""The layout holds: no import cycle anywhere in the tree, the parts never import the experiments, and every
package says what it is for.

The import graph is read from the source (ast), not by importing it, and counts every import: at module level,
inside functions and under `if TYPE_CHECKING:` alike, since each is a dependency of one module on another.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TREES = ("experiments", "managed", "harnesses", "sandboxes", "stores", "processes")
PARTS = ("harnesses", "sandboxes", "stores", "processes")  # what a user swaps: they know nothing of the experiments run on them
# The one package whose __init__ holds code (no work: definitions only): the suites' registry, whose import paths
# (experiments.tasks.policy_book, load_suite) users' configs and parts name.
KEEPS_ITS_CODE = {"experiments.tasks"}


def modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the trees (a package under its own name)."""
    found = {}
    for tree in TREES:
        for path in sorted((ROOT / tree).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found[name] = path
    return found


def _absolute(name: str, path: Path, node: ast.ImportFrom) -> str:
    """The module a `from ... import` names, with relative imports made absolute."""
    if not node.level:
        return node.module or ""
    parts = name.split(".") + ([""] if path.name == "__init__.py" else [])  # a package is its own `.`
    return ".".join([*parts[: -node.level], *([node.module] if node.module else [])])


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of the trees that module `name` imports, anywhere in its body."""
    def resolve(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    targets: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets |= {resolve(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(name, path, node)
            for alias in node.names:  # `from package import module` imports the module; else the names' module
                targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else resolve(base))
    return {t for t in targets if t is not None and t != name}


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(name, path, known) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a -> b -> ... -> a) through each strongly connected group of modules (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(group, graph) for group in groups]


def _cycle_in(group: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A path from the group's first module back to itself, through the group only (breadth first: a short one)."""
    start = min(group)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph[v] & group):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if w not in came_from:
                    came_from[w] = v
                    following.append(w)
        frontier = following
    raise AssertionError(f"no cycle in {sorted(group)}")


def test_the_tree_has_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in found)


def test_the_parts_never_import_the_experiments():
    graph = import_graph()
    wrong = sorted(f"{name} imports {target}" for name, targets in graph.items() if name.split(".")[0] in PARTS
                   for target in targets if target.split(".")[0] == "experiments")
    assert not wrong, "\n".join(wrong)


# Each layer imports only those below it: processes under everything; the session (stores) and the hands (sandboxes)
# beside each other, knowing nothing of one another; the brain (harnesses) over both; the served API (managed) over
# the brain; experiments over all.
LAYERS = {"processes": 0, "stores": 1, "sandboxes": 1, "harnesses": 2, "managed": 3, "experiments": 4}


def test_each_layer_imports_only_the_layers_below_it():
    wrong = sorted(f"{name} imports {target}" for name, targets in import_graph().items() for target in targets
                   if (low := name.split(".")[0]) != (high := target.split(".")[0]) and LAYERS[high] >= LAYERS[low])
    assert not wrong, "\n".join(wrong)


def packages() -> dict[str, ast.Module]:
    return {name: ast.parse(path.read_text()) for name, path in modules().items() if path.name == "__init__.py"}


def test_every_package_says_what_it_is_for():
    missing = sorted(name for name, tree in packages().items() if not ast.get_docstring(tree))
    assert missing == [], f"packages without a docstring: {missing}"


def test_an_experiments_package_does_no_work_as_it_is_imported():
    busy = sorted(name for name, tree in packages().items()
                  if name.startswith("experiments.") and name not in KEEPS_ITS_CODE and len(tree.body) > 1)
    assert not busy, f"these packages' __init__.py hold more than their docstring: {busy}"


def test_a_cycle_is_found_and_named():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e2"}, "e2": {"e"}}
    assert sorted(cycles(graph)) == [["a", "b", "c", "a"], ["e", "e2", "e"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize(("source", "expected"), [
    ("from experiments.bench import stores", {"experiments.bench.stores"}),
    ("from experiments.results.tables import read_table", {"experiments.results.tables"}),
    ("import experiments.run.job", {"experiments.run.job"}),
    ("def f():\n    from stores.base import Event", {"stores.base"}),
    ("from .tables import read_table", {"experiments.results.tables"}),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from experiments.faults.lab import Lab", {"experiments.faults.lab"}),
])
def test_every_import_is_an_edge(tmp_path, source, expected):
    path = tmp_path / "m.py"
    path.write_text(source)
    assert imported("experiments.results.probe", path, modules()) == expected
