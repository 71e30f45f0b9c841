"""The quickstart: the levels-gap study (``studies/levels_gap.toml``, what ``make demo``
runs) through the same sweep code as ``gengap sweep``, with a few overrides.

PPO on MiniGrid MultiRoom-N2-S4 trained on 5, 20 and 200 level seeds, 3 training seeds
each, then evaluated zero-shot on the same 300 held-out levels; it prints train and
held-out success and the gap with 95% bootstrap CIs per number of training levels and
writes the report with the gap-vs-levels plot. Finished trials are kept: running it again
skips them, and an interrupted one resumes from its checkpoint.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from gengap.core.errors import InputFileNotFoundError
from gengap.drivers.grid import load_study_spec
from gengap.drivers.sweep import SweepOutcome, run_sweep

__all__ = ["QUICKSTART_STUDY", "run_quickstart"]

#: The main job's study file, in a source checkout.
QUICKSTART_STUDY = Path(__file__).resolve().parent.parent / "studies" / "levels_gap.toml"


def run_quickstart(
    *,
    seeds: int | None = None,
    total_timesteps: int | None = None,
    num_train_levels: int | None = None,
    out_dir: str | None = None,
    workers: int | None = None,
    scale: float = 1.0,
    stream: Any = None,
) -> SweepOutcome:
    """Run the levels-gap study; ``None`` keeps the study file's value.

    Args:
        seeds: Training seeds ``0..seeds-1`` per number of training levels.
        total_timesteps: Training steps per run.
        num_train_levels: Train on this many levels only (one setting instead of the grid).
        out_dir: The sweep folder.
        workers: Trials at once.
        scale: Multiplies the steps.
        stream: Where the live view goes.

    Returns:
        What the sweep did; its store and report are in ``outcome.folder``.
    """
    if not QUICKSTART_STUDY.is_file():
        raise InputFileNotFoundError(
            f"the quickstart needs {QUICKSTART_STUDY} (run it from a source checkout), "
            "or run `gengap sweep STUDY.toml`"
        )
    spec = load_study_spec(QUICKSTART_STUDY)
    grid = dict(spec.grid)
    if seeds is not None:
        grid["seed"] = list(range(seeds))
    if num_train_levels is not None:
        grid["num_train_levels"] = [num_train_levels]
    base = dict(spec.base)
    if total_timesteps is not None:
        base["total_timesteps"] = total_timesteps
    spec = replace(spec, grid=grid, base=base, out_dir=out_dir or spec.out_dir)
    return run_sweep(spec, workers=workers, scale=scale, stream=stream)
