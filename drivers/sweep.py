"""Sweeps: a study file's trials run on one executor (local pool or Ray), then reported.

:func:`run_sweep` expands a study file (:mod:`gengap.drivers.grid`) into trials, skips
the ones the sweep's results store already holds, runs the others through
:class:`gengap.core.executor.Executor`, and takes in each result as it arrives. The
sweep folder::

    study.json       the study as run, the scale, and its trials' run names (what the
                     report covers: trials of an earlier version of the file stay in
                     the store but are left out)
    gengap.sqlite    the results store: written by this process only, one transaction
                     per finished trial
    runs/<trial>/    one run folder per trial (its own trial.sqlite inside)
    report/          report.md, the gap plot, profiles (:mod:`gengap.eval.sweep_report`)

A trial that raises is retried ``retries`` times (resuming from its checkpoint), then
recorded in the store with status ``failed`` and its error, while the other trials go on.
Ctrl-C stops the workers (each saves a checkpoint); every trial finished before it stays
in the store, and running the sweep again does only what is missing.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gengap.core import checks
from gengap.core.files import atomic_write_text
from gengap.drivers.grid import StudySpec, Trial, describe_axes, expand, load_study_spec
from gengap.drivers.trial import run_trial, unpack_folder
from gengap.eval.runs import check_out_dir
from gengap.eval.store import ResultsStore

__all__ = ["SweepOutcome", "SweepView", "run_sweep", "trial_status"]

STORE_NAME = "gengap.sqlite"


@dataclass
class SweepOutcome:
    """What :func:`run_sweep` did.

    Attributes:
        spec: The study.
        folder: The sweep folder.
        trials: Every trial of the study.
        skipped: Trial ids already complete in the store before this call.
        completed: Trial ids finished by this call.
        failed: Trial id -> error, for trials that failed every attempt.
        seconds: Wall time of this call.
    """

    spec: StudySpec
    folder: Path
    trials: list[Trial]
    skipped: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def store_path(self) -> Path:
        return self.folder / STORE_NAME


def _is_tty(stream: Any) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


class SweepView:
    """The live view: trials done / running / failed and an ETA.

    On a terminal it is one rich status line that updates in place; otherwise (logs, CI)
    every event is printed as one full line.
    """

    def __init__(self, total: int, done: int, slots: int, *, stream: Any = None) -> None:
        self.total, self.done, self.failed, self.slots = total, done, 0, max(1, slots)
        self.remaining = total - done
        self.durations: list[float] = []
        self.start = time.perf_counter()
        self.stream = stream if stream is not None else sys.stdout
        self.live: Any = None
        if _is_tty(self.stream):
            from rich.console import Console
            from rich.live import Live

            self.live = Live(self._text(), console=Console(file=self.stream), refresh_per_second=2)
            self.live.start()

    def _eta(self) -> str:
        if not self.remaining:
            return "0s"
        if not self.durations:
            return "?"
        mean = sum(self.durations) / len(self.durations)
        seconds = mean * -(-self.remaining // self.slots)
        return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f}s"

    def _text(self) -> str:
        running = min(self.slots, self.remaining)
        elapsed = time.perf_counter() - self.start
        return (
            f"trials: {self.done}/{self.total} done, {running} running, {self.failed} failed"
            f" | {elapsed:.0f}s elapsed, ETA {self._eta()}"
        )

    def event(self, message: str, *, seconds: float | None = None, finished: bool = False,
              failed: bool = False) -> None:  # fmt: skip
        """Record a trial event and show it (``finished``: done; ``failed``: given up)."""
        if seconds is not None and finished:
            self.durations.append(seconds)
        if finished:
            self.done += 1
            self.remaining -= 1
        if failed:
            self.failed += 1
            self.remaining -= 1
        line = f"{message} | {self._text()}"
        if self.live is not None:
            self.live.console.print(message, markup=False, highlight=False)
            self.live.update(self._text())
        else:
            print(f"[{time.strftime('%H:%M:%S')}] {line}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


def trial_status(store: ResultsStore, trial: Trial, evaluations: list[str]) -> str | None:
    """``"done"`` when the store holds the trial's run finished with every extra
    evaluation, its stored status otherwise, ``None`` when it holds nothing of it."""
    try:
        run = store.get_run(trial.run_name)
    except KeyError:
        return None
    if run["status"] != "done":
        return str(run["status"])
    for name in evaluations:
        if not store.episodes(run_id=trial.run_name, tag=f"study:{name}"):
            return "incomplete"
    return "done"


def _trial_info(spec: StudySpec, trial: Trial, attempts: int, error: str | None) -> dict[str, Any]:
    return {
        "sweep": {
            "study": spec.name,
            "trial_id": trial.trial_id,
            "arm": trial.arm,
            "params": trial.params,
            "group": trial.group,
            "attempts": attempts,
            "error": error,
        }
    }


def _record_failure(
    store: ResultsStore, spec: StudySpec, trial: Trial, run_dir: Path, attempts: int, error: str
) -> None:
    config = trial.config
    store.add_run(
        trial.run_name,
        kind="online",
        env_id=config["env_id"],
        algo=config["algo"],
        seed=config["seed"],
        config={**config, **_trial_info(spec, trial, attempts, error)},
        run_dir=str(run_dir),
        status="failed",
        label=trial.group,
    )


def _error_line(text: str, error: BaseException | None) -> str:
    """The last line of a traceback: ``Type: message``."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if lines:
        return lines[-1].strip()
    return f"{type(error).__name__}: {error}" if error is not None else "unknown error"


