"""Experiments: train on a split's training levels, evaluate on held-out levels.

A run lives in one folder (``RUN_DIR``)::

    config.json        the ExperimentConfig (what `gengap train --resume` reuses)
    split.json         the split, exactly as used
    run.json           run id, status, package versions, git revision
    agent_config.json  the resolved agent config (defaults + overrides)
    checkpoint/        latest training state (safetensors + JSON), written atomically
    agent/             the final agent
    tb/                TensorBoard logs

and in the results store (SQLite), which holds the learning curves and every
evaluation episode.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gengap.agents import AgentConfig, OnlineAgent, agent_config_from_dict, default_agent_config
from gengap.envs import LevelSet, Split, env_info, make, resolve_split
from gengap.envs.configio import config_from_dict, read_json, read_toml
from gengap.envs.errors import InputError, InputFileExistsError, InputFileNotFoundError
from gengap.envs.factory import check_env_options, check_num_envs
from gengap.envs.io import atomic_write_text
from gengap.eval.evaluate import EpisodeRecord, evaluate
from gengap.eval.provenance import environment_versions, git_revision
from gengap.eval.store import ResultsStore

CURVE_PARTS = ("train", "test")


@dataclass
class ExperimentConfig:
    """One training run: env, split, algorithm, budget and evaluation protocol.

    Args:
        env_id: Registered gengap env id.
        algo: Agent algorithm (``ppo``, ``dqn``, ``sac``).
        total_timesteps: Environment steps to train for.
        num_envs: Parallel training envs.
        seed: Seeds the agent, the envs and evaluation.
        num_train_levels: Shortcut: train on levels ``0..num_train_levels-1``, keep the
            env's default held-out levels. Ignored when ``split`` is given.
        split: A full split (``Split.to_dict()`` form).
        env_kwargs: Family options, e.g. ``{"obs_mode": "image"}``.
        agent: Overrides of the per-family agent defaults, e.g. ``{"learning_rate": 3e-4}``.
        eval_every: Steps between evaluations during training (0: ten over the run).
        eval_episodes: Episodes per part at each evaluation during training.
        final_eval_episodes: Episodes per part at the end.
        final_eval_parts: Parts evaluated at the end.
        deterministic_eval: Greedy actions when True; sampled when False.
        compare_action_modes: Also run the final evaluation with the other action mode
            (stored under tag ``final-greedy`` or ``final-sampled``): a memoryless greedy
            policy can loop forever where the sampled one does not, and that looping is
            easily mistaken for a generalization gap.
        checkpoint_every: Steps between checkpoints (0: at every evaluation).
        exclude_leaked_levels: Before training, run the leakage check on the held-out
            levels that evaluation will use and exclude those whose initial state equals a
            training level's (the split saved with the run records the exclusions). For
            an unbounded test part the first ``max(final_eval_episodes, 1000)`` levels
            are checked; natively vectorized families (Procgen) sample beyond them, so
            give such runs a bounded test part for exact exclusion.
        out_dir: Where run folders go.
        store: The SQLite results store (default ``<out_dir>/gengap.sqlite``).
        name: Run folder name (default ``<label>-s<seed>``).
        label: The configuration's name; reports pool the seeds of one label (default
            built from env, algo and number of training levels).
    """

    env_id: str
    algo: str = "ppo"
    total_timesteps: int = 100_000
    num_envs: int = 8
    seed: int = 0
    num_train_levels: int | None = None
    split: dict[str, Any] | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    agent: dict[str, Any] = field(default_factory=dict)
    eval_every: int = 0
    eval_episodes: int = 20
    final_eval_episodes: int = 200
    final_eval_parts: tuple[str, ...] = ("train", "test")
    deterministic_eval: bool = True
    compare_action_modes: bool = False
    checkpoint_every: int = 0
    exclude_leaked_levels: bool = False
    out_dir: str = "runs"
    store: str | None = None
    name: str | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        env_info(self.env_id)  # unknown ids raise with close matches
        for key in ("total_timesteps", "num_envs", "eval_episodes", "final_eval_episodes"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{key} must be a positive integer, got {value!r}")
        for key in ("eval_every", "checkpoint_every", "seed"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InputError(f"{key} must be a non-negative integer, got {value!r}")
        if self.num_train_levels is not None and (
            isinstance(self.num_train_levels, bool)
            or not isinstance(self.num_train_levels, int)
            or self.num_train_levels < 1
        ):
            raise InputError(
                f"num_train_levels must be a positive integer, got {self.num_train_levels!r}"
            )
        if self.name is not None and (
            not isinstance(self.name, str)
            or self.name in ("", ".", "..")
            or any(sep in self.name for sep in ("/", "\\"))
        ):
            raise InputError(
                f"name must be a folder name (no path separators, not '.' or '..'), "
                f"got {self.name!r}"
            )
        if isinstance(self.agent, dict) and "seed" in self.agent:
            # agent_config() sets the agent's seed from the experiment's: an override here
            # would be silently dropped.
            raise InputError(
                f"agent.seed ({self.agent['seed']!r}) cannot be set apart from the run: give "
                "the experiment's seed (--seed) instead"
            )
        check_num_envs(self.num_envs)
        self.final_eval_parts = tuple(self.final_eval_parts)
        # Bad splits, env options, algos and agent overrides fail here, before a run
        # folder exists.
        check_env_options(self.env_id, self.env_kwargs, what="env_kwargs")
        split = self.resolved_split()
        for part in self.final_eval_parts:
            split.levels(part)  # unknown parts raise with close matches
        self.agent_config()

    def agent_config(self) -> AgentConfig:
        """The agent config: the env family's defaults, then ``agent`` overrides, then seed."""
        family = env_info(self.env_id).family
        return default_agent_config(self.algo, family, **{**self.agent, "seed": self.seed})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        return config_from_dict(cls, data, what="experiment")

    @classmethod
    def from_toml(cls, path: str | Path) -> ExperimentConfig:
        return cls.from_dict(read_toml(path, "experiment file"))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["final_eval_parts"] = list(self.final_eval_parts)
        return data

    def resolved_split(self) -> Split:
        if self.split is not None:
            return resolve_split(self.env_id, self.split)
        default = env_info(self.env_id).default_split
        if self.num_train_levels is None:
            return default
        train = LevelSet.range(0, self.num_train_levels)
        validation = default.validation
        if validation is not None and validation.overlap(train)[0]:
            validation = None
        return Split(
            train=train,
            validation=validation,
            test=default.test,
            name=f"{default.name.rsplit('-', 1)[0]}-{self.num_train_levels}",
        )

    def group_label(self) -> str:
        """What reports group seeds by: ``label``, else env, algo and training levels."""
        if self.label:
            return self.label
        short = self.env_id.split("/", 1)[1].removesuffix("-v0")
        train = self.resolved_split().train
        return f"{short}-{self.algo}-L{len(train) if train.bounded else 'inf'}"

    def run_name(self) -> str:
        return self.name or f"{self.group_label()}-s{self.seed}"

    def store_path(self) -> Path:
        return Path(self.store) if self.store else Path(self.out_dir) / "gengap.sqlite"


