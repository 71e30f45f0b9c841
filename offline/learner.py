"""What every gengap offline learner shares: batches read by index, the fit loop, checkpoints.

A learner never holds the dataset: update ``u`` reads only the ``batch_size`` rows it
draws, through ``TransitionSource.transitions`` (a memory-mapped store then reads a
batch, never the whole file), drawn by ``Dataset.sample_indices`` where the source is a
gengap dataset (a pool of resident chunks: compressed frames stay cheap to read). The
rows of update ``u`` are a function of ``(seed, u)`` alone, so a background thread reads
batch ``u + 1`` while update ``u`` trains, and a resumed run draws exactly the rows an
uninterrupted one would. The rest of training's randomness (torch sampling, dropout)
runs on RNG states the agent owns, inside
:func:`torch.random.fork_rng`, so the same seed gives the same weights whatever else the
process does, and a checkpoint holds those states.

Files: ``save`` writes config.json, agent.json (spaces, update count, algorithm state)
and model.safetensors (every network, named ``<module>.<parameter>``);
``save_checkpoint`` adds optimizers.safetensors + optimizers.json (optimizer and torch
RNG states, no pickle) and training_state.json (the update count).
Both are written into a temporary directory that is renamed into place.
"""

from __future__ import annotations

import contextlib
import dataclasses
from abc import abstractmethod
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Self

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from gengap.agents import checkpoint as ckpt
from gengap.agents.base import (
    AGENT_FILE,
    CONFIG_FILE,
    WEIGHTS_FILE,
    AgentConfig,
    Hook,
    OfflineAgent,
    TransitionSource,
    read_config,
    resolve_device,
)
from gengap.agents.networks import (
    FEATURES_EXTRACTORS,
    ExtractorChoice,
)
from gengap.core import checks
from gengap.core.errors import InputError, InputTypeError
from gengap.core.files import atomic_directory, read_json
from gengap.core.spaces import space_from_dict, space_to_dict
from gengap.offline.dataset import Dataset

STATE_FILE = "training_state.json"
OPTIMIZER_FILE = "optimizers.safetensors"  # + optimizers.json (ckpt.save_tensor_state)
FORMAT_VERSION = 1


def to_torch(value: Any, device: str) -> Any:
    """A numpy batch (or dict of them; memory-mapped slices too) as tensors on ``device``.

    uint8 stays uint8 until it is on the device: a quarter of the bytes to move.
    """
    if isinstance(value, Mapping):
        return {k: to_torch(v, device) for k, v in value.items()}
    return torch.from_numpy(np.ascontiguousarray(value)).to(device)


def check_batch(space: gymnasium.Space[Any], obs: Any, name: str = "obs") -> int:
    """The batch size of ``obs``; InputError unless it is a batch of ``space``'s shape."""
    if isinstance(space, spaces.Dict):
        if not isinstance(obs, Mapping) or set(obs) != set(space.spaces):
            raise InputError(f"{name} must be a dict with keys {sorted(space.spaces)}")
        sizes = {check_batch(s, obs[k], f"{name}[{k!r}]") for k, s in space.spaces.items()}
        if len(sizes) != 1:
            raise InputError(f"{name} entries have different batch sizes: {sorted(sizes)}")
        return sizes.pop()
    shape, expected = np.shape(obs), tuple(space.shape or ())
    if len(shape) != len(expected) + 1 or tuple(shape[1:]) != expected:
        raise InputError(f"{name} must be a batch of shape (N, *{expected}), got shape {shape}")
    return int(shape[0])


def batch_size_of(obs: Any) -> int:
    """Leading-axis length of a batch (of a dict's first entry for Dict observations)."""
    if isinstance(obs, Mapping):
        return batch_size_of(next(iter(obs.values())))
    return int(np.shape(obs)[0])


class ActionScaler:
    """Maps a Box's actions to [-1, 1] and back (identity where a bound is infinite).

    Continuous offline learners output tanh-squashed actions, as d3rlpy's policies do.
    """

    def __init__(self, space: spaces.Box) -> None:
        low = np.asarray(space.low, dtype=np.float64)
        high = np.asarray(space.high, dtype=np.float64)
        finite = np.isfinite(low) & np.isfinite(high)
        self.center = np.where(finite, (high + low) / 2, 0.0).astype(np.float32)
        self.half_range = np.where(finite, (high - low) / 2, 1.0).astype(np.float32)
        self.half_range[self.half_range == 0] = 1.0

    def scale(self, actions: np.ndarray) -> np.ndarray:
        return ((np.asarray(actions, dtype=np.float32) - self.center) / self.half_range)

    def unscale(self, actions: np.ndarray) -> np.ndarray:
        return np.asarray(actions, dtype=np.float32) * self.half_range + self.center


