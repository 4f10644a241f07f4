"""The import graph keeps the layering docs/ARCHITECTURE.md describes.

Read from the source with ``ast`` (imports inside functions included: a lazy import is still a
dependency), so the test sees every edge, whichever optional library is installed.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "backdrop"

#: lower ranks never import higher ones; a package may import its peers of the same rank
RANK = {
    "": 0,  # backdrop/__init__.py
    "errors": 0,
    "files": 0,
    "text": 0,
    "render": 0,
    "styles": 1,
    "imaging": 1,
    "overlays": 1,
    "generators": 1,
    "bandit": 2,
    "creative": 2,
    "serving": 3,
    "experiments": 3,
    "console": 4,
    "cli": 4,
    "testing": 4,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> dict[str, list[tuple[str, bool, int]]]:
    """module -> [(imported module, at top level?, line)] for every import of backdrop."""
    out: dict[str, list[tuple[str, bool, int]]] = {}
    for path in sorted(SRC.rglob("*.py")):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text(), str(path))
        top_level = {id(n) for n in tree.body}
        found = []
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    targets = [".".join(base + ([node.module] if node.module else []))]
                else:
                    targets = [node.module or ""]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                if t == "backdrop" or t.startswith("backdrop."):
                    found.append((t, id(node) in top_level, node.lineno))
        out[name] = found
    return out


def _area(module: str) -> str:
    """The package (or base module) directly under backdrop: 'creative', 'errors', '' for backdrop."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


IMPORTS = _imports()


def test_every_package_has_a_rank():
    areas = {_area(m) for m in IMPORTS}
    assert areas - set(RANK) == set(), "a new package: give it a rank here and a line in docs/ARCHITECTURE.md"


def test_no_upward_imports():
    upward = [
        f"{m}:{line} imports {t} ({_area(m)} rank {RANK[_area(m)]} -> {_area(t)} rank {RANK[_area(t)]})"
        for m, targets in IMPORTS.items()
        for t, _, line in targets
        if RANK[_area(t)] > RANK[_area(m)]
    ]
    assert upward == []


def test_package_graph_is_acyclic():
    graph: dict[str, set[str]] = defaultdict(set)
    for m, targets in IMPORTS.items():
        for t, _, _ in targets:
            if _area(t) != _area(m):
                graph[_area(m)].add(_area(t))
    assert _cycles(graph) == []


def test_no_module_level_import_cycles():
    """Top-level imports form no cycle between modules (a package's __init__ re-exporting its
    own submodules excepted: that is how a package presents its names)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for m, targets in IMPORTS.items():
        for t, top, _ in targets:
            if top and t != m and not (m + ".").startswith(t + ".") and not t.startswith(m + "."):
                graph[m].add(_resolve(t))
    assert _cycles(graph) == []


def test_the_library_does_not_import_its_test_fixtures():
    bad = [f"{m}:{line} imports {t}" for m, ts in IMPORTS.items() for t, _, line in ts if _area(t) == "testing" and _area(m) != "testing"]
    assert bad == []


@pytest.mark.parametrize("module", sorted(m for m in IMPORTS if _area(m) not in ("", "errors", "files", "text", "render")))
def test_module_size(module):
    """No module grows past ~600 lines: by then it holds more than one job."""
    path = SRC.parent / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    assert len(path.read_text().splitlines()) <= 650, f"{path}: split it by job"


def _resolve(target: str) -> str:
    """``from backdrop.x import y`` names module x (or package x): the graph's node."""
    return target if target in IMPORTS else target.rsplit(".", 1)[0]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by depth-first search (each reported once, from its first node)."""
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": {"c"}}) == []