def _records_to_rows(records: list[EpisodeRecord]) -> list[dict[str, Any]]:
    return [r.to_dict() for r in records]


def _score(records: list[EpisodeRecord]) -> dict[str, float]:
    out = {"return": sum(r.episode_return for r in records) / len(records)}
    successes = [r.success for r in records if r.success is not None]
    if successes:
        out["success"] = sum(successes) / len(successes)
    normalized = [r.normalized_return for r in records if r.normalized_return is not None]
    if normalized:
        out["normalized_return"] = sum(normalized) / len(normalized)
    return out


class _Progress:
    """A rich progress bar with steps/s and the latest train/test score; silent when quiet."""

    def __init__(self, total: int, start: int, quiet: bool, label: str) -> None:
        self.quiet = quiet
        self.latest = ""
        if quiet:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[fps]:>6.0f} steps/s"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[latest]}"),
        )
        self.task = self.progress.add_task(
            "train", total=total, completed=start, fps=0.0, latest=""
        )
        self.start_time, self.start_steps = time.perf_counter(), start
        self.progress.start()

    def update(self, steps: int, latest: str | None = None) -> None:
        if self.quiet:
            return
        if latest is not None:
            self.latest = latest
        elapsed = max(time.perf_counter() - self.start_time, 1e-9)
        self.progress.update(
            self.task,
            completed=steps,
            fps=(steps - self.start_steps) / elapsed,
            latest=self.latest,
        )

    def close(self) -> None:
        if not self.quiet:
            self.progress.stop()


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
        quiet: No progress bar (for worker processes).

    Returns:
        The run folder.

    Raises:
        FileExistsError: If the run folder holds a run and ``resume`` is False.
    """
    split = config.resolved_split()
    run_dir = Path(run_dir) if run_dir is not None else Path(config.out_dir) / config.run_name()
    checkpoint_dir = run_dir / "checkpoint"
    if (run_dir / "run.json").exists() and not resume:
        raise InputFileExistsError(
            f"run folder {str(run_dir)!r} already holds a run; resume it with "
            f"`gengap train --resume {run_dir}` or choose another --out/--name"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    run_id = (
        run_dir.name if not resume else json.loads((run_dir / "run.json").read_text())["run_id"]
    )
    store = ResultsStore(config.store_path())
    agent_config = config.agent_config()

    if not resume:
        leakage = None
        if config.exclude_leaked_levels:
            split, leakage = _exclude_leaked(config, split)
        atomic_write_text(run_dir / "config.json", json.dumps(config.to_dict(), indent=2))
        atomic_write_text(
            run_dir / "agent_config.json", json.dumps(agent_config.to_dict(), indent=2)
        )
        split.save(run_dir / "split.json")
        versions = environment_versions()
        git_rev = git_revision(Path(__file__).resolve().parent.parent)
        run_info = {
            "run_id": run_id,
            "status": "running",
            "created": time.time(),
            "versions": versions,
            "git_revision": git_rev,
            "leakage": leakage,
        }
        atomic_write_text(run_dir / "run.json", json.dumps(run_info, indent=2))
        store.add_run(
            run_id=run_id,
            kind="online",
            env_id=config.env_id,
            algo=config.algo,
            seed=config.seed,
            config=config.to_dict() | {"agent_resolved": agent_config.to_dict()},
            split=split.to_dict(),
            versions=versions,
            git_rev=git_rev,
            run_dir=str(run_dir),
            status="running",
            label=config.group_label(),
        )
    else:
        split = Split.load(run_dir / "split.json")  # exactly as used, exclusions included
        agent_config = agent_config_from_dict(
            json.loads((run_dir / "agent_config.json").read_text())
        )

    env = make(
        config.env_id, split=split, part="train", num_envs=config.num_envs, **config.env_kwargs
    )
    env.reset(seed=config.seed)
    agent: OnlineAgent
    if resume and (checkpoint_dir / "config.json").exists():
        agent_cls = agent_config.agent_class()
        if not issubclass(agent_cls, OnlineAgent):
            raise TypeError(f"algo {config.algo!r} is not an online RL agent")
        agent = agent_cls.load_checkpoint(checkpoint_dir)
        store.delete_curves_after(run_id, agent.num_timesteps)
    else:
        created = agent_config.create(env.single_observation_space, env.single_action_space)
        if not isinstance(created, OnlineAgent):
            raise TypeError(f"algo {config.algo!r} is not an online RL agent")
        agent = created

    eval_every = config.eval_every or max(config.total_timesteps // 10, 1)
    checkpoint_every = config.checkpoint_every or eval_every
    next_eval = (agent.num_timesteps // eval_every + 1) * eval_every
    next_checkpoint = (agent.num_timesteps // checkpoint_every + 1) * checkpoint_every
    writer = _tensorboard(run_dir / "tb")
    progress = _Progress(config.total_timesteps, agent.num_timesteps, quiet, run_id)

    def periodic_eval(step: int) -> str:
        text = []
        for part in CURVE_PARTS:
            records = evaluate(
                agent,
                config.env_id,
                split,
                part,
                num_episodes=config.eval_episodes,
                num_envs=min(config.num_envs, config.eval_episodes),
                deterministic=config.deterministic_eval,
                seed=10_000_019 + step,
                env_kwargs=config.env_kwargs,
            )
            scores = _score(records)
            store.add_curve_points(
                run_id,
                [{"step": step, "part": part, "metric": k, "value": v} for k, v in scores.items()],
            )
            for metric, value in scores.items():
                writer.add_scalar(f"{part}/{metric}", value, step)
            key = "success" if "success" in scores else "return"
            text.append(f"{part} {key} {scores[key]:.2f}")
        return " | ".join(text)

    def hook(step: int) -> bool:
        nonlocal next_eval, next_checkpoint
        latest = None
        # Evaluate before checkpointing: a checkpoint at step s then always has the curve
        # point at s, and a crash in between only repeats the evaluation on resume.
        if step >= next_eval:
            latest = periodic_eval(step)
            next_eval += eval_every
        if step >= next_checkpoint:
            agent.save_checkpoint(checkpoint_dir)
            next_checkpoint += checkpoint_every
        progress.update(step, latest)
        return True

    status = "failed"
    try:
        agent.learn(env, config.total_timesteps, hook=hook)
        agent.save_checkpoint(checkpoint_dir)
        agent.save(run_dir / "agent")
        status = "trained"
    except KeyboardInterrupt:
        agent.save_checkpoint(checkpoint_dir)
        status = "interrupted"
        raise
    finally:
        progress.close()
        env.close()
        writer.close()
        _set_status(run_dir, store, run_id, status)

    modes = [("final", config.deterministic_eval)]
    if config.compare_action_modes:
        other = not config.deterministic_eval
        modes.append((f"final-{'greedy' if other else 'sampled'}", other))
    for tag, deterministic in modes:
        for part in config.final_eval_parts:
            if store.episodes(run_id=run_id, part=part, tag=tag):
                continue  # stored before an interruption (each part is one transaction)
            records = evaluate(
                agent,
                config.env_id,
                split,
                part,
                num_episodes=config.final_eval_episodes,
                num_envs=config.num_envs,
                deterministic=deterministic,
                seed=config.seed,
                env_kwargs=config.env_kwargs,
            )
            store.add_episodes(
                run_id, _records_to_rows(records), part=part, step=agent.num_timesteps, tag=tag
            )
    _set_status(run_dir, store, run_id, "done")
    return run_dir


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


def _set_status(run_dir: Path, store: ResultsStore, run_id: str, status: str) -> None:
    info = json.loads((run_dir / "run.json").read_text())
    info["status"] = status
    atomic_write_text(run_dir / "run.json", json.dumps(info, indent=2))
    store.set_status(run_id, status)


def _tensorboard(path: Path) -> Any:
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(path))


def resume_experiment(run_dir: str | Path, *, quiet: bool = False) -> Path:
    """Continue an interrupted run from its last checkpoint, with the saved config."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise InputFileNotFoundError(
            f"--resume {str(run_dir)!r}: no config.json there; not a gengap run folder"
        )
    config = ExperimentConfig.from_dict(read_json(config_path, "run config"))
    return run_experiment(config, run_dir=run_dir, resume=True, quiet=quiet)