@dataclasses.dataclass
class OfflineConfig(ExtractorChoice, AgentConfig):
    """Fields every offline learner has.

    Attributes:
        batch_size: Transitions (or sequences) per update; ``None`` for the algorithm's default.
        features_extractor: ``"auto"`` (the online agents' choice from the observation
            space: IMPALA CNN for uint8 images, the MiniGrid CNN for other 3-D boxes, slot
            attention for slot dicts, SB3's combined extractor for other dicts, MLP for
            vectors) or a name from :data:`gengap.agents.networks.FEATURES_EXTRACTORS`.
        features_dim: Output units of the extractor (``None``: its default, e.g. 256 for
            IMPALA, 128 for the MiniGrid CNN).
    """

    action_space_types: ClassVar[tuple[type[gymnasium.Space[Any]], ...]] = (
        spaces.Discrete, spaces.Box)

    batch_size: int | None = None
    features_extractor: str = "auto"
    features_dim: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        checks.optional(checks.positive_int, "batch_size", self.batch_size)
        checks.one_of("features_extractor", self.features_extractor,
                      [*FEATURES_EXTRACTORS, "auto"])
        checks.optional(checks.positive_int, "features_dim", self.features_dim)

    @classmethod
    def fits_action_space(cls, action_space: gymnasium.Space[Any]) -> bool:
        """Whether the algorithm can act in ``action_space`` (Box spaces must be 1-D)."""
        if isinstance(action_space, spaces.Box) and len(action_space.shape) != 1:
            return False
        return super().fits_action_space(action_space)

    def check_spaces(self, action_space: gymnasium.Space[Any]) -> None:
        """Raise InputError (one line, naming the offline algorithms that fit) if the
        algorithm cannot learn this action space."""
        type(self).check_action_space(action_space)


def check_dataset(agent: OfflineAgent, dataset: Any, name: str = "dataset") -> None:
    """Raise InputError unless ``dataset`` is a TransitionSource with the agent's spaces."""
    if not isinstance(dataset, TransitionSource):
        raise InputTypeError(f"{name} must be a TransitionSource (gengap.offline dataset), "
                             f"got {type(dataset).__name__}")
    for what in ("observation_space", "action_space"):
        if getattr(dataset, what) != getattr(agent, what):
            raise InputError(f"{name} has {what} {getattr(dataset, what)}, this agent was "
                             f"built for {getattr(agent, what)}")
    if dataset.num_transitions <= 0:
        raise InputError(f"{name} holds no transitions")


