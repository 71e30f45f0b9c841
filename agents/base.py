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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, TypeVar, runtime_checkable

import gymnasium
import numpy as np
import torch

from gengap.envs.configio import config_from_dict
from gengap.envs.registry import unknown_name_message

CONFIG_FILE = "config.json"
AGENT_FILE = "agent.json"
WEIGHTS_FILE = "model.safetensors"

Hook = Callable[[int], bool]


def resolve_device(device: str) -> str:
    """``"auto"`` becomes ``"cuda"`` when a GPU is available, else ``"cpu"``; others pass through.

    Raises:
        TypeError: If ``device`` is not a string.
        ValueError: If torch does not recognise the device string.
    """
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except RuntimeError as error:
        raise ValueError(
            f"device must be 'auto' or a torch device string, got {device!r}"
        ) from error
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
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        resolve_device(self.device)

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
            raise TypeError(f"{cls.__name__} data must be a mapping, got {type(data).__name__}")
        values = dict(data)
        algo = values.pop("algo", cls.algo)
        if algo != cls.algo:
            raise ValueError(f"{cls.__name__} is for algo {cls.algo!r}, got algo {algo!r}")
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
        return self.agent_class()(self, observation_space, action_space)  # type: ignore[call-arg]


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
        ValueError: For an unknown name, with close matches.
    """
    if algo not in _AGENT_CONFIGS:
        raise ValueError(unknown_name_message("algo", algo, _AGENT_CONFIGS))
    return _AGENT_CONFIGS[algo]


def agent_config_from_dict(data: Mapping[str, Any]) -> AgentConfig:
    """Build the config named by ``data["algo"]`` from the rest of ``data``.

    Raises:
        ValueError: If ``algo`` is missing or unknown, or for an unknown key.
        TypeError: For a value of the wrong type.
    """
    if not isinstance(data, Mapping):
        raise TypeError(f"agent config must be a mapping, got {type(data).__name__}")
    if "algo" not in data:
        raise ValueError(
            f"agent config needs an 'algo' key (one of: {', '.join(registered_algos())})"
        )
    return agent_config_class(data["algo"]).from_dict(data)


# Per env family hyperparameters, as data. Keys are (algo, family); values override
# the config class defaults. Sources: Procgen paper (Cobbe et al. 2020) for procgen PPO,
# REFERENCE.md's measured recipe for MiniGrid/BabyAI PPO, RL Baselines3 Zoo otherwise.
DEFAULT_AGENT_CONFIGS: dict[tuple[str, str], dict[str, Any]] = {
    ("ppo", "procgen"): {
        "learning_rate": 5e-4, "lr_schedule": "constant", "n_steps": 256, "n_minibatches": 8,
        "n_epochs": 3, "gamma": 0.999, "gae_lambda": 0.95, "clip_range": 0.2,
        "clip_range_vf": 0.2, "ent_coef": 0.01, "vf_coef": 0.5, "max_grad_norm": 0.5,
        "normalize_reward": True, "features_extractor": "impala", "features_dim": 256,
        "net_arch": [], "activation": "relu",
    },
    ("ppo", "minigrid"): {
        "learning_rate": 5e-4, "lr_schedule": "linear", "n_steps": 256, "batch_size": 256,
        "n_epochs": 4, "gamma": 0.99, "gae_lambda": 0.95, "clip_range": 0.2, "ent_coef": 0.01,
        "vf_coef": 0.5, "max_grad_norm": 0.5, "features_extractor": "minigrid_cnn",
        "features_dim": 128, "net_arch": [], "activation": "tanh",
    },
    ("ppo", "classic"): {"n_steps": 256, "batch_size": 64, "n_epochs": 10, "gamma": 0.98,
                         "gae_lambda": 0.8, "ent_coef": 0.0, "learning_rate": 1e-3},
    ("dqn", "procgen"): {
        "learning_rate": 1e-4, "buffer_size": 100_000, "learning_starts": 10_000,
        "batch_size": 32, "train_freq": 4, "target_update_interval": 1000,
        "exploration_fraction": 0.1, "exploration_final_eps": 0.01, "gamma": 0.99,
        "features_extractor": "impala", "features_dim": 256, "net_arch": [],
    },
    ("dqn", "minigrid"): {
        "learning_rate": 1e-4, "buffer_size": 100_000, "learning_starts": 1000,
        "batch_size": 64, "train_freq": 4, "target_update_interval": 1000,
        "exploration_fraction": 0.2, "exploration_final_eps": 0.05, "gamma": 0.99,
        "features_extractor": "minigrid_cnn", "features_dim": 128, "net_arch": [64],
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
    ("ppo", "metaworld"): {"n_steps": 500, "batch_size": 250, "n_epochs": 10, "gamma": 0.99,
                           "gae_lambda": 0.95, "learning_rate": 5e-4, "ent_coef": 0.0},
}
# BabyAI ids may observe entity dicts (gengap.envs.entities): pick the extractor from the space
# (the MiniGrid CNN for the symbolic image, SB3's combined extractor for Dict observations).
DEFAULT_AGENT_CONFIGS[("ppo", "babyai")] = {
    **DEFAULT_AGENT_CONFIGS[("ppo", "minigrid")], "features_extractor": "auto",
}
# Shapes world (Dict observations: slots or 64x64 pixels, plus the goal). "auto" picks the
# goal-conditioned slot attention extractor for slots and SB3's combined extractor (NatureCNN
# + goal) for pixels. Tuned on object_goal slots (studies/README.md): lr 1e-3, 4 epochs of
# 4 minibatches per 1024-step rollout; at lr 3e-4 even a one-object scene reached only 0.61
# success after 30k steps (0.96 at 1e-3).
DEFAULT_AGENT_CONFIGS[("ppo", "shapes")] = {
    "learning_rate": 1e-3, "lr_schedule": "constant", "n_steps": 128, "batch_size": 256,
    "n_epochs": 4, "gamma": 0.99, "gae_lambda": 0.95, "clip_range": 0.2, "ent_coef": 0.003,
    "vf_coef": 0.5, "max_grad_norm": 0.5, "features_extractor": "auto",
    "net_arch": [128, 128], "activation": "relu",
}
DEFAULT_AGENT_CONFIGS[("dqn", "babyai")] = DEFAULT_AGENT_CONFIGS[("dqn", "minigrid")]


def default_agent_config(algo: str, family: str, **overrides: Any) -> AgentConfig:
    """The config for ``algo`` with the defaults of env ``family``, then ``overrides``.

    Args:
        algo: A registered algorithm name (``"ppo"``, ``"dqn"``, ``"sac"``, ...).
        family: An env family from the registry (``"procgen"``, ``"minigrid"``, ...) or
            ``"classic"`` for Gymnasium's classic-control tasks.
        **overrides: Field values that win over the family defaults.

    Raises:
        ValueError: For an unknown algo, an (algo, family) pair with no defaults (listing
            the families that have some), or an unknown override key.
        TypeError: For an override of the wrong type.
    """
    config_cls = agent_config_class(algo)
    families = [known_family for known_algo, known_family in DEFAULT_AGENT_CONFIGS
                if known_algo == algo]
    if (algo, family) not in DEFAULT_AGENT_CONFIGS:
        raise ValueError(unknown_name_message(f"env family for {algo!r} defaults", family,
                                              families))
    return config_cls.from_dict({**DEFAULT_AGENT_CONFIGS[(algo, family)], **overrides})


class Agent(ABC):
    """Anything that maps batched observations to batched actions and saves itself.

    Attributes:
        config: The config that built the agent.
        observation_space: The single-env observation space.
        action_space: The single-env action space.
    """

    config: AgentConfig
    observation_space: gymnasium.Space[Any]
    action_space: gymnasium.Space[Any]

    @abstractmethod
    def act(self, obs: Any, deterministic: bool = True) -> np.ndarray:
        """Actions for a batch of observations (leading axis = batch), one per observation."""

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


def read_config(path: str | Path) -> AgentConfig:
    """The config saved in agent directory ``path``.

    Raises:
        FileNotFoundError: If ``path`` has no config.json.
    """
    config_path = Path(path) / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"no {CONFIG_FILE} in agent directory {str(path)!r}")
    return agent_config_from_dict(json.loads(config_path.read_text(encoding="utf-8")))


def load_agent(path: str | Path, device: str = "auto") -> Agent:
    """Load any saved agent (or checkpoint) directory: config.json picks the class.

    Raises:
        FileNotFoundError: If the directory has no config.json.
        ValueError: If its algo is not registered.
    """
    config = read_config(path)
    return config.agent_class().load(path, device=device)