def run_or_resume(config: ExperimentConfig, *, quiet: bool = True) -> Path:
    """Run ``config``; a finished run folder is reused and an unfinished one resumed.

    This is what makes a sweep or study restartable: run it again after an interruption
    and only the missing work is done.

    Raises:
        FileExistsError: If the run folder holds a run of a different config (reusing it
            would report numbers that the requested config never produced).
    """
    run_dir = Path(config.out_dir) / config.run_name()
    run_json = run_dir / "run.json"
    if not run_json.is_file():
        return run_experiment(config, run_dir=run_dir, quiet=quiet)
    saved = json.loads((run_dir / "config.json").read_text())
    wanted = json.loads(json.dumps(config.to_dict()))  # the form config.json was written in
    changed = sorted(k for k in saved.keys() | wanted.keys() if saved.get(k) != wanted.get(k))
    if changed:
        raise InputFileExistsError(
            f"run folder {str(run_dir)!r} holds a run of a different config (differs in "
            f"{', '.join(changed)}); give this config another out_dir or name"
        )
    if json.loads(run_json.read_text())["status"] == "done":
        return run_dir
    return resume_experiment(run_dir, quiet=quiet)


def load_run(run_dir: str | Path) -> tuple[ExperimentConfig, Split, dict[str, Any]]:
    """The config, split and run info saved in a run folder."""
    run_dir = Path(run_dir)
    for name in ("config.json", "split.json", "run.json"):
        if not (run_dir / name).is_file():
            raise InputFileNotFoundError(
                f"{str(run_dir)!r} is not a gengap run folder: {name} is missing"
            )
    config = ExperimentConfig.from_dict(read_json(run_dir / "config.json", "run config"))
    return (
        config,
        Split.load(run_dir / "split.json"),
        read_json(run_dir / "run.json", "run info"),
    )


