"""Imports run one way (core <- envs <- agents <- offline <- eval <- drivers <- scripts)
and no module imports itself in a circle, lazy imports included (read from the source).

The walk sees every way a module can name another: ``import gengap.x.y``, ``from gengap.x
import y``, ``from gengap import eval``, relative imports (``from . import y``,
``from ..agents import z``), ``importlib.import_module("gengap.x")`` (and ``__import__``)
with a literal name, in modules at any depth of a layer's folder (``envs/jax/...``). Each of
those cases has a test below that plants a small source tree and fails if the walk misses
the arrow.
"""

from __future__ import annotations

import ast
from collections.abc import Collection
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("core", "envs", "agents", "offline", "eval", "drivers", "scripts")


def _modules(root: Path) -> dict[str, Path]:
    """``gengap.<layer>...`` module name -> file, for every .py file under each layer."""
    modules = {}
    for layer in LAYERS:
        for path in sorted((root / layer).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(("gengap", *parts))] = path
    return modules


def _package(name: str, path: Path) -> str:
    """The package a module's relative imports start from."""
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _resolve_relative(package: str, level: int, module: str | None) -> str:
    base = package.split(".")
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _literal_import_module(node: ast.Call) -> str | None:
    """The literal module name of ``importlib.import_module("...")`` /
    ``import_module("...")`` / ``__import__("...")``, else None."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in ("import_module", "__import__") or not node.args:
        return None
    first = node.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return None


def _targets(name: str, path: Path, tree: ast.AST, modules: Collection[str]) -> set[str]:
    """The gengap modules ``tree`` imports: for ``from X import y``, module ``X.y`` when ``y``
    is a module, else ``X`` (a name is matched to the longest module it falls in)."""
    package = _package(name, path)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = (_resolve_relative(package, node.level, node.module) if node.level
                    else node.module or "")
            found += [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                      for alias in node.names]
        elif isinstance(node, ast.Call):
            literal = _literal_import_module(node)
            if literal is not None:
                found.append(literal)
    targets = set()
    for target in found:
        while target.startswith("gengap.") and target not in modules:
            target = target.rpartition(".")[0]  # gengap.envs.make -> gengap.envs
        if target in modules and target != name:
            targets.add(target)
    return targets


def _import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = _modules(root)
    return {name: _targets(name, path, ast.parse(path.read_text()), modules)
            for name, path in modules.items()}


def _layer(module: str) -> str:
    return module.split(".")[1]


def _upward(graph: dict[str, set[str]]) -> list[str]:
    rank = {layer: position for position, layer in enumerate(LAYERS)}
    return sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if rank[_layer(target)] > rank[_layer(module)]
    )


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
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
    assert _upward(_import_graph()) == []


def test_core_imports_no_other_layer():
    graph = _import_graph()
    core = {name for name in graph if _layer(name) == "core"}
    assert {"gengap.core.errors", "gengap.core.checks", "gengap.core.files"} <= core
    assert sorted(f"{m} -> {t}" for m in core for t in graph[m] if _layer(t) != "core") == []


def test_the_walk_sees_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# -- the walk on planted trees: each way of importing is seen --------------------------------
def _plant(root: Path, files: dict[str, str]) -> Path:
    for layer in LAYERS:
        (root / layer).mkdir(parents=True, exist_ok=True)
        (root / layer / "__init__.py").touch()
    for relative, source in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root


@pytest.mark.parametrize(
    ("source", "arrow"),
    [
        ("import gengap.eval.store\n", "gengap.core.a -> gengap.eval.store"),
        ("from gengap.eval.store import ResultsStore\n", "gengap.core.a -> gengap.eval.store"),
        ("from gengap.eval import store\n", "gengap.core.a -> gengap.eval.store"),
        ("from gengap import eval\n", "gengap.core.a -> gengap.eval"),
        ("from gengap.eval import ResultsStore\n", "gengap.core.a -> gengap.eval"),
        ("from ..eval import store\n", "gengap.core.a -> gengap.eval.store"),
        ("from ..eval.store import ResultsStore\n", "gengap.core.a -> gengap.eval.store"),
        ("import importlib\nimportlib.import_module('gengap.eval.store')\n",
         "gengap.core.a -> gengap.eval.store"),
        ("from importlib import import_module\n\ndef f():\n    import_module('gengap.eval')\n",
         "gengap.core.a -> gengap.eval"),
        ("__import__('gengap.drivers.train')\n", "gengap.core.a -> gengap.drivers.train"),
        ("def lazy():\n    from gengap.scripts import cli\n",
         "gengap.core.a -> gengap.scripts.cli"),
    ],
)  # fmt: skip
def test_the_walk_sees_every_kind_of_import(tmp_path: Path, source: str, arrow: str):
    root = _plant(tmp_path, {"core/a.py": source, "eval/store.py": "", "drivers/train.py": "",
                             "scripts/cli.py": ""})
    assert arrow in _upward(_import_graph(root))


def test_the_walk_sees_modules_in_subfolders_and_their_relative_imports(tmp_path: Path):
    root = _plant(tmp_path, {
        "envs/jax/__init__.py": "from . import wrappers\n",
        "envs/jax/wrappers.py": "from ...agents import base\n",
        "envs/jax/deep/env.py": "from ..wrappers import Wrapped\nfrom ... import registry\n",
        "envs/registry.py": "",
        "agents/base.py": "",
    })
    graph = _import_graph(root)
    assert graph["gengap.envs.jax"] == {"gengap.envs.jax.wrappers"}
    assert graph["gengap.envs.jax.deep.env"] == {"gengap.envs.jax.wrappers",
                                                 "gengap.envs.registry"}
    assert _upward(graph) == ["gengap.envs.jax.wrappers -> gengap.agents.base"]


def test_a_downward_import_is_not_reported(tmp_path: Path):
    root = _plant(tmp_path, {"eval/a.py": "from gengap.core import checks\nimport gengap.envs\n",
                             "core/checks.py": ""})
    graph = _import_graph(root)
    assert graph["gengap.eval.a"] == {"gengap.core.checks", "gengap.envs"}
    assert _upward(graph) == []
