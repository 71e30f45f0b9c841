"""Offline runs: the run loop's trainer for an :class:`OfflineAgent` fitting a dataset.

An offline run is an :class:`~gengap.eval.runs.ExperimentConfig` with ``dataset`` and
``num_updates``: the same run folder, store (rows of kind ``offline``), periodic
evaluation on training and held-out levels (curves over updates), checkpoints, final
evaluation and reports as an online run. Before anything is written, the dataset is
checked against the run: it must exist and load, come from the run's env with the
env's observation space, hold no episode from a level (or combination) the run's split
holds out, and have an action space the algorithm can learn (:func:`open_datasets`).
"""

from __future__ import annotations

from typing import Any, Protocol

from gengap.agents import AgentConfig, OfflineAgent
from gengap.agents.base import Hook
from gengap.core.errors import InputError, InputFileNotFoundError
from gengap.envs import Split, make
from gengap.eval.runs import ExperimentConfig, RunFolder
from gengap.offline.dataset import Dataset

__all__ = ["OfflineTrainer", "open_datasets"]


class RunParts(Protocol):
    """The parts of :class:`gengap.drivers.train.Run` a trainer uses (a protocol, so this
    module need not import the run loop that imports it)."""

    config: ExperimentConfig
    folder: RunFolder
    split: Split
    agent_config: AgentConfig
    run_id: str
    store: Any
    resume: bool


def _open(path: str, what: str) -> Dataset:
    try:
        return Dataset.open(path)
    except InputFileNotFoundError as error:
        raise InputFileNotFoundError(f"{what} {path!r}: {error}") from None


def open_datasets(config: ExperimentConfig, split: Split) -> tuple[Dataset, Dataset | None]:
    """The run's training dataset (and validation dataset), checked against the run.

    Raises:
        InputFileNotFoundError: If a dataset folder is missing or is not a dataset.
        InputError: For a damaged dataset, one collected on another env or with another
            observation space, one holding episodes of held-out levels (named), or an
            action space the algorithm cannot learn.
    """
    if config.dataset is None:
        raise InputError("an offline run needs a dataset (--dataset PATH)")
    env = make(config.env_id, split=split, part="train", **config.env_kwargs)
    observation_space = env.observation_space
    env.close()
    opened: list[Dataset] = []
    for path, what, part in ((config.dataset, "dataset", "train"),
                             (config.validation_dataset, "validation_dataset", "validation")):
        if path is None:
            continue
        dataset = _open(path, what)
        dataset.check_env(config.env_id, observation_space)
        if part == "validation" and split.validation is None:
            raise InputError(f"validation_dataset {path!r} given, but the run's split has no "
                             "validation part")
        dataset.check_split(split, part=part)
        config.agent_config().check_action_space(dataset.action_space, config.env_id)
        opened.append(dataset)
    return opened[0], (opened[1] if len(opened) > 1 else None)


class OfflineTrainer:
    """Fits an :class:`OfflineAgent` on the run's dataset for ``num_updates`` updates.

    Args:
        run: The run (its checkpoint, when resuming, is loaded).
        datasets: The checked training and validation datasets (default: opened and
            checked here).

    Raises:
        InputError: If the config's algorithm is not an offline learner, or a dataset
            does not fit the run (see :func:`open_datasets`).
    """

    kind = "offline"

    def __init__(self, run: RunParts, datasets: tuple[Dataset, Dataset | None] | None = None
                 ) -> None:
        config = run.config
        self.run = run
        assert config.num_updates is not None  # ExperimentConfig checks offline runs
        self.total = config.num_updates
        self.dataset, self.validation = datasets or open_datasets(config, run.split)
        agent_cls = run.agent_config.agent_class()
        if not issubclass(agent_cls, OfflineAgent):
            raise InputError(f"algo {config.algo!r} is not an offline learner")
        if run.resume and run.folder.has_checkpoint():
            self.agent: OfflineAgent = agent_cls.load_checkpoint(run.folder.checkpoint_dir)
            run.store.delete_curves_after(run.run_id, self.agent.num_updates)
        else:
            created = run.agent_config.create(self.dataset.observation_space,
                                              self.dataset.action_space)
            assert isinstance(created, OfflineAgent)  # agent_class() said so
            self.agent = created

    def step(self) -> int:
        return self.agent.num_updates

    def train(self, hook: Hook) -> None:
        self.agent.fit(self.dataset, self.total, validation=self.validation, hook=hook)

    def save_checkpoint(self) -> None:
        self.agent.save_checkpoint(self.run.folder.checkpoint_dir)

    def close(self) -> None:
        """Nothing to release: datasets are memory-mapped read-only."""