def evaluate_run(
    run_dir: str | Path,
    *,
    part: str = "test",
    num_episodes: int = 200,
    num_workers: int = 1,
    deterministic: bool = True,
) -> list[EpisodeRecord]:
    """Evaluate a finished run's agent on ``part`` of its own split; store the episodes."""
    run_dir = Path(run_dir)
    config, split, info = load_run(run_dir)
    agent_dir = run_dir / "agent"
    if not (agent_dir / "config.json").is_file():
        raise InputFileNotFoundError(
            f"run {info['run_id']!r} has no trained agent yet (status {info['status']!r}); "
            f"finish it with `gengap train --resume {run_dir}`"
        )
    records = evaluate(
        agent_dir,
        config.env_id,
        split,
        part,
        num_episodes=num_episodes,
        num_envs=config.num_envs,
        num_workers=num_workers,
        deterministic=deterministic,
        seed=config.seed,
        env_kwargs=config.env_kwargs,
    )
    tag = f"eval-{'greedy' if deterministic else 'sampled'}"
    store = ResultsStore(config.store_path())
    step = json.loads((agent_dir / "agent.json").read_text())["num_timesteps"]
    store.add_episodes(info["run_id"], _records_to_rows(records), part=part, step=step, tag=tag)
    return records


def report_runs(
    run_dirs: list[str] | list[Path], out_dir: str | Path, *, tag: str | None = "final"
) -> Path:
    """Write a Markdown report (with plots) over the runs in ``run_dirs``.

    Args:
        run_dirs: Run folders sharing one results store; seeds of one config are pooled.
        out_dir: Where ``report.md`` and the plots go.
        tag: Which evaluation to report (``final``: the end-of-training one with the
            run's own action mode; ``None``: each run's latest evaluation).
    """
    from gengap.eval.report import write_report

    if not run_dirs:
        raise InputError("report needs at least one run folder")
    loaded = [load_run(d) for d in run_dirs]
    stores = {str(config.store_path().resolve()) for config, _, _ in loaded}
    if len(stores) != 1:
        raise InputError(
            f"runs to report together must share one results store, got {sorted(stores)}"
        )
    families = {env_info(config.env_id).family for config, _, _ in loaded}
    store = ResultsStore(next(iter(stores)))
    run_ids = [info["run_id"] for _, _, info in loaded]
    if families == {"procgen"}:
        score = "normalized_return"
    elif any(r.get("success") is not None for r in store.episodes(run_id=run_ids[0])):
        score = "success"
    else:
        score = "return"
    return write_report(store, run_ids, Path(out_dir), score=score, tag=tag)
