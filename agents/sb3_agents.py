"""PPO, DQN and SAC configs and agents (Stable-Baselines3 underneath).

Config defaults are SB3's, except where noted; per env family defaults live in
:data:`gengap.agents.base.DEFAULT_AGENT_CONFIGS`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.utils import LinearSchedule
from torch import nn

from gengap.agents.base import Agent, AgentConfig, register_agent
from gengap.agents.history import EpisodeHistory
from gengap.agents.networks import (
    FEATURES_EXTRACTORS,
    ExtractorChoice,
    features_extractor_kwargs,
)
from gengap.agents.online import SB3Agent
from gengap.core import checks
from gengap.core.errors import InputError, unknown_name_message

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU,
}
LR_SCHEDULES = ("constant", "linear")


@dataclasses.dataclass
class SB3Config(ExtractorChoice, AgentConfig):
    """Fields shared by every SB3-backed algorithm.

    Attributes:
        learning_rate: Initial optimizer step size.
        lr_schedule: ``"constant"`` or ``"linear"`` (decays to 0 at the learn() total).
        gamma: Discount factor.
        features_extractor: ``"auto"`` (chosen from the observation space: IMPALA CNN for
            uint8 images, MiniGrid CNN for other 3-D boxes, MLP for vectors) or a name
            from :data:`gengap.agents.networks.FEATURES_EXTRACTORS`.
        features_dim: Output units of CNN extractors (``None``: the extractor's default).
        net_arch: Hidden layers after the extractor (``None``: SB3's default for the algo).
        activation: Activation of those layers (``None``: SB3's default for the algo).
        normalize_reward: Scale rewards by a running std of discounted returns (VecNormalize).
    """

    sb3_class: ClassVar[Callable[..., BaseAlgorithm]]
    action_space_types: ClassVar[tuple[type[gymnasium.Space[Any]], ...]]

    learning_rate: float = 3e-4
    lr_schedule: str = "constant"
    gamma: float = 0.99
    features_extractor: str = "auto"
    features_dim: int | None = None
    net_arch: tuple[int, ...] | None = None
    activation: str | None = None
    normalize_reward: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        checks.positive_number("learning_rate", self.learning_rate)
        if self.lr_schedule not in LR_SCHEDULES:
            raise InputError(unknown_name_message("lr_schedule", self.lr_schedule, LR_SCHEDULES))
        if not 0.0 < self.gamma <= 1.0:
            raise InputError(f"gamma must be in (0, 1], got {self.gamma!r}")
        if self.features_extractor != "auto" and self.features_extractor not in FEATURES_EXTRACTORS:
            raise InputError(unknown_name_message(
                "features_extractor", self.features_extractor, [*FEATURES_EXTRACTORS, "auto"]))
        checks.optional(checks.positive_int, "features_dim", self.features_dim)
        if self.net_arch is not None:
            self.net_arch = tuple(self.net_arch)
            if not all(checks.is_int(units) and units > 0 for units in self.net_arch):
                raise InputError(f"net_arch must be positive integers, got {self.net_arch!r}")
        if self.activation is not None and self.activation not in ACTIVATIONS:
            raise InputError(unknown_name_message("activation", self.activation, ACTIVATIONS))

    def policy_kwargs(self, observation_space: gymnasium.Space[Any]) -> dict[str, Any]:
        """SB3 ``policy_kwargs`` (extractor, layers, activation) for a policy-side space."""
        kwargs = features_extractor_kwargs(
            self.features_extractor, observation_space, self.features_dim or 0
        )
        if self.features_dim is None:
            kwargs.pop("features_extractor_kwargs", None)
        if self.net_arch is not None:
            kwargs["net_arch"] = list(self.net_arch)
        if self.activation is not None:
            kwargs["activation_fn"] = ACTIVATIONS[self.activation]
        return kwargs

    def sb3_kwargs(self, n_envs: int) -> dict[str, Any]:
        """Algorithm keyword arguments for ``sb3_class`` (policy and env excluded)."""
        lr: Any = self.learning_rate
        if self.lr_schedule == "linear":
            lr = LinearSchedule(self.learning_rate, 0.0, 1.0)
        return {"learning_rate": lr, "gamma": self.gamma}


@register_agent
@dataclasses.dataclass
class PPOConfig(SB3Config):
    """Proximal Policy Optimization (Schulman et al. 2017).

    Attributes:
        n_steps: Steps per env per rollout.
        batch_size: Minibatch size (ignored when ``n_minibatches`` is set).
        n_minibatches: If set, the minibatch size is ``n_steps * num_envs // n_minibatches``
            (the Procgen paper's "8 minibatches", whatever the number of envs).
        n_epochs: Passes over each rollout.
        gae_lambda: GAE lambda.
        clip_range: Policy ratio clip.
        clip_range_vf: Value clip (``None``: no value clipping).
        ent_coef: Entropy bonus coefficient.
        vf_coef: Value loss coefficient.
        max_grad_norm: Gradient norm clip.
        normalize_advantage: Normalize advantages per minibatch.
    """

    algo = "ppo"
    sb3_class = PPO
    action_space_types = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)

    n_steps: int = 2048
    batch_size: int = 64
    n_minibatches: int | None = None
    n_epochs: int = 10
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    clip_range_vf: float | None = None
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    normalize_advantage: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("n_steps", "batch_size", "n_epochs"):
            checks.positive_int(name, getattr(self, name))
        checks.optional(checks.positive_int, "n_minibatches", self.n_minibatches)
        for name in ("clip_range", "max_grad_norm"):
            checks.positive_number(name, getattr(self, name))
        checks.optional(checks.positive_number, "clip_range_vf", self.clip_range_vf)
        for name in ("ent_coef", "vf_coef"):
            checks.non_negative_number(name, getattr(self, name))
        checks.fraction("gae_lambda", self.gae_lambda)

    def agent_class(self) -> type[Agent]:
        return PPOAgent

    def sb3_kwargs(self, n_envs: int) -> dict[str, Any]:
        batch_size = self.batch_size
        if self.n_minibatches is not None:
            batch_size = max(self.n_steps * n_envs // self.n_minibatches, 1)
        return {
            **super().sb3_kwargs(n_envs),
            "n_steps": self.n_steps, "batch_size": batch_size, "n_epochs": self.n_epochs,
            "gae_lambda": self.gae_lambda, "clip_range": self.clip_range,
            "clip_range_vf": self.clip_range_vf, "ent_coef": self.ent_coef,
            "vf_coef": self.vf_coef, "max_grad_norm": self.max_grad_norm,
            "normalize_advantage": self.normalize_advantage,
        }


@dataclasses.dataclass
class OffPolicyConfig(SB3Config):
    """Replay-buffer settings shared by DQN and SAC.

    Attributes:
        buffer_size: Transitions kept (SB3 default 1M; lower defaults here where images
            would not fit in memory).
        learning_starts: Random-action steps before learning starts.
        batch_size: Minibatch size.
        tau: Target network soft-update coefficient (1 = hard copy).
        train_freq: Vector steps between gradient phases.
        gradient_steps: Gradient steps per phase.
        checkpoint_replay_buffer: Save the replay buffer in checkpoints (exact resume; can
            be large for images). If False, a resumed run refills an empty buffer.
    """

    buffer_size: int = 1_000_000
    learning_starts: int = 100
    batch_size: int = 256
    tau: float = 0.005
    train_freq: int = 1
    gradient_steps: int = 1
    checkpoint_replay_buffer: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("buffer_size", "batch_size", "train_freq", "gradient_steps"):
            checks.positive_int(name, getattr(self, name))
        checks.non_negative_int("learning_starts", self.learning_starts)
        checks.fraction("tau", self.tau)

    def sb3_kwargs(self, n_envs: int) -> dict[str, Any]:
        return {
            **super().sb3_kwargs(n_envs),
            "buffer_size": self.buffer_size, "learning_starts": self.learning_starts,
            "batch_size": self.batch_size, "tau": self.tau, "train_freq": self.train_freq,
            "gradient_steps": self.gradient_steps,
        }


@register_agent
@dataclasses.dataclass
class DQNConfig(OffPolicyConfig):
    """Deep Q-Network (Mnih et al. 2015) for discrete actions.

    Attributes:
        target_update_interval: Env steps between target network updates.
        exploration_fraction: Fraction of the learn() total over which epsilon decays.
        exploration_initial_eps: Epsilon at the start.
        exploration_final_eps: Epsilon after the decay (also used by ``act(deterministic=False)``).
        max_grad_norm: Gradient norm clip.
    """

    algo = "dqn"
    sb3_class = DQN
    action_space_types = (spaces.Discrete,)

    learning_rate: float = 1e-4
    buffer_size: int = 100_000
    batch_size: int = 32
    tau: float = 1.0
    train_freq: int = 4
    target_update_interval: int = 10_000
    exploration_fraction: float = 0.1
    exploration_initial_eps: float = 1.0
    exploration_final_eps: float = 0.05
    max_grad_norm: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        checks.positive_int("target_update_interval", self.target_update_interval)
        checks.positive_number("max_grad_norm", self.max_grad_norm)
        for name in ("exploration_fraction", "exploration_initial_eps", "exploration_final_eps"):
            checks.fraction(name, getattr(self, name))

    def agent_class(self) -> type[Agent]:
        return DQNAgent

    def sb3_kwargs(self, n_envs: int) -> dict[str, Any]:
        return {
            **super().sb3_kwargs(n_envs),
            "target_update_interval": self.target_update_interval,
            "exploration_fraction": self.exploration_fraction,
            "exploration_initial_eps": self.exploration_initial_eps,
            "exploration_final_eps": self.exploration_final_eps,
            "max_grad_norm": self.max_grad_norm,
        }


@register_agent
@dataclasses.dataclass
class SACConfig(OffPolicyConfig):
    """Soft Actor-Critic (Haarnoja et al. 2018) for continuous (Box) actions.

    Attributes:
        ent_coef: Entropy coefficient, or ``"auto"`` / ``"auto_<init>"`` to learn it.
        target_entropy: Entropy target for the learned coefficient (``"auto"``: -dim(A)).
        target_update_interval: Gradient steps between target network updates.
    """

    algo = "sac"
    sb3_class = SAC
    action_space_types = (spaces.Box,)

    ent_coef: float | str = "auto"
    target_entropy: float | str = "auto"
    target_update_interval: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("ent_coef", "target_entropy"):
            value = getattr(self, name)
            if isinstance(value, str) and not value.startswith("auto"):
                raise InputError(f"{name} must be a number or 'auto', got {value!r}")
        checks.positive_int("target_update_interval", self.target_update_interval)

    def agent_class(self) -> type[Agent]:
        return SACAgent

    def sb3_kwargs(self, n_envs: int) -> dict[str, Any]:
        return {
            **super().sb3_kwargs(n_envs),
            "ent_coef": self.ent_coef, "target_entropy": self.target_entropy,
            "target_update_interval": self.target_update_interval,
        }


class PPOAgent(SB3Agent):
    """PPO agent (see :class:`PPOConfig`)."""

    config: PPOConfig


class DQNAgent(SB3Agent):
    """DQN agent (see :class:`DQNConfig`); sampled actions are epsilon-greedy."""

    config: DQNConfig

    def act(
        self,
        obs: Any,
        deterministic: bool = True,
        histories: Sequence[EpisodeHistory] | None = None,
    ) -> np.ndarray:
        """Greedy actions, or (``deterministic=False``) epsilon-greedy per observation with
        ``config.exploration_final_eps``, drawing from numpy's global RNG as SB3 does."""
        greedy = super().act(obs, deterministic=True)
        if deterministic:
            return greedy
        explore = np.random.random_sample(len(greedy)) < self.config.exploration_final_eps
        random_actions = np.array([self.action_space.sample() for _ in range(len(greedy))])
        return np.where(explore, random_actions, greedy).astype(greedy.dtype)


class SACAgent(SB3Agent):
    """SAC agent (see :class:`SACConfig`)."""

    config: SACConfig

    def _space_dependent_kwargs(self) -> dict[str, Any]:
        if self.config.target_entropy == "auto":  # SB3's rule, which reads it from the env
            return {"target_entropy": -float(np.prod(self.action_space.shape or ()))}
        return {}
