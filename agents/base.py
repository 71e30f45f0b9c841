"""The agent interface every gengap agent implements, and the algorithm registry.

An agent is built from a dataclass config (``config.create(obs_space, action_space)``),
acts on batched observations, and saves to a directory holding ``config.json``,
``agent.json`` (spaces, step count) and ``model.safetensors``. Configs are looked up by
their ``algo`` name in a type-keyed registry (d3rlpy's pattern), so ``load_agent(path)`` can rebuild
any agent from its directory without unpickling anything.
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, TypeVar, runtime_checkable

import gymnasium
import numpy as np
import torch

from gengap.agents.history import EpisodeHistory
from gengap.core import checks
from gengap.core.config import config_from_dict
from gengap.core.errors import (
    InputError,
    InputFileNotFoundError,
    InputTypeError,
    unknown_name_message,
)
from gengap.core.files import read_json
from gengap.envs.registry import env_info, registered_ids

CONFIG_FILE = "config.json"
AGENT_FILE = "agent.json"
WEIGHTS_FILE = "model.safetensors"

Hook = Callable[[int], bool]


def _device_available(device: torch.device) -> bool:
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return (device.index or 0) < count
    backend = getattr(torch.backends, device.type, None) or getattr(torch, device.type, None)
    is_available = getattr(backend, "is_available", None)
    return bool(is_available()) if callable(is_available) else False


def available_devices() -> list[str]:
    """The torch devices this machine can run on: ``cpu``, then ``cuda:0``... and ``mps``."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _device_available(torch.device("mps")):
        devices.append("mps")
    return devices


