"""One trial of a sweep, as a worker runs it, and how its results travel to the driver.

A worker trains (or resumes, or just re-evaluates) one run folder with a results store of
its own inside the folder (``trial.sqlite``), then returns everything the run produced:
the run's row, its evaluation episodes and learning curves, and, when the worker does
not share the driver's disk (Ray), the run folder itself as a gzipped tar archive. The
driver then writes all of it into the sweep's results store in one transaction: it is the
only writer of that store, so cluster workers need no shared disk and no database access.
"""

from __future__ import annotations

import dataclasses
import io
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from gengap.eval.evaluate import evaluate
from gengap.eval.runs import RunFolder
from gengap.eval.store import ResultsStore

__all__ = ["TRIAL_STORE", "pack_folder", "run_trial", "unpack_folder"]

#: The store inside every trial's run folder (written by the worker only).
TRIAL_STORE = "trial.sqlite"


def pack_folder(folder: Path) -> bytes:
    """A gzipped tar of ``folder`` (its name as the archive's top level)."""
    _checkpoint_sqlite(folder / TRIAL_STORE)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname=folder.name)
    return buffer.getvalue()


def unpack_folder(data: bytes, parent: Path, name: str) -> Path:
    """Unpack :func:`pack_folder`'s archive as ``parent/name``, replacing what was there.

    The archive is extracted next to the target first and swapped in by renames, so a
    crash midway leaves either the old folder or the new one.
    """
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            archive.extractall(staging, filter="data")
        target, old = parent / name, parent / f".{name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        (staging / name).rename(target)
        shutil.rmtree(old, ignore_errors=True)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _checkpoint_sqlite(path: Path) -> None:
    """Fold the WAL into the database file, so the file alone holds every row."""
    import sqlite3

    if path.is_file():
        with sqlite3.connect(path) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.close()


def _experiment_api() -> tuple[Any, Any, Any]:
    from gengap.drivers.train import resume_experiment, run_experiment
    from gengap.eval.runs import ExperimentConfig

    return ExperimentConfig, run_experiment, resume_experiment


def _train(task: dict[str, Any], runs_dir: Path) -> Path:
    """Train the trial's run folder under ``runs_dir`` to the end, or resume it."""
    experiment_config, run_experiment, resume_experiment = _experiment_api()
    run_dir = runs_dir / task["run_name"]
    config = experiment_config.from_dict(
        {
            **task["config"],
            "out_dir": str(runs_dir),
            "store": str(run_dir / TRIAL_STORE),
            "name": task["run_name"],
            "label": task["label"],
        }
    )
    folder = RunFolder(run_dir)
    if folder.exists():
        if folder.status() == "done":
            return run_dir
        if not folder.has_checkpoint():
            # Stopped before its first checkpoint: nothing to resume, start over cleanly.
            shutil.rmtree(run_dir)
    if not folder.exists():
        return Path(run_experiment(config, run_dir=run_dir, quiet=True))
    # The folder may have moved here (a Ray worker's scratch folder): point its saved
    # config at this place before resuming it.
    saved = folder.read_config()
    folder.write_config(
        dataclasses.replace(saved, out_dir=str(runs_dir), store=str(run_dir / TRIAL_STORE))
    )
    return Path(resume_experiment(run_dir, quiet=True))


def _evaluate_extra(task: dict[str, Any], run_dir: Path) -> None:
    """The study's extra evaluations, each stored once under tag ``study:<name>``."""
    if not task["evaluations"]:
        return
    config = task["config"]
    store = ResultsStore(run_dir / TRIAL_STORE)
    run_id = run_dir.name
    folder = RunFolder(run_dir)
    split = folder.read_split()
    step = folder.agent_step()
    for evaluation in task["evaluations"]:
        tag = f"study:{evaluation['name']}"
        if store.episodes(run_id=run_id, tag=tag):
            continue
        records = evaluate(
            folder.agent_dir,
            config["env_id"],
            split,
            evaluation["part"],
            num_episodes=task["eval_episodes"],
            num_envs=config["num_envs"],
            seed=config["seed"],
            env_kwargs={**config["env_kwargs"], **evaluation["env_kwargs"]},
        )
        store.add_episodes(
            run_id, [r.to_dict() for r in records], part=evaluation["part"], step=step, tag=tag
        )
    store.close()


def run_trial(task: dict[str, Any]) -> dict[str, Any]:
    """Worker: run one trial and return its results (see the module docstring).

    Args:
        task: ``run_name``, ``label``, ``config`` (the trial's resolved config without
            location fields), ``evaluations`` and ``eval_episodes`` (extra evaluations),
            ``runs_dir`` (the driver's folder of run folders), ``ship`` (work in a scratch
            folder and return the run folder as an archive) and ``archive`` (the run
            folder so far, to resume from, or ``None``).

    Returns:
        ``run`` (the store's run dict), ``episodes``, ``curves``, and ``archive`` (bytes,
        or ``None`` when the folder was written in place).
    """
    scratch = Path(tempfile.mkdtemp(prefix="gengap-trial-")) if task["ship"] else None
    try:
        runs_dir = scratch if scratch is not None else Path(task["runs_dir"])
        if scratch is not None and task.get("archive"):
            unpack_folder(task["archive"], scratch, task["run_name"])
        run_dir = _train(task, runs_dir)
        _evaluate_extra(task, run_dir)
        store = ResultsStore(run_dir / TRIAL_STORE)
        run_id = run_dir.name
        result: dict[str, Any] = {
            "run": store.get_run(run_id),
            "episodes": store.episodes(run_id=run_id),
            "curves": store.curves(run_id),
            "archive": None,
        }
        store.close()
        if scratch is not None:
            result["archive"] = pack_folder(run_dir)
        return result
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
