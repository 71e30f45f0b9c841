"""The ``gengap bench`` targets: one per ``benchmarks/bench_<target>.py`` file.

Kept apart from cli.py (which lists the targets for ``--help``) and commands.py (which
runs one), so neither imports the other.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCHMARKS_DIR = Path(__file__).resolve().parent.parent / "benchmarks"


def bench_targets() -> list[str]:
    """The targets, derived from the files: a new benchmark is a new target."""
    return sorted(path.stem.removeprefix("bench_") for path in BENCHMARKS_DIR.glob("bench_*.py"))


def run_bench(target: str, argv: list[str]) -> int:
    """Run ``benchmarks/bench_<target>.py``'s ``main(argv)``."""
    path = BENCHMARKS_DIR / f"bench_{target}.py"
    spec = importlib.util.spec_from_file_location(f"gengap_bench_{target}", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load benchmark {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return int(module.main(argv) or 0)
