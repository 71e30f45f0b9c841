"""The run loop: train on a split's training levels, evaluate on held-out levels.

One run, in small steps, each its own function:

1. :func:`prepare_run` makes (or reopens, to resume) the run folder
   (:class:`~gengap.eval.runs.RunFolder` owns its layout) and registers the run in
   the folder's results store.
2. A trainer builds the agent and trains it: :class:`OnlineTrainer` steps an
   :class:`~gengap.agents.OnlineAgent` in the training envs. A trainer is anything
   with the :class:`Trainer` shape (``kind``, ``agent``, ``total``, ``train(hook)``,
   ``close()``), so a trainer that fits an :class:`~gengap.agents.OfflineAgent` on a
   dataset plugs into the same loop.
3. :class:`PeriodicEvaluator` is the trainer's hook: every ``eval_every`` steps it
   evaluates on the training and held-out levels (curve points, TensorBoard, optional
   snapshots) and checkpoints.
4. :func:`final_evaluation` plays the end-of-training episodes into the store.

:func:`run_experiment` chains them while holding the folder's lock, so a second
process cannot train in the same folder.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gengap.agents import Agent, AgentConfig, OfflineAgent, OnlineAgent, resolve_device
from gengap.agents.base import Hook
from gengap.core.errors import InputError, InputFileExistsError, InputFileNotFoundError
from gengap.core.provenance import environment_versions, git_revision
from gengap.drivers.offline import OfflineTrainer, open_datasets
from gengap.envs import Split, make
from gengap.eval.evaluate import EpisodeRecord, evaluate, mean_scores
from gengap.eval.runs import ExperimentConfig, RunFolder, check_out_dir
from gengap.eval.store import ResultsStore

__all__ = [
    "CURVE_PARTS",
    "OnlineTrainer",
    "PeriodicEvaluator",
    "Run",
    "TRAINERS",
    "Trainer",
    "TrainingInterrupted",
    "final_evaluation",
    "prepare_run",
    "resume_experiment",
    "run_experiment",
    "run_or_resume",
    "trainer_class",
]

CURVE_PARTS = ("train", "test")
# Periodic evaluations use seeds apart from the final evaluation's (the run seed).
_PERIODIC_SEED = 10_000_019


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run.

    Attributes:
        run_dir: The run folder.
        resumable: Whether a checkpoint was written (``gengap train --resume run_dir``
            continues from it); False when the run stopped before its first one.
    """

    def __init__(self, run_dir: Path, resumable: bool) -> None:
        super().__init__(str(run_dir))
        self.run_dir = run_dir
        self.resumable = resumable


@dataclass
class Run:
    """What the steps of one run share.

    Attributes:
        config: The experiment.
        folder: The run folder.
        split: The split exactly as used (leakage exclusions included).
        agent_config: The resolved agent config.
        run_id: The run's id in the store.
        store: The folder's results store.
        resume: Whether this continues an earlier process's run.
    """

    config: ExperimentConfig
    folder: RunFolder
    split: Split
    agent_config: AgentConfig
    run_id: str
    store: ResultsStore
    resume: bool = False

    def set_status(self, status: str) -> None:
        self.folder.update_info(status=status)
        self.store.set_status(self.run_id, status)


# -- 1. the run folder ---------------------------------------------------------------------
def prepare_run(
    config: ExperimentConfig, folder: RunFolder, *, resume: bool, kind: str = "online"
) -> Run:
    """Create the run folder's files and the store's run row, or reopen them to resume.

    Args:
        config: The experiment.
        folder: The run folder.
        resume: Reopen an existing run instead of creating one.
        kind: What trains it (``"online"``, ``"offline"``), recorded in run.json and store.

    Raises:
        InputError: If a file of a folder to resume is missing or corrupt (named).
    """
    if not resume:
        split = config.resolved_split()
        agent_config = config.agent_config()
        leakage = None
        if config.exclude_leaked_levels:
            split, leakage = _exclude_leaked(config, split)
        store_path = config.store_path()
        folder.path.mkdir(parents=True, exist_ok=True)
        folder.write_config(config)
        folder.write_agent_config(agent_config)
        folder.write_split(split)
        folder.write_info(
            {
                "run_id": folder.path.name,
                "status": "running",
                "kind": kind,
                "created": time.time(),
                "store": folder.relative_store(store_path),
                "versions": environment_versions(),
                "git_revision": git_revision(Path(__file__).resolve().parent.parent),
                "leakage": leakage,
            }
        )
    else:
        folder.require_run()
        split = folder.read_split()  # exactly as used, exclusions included
        agent_config = folder.read_agent_config()
    run = Run(
        config=config,
        folder=folder,
        split=split,
        agent_config=agent_config,
        run_id=folder.run_id(),
        store=folder.store(),
        resume=resume,
    )
    if resume:
        folder.ensure_registered(run.store)  # a copied or moved folder's store may lack it
        run.set_status("running")
    else:
        folder.register(run.store, kind=kind, status="running")
    return run