def resolve_device(device: str) -> str:
    """``"auto"`` becomes ``"cuda"`` when a GPU is available, else ``"cpu"``; an explicit
    device passes through if this machine has it.

    An explicitly requested device that is missing is an error, not a silent fall back to
    the CPU: a run that asked for a GPU and quietly trained on a CPU would record a
    configuration it did not run (and take many times longer than planned). ``"auto"`` is
    the way to say "a GPU if there is one".

    Raises:
        InputTypeError: If ``device`` is not a string.
        InputError: If torch does not recognise the device string, or this machine lacks
            the device (naming the devices it has).
    """
    if not isinstance(device, str):
        raise InputTypeError(
            f"device must be a string such as 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except RuntimeError as error:
        raise InputError(
            f"device must be 'auto' or a torch device string, got {device!r}"
        ) from error
    if not _device_available(parsed):
        raise InputError(
            f"device {device!r} is not available on this machine (available: "
            f"{', '.join(available_devices())}); device='auto' uses CUDA when present, "
            "else the CPU"
        )
    return device


@dataclasses.dataclass
class AgentConfig:
    """Base of every algorithm config: a dataclass that round-trips through JSON.

    Subclasses set the class variable ``algo`` (the registry name), add their
    hyperparameters as fields with defaults, and implement :meth:`create`.

    Attributes:
        seed: Seeds network initialisation, exploration and the training env.
        device: ``"auto"`` (cuda if available, else cpu), ``"cpu"``, ``"cuda"``, ...
    """

    algo: ClassVar[str] = ""
    # The action spaces the algorithm can act in (every space unless a subclass narrows it).
    action_space_types: ClassVar[tuple[type[gymnasium.Space[Any]], ...]] = (gymnasium.Space,)
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        checks.non_negative_int("seed", self.seed)
        resolve_device(self.device)

    @classmethod
    def fits_action_space(cls, action_space: gymnasium.Space[Any]) -> bool:
        """Whether the algorithm can act in ``action_space``."""
        return isinstance(action_space, cls.action_space_types)

    @classmethod
    def check_action_space(
        cls, action_space: gymnasium.Space[Any], env_id: str | None = None
    ) -> None:
        """Refuse an action space the algorithm cannot act in, in one line that names the
        algorithms that can.

        Raises:
            InputError: E.g. "SAC needs a continuous (Box) action space;
                gengap/minigrid-doorkey-5x5-v0 has Discrete(7); algorithms that fit: dqn, ppo".
        """
        if cls.fits_action_space(action_space):
            return
        needs = " or ".join(_ACTION_SPACE_WORDS.get(t, t.__name__) for t in cls.action_space_types)
        fitting = algos_fitting(action_space, online=_learns_online(cls))
        where = env_id if env_id is not None else "the env"
        raise InputError(
            f"{cls.algo.upper()} needs a {needs} action space; {where} has {action_space}; "
            f"algorithms that fit: {', '.join(fitting) or 'none registered'}"
        )

    def check_observation_space(
        self, observation_space: gymnasium.Space[Any], env_id: str | None = None
    ) -> None:
        """Refuse, in one line, an observation space this agent cannot encode (every
        space fits unless a subclass says what its network needs).

        Raises:
            InputError: In subclasses, for a space the agent's network does not fit.
        """

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the ``algo`` name first; tuples become lists."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {"algo": self.algo, **json.loads(json.dumps(values))}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build from a dict; an ``algo`` key, if present, must name this class.

        Raises:
            ValueError: For an unknown key (with close matches) or a wrong ``algo``.
            TypeError: For a value of the wrong type, naming the key.
        """
        if not isinstance(data, Mapping):
            raise InputTypeError(
                f"{cls.__name__} data must be a mapping, got {type(data).__name__}")
        values = dict(data)
        algo = values.pop("algo", cls.algo)
        if algo != cls.algo:
            raise InputError(f"{cls.__name__} is for algo {cls.algo!r}, got algo {algo!r}")
        return config_from_dict(cls, values, what=f"{cls.algo} config")

    def replace(self, **overrides: Any) -> Self:
        """A copy with some fields changed, validated like :meth:`from_dict`."""
        return self.from_dict({**self.to_dict(), **overrides})

    def agent_class(self) -> type[Agent]:
        """The :class:`Agent` subclass this config builds and loads."""
        raise NotImplementedError(f"{type(self).__name__} must implement agent_class()")

    def create(
        self, observation_space: gymnasium.Space[Any], action_space: gymnasium.Space[Any]
    ) -> Agent:
        """Build a fresh agent for these spaces.

        Raises:
            ValueError: If the algorithm does not support these spaces.
        """
        config = self.resolved_for(observation_space)
        return self.agent_class()(config, observation_space, action_space)  # type: ignore[call-arg]

    def resolved_for(self, observation_space: gymnasium.Space[Any]) -> Self:
        """This config with every choice it leaves to the observation space written down.

        An agent saves the resolved config, so it rebuilds the same network after a default
        changes (e.g. what ``features_extractor="auto"`` picks for a space).
        """
        return self


_ACTION_SPACE_WORDS: dict[type[gymnasium.Space[Any]], str] = {
    gymnasium.spaces.Box: "continuous (Box)",
    gymnasium.spaces.Discrete: "discrete (Discrete)",
    gymnasium.spaces.MultiDiscrete: "multi-discrete (MultiDiscrete)",
    gymnasium.spaces.MultiBinary: "binary (MultiBinary)",
}


def _learns_online(config_cls: type[AgentConfig]) -> bool:
    return issubclass(config_cls().agent_class(), OnlineAgent)


def algos_fitting(action_space: gymnasium.Space[Any], *, online: bool | None = None) -> list[str]:
    """Registered algorithms that can act in ``action_space``, sorted.

    Args:
        action_space: A single-env action space.
        online: Only online learners (True), only offline ones (False), or all (None).
    """
    return [
        name for name in registered_algos()
        if _AGENT_CONFIGS[name].fits_action_space(action_space)
        and (online is None or _learns_online(_AGENT_CONFIGS[name]) == online)
    ]


ConfigT = TypeVar("ConfigT", bound=type[AgentConfig])
_AGENT_CONFIGS: dict[str, type[AgentConfig]] = {}


def register_agent(config_cls: ConfigT) -> ConfigT:
    """Class decorator: register an :class:`AgentConfig` subclass under its ``algo`` name.

    Raises:
        TypeError: If ``config_cls`` is not an AgentConfig dataclass.
        ValueError: If ``algo`` is empty or already registered.
    """
    if not (isinstance(config_cls, type) and issubclass(config_cls, AgentConfig)):
        raise TypeError(f"register_agent expects an AgentConfig subclass, got {config_cls!r}")
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"{config_cls.__name__} must be a dataclass")
    name = config_cls.algo
    if not isinstance(name, str) or not name:
        raise ValueError(f"{config_cls.__name__}.algo must be a non-empty string, got {name!r}")
    if name in _AGENT_CONFIGS:
        raise ValueError(
            f"algo {name!r} is already registered (by {_AGENT_CONFIGS[name].__name__})"
        )
    _AGENT_CONFIGS[name] = config_cls
    return config_cls


def registered_algos() -> tuple[str, ...]:
    """Names of every registered algorithm, sorted."""
    return tuple(sorted(_AGENT_CONFIGS))


def agent_config_class(algo: str) -> type[AgentConfig]:
    """The config class registered as ``algo``.

    Raises:
        InputError: For an unknown name, with close matches.
    """
    if algo not in _AGENT_CONFIGS:
        raise InputError(unknown_name_message("algo", algo, _AGENT_CONFIGS))
    return _AGENT_CONFIGS[algo]


def agent_config_from_dict(data: Mapping[str, Any]) -> AgentConfig:
    """Build the config named by ``data["algo"]`` from the rest of ``data``.

    Raises:
        ValueError: If ``algo`` is missing or unknown, or for an unknown key.
        TypeError: For a value of the wrong type.
    """
    if not isinstance(data, Mapping):
        raise InputTypeError(f"agent config must be a mapping, got {type(data).__name__}")
    if "algo" not in data:
        raise InputError(
            f"agent config needs an 'algo' key (one of: {', '.join(registered_algos())})"
        )
    return agent_config_class(data["algo"]).from_dict(data)


# Tuned hyperparameters per env family, as data. Keys are (algo, family); values override
# the config class defaults. A pair without an entry gets the class defaults, so every
# algorithm has working defaults on every family whose action space it fits: the feature
# extractor is always "auto", chosen from the observation space when the agent is built
# (gengap.agents.networks.auto_features_extractor), never per family. Sources: Procgen
# paper (Cobbe et al. 2020) for procgen PPO, REFERENCE.md's measured recipe for
# MiniGrid/BabyAI PPO, RL Baselines3 Zoo otherwise.
DEFAULT_AGENT_CONFIGS: dict[tuple[str, str], dict[str, Any]] = {
    ("ppo", "procgen"): {
        "learning_rate": 5e-4, "lr_schedule": "constant", "n_steps": 256, "n_minibatches": 8,
        "n_epochs": 3, "gamma": 0.999, "gae_lambda": 0.95, "clip_range": 0.2,
        "clip_range_vf": 0.2, "ent_coef": 0.01, "vf_coef": 0.5, "max_grad_norm": 0.5,
        "normalize_reward": True, "features_extractor": "auto", "features_dim": 256,
        "net_arch": [], "activation": "relu",
    },
    ("ppo", "minigrid"): {
        "learning_rate": 5e-4, "lr_schedule": "linear", "n_steps": 256, "batch_size": 256,
        "n_epochs": 4, "gamma": 0.99, "gae_lambda": 0.95, "clip_range": 0.2, "ent_coef": 0.01,
        "vf_coef": 0.5, "max_grad_norm": 0.5, "features_extractor": "auto",
        "features_dim": 128, "net_arch": [], "activation": "tanh",
    },
    ("ppo", "classic"): {"n_steps": 256, "batch_size": 64, "n_epochs": 10, "gamma": 0.98,
                         "gae_lambda": 0.8, "ent_coef": 0.0, "learning_rate": 1e-3},
    ("dqn", "procgen"): {
        "learning_rate": 1e-4, "buffer_size": 100_000, "learning_starts": 10_000,
        "batch_size": 32, "train_freq": 4, "target_update_interval": 1000,
        "exploration_fraction": 0.1, "exploration_final_eps": 0.01, "gamma": 0.99,
        "features_extractor": "auto", "features_dim": 256, "net_arch": [],
    },
    ("dqn", "minigrid"): {
        "learning_rate": 1e-4, "buffer_size": 100_000, "learning_starts": 1000,
        "batch_size": 64, "train_freq": 4, "target_update_interval": 1000,
        "exploration_fraction": 0.2, "exploration_final_eps": 0.05, "gamma": 0.99,
        "features_extractor": "auto", "features_dim": 128, "net_arch": [64],
    },
    ("dqn", "classic"): {  # rl-zoo CartPole-v1
        "learning_rate": 2.3e-3, "buffer_size": 100_000, "learning_starts": 1000,
        "batch_size": 64, "gamma": 0.99, "target_update_interval": 10, "train_freq": 256,
        "gradient_steps": 128, "exploration_fraction": 0.16, "exploration_final_eps": 0.04,
        "net_arch": [256, 256],
    },
    ("sac", "classic"): {"learning_rate": 1e-3},  # rl-zoo Pendulum-v1
    ("sac", "mujoco"): {"learning_starts": 10_000},  # rl-zoo HalfCheetah etc.
    # rl-zoo's MuJoCo PPO (SB3 defaults with 512-step rollouts per env, 8 envs here)
    ("ppo", "mujoco"): {"n_steps": 512, "batch_size": 64, "n_epochs": 10, "gamma": 0.99,
                        "gae_lambda": 0.95, "learning_rate": 3e-4, "ent_coef": 0.0},
    ("sac", "metaworld"): {"learning_starts": 10_000, "net_arch": [400, 400, 400]},
    # Shapes world (Dict observations: slots or 64x64 pixels, plus the goal): "auto" picks
    # the goal-conditioned slot attention extractor for slots and the goal-FiLM CNN for
    # pixels. Tuned on object_goal slots (studies/README.md): lr 1e-3, 4 epochs of 4
    # minibatches per 1024-step rollout; at lr 3e-4 even a one-object scene reached only
    # 0.61 success after 30k steps (0.96 at 1e-3).
    ("ppo", "shapes"): {
        "learning_rate": 1e-3, "lr_schedule": "constant", "n_steps": 128, "batch_size": 256,
        "n_epochs": 4, "gamma": 0.99, "gae_lambda": 0.95, "clip_range": 0.2,
        "ent_coef": 0.003, "vf_coef": 0.5, "max_grad_norm": 0.5, "features_extractor": "auto",
        "net_arch": [128, 128], "activation": "relu",
    },
    # SB3's 1M-transition buffer of 64x64 pixel observations would need ~25 GB.
    ("sac", "shapes"): {"buffer_size": 100_000},
    ("ppo", "metaworld"): {"n_steps": 500, "batch_size": 250, "n_epochs": 10, "gamma": 0.99,
                           "gae_lambda": 0.95, "learning_rate": 5e-4, "ent_coef": 0.0},
}
# BabyAI is MiniGrid with language missions: the MiniGrid recipe serves both.
DEFAULT_AGENT_CONFIGS[("ppo", "babyai")] = DEFAULT_AGENT_CONFIGS[("ppo", "minigrid")]
DEFAULT_AGENT_CONFIGS[("dqn", "babyai")] = DEFAULT_AGENT_CONFIGS[("dqn", "minigrid")]
# Families that are not gengap env families but have Gymnasium-task defaults above.
_EXTRA_FAMILIES = ("classic", "mujoco", "metaworld")


def known_families() -> list[str]:
    """Env families with defaults: every registered gengap family, plus the extra ones."""
    families = {env_info(env_id).family for env_id in registered_ids()}
    families |= {family for _, family in DEFAULT_AGENT_CONFIGS} | set(_EXTRA_FAMILIES)
    return sorted(families)


def default_agent_config(algo: str, family: str, **overrides: Any) -> AgentConfig:
    """The config for ``algo`` with the defaults of env ``family``, then ``overrides``.

    A family with no tuned entry for ``algo`` in :data:`DEFAULT_AGENT_CONFIGS` gets the
    algorithm's own defaults (with the feature extractor chosen from the observation
    space). Whether the algorithm fits an env's action space is checked by
    :func:`agent_config_for_env`, which knows the env.

    Args:
        algo: A registered algorithm name (``"ppo"``, ``"dqn"``, ``"sac"``, ...).
        family: An env family from the registry (``"procgen"``, ``"minigrid"``, ...) or
            ``"classic"`` for Gymnasium's classic-control tasks.
        **overrides: Field values that win over the family defaults.

    Raises:
        InputError: For an unknown algo or family (with close matches), or an unknown
            override key.
        TypeError: For an override of the wrong type.
    """
    config_cls = agent_config_class(algo)
    families = known_families()
    if family not in families:
        raise InputError(unknown_name_message("env family", family, families))
    return config_cls.from_dict({**DEFAULT_AGENT_CONFIGS.get((algo, family), {}), **overrides})


def env_spaces(
    env_id: str, env_kwargs: Mapping[str, Any] | None = None
) -> tuple[gymnasium.Space[Any], gymnasium.Space[Any]]:
    """The (observation, action) spaces of registered env ``env_id`` built with ``env_kwargs``."""
    env = gymnasium.make(env_info(env_id).env_id, **dict(env_kwargs or {}))
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def env_action_space(
    env_id: str, env_kwargs: Mapping[str, Any] | None = None
) -> gymnasium.Space[Any]:
    """The action space of registered env ``env_id`` built with ``env_kwargs``."""
    return env_spaces(env_id, env_kwargs)[1]


def agent_config_for_env(
    algo: str, env_id: str, *, env_kwargs: Mapping[str, Any] | None = None, **overrides: Any
) -> AgentConfig:
    """The default config of ``algo`` for registered env ``env_id`` (its family's defaults,
    then ``overrides``), refusing up front an algorithm that cannot act in the env and an
    agent whose network cannot encode its observations.

    Args:
        algo: A registered algorithm name.
        env_id: A registered gengap env id.
        env_kwargs: The env options the agent will train with (they may change spaces).
        **overrides: Field values that win over the family defaults.

    Raises:
        InputError: For an unknown algo, env id or override key, an algorithm whose
            action space does not fit the env's (one line naming the algorithms that fit),
            or an observation space the agent's network does not fit.
    """
    config_cls = agent_config_class(algo)
    observation_space, action_space = env_spaces(env_id, env_kwargs)
    config_cls.check_action_space(action_space, env_id)
    config = default_agent_config(algo, env_info(env_id).family, **overrides)
    config.check_observation_space(observation_space, env_id)
    return config


class Agent(ABC):
    """Anything that maps batched observations to batched actions and saves itself.

    Attributes:
        config: The config that built the agent.
        observation_space: The single-env observation space.
        action_space: The single-env action space.
        device: The torch device the agent actually computes on (``config.device``
            resolved: ``"auto"`` becomes ``"cuda"`` or ``"cpu"``); runs record it.
    """

    config: AgentConfig
    device: str
    observation_space: gymnasium.Space[Any]
    action_space: gymnasium.Space[Any]

    #: How many past steps of each episode :meth:`act` reads (0: only the current
    #: observation). Loops that step envs keep that many in an
    #: :class:`~gengap.agents.history.EpisodeHistory` per env and pass them in.
    context_length: int = 0

    @abstractmethod
    def act(
        self,
        obs: Any,
        deterministic: bool = True,
        histories: Sequence[EpisodeHistory] | None = None,
    ) -> np.ndarray:
        """Actions for a batch of observations (leading axis = batch), one per observation.

        Args:
            obs: The batch (a dict of batches for Dict spaces).
            deterministic: Most likely action if True, else one sampled from the policy.
            histories: For agents with ``context_length > 0``: each observation's episode so
                far, aligned with the batch. None acts as at the first step of an episode;
                agents without context ignore it.
        """

    @abstractmethod
    def save(self, path: str | Path) -> None:
        """Write the agent to directory ``path``: config.json, agent.json, model.safetensors."""

    @classmethod
    @abstractmethod
    def load(cls, path: str | Path, device: str = "auto") -> Self:
        """Rebuild an agent saved with :meth:`save`."""


class OnlineAgent(Agent):
    """An agent that learns by interacting with a vector env, and can resume.

    Attributes:
        num_timesteps: Env steps (summed over the vector envs) trained so far.
    """

    num_timesteps: int

    @abstractmethod
    def learn(
        self,
        env: gymnasium.vector.VectorEnv,
        total_timesteps: int,
        hook: Hook | None = None,
    ) -> None:
        """Train until ``num_timesteps >= total_timesteps``; ``hook`` returning False stops."""

    @abstractmethod
    def save_checkpoint(self, path: str | Path) -> None:
        """Atomically write everything needed to resume training to directory ``path``."""

    @classmethod
    @abstractmethod
    def load_checkpoint(cls, path: str | Path, device: str = "auto") -> Self:
        """Rebuild an agent from :meth:`save_checkpoint`, ready to continue learning."""


@runtime_checkable
class TransitionSource(Protocol):
    """What an offline learner reads: a dataset of transitions grouped into episodes.

    ``gengap.offline`` datasets implement it (memory-mapped, so a learner never needs
    every frame in RAM); tests may implement it over in-memory arrays. Agents depend on
    this protocol, not on ``gengap.offline``, so imports keep running one way.

    Attributes:
        observation_space: Single-step observation space (as the env gives it).
        action_space: Single-step action space.
        num_transitions: Number of transitions.
    """

    observation_space: gymnasium.Space[Any]
    action_space: gymnasium.Space[Any]

    @property
    def num_transitions(self) -> int: ...

    def transitions(self, indices: np.ndarray) -> dict[str, Any]:
        """Transitions ``indices`` (int array) as batched arrays.

        Keys: ``obs`` and ``next_obs`` (arrays, or dicts of arrays for Dict spaces),
        ``action``, ``reward`` (float32), ``terminated`` and ``truncated`` (bool),
        ``level_seed`` (int64).
        """
        ...

    def episode_bounds(self) -> np.ndarray:
        """Transition offsets of the episodes, shape ``(num_episodes + 1,)``: episode ``e``
        is transitions ``bounds[e] .. bounds[e + 1] - 1``, in time order."""
        ...


class OfflineAgent(Agent):
    """An agent that learns from a fixed dataset, and can resume.

    Attributes:
        num_updates: Gradient updates done so far.
    """

    num_updates: int

    @abstractmethod
    def fit(
        self,
        dataset: TransitionSource,
        num_updates: int,
        *,
        validation: TransitionSource | None = None,
        hook: Hook | None = None,
    ) -> None:
        """Train until ``num_updates`` updates are done; ``hook(updates)`` returning False
        stops. ``validation`` (transitions from the split's validation levels) is for early
        stopping and checkpoint selection where the algorithm uses it."""

    @abstractmethod
    def save_checkpoint(self, path: str | Path) -> None:
        """Atomically write everything needed to resume training to directory ``path``."""

    @classmethod
    @abstractmethod
    def load_checkpoint(cls, path: str | Path, device: str = "auto") -> Self:
        """Rebuild an agent from :meth:`save_checkpoint`, ready to continue fitting."""


def read_config(path: str | Path, device: str | None = None) -> AgentConfig:
    """The config saved in agent directory ``path``.

    Args:
        path: An agent or checkpoint directory.
        device: If given, replaces the saved device before the config is validated, so an
            agent saved with ``device="cuda"`` loads on a machine without CUDA.

    Raises:
        InputFileNotFoundError: If ``path`` has no config.json.
        InputError: If config.json is not valid JSON or not a valid config (naming the file).
    """
    config_path = Path(path) / CONFIG_FILE
    if not config_path.is_file():
        raise InputFileNotFoundError(f"no {CONFIG_FILE} in agent directory {str(path)!r}")
    data = read_json(config_path, "agent config")
    if isinstance(data, dict) and device is not None:
        data = {**data, "device": device}
    return agent_config_from_dict(data)


def load_agent(path: str | Path, device: str = "auto") -> Agent:
    """Load any saved agent (or checkpoint) directory: config.json picks the class.

    Raises:
        InputFileNotFoundError: If the directory has no config.json.
        InputError: If its algo is not registered, or a file in it is not readable.
    """
    config = read_config(path, device=device)
    return config.agent_class().load(path, device=device)
