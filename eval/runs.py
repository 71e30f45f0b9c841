"""Run folders: the one module that knows where a run keeps what.

A run lives in one folder (``RUN_DIR``)::

    config.json        the ExperimentConfig (what `gengap train --resume` reuses)
    split.json         the split, exactly as used (leakage exclusions included)
    run.json           run id, status, device, package versions, git revision, and the
                       results store, as a path relative to the folder
    agent_config.json  the resolved agent config (defaults + overrides)
    checkpoint/        latest training state (safetensors + JSON), written atomically
    agent/             the final agent
    snapshots/         step-<N>/ agents and their scores (``keep_snapshots``)
    tb/                TensorBoard logs
    .lock              held (fcntl) by the process training in the folder; holds its pid

The results store (SQLite) holds the learning curves and every evaluation episode. It
belongs to the folder: ``run.json`` records it relative to the folder (by default
``../gengap.sqlite``, the store of the output folder the run was created in), so a copied
or moved folder, or a command run from another directory, writes to the store beside the
folder, never to the one the folder was created next to.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gengap.offline  # noqa: F401  (registers the offline learners: bc, cql, bcq, dt, ...)
from gengap.agents import AgentConfig, agent_config_for_env, agent_config_from_dict
from gengap.agents.base import AGENT_FILE, CONFIG_FILE
from gengap.core import checks
from gengap.core.config import config_from_dict
from gengap.core.errors import InputError, InputFileExistsError, InputFileNotFoundError
from gengap.core.files import atomic_write_text, read_json, read_toml
from gengap.envs import LevelSet, Split, env_info, resolve_split
from gengap.envs.factory import check_env_options, check_num_envs

if TYPE_CHECKING:
    from gengap.agents import Agent
    from gengap.eval.store import ResultsStore

__all__ = [
    "DEFAULT_STORE_NAME",
    "ExperimentConfig",
    "RunFolder",
    "RunLockedError",
    "Snapshot",
    "check_out_dir",
    "load_run",
]

DEFAULT_STORE_NAME = "gengap.sqlite"


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
        eval_num_envs: Envs stepped side by side (batched actions) by every evaluation,
            independent of the training ``num_envs``.
        deterministic_eval: Greedy actions when True; sampled when False.
        compare_action_modes: Also run the final evaluation with the other action mode
            (stored under tag ``final-greedy`` or ``final-sampled``): a memoryless greedy
            policy can loop forever where the sampled one does not, and that looping is
            easily mistaken for a generalization gap.
        checkpoint_every: Steps between checkpoints (0: at every evaluation).
        keep_snapshots: At each periodic evaluation also save the agent to
            ``snapshots/step-<N>/`` with that evaluation's mean scores (``snapshot.json``),
            e.g. to collect offline datasets from policies of several qualities.
        exclude_leaked_levels: Before training, run the leakage check on the held-out
            levels that evaluation will use and exclude those whose initial state equals a
            training level's (the split saved with the run records the exclusions). For
            an unbounded test part the first ``max(final_eval_episodes, 1000)`` levels
            are checked; natively vectorized families (Procgen) sample beyond them, so
            give such runs a bounded test part for exact exclusion.
        out_dir: Where run folders go.
        store: The SQLite results store (default ``<out_dir>/gengap.sqlite``). The run
            folder records it relative to itself when the run is created.
        name: Run folder name (default ``<label>-s<seed>``).
        label: The configuration's name; reports pool the seeds of one label (default
            built from env, algo and number of training levels).
        dataset: An offline run: the gengap dataset folder to learn from (collected on
            the split's training levels; checked before training) instead of playing the
            env. ``algo`` must then be an offline learner (``bc``, ``cql``, ``bcq``,
            ``dt``, ...), ``num_updates`` replaces ``total_timesteps`` and ``eval_every`` /
            ``checkpoint_every`` count updates.
        num_updates: Gradient updates of an offline run.
        validation_dataset: Transitions from the split's validation levels, for offline
            learners that select their checkpoint or stop early on them (``bc``).
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
    eval_num_envs: int = 16
    deterministic_eval: bool = True
    compare_action_modes: bool = False
    checkpoint_every: int = 0
    keep_snapshots: bool = False
    exclude_leaked_levels: bool = False
    out_dir: str = "runs"
    store: str | None = None
    name: str | None = None
    label: str | None = None
    dataset: str | None = None
    num_updates: int | None = None
    validation_dataset: str | None = None

    def __post_init__(self) -> None:
        env_info(self.env_id)  # unknown ids raise with close matches
        for key in (
            "total_timesteps",
            "num_envs",
            "eval_episodes",
            "final_eval_episodes",
            "eval_num_envs",
        ):
            checks.positive_int(key, getattr(self, key))
        for key in ("eval_every", "checkpoint_every", "seed"):
            checks.non_negative_int(key, getattr(self, key))
        if self.num_train_levels is not None:
            checks.positive_int("num_train_levels", self.num_train_levels)
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
        check_num_envs(self.eval_num_envs, what="eval_num_envs")
        self.final_eval_parts = tuple(self.final_eval_parts)
        # Bad splits, env options, algos and agent overrides fail here, before a run
        # folder exists.
        check_env_options(self.env_id, self.env_kwargs, what="env_kwargs")
        split = self.resolved_split()
        for part in self.final_eval_parts:
            split.levels(part)  # unknown parts raise with close matches
        self._check_learner(self.agent_config())

    @property
    def offline(self) -> bool:
        """Whether this run learns from a dataset (``dataset`` is set)."""
        return self.dataset is not None

    def _check_learner(self, agent_config: AgentConfig) -> None:
        """An offline run needs an offline learner and an update count, and vice versa."""
        from gengap.agents import OfflineAgent, agent_config_class, registered_algos

        learns_offline = issubclass(agent_config.agent_class(), OfflineAgent)
        if self.dataset is None:
            if learns_offline:
                raise InputError(f"algo {self.algo!r} learns from a dataset; give one with "
                                 "--dataset PATH (dataset = ... in TOML) and --updates N")
            for key in ("num_updates", "validation_dataset"):
                if getattr(self, key) is not None:
                    raise InputError(f"{key} is for offline runs; give a dataset too "
                                     f"(--dataset PATH), or drop {key}")
            return
        if not isinstance(self.dataset, str) or not self.dataset:
            raise InputError(f"dataset must be a dataset folder path, got {self.dataset!r}")
        checks.positive_int("num_updates (--updates)", self.num_updates)
        if not learns_offline:
            offline = [name for name in registered_algos()
                       if issubclass(agent_config_class(name)().agent_class(), OfflineAgent)]
            raise InputError(f"algo {self.algo!r} learns online; a dataset run needs an "
                             f"offline learner: {', '.join(offline) or 'none registered'}")

    def agent_config(self) -> AgentConfig:
        """The agent config: the env family's defaults, then ``agent`` overrides, then seed."""
        return agent_config_for_env(
            self.algo, self.env_id, env_kwargs=self.env_kwargs, **{**self.agent, "seed": self.seed}
        )

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
        # Only the levels change: the default split's combination and context axes stay.
        return dataclasses.replace(
            default,
            train=train,
            validation=validation,
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

    def run_dir(self) -> Path:
        """The run folder this config creates: ``<out_dir>/<run name>``."""
        return Path(self.out_dir) / self.run_name()

    def store_path(self) -> Path:
        """The store a NEW run of this config writes to (an existing run folder knows its
        own: :meth:`RunFolder.store_path`)."""
        return Path(self.store) if self.store else Path(self.out_dir) / DEFAULT_STORE_NAME


@dataclass(frozen=True)
class Snapshot:
    """An agent saved at a periodic evaluation (``ExperimentConfig.keep_snapshots``).

    Attributes:
        step: Training steps when it was saved.
        path: The agent folder (load it with :func:`gengap.agents.load_agent`).
        scores: Mean scores of that evaluation, per part (``{"train": {"return": ...,
            "success": ...}, "test": {...}}``; keys ``return``, ``success``,
            ``normalized_return`` where defined).
    """

    step: int
    path: Path
    scores: dict[str, dict[str, float]]


class RunLockedError(InputError):
    """Another process holds the run folder's lock (it is training in it)."""


def _write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2))