def _exclude_leaked(config: ExperimentConfig, split: Split) -> tuple[Split, dict[str, Any]]:
    """The split without held-out levels that duplicate a training level, and a summary."""
    from gengap.envs.leakage import check_leakage, format_report

    test = split.test
    num_test_levels = (
        min(len(test), 100_000) if test.bounded else max(config.final_eval_episodes, 1000)
    )
    report = check_leakage(
        config.env_id,
        split,
        num_train_levels=None if split.train.bounded else 100_000,
        num_test_levels=num_test_levels,
        **config.env_kwargs,
    )
    summary = {
        "test_levels_checked": report.test_levels_checked,
        "duplicated": len(report.duplicates),
        "fraction": report.fraction,
        "text": format_report(report),
    }
    return report.excluded_split(), summary


# -- 2. trainers ---------------------------------------------------------------------------
class Trainer(Protocol):
    """What the run loop needs from a trainer (online RL today; offline fitting next).

    Attributes:
        kind: Recorded in the store (``"online"``, ``"offline"``).
        agent: The agent being trained (built or resumed by the trainer).
        total: Training steps to reach (env steps; for offline trainers, updates).
    """

    @property
    def kind(self) -> str: ...

    @property
    def agent(self) -> Agent: ...

    @property
    def total(self) -> int: ...

    def step(self) -> int:
        """Steps trained so far."""

    def train(self, hook: Hook) -> None:
        """Train until ``total``; call ``hook(step)`` regularly (False stops)."""

    def save_checkpoint(self) -> None:
        """Write everything needed to resume to the run folder's checkpoint."""

    def close(self) -> None:
        """Release envs, files, workers."""


class OnlineTrainer:
    """Trains an :class:`OnlineAgent` in ``num_envs`` envs on the training levels.

    Args:
        run: The run (its checkpoint, when resuming, is loaded).
    """

    kind = "online"

    def __init__(self, run: Run) -> None:
        config = run.config
        self.run = run
        self.total = config.total_timesteps
        agent_cls = run.agent_config.agent_class()
        if not issubclass(agent_cls, OnlineAgent):
            raise TypeError(f"OnlineTrainer needs an OnlineAgent, got {agent_cls.__name__}")
        self.env = make(
            config.env_id,
            split=run.split,
            part="train",
            num_envs=config.num_envs,
            **config.env_kwargs,
        )
        self.env.reset(seed=config.seed)
        self.agent: OnlineAgent
        if run.resume and run.folder.has_checkpoint():
            self.agent = agent_cls.load_checkpoint(run.folder.checkpoint_dir)
            # Curve points past the checkpoint are replayed by the resumed run.
            run.store.delete_curves_after(run.run_id, self.agent.num_timesteps)
        else:
            created = run.agent_config.create(
                self.env.single_observation_space, self.env.single_action_space
            )
            if not isinstance(created, OnlineAgent):
                raise TypeError(f"{agent_cls.__name__}'s config created a {type(created)}")
            self.agent = created

    def step(self) -> int:
        return self.agent.num_timesteps

    def train(self, hook: Hook) -> None:
        self.agent.learn(self.env, self.total, hook=hook)

    def save_checkpoint(self) -> None:
        self.agent.save_checkpoint(self.run.folder.checkpoint_dir)

    def close(self) -> None:
        self.env.close()


#: Trainer classes by the agent base class they train; the first base that an algo's agent
#: class derives from picks its trainer (an offline trainer registers ``OfflineAgent``).
TRAINERS: dict[type, type[Any]] = {OnlineAgent: OnlineTrainer, OfflineAgent: OfflineTrainer}


def trainer_class(agent_config: AgentConfig) -> type[Any]:
    """The trainer class for the agents ``agent_config`` builds.

    Raises:
        InputError: If no trainer trains that kind of agent.
    """
    agent_cls = agent_config.agent_class()
    for base, trainer in TRAINERS.items():
        if issubclass(agent_cls, base):
            return trainer
    kinds = ", ".join(base.__name__ for base in TRAINERS)
    raise InputError(
        f"algo {agent_config.algo!r} builds a {agent_cls.__name__}, which no trainer trains "
        f"(trainers exist for: {kinds})"
    )


