"""Imports run one way (envs <- agents <- offline <- eval <- drivers <- scripts) and no
module imports itself in a circle, lazy imports included (read from the source)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("envs", "agents", "offline", "eval", "drivers", "scripts")


def _import_graph() -> dict[str, set[str]]:
    modules = {}
    for package in LAYERS:
        for path in (ROOT / package).glob("*.py"):
            name = (
                f"gengap.{package}" if path.stem == "__init__" else f"gengap.{package}.{path.stem}"
            )
            modules[name] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gengap."):
                base = node.module or ""
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            graph[name] |= {target for target in targets if target in modules and target != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_circles():
    graph = _import_graph()
    assert len(graph) > 30  # the walk found the package
    assert _cycles(graph) == []


def test_imports_run_one_way():
    rank = {layer: position for position, layer in enumerate(LAYERS)}
    upward = [
        f"{module} -> {target}"
        for module, targets in _import_graph().items()
        for target in targets
        if rank[target.split(".")[1]] > rank[module.split(".")[1]]
    ]
    assert upward == []


def test_the_walk_sees_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