class RunFolder:
    """The files of one run folder, and reading them with errors that name the file.

    Args:
        path: The run folder (it need not exist yet).
    """

    CONFIG = "config.json"
    SPLIT = "split.json"
    RUN = "run.json"
    AGENT_CONFIG = "agent_config.json"
    CHECKPOINT = "checkpoint"
    AGENT = "agent"
    SNAPSHOTS = "snapshots"
    TENSORBOARD = "tb"
    LOCK = ".lock"
    SNAPSHOT_INFO = "snapshot.json"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # -- paths ---------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / self.CONFIG

    @property
    def split_path(self) -> Path:
        return self.path / self.SPLIT

    @property
    def run_path(self) -> Path:
        return self.path / self.RUN

    @property
    def agent_config_path(self) -> Path:
        return self.path / self.AGENT_CONFIG

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / self.CHECKPOINT

    @property
    def agent_dir(self) -> Path:
        return self.path / self.AGENT

    @property
    def snapshots_dir(self) -> Path:
        return self.path / self.SNAPSHOTS

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / self.TENSORBOARD

    @property
    def lock_path(self) -> Path:
        return self.path / self.LOCK

    # -- state ---------------------------------------------------------------------------
    def exists(self) -> bool:
        """Whether a run was created here (``run.json`` exists)."""
        return self.run_path.is_file()

    def has_checkpoint(self) -> bool:
        """Whether a training checkpoint was written (something to ``--resume``)."""
        return (self.checkpoint_dir / CONFIG_FILE).is_file()

    def has_agent(self) -> bool:
        """Whether the final agent was saved."""
        return (self.agent_dir / CONFIG_FILE).is_file()

    def require_run(self) -> None:
        """Raise an InputError unless the folder holds a run (naming the missing file)."""
        for name in (self.CONFIG, self.SPLIT, self.RUN):
            if not (self.path / name).is_file():
                raise InputFileNotFoundError(
                    f"{str(self.path)!r} is not a gengap run folder: {name} is missing"
                )

    # -- reading -------------------------------------------------------------------------
    def read_config(self) -> ExperimentConfig:
        data = read_json(self.config_path, "run folder config")
        try:
            return ExperimentConfig.from_dict(data)
        except (ValueError, TypeError) as error:
            raise InputError(f"{str(self.config_path)!r}: {error}") from None

    def read_split(self) -> Split:
        data = read_json(self.split_path, "run folder split")
        try:
            return Split.from_dict(data)
        except (ValueError, TypeError) as error:
            raise InputError(f"{str(self.split_path)!r}: {error}") from None

    def read_info(self) -> dict[str, Any]:
        info = read_json(self.run_path, "run folder info")
        if not isinstance(info, dict) or not isinstance(info.get("run_id"), str):
            raise InputError(f"{str(self.run_path)!r} is corrupt: it has no run_id")
        return info

    def read_agent_config(self) -> AgentConfig:
        data = read_json(self.agent_config_path, "run folder agent config")
        try:
            return agent_config_from_dict(data)
        except (ValueError, TypeError) as error:
            raise InputError(f"{str(self.agent_config_path)!r}: {error}") from None

    def run_id(self) -> str:
        return str(self.read_info()["run_id"])

    def status(self) -> str:
        return str(self.read_info().get("status", "unknown"))

    def agent_step(self) -> int:
        """Training steps of the final agent (``agent/agent.json``): env steps of an online
        agent, updates of an offline one."""
        data = read_json(self.agent_dir / AGENT_FILE, "run folder agent")
        return int(data["num_updates"] if "num_updates" in data else data["num_timesteps"])

    def store_path(self) -> Path:
        """The results store that belongs to this folder, wherever the folder now is.

        ``run.json`` records it relative to the folder; folders written before that was
        recorded fall back to their config's ``store`` / ``out_dir``.
        """
        info = self.read_info()
        relative = info.get("store")
        if isinstance(relative, str) and relative:
            return Path(os.path.normpath(self.path / relative))
        return self.read_config().store_path()

    def store(self) -> ResultsStore:
        from gengap.eval.store import ResultsStore

        return ResultsStore(self.store_path())

    def snapshots(self) -> list[Snapshot]:
        """The saved snapshots, sorted by step (empty when none were kept)."""
        found = []
        if not self.snapshots_dir.is_dir():
            return []
        for folder in self.snapshots_dir.glob("step-*"):
            info_path = folder / self.SNAPSHOT_INFO
            if not info_path.is_file():
                continue  # an interrupted save: the info file is written last
            info = read_json(info_path, "snapshot")
            found.append(Snapshot(step=int(info["step"]), path=folder, scores=info["scores"]))
        return sorted(found, key=lambda snapshot: snapshot.step)

    # -- writing -------------------------------------------------------------------------
    def write_config(self, config: ExperimentConfig) -> None:
        _write_json(self.config_path, config.to_dict())

    def write_agent_config(self, agent_config: AgentConfig) -> None:
        _write_json(self.agent_config_path, agent_config.to_dict())

    def write_split(self, split: Split) -> None:
        split.save(self.split_path)

    def write_info(self, info: dict[str, Any]) -> None:
        _write_json(self.run_path, info)

    def update_info(self, **changes: Any) -> dict[str, Any]:
        info = self.read_info() | changes
        self.write_info(info)
        return info

    def relative_store(self, store_path: str | Path) -> str:
        """``store_path`` as recorded in ``run.json``: relative to this folder."""
        return os.path.relpath(Path(store_path).resolve(), self.path.resolve())

    def save_snapshot(self, agent: Agent, step: int, scores: dict[str, dict[str, float]]) -> Path:
        """Save ``agent`` to ``snapshots/step-<step>/`` with ``snapshot.json`` (written last,
        so a snapshot without it is an interrupted save and is skipped)."""
        folder = self.snapshots_dir / f"step-{step}"
        agent.save(folder)
        _write_json(folder / self.SNAPSHOT_INFO, {"step": step, "scores": scores})
        return folder

    def register(self, store: ResultsStore, *, kind: str, status: str) -> None:
        """Add (or update) this run's row in ``store`` from the folder's files: how a
        copied folder's run enters the store beside it."""
        config, info = self.read_config(), self.read_info()
        store.add_run(
            run_id=info["run_id"],
            kind=kind,
            env_id=config.env_id,
            algo=config.algo,
            seed=config.seed,
            config=config.to_dict() | {"agent_resolved": self.read_agent_config().to_dict()},
            split=self.read_split().to_dict(),
            versions=info.get("versions"),
            git_rev=info.get("git_revision"),
            run_dir=str(self.path),
            status=status,
            label=config.group_label(),
        )

    def ensure_registered(self, store: ResultsStore) -> None:
        """Register the run in ``store`` unless it is there (a copied or moved folder)."""
        try:
            store.get_run(self.run_id())
        except KeyError:
            info = self.read_info()
            self.register(store, kind=str(info.get("kind", "online")), status=self.status())

    # -- the lock ------------------------------------------------------------------------
    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder's lock while training in it; a second writer is refused.

        Raises:
            RunLockedError: If another process (named by pid) holds it.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                    raise
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                raise RunLockedError(
                    f"run folder {str(self.path)!r} is in use: process {holder} is training "
                    f"in it (lock {self.LOCK}); wait for it or stop it first"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def check_out_dir(out_dir: str | Path, flag: str = "--out (out_dir)") -> Path:
    """``out_dir`` made (if needed) and checked writable, or one line naming ``flag``.

    Raises:
        InputError: If it is a file, cannot be created, or is not writable.
    """
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise InputFileExistsError(
            f"{flag} {str(out_dir)!r} is a file, expected a folder"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(
            f"{flag} {str(out_dir)!r} cannot be created ({error.strerror or error})"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {str(out_dir)!r} is not writable")
    return path


def load_run(run_dir: str | Path) -> tuple[ExperimentConfig, Split, dict[str, Any]]:
    """The config, split and run info saved in a run folder.

    Raises:
        InputFileNotFoundError: If a file is missing (naming it).
        InputError: If a file is corrupt (naming it).
    """
    folder = RunFolder(run_dir)
    folder.require_run()
    return folder.read_config(), folder.read_split(), folder.read_info()