# -- 3. periodic evaluation ----------------------------------------------------------------
class PeriodicEvaluator:
    """The trainer's hook: evaluate and checkpoint on schedule, update the progress display.

    Evaluation comes before the checkpoint: a checkpoint at step s then always has the
    curve point at s, and a crash in between only repeats the evaluation on resume.
    """

    def __init__(self, run: Run, trainer: Trainer, progress: Progress) -> None:
        config = run.config
        self.run = run
        self.trainer = trainer
        self.progress = progress
        self.eval_every = config.eval_every or max(trainer.total // 10, 1)
        self.checkpoint_every = config.checkpoint_every or self.eval_every
        step = trainer.step()
        self.next_eval = (step // self.eval_every + 1) * self.eval_every
        self.next_checkpoint = (step // self.checkpoint_every + 1) * self.checkpoint_every
        self.writer = _tensorboard(run.folder.tensorboard_dir)
        self.seconds = 0.0  # spent evaluating, in this process

    def __call__(self, step: int) -> bool:
        latest = None
        if step >= self.next_eval:
            latest = self.evaluate(step)
            self.next_eval += self.eval_every
        if step >= self.next_checkpoint:
            self.trainer.save_checkpoint()
            self.next_checkpoint += self.checkpoint_every
        self.progress.update(step, latest)
        return True

    def evaluate(self, step: int) -> str:
        """Evaluate on every curve part; store, log and (optionally) snapshot; a summary."""
        run, config = self.run, self.run.config
        start = time.perf_counter()
        scores: dict[str, dict[str, float]] = {}
        for part in CURVE_PARTS:
            records = evaluate(
                self.trainer.agent,
                config.env_id,
                run.split,
                part,
                num_episodes=config.eval_episodes,
                num_envs=config.eval_num_envs,
                deterministic=config.deterministic_eval,
                seed=_PERIODIC_SEED + step,
                env_kwargs=config.env_kwargs,
            )
            scores[part] = mean_scores(records)
            run.store.add_curve_points(
                run.run_id,
                [{"step": step, "part": part, "metric": k, "value": v}
                 for k, v in scores[part].items()],
            )  # fmt: skip
            for metric, value in scores[part].items():
                self.writer.add_scalar(f"{part}/{metric}", value, step)
        if config.keep_snapshots:
            run.folder.save_snapshot(self.trainer.agent, step, scores)
        self.seconds += time.perf_counter() - start
        return " | ".join(_score_text(part, part_scores) for part, part_scores in scores.items())

    def close(self) -> None:
        self.writer.close()


def _score_text(part: str, scores: dict[str, float]) -> str:
    key = "success" if "success" in scores else "return"
    return f"{part} {key} {scores[key]:.2f}"


def _tensorboard(path: Path) -> Any:
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(path))


class Progress:
    """Training progress: a live bar on a terminal, full lines every so often in a log.

    Args:
        total: Steps to reach.
        start: Steps done already (a resumed run).
        label: Shown before the numbers (the run id).
        quiet: Show nothing (worker processes).
        stream: Where it goes (default stdout); not a terminal -> plain lines.
        line_every_s: In line mode, at most one line per this many seconds ...
        line_every_fraction: ... unless this fraction of the run has passed since the last.
        unit: What is counted (``"steps"`` of the envs; ``"updates"`` for offline runs).
    """

    def __init__(
        self,
        total: int,
        start: int,
        label: str,
        *,
        quiet: bool = False,
        stream: Any = None,
        line_every_s: float = 30.0,
        line_every_fraction: float = 0.1,
        unit: str = "steps",
    ) -> None:
        self.total, self.start_steps, self.label = total, start, label
        self.unit = unit
        self.quiet = quiet
        self.latest = ""
        self.stream = stream if stream is not None else sys.stdout
        self.line_every_s = line_every_s
        self.line_every_steps = max(int(total * line_every_fraction), 1)
        self.start_time = time.perf_counter()
        self.last_line_time = self.start_time
        self.last_line_steps = start
        self.steps = start
        self.bar: Any = None
        if quiet:
            return
        if getattr(self.stream, "isatty", lambda: False)():
            self._start_bar()

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self.bar = RichProgress(
            TextColumn(f"[bold]{self.label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(f"{{task.fields[fps]:>6.0f}} {self.unit}/s"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[latest]}"),
            console=Console(file=self.stream),
        )
        self.task = self.bar.add_task(
            "train", total=self.total, completed=self.start_steps, fps=0.0, latest=""
        )
        self.bar.start()

    def _fps(self) -> float:
        elapsed = max(time.perf_counter() - self.start_time, 1e-9)
        return (self.steps - self.start_steps) / elapsed

    def line(self) -> str:
        """The progress as one full line (what a log gets)."""
        elapsed = time.perf_counter() - self.start_time
        fps = self._fps()
        remaining = (self.total - self.steps) / fps if fps > 0 else float("nan")
        eta = _duration(remaining) if remaining == remaining else "?"
        text = (
            f"{self.label}: {self.steps}/{self.total} {self.unit} "
            f"({100 * self.steps / self.total:.0f}%), {fps:.0f} {self.unit}/s, "
            f"elapsed {_duration(elapsed)}, eta {eta}"
        )
        return f"{text} | {self.latest}" if self.latest else text

    def update(self, steps: int, latest: str | None = None) -> None:
        if self.quiet:
            return
        self.steps = steps
        if latest is not None:
            self.latest = latest
        if self.bar is not None:
            self.bar.update(self.task, completed=steps, fps=self._fps(), latest=self.latest)
            return
        now = time.perf_counter()
        # Lines at each crossed tenth of the run (10%, 20%, ...), and between them after
        # line_every_s seconds without one.
        crossed = steps // self.line_every_steps > self.last_line_steps // self.line_every_steps
        if crossed or now - self.last_line_time >= self.line_every_s:
            self._write_line(now)

    def _write_line(self, now: float) -> None:
        print(self.line(), file=self.stream, flush=True)
        self.last_line_time, self.last_line_steps = now, self.steps

    def close(self) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.stop()
        elif self.steps != self.last_line_steps:
            self._write_line(time.perf_counter())


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def train(run: Run, trainer: Trainer, *, quiet: bool = False) -> Agent:
    """Train with periodic evaluation; save the final checkpoint and agent.

    Raises:
        TrainingInterrupted: On Ctrl-C (a checkpoint is written first when there is an
            agent to write).
    """
    # an offline trainer counts gradient updates, an online one env steps
    unit = "updates" if trainer.kind == "offline" else "steps"
    progress = Progress(trainer.total, trainer.step(), run.run_id, quiet=quiet, unit=unit)
    evaluator = PeriodicEvaluator(run, trainer, progress)
    run.folder.update_info(device=_device(trainer.agent))
    status = "failed"
    start = time.perf_counter()
    try:
        trainer.train(evaluator)
        trainer.save_checkpoint()
        trainer.agent.save(run.folder.agent_dir)
        status = "trained"
    except KeyboardInterrupt:
        status = "interrupted"
        trainer.save_checkpoint()
        raise TrainingInterrupted(run.folder.path, run.folder.has_checkpoint()) from None
    finally:
        progress.close()
        evaluator.close()
        _add_seconds(
            run.folder,
            train=time.perf_counter() - start - evaluator.seconds,
            periodic_eval=evaluator.seconds,
        )
        run.set_status(status)
    return trainer.agent


def _add_seconds(folder: RunFolder, **seconds: float) -> None:
    """Add wall time to ``run.json``'s ``seconds`` (summed over resumed processes)."""
    recorded = dict(folder.read_info().get("seconds") or {})
    for key, value in seconds.items():
        recorded[key] = round(float(recorded.get(key, 0.0)) + value, 3)
    folder.update_info(seconds=recorded)


def _device(agent: Agent) -> str:
    """The device the agent's networks really run on.

    An SB3 model's own ``device`` is the truth: SB3 falls back to the CPU when the
    requested CUDA device is missing, so the config's device can differ from it.
    """
    for holder in (getattr(agent, "model", None), agent):
        device = getattr(holder, "device", None)
        if device is not None:
            return str(device)
    return resolve_device(agent.config.device)


# -- 4. final evaluation -------------------------------------------------------------------
def final_evaluation(run: Run, agent: Agent, step: int) -> None:
    """Play the final evaluation(s) into the store; parts stored already are skipped.

    Each part is stored in one transaction, so an interrupted evaluation resumes at the
    first part that is missing.
    """
    config = run.config
    start = time.perf_counter()
    modes = [("final", config.deterministic_eval)]
    if config.compare_action_modes:
        other = not config.deterministic_eval
        modes.append((f"final-{'greedy' if other else 'sampled'}", other))
    for tag, deterministic in modes:
        for part in config.final_eval_parts:
            if run.store.episodes(run_id=run.run_id, part=part, tag=tag):
                continue
            records = evaluate(
                agent,
                config.env_id,
                run.split,
                part,
                num_episodes=config.final_eval_episodes,
                num_envs=config.eval_num_envs,
                deterministic=deterministic,
                seed=config.seed,
                env_kwargs=config.env_kwargs,
            )
            run.store.add_episodes(run.run_id, _rows(records), part=part, step=step, tag=tag)
    _add_seconds(run.folder, final_eval=time.perf_counter() - start)


def _rows(records: list[EpisodeRecord]) -> list[dict[str, Any]]:
    return [record.to_dict() for record in records]


# -- the loop ------------------------------------------------------------------------------
def run_experiment(
    config: ExperimentConfig,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    quiet: bool = False,
) -> Path:
    """Train, evaluate periodically on train and held-out levels, then evaluate at the end.

    Args:
        config: The experiment.
        run_dir: The run folder (default ``<out_dir>/<run name>``).
        resume: Continue from the folder's last checkpoint.
        quiet: No progress display (for worker processes).

    Returns:
        The run folder.

    Raises:
        InputFileExistsError: If the run folder holds a run and ``resume`` is False.
        InputError: If the output folder is not a writable folder (naming ``--out``).
        RunLockedError: If another process is training in the run folder.
        TrainingInterrupted: On Ctrl-C.
    """
    folder = RunFolder(run_dir if run_dir is not None else config.run_dir())
    if not resume:
        check_out_dir(folder.path.parent)
        if folder.exists():
            raise InputFileExistsError(
                f"run folder {str(folder.path)!r} already holds a run; resume it with "
                f"`gengap train --resume {folder.path}` or choose another --out/--name"
            )
    # An offline run's data is checked before anything is written (missing, damaged, for
    # another env, holding held-out levels, or not fitting the algorithm: one InputError).
    datasets = open_datasets(config, config.resolved_split()) if config.offline else None
    with folder.lock():
        try:
            make_trainer = trainer_class(config.agent_config())
            run = prepare_run(config, folder, resume=resume, kind=make_trainer.kind)
            trainer: Trainer = make_trainer(run, datasets) if config.offline else make_trainer(run)
        except KeyboardInterrupt:
            if folder.exists():
                folder.update_info(status="interrupted")
            raise TrainingInterrupted(folder.path, folder.has_checkpoint()) from None
        try:
            agent = train(run, trainer, quiet=quiet)
        finally:
            trainer.close()
        try:
            final_evaluation(run, agent, step=trainer.step())
        except KeyboardInterrupt:
            raise TrainingInterrupted(folder.path, folder.has_checkpoint()) from None
        run.set_status("done")
    return folder.path


def resume_experiment(run_dir: str | Path, *, quiet: bool = False) -> Path:
    """Continue an interrupted run from its last checkpoint, with the saved config.

    Raises:
        InputFileNotFoundError: If ``run_dir`` is not a run folder (naming the file).
        InputError: If its config is corrupt (naming the file).
    """
    folder = RunFolder(run_dir)
    if not folder.config_path.is_file():
        raise InputFileNotFoundError(
            f"--resume {str(run_dir)!r}: no {RunFolder.CONFIG} there; not a gengap run folder"
        )
    return run_experiment(folder.read_config(), run_dir=folder.path, resume=True, quiet=quiet)


def run_or_resume(config: ExperimentConfig, *, quiet: bool = True) -> Path:
    """Run ``config``; a finished run folder is reused and an unfinished one resumed.

    This is what makes a sweep or study restartable: run it again after an interruption
    and only the missing work is done.

    Raises:
        InputFileExistsError: If the run folder holds a run of a different config (reusing
            it would report numbers that the requested config never produced).
    """
    folder = RunFolder(config.run_dir())
    if not folder.exists():
        return run_experiment(config, run_dir=folder.path, quiet=quiet)
    saved = folder.read_config().to_dict()
    wanted = json.loads(json.dumps(config.to_dict()))  # the form config.json was written in
    saved = json.loads(json.dumps(saved))
    changed = sorted(k for k in saved.keys() | wanted.keys() if saved.get(k) != wanted.get(k))
    if changed:
        raise InputFileExistsError(
            f"run folder {str(folder.path)!r} holds a run of a different config (differs in "
            f"{', '.join(changed)}); give this config another out_dir or name"
        )
    if folder.status() == "done":
        return folder.path
    return resume_experiment(folder.path, quiet=quiet)
