"""Offline RL through d3rlpy: each algorithm is a gengap agent, one name per algorithm.

=========  =======================  ===========================
algo       Discrete actions         1-D Box actions
=========  =======================  ===========================
``cql``    DiscreteCQL              CQL
``bcq``    DiscreteBCQ              BCQ
``dt``     DiscreteDecisionTransf.  DecisionTransformer
``iql``    (refused)                IQL
``td3bc``  (refused)                TD3+BC
=========  =======================  ===========================

The variant follows the action space, as users expect from one name; an algorithm that
has no variant for the space is refused with one line (:class:`InputError`).

Same network as BC and the online agents: every d3rlpy encoder field is a
:class:`GengapEncoderFactory` (registered with ``register_encoder_factory``) that builds
:class:`gengap.agents.networks.ObservationEncoder`, so d3rlpy sees the IMPALA CNN on
Procgen, the MiniGrid CNN on MiniGrid and the slot-attention extractor on slots, with the
online agents' preprocessing. Images therefore stay as the env gives them (channel-last
uint8); the encoder makes them channel-first on the device.

Data: d3rlpy's ``fit`` and ``ReplayBuffer`` are not used. Each update reads one batch by
index from the :class:`TransitionSource` (a memory-mapped store is never copied) and
calls the d3rlpy implementation's ``update`` with a ``TorchMiniBatch`` (or, for the
Decision Transformer, a ``TorchTrajectoryMiniBatch`` of ``context_size`` windows cut
from the dataset's episodes). Nothing is logged and no ``d3rlpy_logs/`` is written.

Files: d3rlpy's pickle-based ``save``/``save_model`` are not used either; the weights of
every d3rlpy module (targets included) go to safetensors, optimizer states to a
``weights_only`` torch file, the update count (d3rlpy's ``grad_step``) to JSON.

Decision Transformer acting: ``dt`` sets ``Agent.context_length`` to ``context_size - 1``,
so the evaluation and collection loops hand it each env's episode so far
(:class:`gengap.agents.history.EpisodeHistory`); it acts on the last ``context_size``
steps (observations, actions, returns-to-go from ``target_return`` as d3rlpy's
``StatefulTransformerWrapper`` computes them, timesteps), left-padded like its training
windows, all envs in one forward pass.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

import gymnasium
from gymnasium import spaces

from gengap.agents.base import register_agent
from gengap.core import checks
from gengap.core.errors import InputError
from gengap.offline.learner import OfflineConfig

if TYPE_CHECKING:
    from d3rlpy.base import LearnableConfig

    from gengap.offline.d3rlpy_impl import D3rlpyAgent, GengapEncoderFactory


# -- configs --------------------------------------------------------------------------
@dataclasses.dataclass
class D3rlpyConfig(OfflineConfig):
    """Fields every d3rlpy-backed learner has; the rest are the algorithm's own.

    Attributes:
        learning_rate: Step size of every optimizer of the algorithm (``None``: d3rlpy's
            defaults, which differ per network).
        gamma: Discount factor.
    """

    # Names of the d3rlpy config classes of the two variants (resolved when an agent is
    # built, so that configs never import d3rlpy).
    discrete_config: ClassVar[str | None] = None
    continuous_config: ClassVar[str | None] = None

    learning_rate: float | None = None
    gamma: float = 0.99

    def __post_init__(self) -> None:
        super().__post_init__()
        checks.optional(checks.positive_number, "learning_rate", self.learning_rate)
        if not 0.0 < self.gamma <= 1.0:
            raise InputError(f"gamma must be in (0, 1], got {self.gamma!r}")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The action spaces are those of the variants d3rlpy has for the algorithm.
        kinds: list[type[gymnasium.Space[Any]]] = []
        if cls.discrete_config is not None:
            kinds.append(spaces.Discrete)
        if cls.continuous_config is not None:
            kinds.append(spaces.Box)
        cls.action_space_types = tuple(kinds)

    def agent_class(self) -> type[D3rlpyAgent]:
        from gengap.offline.d3rlpy_impl import D3rlpyAgent

        return D3rlpyAgent

    def _variant(self, discrete: bool) -> type[LearnableConfig]:
        from gengap.offline.d3rlpy_impl import d3rlpy_config_class

        name = self.discrete_config if discrete else self.continuous_config
        assert name is not None  # check_spaces refused the other variant
        return d3rlpy_config_class(name)

    def d3rlpy_config(self, discrete: bool, encoder: GengapEncoderFactory) -> LearnableConfig:
        """The d3rlpy config for the action-space variant, with gengap's encoder."""
        config_cls = self._variant(discrete)
        own = {f.name for f in dataclasses.fields(D3rlpyConfig)}
        values = {f.name: getattr(self, f.name)
                  for f in dataclasses.fields(self) if f.name not in own}
        target = {f.name for f in dataclasses.fields(config_cls)}
        # None means "d3rlpy's default for this variant".
        kwargs: dict[str, Any] = {k: v for k, v in values.items()
                                  if k in target and v is not None}
        kwargs["gamma"] = self.gamma
        if self.batch_size is not None:
            kwargs["batch_size"] = self.batch_size
        for name in target:
            if name.endswith("encoder_factory"):
                kwargs[name] = encoder
            if self.learning_rate is not None and name.endswith("learning_rate"):
                kwargs[name] = self.learning_rate
        return config_cls(**kwargs)

    def default_batch_size(self, discrete: bool) -> int:
        return int(self._variant(discrete)().batch_size)


