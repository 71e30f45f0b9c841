"""``gengap sweep``: run a study file's trials on a local pool or on Ray, then report.

Registered by :mod:`gengap.scripts.cli` (``add_parsers``); the body is
:func:`cmd_sweep`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gengap.core.files import read_json
from gengap.scripts.argtypes import non_negative_int, positive_int, positive_number

__all__ = ["add_parsers", "cmd_sweep", "is_sweep_folder", "print_sweep_table"]


def add_parsers(sub: Any) -> None:
    """Add ``sweep`` to the CLI's subparsers."""
    sweep = sub.add_parser(
        "sweep",
        help="expand a study file's grids into trials, run them (local pool or Ray), report",
    )
    sweep.add_argument("study_file", help="study TOML file with grids (see studies/)")
    sweep.add_argument(
        "--workers",
        type=positive_int("--workers"),
        default=None,
        help="trials at once (default: the study's workers)",
    )
    sweep.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="where trials run: local (a process pool, the default) or ray",
    )
    sweep.add_argument(
        "--address",
        default=None,
        help="Ray cluster address, e.g. 10.0.0.1:6379 (--backend ray; default: RAY_ADDRESS, "
        "else a local Ray instance started for the sweep)",
    )
    sweep.add_argument(
        "--scale",
        type=positive_number("--scale"),
        default=1.0,
        help="multiply every trial's training steps, e.g. 10 for a GPU or cluster run (default: 1)",
    )
    sweep.add_argument(
        "--retries",
        type=non_negative_int("--retries"),
        default=None,
        help="extra attempts of a crashing trial before it is recorded failed "
        "(default: the study's retries, 1)",
    )
    sweep.add_argument("--out", default=None, help="sweep folder (default: the study's out_dir)")


def is_sweep_folder(path: str | Path) -> bool:
    """Whether ``path`` is a sweep folder (what ``gengap report SWEEP_DIR`` reports)."""
    return (Path(path) / "study.json").is_file() and (Path(path) / "gengap.sqlite").is_file()


def print_sweep_table(folder: Path, console: Any, *, out_dir: str | Path | None = None) -> Path:
    """Print the sweep's table (mean with CIs per setting) and write its report
    (default ``<folder>/report``)."""

    from gengap.eval.store import ResultsStore
    from gengap.eval.sweep_report import (
        format_extra_table,
        format_table,
        summarize_sweep,
        sweep_axes,
        write_sweep_report,
    )

    saved = read_json(folder / "study.json", "sweep study record")
    study = saved["study"]
    store = ResultsStore(folder / "gengap.sqlite")
    summaries = summarize_sweep(
        store,
        score=study["score"],
        study=study["name"],
        run_ids=saved.get("trials"),
        reps=study["reps"],
        confidence=study["confidence"],
    )
    store.close()
    axes = sweep_axes(summaries)
    console.print(
        f"\n{study['score']} on {study['base']['env_id']}: mean with "
        f"{study['confidence']:.0%} bootstrap CIs over seeds x levels"
    )
    console.print(format_table(summaries, axis=axes[0] if axes else None), markup=False)
    extra = format_extra_table(summaries)
    if extra:
        console.print(f"\nextra evaluations (mean {study['score']}):", markup=False)
        console.print(extra, markup=False)
    report = write_sweep_report(folder, out_dir)
    console.print(f"report: {report}")
    return report


def cmd_sweep(args: argparse.Namespace) -> int:
    from rich.console import Console

    from gengap.drivers.sweep import run_sweep

    console = Console(width=None if sys.stdout.isatty() else 200)
    outcome = run_sweep(
        args.study_file,
        workers=args.workers,
        backend=args.backend,
        address=args.address,
        scale=args.scale,
        out_dir=args.out,
        retries=args.retries,
    )
    print_sweep_table(outcome.folder, console)
    if outcome.failed:
        console.print(
            f"{len(outcome.failed)} trial(s) failed (errors in the report); run the same "
            "command again to retry them",
            markup=False,
        )
        return 1
    return 0