def run_sweep(
    study: str | Path | StudySpec,
    *,
    workers: int | None = None,
    backend: str = "local",
    address: str | None = None,
    scale: float = 1.0,
    out_dir: str | Path | None = None,
    retries: int | None = None,
    stream: Any = None,
    executor_factory: Callable[..., Any] | None = None,
) -> SweepOutcome:
    """Run every trial of a study that the sweep's store does not hold yet.

    Args:
        study: A study TOML path or a parsed :class:`StudySpec`.
        workers: Trials at once (default: the study's ``workers``; Ray on a cluster: the
            cluster schedules by ``cpus_per_trial``/``gpus_per_trial``).
        backend: ``"local"`` (process pool) or ``"ray"``.
        address: Ray cluster address (``ray`` only; default ``RAY_ADDRESS``, else a local
            Ray instance started for the sweep).
        scale: Multiplies every trial's steps (``--scale``).
        out_dir: The sweep folder (default: the study's ``out_dir``).
        retries: Extra attempts of a failing trial (default: the study's ``retries``).
        stream: Where the live view goes (default stdout).
        executor_factory: Builds the executor (default
            :class:`gengap.core.executor.Executor`); same keyword arguments.

    Returns:
        What was skipped, completed and failed. The results are in the sweep's store.

    Raises:
        InputError: On a bad study file, backend, worker count or Ray address (before any
            trial runs).
        KeyboardInterrupt: On Ctrl-C, after the workers stopped; finished trials are kept.
    """
    spec = study if isinstance(study, StudySpec) else load_study_spec(study)
    trials = expand(spec, scale=scale)
    retries = spec.retries if retries is None else retries
    checks.int_in("retries", retries, 0)
    if executor_factory is None:
        from gengap.core.executor import Executor

        executor_factory = Executor
    executor = executor_factory(
        backend,
        workers=workers or spec.workers,
        address=address,
        cpus_per_task=spec.cpus_per_trial,
        gpus_per_task=spec.gpus_per_trial,
    )
    folder = check_out_dir(out_dir if out_dir is not None else spec.out_dir).resolve()
    runs_dir = folder / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        folder / "study.json",
        json.dumps(
            {"study": spec.to_dict(), "scale": scale, "trials": [t.run_name for t in trials]},
            indent=2,
        ),
    )
    store = ResultsStore(folder / STORE_NAME)
    evaluations = [e.name for e in spec.evaluations]
    outcome = SweepOutcome(spec, folder, trials)
    todo = []
    for trial in trials:
        if trial_status(store, trial, evaluations) == "done":
            outcome.skipped.append(trial.trial_id)
        else:
            todo.append(trial)
    ship = backend != "local"
    slots = min(executor.workers, len(todo)) if todo else 1
    view = SweepView(len(trials), len(outcome.skipped), slots, stream=stream)
    start = time.perf_counter()
    attempts: dict[str, int] = {}
    try:
        view.event(
            f"sweep {spec.name}: {len(trials)} trials ({describe_axes(spec)}), "
            f"{len(outcome.skipped)} already stored, {len(todo)} to run on {backend} "
            f"({slots} at once) in {folder}"
        )
        while todo:
            tasks = [_task(spec, trial, runs_dir, ship) for trial in todo]
            again = []
            for result in executor.map(run_trial, tasks):
                trial = todo[result.index]
                attempts[trial.trial_id] = attempts.get(trial.trial_id, 0) + 1
                tries = attempts[trial.trial_id]
                if result.ok:
                    _take_in(store, spec, trial, runs_dir, result.result(), tries)
                    outcome.completed.append(trial.trial_id)
                    view.event(f"done   {trial.run_name} ({result.seconds:.0f}s)",
                               seconds=result.seconds, finished=True)  # fmt: skip
                    continue
                error = _error_line(result.traceback, result.error)
                if tries <= retries:
                    again.append(trial)
                    view.event(f"retry  {trial.run_name} (attempt {tries} failed: {error})")
                else:
                    _record_failure(store, spec, trial, runs_dir / trial.run_name, tries, error)
                    outcome.failed[trial.trial_id] = error
                    view.event(f"FAILED {trial.run_name} after {tries} attempts: {error}",
                               failed=True)  # fmt: skip
            todo = again
    except KeyboardInterrupt:
        view.close()
        print(
            f"interrupted: {len(outcome.skipped) + len(outcome.completed)} of {len(trials)} "
            "trials are stored; run the same command again to finish the rest",
            file=sys.stderr,
        )
        raise
    finally:
        view.close()
        store.close()
        outcome.seconds = time.perf_counter() - start
    return outcome


def _task(spec: StudySpec, trial: Trial, runs_dir: Path, ship: bool) -> dict[str, Any]:
    archive = None
    run_dir = runs_dir / trial.run_name
    if ship and (run_dir / "run.json").is_file():
        from gengap.drivers.trial import pack_folder

        archive = pack_folder(run_dir)  # the worker resumes from this folder's checkpoint
    return {
        "run_name": trial.run_name,
        "label": trial.group,
        "config": trial.config,
        "evaluations": [
            {"name": e.name, "part": e.part, "env_kwargs": e.env_kwargs} for e in spec.evaluations
        ],
        "eval_episodes": spec.eval_episodes,
        "runs_dir": str(runs_dir),
        "ship": ship,
        "archive": archive,
    }


def _take_in(
    store: ResultsStore,
    spec: StudySpec,
    trial: Trial,
    runs_dir: Path,
    result: dict[str, Any],
    attempts: int,
) -> None:
    """Put a finished trial's folder in place and its results in the store (one transaction)."""
    run_dir = runs_dir / trial.run_name
    if result.get("archive"):
        run_dir = unpack_folder(result["archive"], runs_dir, trial.run_name)
    store.import_run(
        result["run"],
        result["episodes"],
        result["curves"],
        config_extra=_trial_info(spec, trial, attempts, None),
        run_dir=str(run_dir),
    )