@register_agent
@dataclasses.dataclass
class CQLAgentConfig(D3rlpyConfig):
    """Conservative Q-Learning (Kumar et al. 2020): DiscreteCQL or CQL by action space.

    Attributes:
        alpha: Weight of the conservative loss (DiscreteCQL's ``alpha``, default 1; CQL's
            ``conservative_weight``, default 5). ``None`` fields take d3rlpy's defaults.
        target_update_interval: Updates between target network copies (discrete; 8000).
    """

    algo: ClassVar[str] = "cql"
    discrete_config = "DiscreteCQLConfig"
    continuous_config = "CQLConfig"

    alpha: float | None = None
    target_update_interval: int | None = None

    def d3rlpy_config(self, discrete: bool, encoder: GengapEncoderFactory) -> LearnableConfig:
        config = super().d3rlpy_config(discrete, encoder)
        if discrete or self.alpha is None:
            return config
        return dataclasses.replace(config, conservative_weight=self.alpha)  # type: ignore[type-var]


@register_agent
@dataclasses.dataclass
class BCQAgentConfig(D3rlpyConfig):
    """Batch-Constrained Q-learning (Fujimoto et al. 2019): DiscreteBCQ or BCQ.

    Attributes:
        action_flexibility: Discrete: probability ratio threshold of allowed actions
            (default 0.3); continuous: the perturbation range (default 0.05).
        target_update_interval: Updates between target network copies (discrete; 8000).
    """

    algo: ClassVar[str] = "bcq"
    discrete_config = "DiscreteBCQConfig"
    continuous_config = "BCQConfig"

    action_flexibility: float | None = None
    target_update_interval: int | None = None


@register_agent
@dataclasses.dataclass
class IQLAgentConfig(D3rlpyConfig):
    """Implicit Q-Learning (Kostrikov et al. 2021), continuous actions.

    Attributes:
        expectile: Expectile of the value regression.
        weight_temp: Inverse temperature of advantage-weighted regression.
    """

    algo: ClassVar[str] = "iql"
    continuous_config = "IQLConfig"

    expectile: float = 0.7
    weight_temp: float = 3.0


@register_agent
@dataclasses.dataclass
class TD3PlusBCAgentConfig(D3rlpyConfig):
    """TD3+BC (Fujimoto and Gu 2021), continuous actions.

    Attributes:
        alpha: Weight of the Q term against the behaviour cloning term.
    """

    algo: ClassVar[str] = "td3bc"
    continuous_config = "TD3PlusBCConfig"

    alpha: float = 2.5


@register_agent
@dataclasses.dataclass
class DTAgentConfig(D3rlpyConfig):
    """Decision Transformer (Chen et al. 2021): discrete or continuous by action space.

    Attributes:
        context_size: Steps per training window.
        max_timestep: Largest timestep embedded (longer episodes are clipped to it).
        num_layers: Transformer blocks (``None``: d3rlpy's, 6 discrete / 3 continuous).
        num_heads: Attention heads (``None``: d3rlpy's, 8 discrete / 1 continuous).
        target_return: Return-to-go the agent is conditioned on when acting (``None``: the
            largest episode return in the training data, found at the first fit).
    """

    algo: ClassVar[str] = "dt"
    discrete_config = "DiscreteDecisionTransformerConfig"
    continuous_config = "DecisionTransformerConfig"

    context_size: int = 20
    max_timestep: int = 1000
    num_layers: int | None = None
    num_heads: int | None = None
    target_return: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("context_size", "max_timestep", "num_layers", "num_heads"):
            checks.optional(checks.positive_int, name, getattr(self, name))


__all__ = [
    "BCQAgentConfig",
    "CQLAgentConfig",
    "D3rlpyConfig",
    "DTAgentConfig",
    "IQLAgentConfig",
    "TD3PlusBCAgentConfig",
]