class OfflineLearner(OfflineAgent):
    """Base of gengap's offline learners: fit loop, index sampling, RNG scope, files.

    Subclasses build their networks in ``__init__`` (after ``super().__init__``, inside
    ``self.rng_scope()`` so initialisation is seeded) and implement :meth:`networks`,
    :meth:`optimizers`, :meth:`update` and :meth:`act`.

    Args:
        config: The algorithm config.
        observation_space: Single-step observation space.
        action_space: Single-step action space.

    Raises:
        InputError: If the algorithm does not fit ``action_space``.
    """

    config: OfflineConfig
    default_batch_size: ClassVar[int] = 256

    def __init__(
        self,
        config: OfflineConfig,
        observation_space: gymnasium.Space[Any],
        action_space: gymnasium.Space[Any],
    ) -> None:
        config.check_spaces(action_space)
        self.config = config
        self.observation_space = observation_space
        self.action_space = action_space
        self.device = resolve_device(config.device)
        self.num_updates = 0
        self.batch_size = config.batch_size or self.default_batch_size
        self._cpu_rng = torch.Generator().manual_seed(config.seed).get_state()
        self._cuda_rng: torch.Tensor | None = None

    # -- randomness ---------------------------------------------------------------------
    @contextlib.contextmanager
    def rng_scope(self) -> Iterator[None]:
        """Run torch code on this agent's own RNG states, leaving the global ones alone."""
        cuda = torch.device(self.device).type == "cuda"
        index = torch.device(self.device).index or 0
        with torch.random.fork_rng(devices=[index] if cuda else []):
            torch.set_rng_state(self._cpu_rng)
            if cuda:
                if self._cuda_rng is None:
                    torch.cuda.manual_seed(self.config.seed)
                else:
                    torch.cuda.set_rng_state(self._cuda_rng, index)
            yield
            self._cpu_rng = torch.get_rng_state()
            if cuda:
                self._cuda_rng = torch.cuda.get_rng_state(index)

    def batch_rng(self, update: int) -> np.random.Generator:
        """The generator that draws the rows of update ``update`` (0-based): a function of
        the seed and the update alone."""
        return np.random.default_rng([self.config.seed, update])

    def sample_indices(self, update: int, dataset: TransitionSource) -> np.ndarray:
        """``batch_size`` transition indices for update ``update``: a function of the seed
        and the update alone.

        A gengap :class:`~gengap.offline.dataset.Dataset` draws them
        (:meth:`~gengap.offline.dataset.Dataset.sample_indices`: uniform over transitions,
        from a pool of chunks kept decompressed, so a batch costs a few chunk
        decompressions instead of one per row); any other source gets uniform indices,
        sorted (neighbouring rows share a page).
        """
        if isinstance(dataset, Dataset):
            return dataset.sample_indices(self.batch_size, seed=self.config.seed, update=update)
        rows = self.batch_rng(update).integers(0, dataset.num_transitions, size=self.batch_size)
        return np.sort(rows)

    # -- what subclasses provide -----------------------------------------------------------
    @abstractmethod
    def networks(self) -> dict[str, nn.Module]:
        """Every module whose weights are saved, by name."""

    @abstractmethod
    def optimizers(self) -> dict[str, Any]:
        """Every object with optimizer state (``state_dict``/``load_state_dict``), by name."""

    @abstractmethod
    def read_batch(self, dataset: TransitionSource, update: int) -> Any:
        """The data of update ``update`` as numpy arrays (runs in a reader thread: no
        torch, no state but the dataset's)."""

    @abstractmethod
    def learn(self, batch: Any) -> dict[str, float]:
        """One gradient update on a batch from :meth:`read_batch`; returns its losses."""

    def prepare(self, dataset: TransitionSource, validation: TransitionSource | None) -> None:
        """Called once per :meth:`fit` before the first update (precompute, validate)."""

    def after_update(self, validation: TransitionSource | None) -> None:
        """Called after every update (validation, checkpoint selection)."""

    def stopped_early(self, validation: TransitionSource | None) -> bool:
        """True once the learner's own stopping rule says training is over."""
        return False

    def extra_state(self) -> dict[str, Any]:
        """JSON state saved in agent.json and restored by :meth:`load_extra_state`."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`extra_state`."""

    # -- training -----------------------------------------------------------------------
    def fit(
        self,
        dataset: TransitionSource,
        num_updates: int,
        *,
        validation: TransitionSource | None = None,
        hook: Hook | None = None,
    ) -> None:
        """Update until ``self.num_updates == num_updates`` (a resumed agent does the rest).

        Args:
            dataset: Training transitions.
            num_updates: Total gradient updates to reach (counting those already done).
            validation: Transitions from the split's validation levels (used by learners
                that select checkpoints or stop early on them).
            hook: Called with the update count after every update; False stops.

        Raises:
            InputError: If ``num_updates`` is not a positive integer, or a dataset does not
                match the agent's spaces.
        """
        checks.positive_int("num_updates", num_updates)
        check_dataset(self, dataset)
        if validation is not None:
            check_dataset(self, validation, "validation")
        self.prepare(dataset, validation)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gengap-reader") as reader, \
                self.rng_scope():
            pending: Future[Any] | None = None
            while self.num_updates < num_updates and not self.stopped_early(validation):
                if pending is None:
                    pending = reader.submit(self.read_batch, dataset, self.num_updates)
                batch = pending.result()
                pending = None
                if self.num_updates + 1 < num_updates:  # read ahead while this one trains
                    pending = reader.submit(self.read_batch, dataset, self.num_updates + 1)
                self.learn(batch)
                self.num_updates += 1
                self.after_update(validation)
                if hook is not None:
                    keep_going = hook(self.num_updates)
                    if not isinstance(keep_going, bool | np.bool_):
                        raise TypeError(f"hook must return a bool (False stops training), "
                                        f"got {keep_going!r}")
                    if not keep_going:
                        break

    # -- files --------------------------------------------------------------------------
    def acting_networks(self) -> dict[str, nn.Module]:
        """The modules :meth:`save` writes (BC writes its selected checkpoint here)."""
        return self.networks()

    @staticmethod
    def _save_modules(modules: dict[str, nn.Module], path: Path) -> None:
        ckpt.save_weights(nn.ModuleDict(modules), path)

    def _load_modules(self, modules: dict[str, nn.Module], path: Path) -> None:
        ckpt.load_weights(nn.ModuleDict(modules), path, self.device)

    def _write_agent_files(self, directory: Path, modules: dict[str, nn.Module]) -> None:
        ckpt.write_json(directory / CONFIG_FILE, self.config.to_dict())
        ckpt.write_json(directory / AGENT_FILE, {
            "format_version": FORMAT_VERSION,
            "num_updates": self.num_updates,
            "observation_space": space_to_dict(self.observation_space),
            "action_space": space_to_dict(self.action_space),
            "state": self.extra_state(),
        })
        self._save_modules(modules, directory / WEIGHTS_FILE)

    def save(self, path: str | Path) -> None:
        """Write config.json, agent.json and model.safetensors to directory ``path``."""
        with atomic_directory(path) as staging:
            self._write_agent_files(staging, self.acting_networks())

    @classmethod
    def _from_directory(cls, path: str | Path, device: str) -> tuple[Self, dict[str, Any]]:
        directory = Path(path)
        config = read_config(directory).replace(device=device)
        if config.agent_class() is not cls:
            raise ValueError(f"{directory} holds a {config.algo!r} agent, not a {cls.__name__}")
        meta = read_json(directory / AGENT_FILE, "agent file")
        agent = cls(config, space_from_dict(meta["observation_space"]),  # type: ignore[arg-type]
                    space_from_dict(meta["action_space"]))
        agent.num_updates = int(meta["num_updates"])
        agent.load_extra_state(meta.get("state", {}))
        return agent, meta

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Self:
        """Load an agent (or the acting networks of a checkpoint) from directory ``path``."""
        agent, _ = cls._from_directory(path, device)
        agent._load_modules(agent.acting_networks(), Path(path) / WEIGHTS_FILE)
        return agent

    def save_checkpoint(self, path: str | Path) -> None:
        """Atomically write networks, optimizers, update count and RNG states to ``path``."""
        with atomic_directory(path) as staging:
            self._write_agent_files(staging, self.checkpoint_networks())
            torch_state: dict[str, Any] = {
                name: opt.state_dict() for name, opt in self.optimizers().items()}
            torch_state["rng.cpu"] = self._cpu_rng
            if self._cuda_rng is not None:
                torch_state["rng.cuda"] = self._cuda_rng
            ckpt.save_tensor_state(torch_state, staging / OPTIMIZER_FILE)
            ckpt.write_json(staging / STATE_FILE, {"num_updates": self.num_updates})

    def checkpoint_networks(self) -> dict[str, nn.Module]:
        """Modules a checkpoint holds: the trained ones, plus any a subclass selects."""
        return self.networks()

    @classmethod
    def load_checkpoint(cls, path: str | Path, device: str = "auto") -> Self:
        """Rebuild an agent from :meth:`save_checkpoint`, ready for :meth:`fit` to continue."""
        directory = Path(path)
        agent, _ = cls._from_directory(directory, device)
        agent._load_modules(agent.checkpoint_networks(), directory / WEIGHTS_FILE)
        torch_state = ckpt.load_tensor_state(directory / OPTIMIZER_FILE, "cpu")
        optimizers = agent.optimizers()
        missing = set(optimizers) - set(torch_state)
        if missing:
            raise ValueError(f"{directory / OPTIMIZER_FILE} lacks optimizer states "
                             f"{sorted(missing)}")
        for name, opt in optimizers.items():
            opt.load_state_dict(torch_state[name])
        agent._cpu_rng = torch_state["rng.cpu"]
        agent._cuda_rng = torch_state.get("rng.cuda")
        state = read_json(directory / STATE_FILE, "training state")
        agent.num_updates = int(state["num_updates"])
        return agent


__all__ = [
    "ActionScaler",
    "OfflineConfig",
    "OfflineLearner",
    "batch_size_of",
    "check_batch",
    "check_dataset",
    "to_torch",
]
