"""The d3rlpy side of gengap's offline RL agents: encoders, batches, updates, acting.

Kept apart from the configs (:mod:`gengap.offline.d3rlpy_agents`, which import no
d3rlpy) so that importing gengap, registering the algorithms and reading configs do not
load d3rlpy; it loads when an agent is built. See that module for the design.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from typing import Any

import d3rlpy.algos
import gymnasium
import numpy as np
import torch
import torch.nn.functional as F
from d3rlpy.algos import DecisionTransformerConfig, DiscreteDecisionTransformerConfig
from d3rlpy.base import LearnableBase, LearnableConfig
from d3rlpy.models.encoders import EncoderFactory, register_encoder_factory
from d3rlpy.models.torch import Encoder, EncoderWithAction
from d3rlpy.torch_utility import TorchMiniBatch, TorchTrajectoryMiniBatch
from d3rlpy.types import Shape
from gymnasium import spaces
from torch import nn

from gengap.agents.base import TransitionSource
from gengap.agents.history import EpisodeHistory
from gengap.agents.networks import ObservationEncoder
from gengap.core.errors import InputError
from gengap.core.spaces import space_from_dict, space_to_dict
from gengap.offline.learner import (
    ActionScaler,
    OfflineConfig,
    OfflineLearner,
    check_batch,
    to_torch,
)

# d3rlpy logs through structlog; gengap runs stay quiet (and never write d3rlpy_logs/,
# which only d3rlpy's fit() creates).
logging.getLogger("d3rlpy").setLevel(logging.WARNING)


def d3rlpy_config_class(name: str) -> type[LearnableConfig]:
    """The d3rlpy config class called ``name`` (e.g. ``"DiscreteCQLConfig"``)."""
    return getattr(d3rlpy.algos, name)  # type: ignore[no-any-return]


# -- gengap's encoders inside d3rlpy ----------------------------------------------------
def _as_dict(x: Any, keys: list[str]) -> Any:
    if keys and isinstance(x, list | tuple):
        return dict(zip(keys, x, strict=True))
    return x


class GengapEncoder(Encoder):
    """d3rlpy state encoder around :class:`ObservationEncoder` (tuples become the dict)."""

    def __init__(self, space: gymnasium.Space[Any], extractor: str, features_dim: int | None
                 ) -> None:
        super().__init__()
        self.encoder = ObservationEncoder(space, extractor, features_dim)
        self.keys = list(space.spaces) if isinstance(space, spaces.Dict) else []

    def forward(self, x: Any) -> torch.Tensor:
        return self.encoder(_as_dict(x, self.keys))


class GengapEncoderWithAction(EncoderWithAction):
    """State-action encoder: features, the action (one-hot if discrete), a ReLU layer."""

    def __init__(self, space: gymnasium.Space[Any], extractor: str, features_dim: int | None,
                 action_size: int, discrete_action: bool) -> None:
        super().__init__()
        self.state = GengapEncoder(space, extractor, features_dim)
        self.action_size = action_size
        self.discrete_action = discrete_action
        width = self.state.encoder.features_dim
        self.head = nn.Sequential(nn.Linear(width + action_size, width), nn.ReLU())

    def forward(self, x: Any, action: torch.Tensor) -> torch.Tensor:
        if self.discrete_action:
            action = F.one_hot(action.view(-1).long(), self.action_size).float()
        return self.head(torch.cat([self.state(x), action], dim=1))


@dataclasses.dataclass()
class GengapEncoderFactory(EncoderFactory):
    """d3rlpy encoder factory building gengap's encoders for one observation space.

    Args:
        observation_space: The env's observation space as JSON (``space_to_dict``).
        features_extractor: As in the online agents' configs (``"auto"`` or a name).
        features_dim: Extractor output units (0: the extractor's default).
    """

    observation_space: str = "{}"
    features_extractor: str = "auto"
    features_dim: int = 0

    def _space(self) -> gymnasium.Space[Any]:
        return space_from_dict(json.loads(self.observation_space))

    def create(self, observation_shape: Shape) -> GengapEncoder:
        return GengapEncoder(self._space(), self.features_extractor, self.features_dim or None)

    def create_with_action(self, observation_shape: Shape, action_size: int,
                           discrete_action: bool = False) -> GengapEncoderWithAction:
        return GengapEncoderWithAction(self._space(), self.features_extractor,
                                       self.features_dim or None, action_size, discrete_action)

    @staticmethod
    def get_type() -> str:
        return "gengap"


register_encoder_factory(GengapEncoderFactory)


# -- the agent ------------------------------------------------------------------------
def _observation_shape(space: gymnasium.Space[Any]) -> Any:
    if isinstance(space, spaces.Dict):
        return [tuple(s.shape or ()) for s in space.spaces.values()]
    return tuple(space.shape or ())


class D3rlpyAgent(OfflineLearner):
    """A d3rlpy algorithm behind gengap's :class:`OfflineAgent` interface."""

    def __init__(self, config: OfflineConfig, observation_space: gymnasium.Space[Any],
                 action_space: gymnasium.Space[Any]) -> None:
        super().__init__(config, observation_space, action_space)
        self.discrete = isinstance(action_space, spaces.Discrete)
        # A d3rlpy_agents.D3rlpyConfig (not imported here: that module imports this one).
        variant: Any = config
        self.batch_size = config.batch_size or variant.default_batch_size(self.discrete)
        self.scaler = ActionScaler(action_space) if isinstance(action_space, spaces.Box) \
            else None
        self.action_size = int(action_space.n) if isinstance(action_space, spaces.Discrete) \
            else int(np.prod(action_space.shape or (1,)))
        encoder = GengapEncoderFactory(
            observation_space=json.dumps(space_to_dict(observation_space)),
            features_extractor=config.features_extractor,
            features_dim=config.features_dim or 0)
        self.d3rlpy_config = variant.d3rlpy_config(self.discrete, encoder)
        device = self.device if ":" in self.device else f"{self.device}:0"
        with self.rng_scope():
            self.algo: LearnableBase[Any, Any] = self.d3rlpy_config.create(device=device)
            self.algo.create_impl(_observation_shape(observation_space), self.action_size)
        self.sequence = isinstance(self.d3rlpy_config, DecisionTransformerConfig
                                   | DiscreteDecisionTransformerConfig)
        self.target_return = getattr(config, "target_return", None)
        # The transformer reads the current step and the context_size - 1 before it.
        self.context_length = int(getattr(config, "context_size", 1)) - 1 \
            if self.sequence else 0
        self._returns_to_go: np.ndarray | None = None
        self._bounds: np.ndarray | None = None

    @property
    def impl(self) -> Any:
        impl = self.algo.impl
        assert impl is not None  # create_impl ran in __init__
        return impl

    def networks(self) -> dict[str, nn.Module]:
        return dict(self.impl.modules.get_torch_modules())

    def optimizers(self) -> dict[str, Any]:
        checkpointer = self.impl.modules.create_checkpointer(self.algo._device)
        return {k: v for k, v in checkpointer.modules.items() if not isinstance(v, nn.Module)}

    def extra_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"target_return": self.target_return}
        if hasattr(self.impl, "_tokens"):  # DiscreteDT's learning-rate schedule position
            state["tokens"] = int(self.impl._tokens)
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.target_return = state.get("target_return", self.target_return)
        if "tokens" in state and hasattr(self.impl, "_tokens"):
            self.impl._tokens = int(state["tokens"])

    # -- batches ------------------------------------------------------------------------
    def _observations(self, obs: Any) -> Any:
        tensors = to_torch(obs, self.device)
        if isinstance(tensors, dict):
            return [tensors[k].float() for k in self.observation_space.spaces]  # type: ignore[attr-defined]
        return tensors.float()

    def _actions(self, actions: Any) -> torch.Tensor:
        values = np.asarray(actions)
        if self.scaler is not None:
            values = self.scaler.scale(values.reshape(len(values), self.action_size))
        else:
            values = values.reshape(len(values), 1)
        return torch.as_tensor(values, dtype=torch.float32, device=self.device)

    def _column(self, values: Any) -> torch.Tensor:
        return torch.as_tensor(np.asarray(values, dtype=np.float32).reshape(-1, 1),
                               device=self.device)

    def prepare(self, dataset: TransitionSource, validation: TransitionSource | None) -> None:
        if not self.sequence:
            return
        # Return-to-go of every transition: rewards only, read in chunks of rows.
        bounds = np.asarray(dataset.episode_bounds(), dtype=np.int64)
        rewards = np.empty(dataset.num_transitions, dtype=np.float32)
        chunk = 4096
        for start in range(0, dataset.num_transitions, chunk):
            rows = np.arange(start, min(start + chunk, dataset.num_transitions))
            rewards[rows] = np.asarray(dataset.transitions(rows)["reward"], dtype=np.float32)
        returns_to_go = np.empty_like(rewards)
        episode_returns = []
        for begin, end in zip(bounds[:-1], bounds[1:], strict=True):
            returns_to_go[begin:end] = np.cumsum(rewards[begin:end][::-1])[::-1]
            episode_returns.append(float(returns_to_go[begin]) if end > begin else 0.0)
        self._returns_to_go, self._bounds = returns_to_go, bounds
        if self.target_return is None:
            self.target_return = max(episode_returns)

    def read_batch(self, dataset: TransitionSource, update: int) -> dict[str, Any]:
        if not self.sequence:
            return dataset.transitions(self.sample_indices(update, dataset))
        return self.read_windows(dataset, update)

    def read_windows(self, dataset: TransitionSource, update: int) -> dict[str, Any]:
        """``batch_size`` windows of ``context_size`` steps ending at uniform transitions
        (:meth:`sample_indices`), left-padded (``valid`` False) where the episode started
        later; numpy only."""
        assert self._bounds is not None and self._returns_to_go is not None
        context = int(getattr(self.config, "context_size", 20))
        ends = self.sample_indices(update, dataset)
        starts = self._bounds[np.searchsorted(self._bounds, ends, side="right") - 1]
        rows = ends[:, None] + (np.arange(context) - (context - 1))[None, :]  # (B, K)
        valid = rows >= starts[:, None]
        rows = np.where(valid, rows, ends[:, None])
        unique, inverse = np.unique(rows, return_inverse=True)
        data = dataset.transitions(unique)
        inverse = inverse.reshape(rows.shape)

        def gather(values: Any) -> Any:
            if isinstance(values, dict):
                return {k: gather(v) for k, v in values.items()}
            out = np.asarray(values)[inverse]  # (B, K, ...)
            return out * valid.reshape(*valid.shape, *([1] * (out.ndim - 2))).astype(out.dtype)

        max_step = int(getattr(self.config, "max_timestep", 1000)) - 1
        return {
            "obs": gather(data["obs"]),
            "action": gather(data["action"]),
            "reward": gather(data["reward"]),
            "terminated": gather(data["terminated"]),
            "returns_to_go": self._returns_to_go[rows] * valid,
            "timesteps": np.clip(rows - starts[:, None], 0, max_step) * valid,
            "valid": valid,
        }

    def _transition_batch(self, batch: dict[str, Any]) -> TorchMiniBatch:
        actions = self._actions(batch["action"])
        rewards = self._column(batch["reward"])
        return TorchMiniBatch(
            observations=self._observations(batch["obs"]),
            actions=actions,
            rewards=rewards,
            next_observations=self._observations(batch["next_obs"]),
            next_actions=torch.zeros_like(actions),
            returns_to_go=torch.zeros_like(rewards),
            terminals=self._column(batch["terminated"]),
            intervals=torch.ones_like(rewards),
            device=self.algo._device,
        )

    def _window_inputs(self, window: dict[str, Any]) -> dict[str, Any]:
        """Numpy ``(B, K, ...)`` windows -> the transformer's torch inputs, the same for
        training and acting: ``observations``, ``actions`` (zero where padded),
        ``returns_to_go``, ``timesteps``, ``masks`` (1 where valid) and, where the window
        has them (training), ``rewards`` and ``terminals``."""
        size, context = window["valid"].shape

        def flat(values: Any) -> Any:  # (B, K, ...) -> (B * K, ...)
            if isinstance(values, dict):
                return {k: flat(v) for k, v in values.items()}
            return values.reshape(size * context, *values.shape[2:])

        def sequences(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.reshape(size, context, *tensor.shape[1:])

        obs = self._observations(flat(window["obs"]))
        masks = torch.as_tensor(window["valid"], dtype=torch.float32, device=self.device)
        inputs = {
            "observations": [sequences(t) for t in obs] if isinstance(obs, list)
            else sequences(obs),
            "actions": sequences(self._actions(flat(window["action"]))) * masks.unsqueeze(-1),
            "returns_to_go": torch.as_tensor(window["returns_to_go"], dtype=torch.float32,
                                             device=self.device).unsqueeze(-1),
            "timesteps": torch.as_tensor(window["timesteps"], dtype=torch.long,
                                         device=self.device),
            "masks": masks,
        }
        for key, name in (("reward", "rewards"), ("terminated", "terminals")):
            if key in window:
                inputs[name] = sequences(self._column(flat(window[key])))
        return inputs

    def _trajectory_batch(self, batch: dict[str, Any]) -> TorchTrajectoryMiniBatch:
        return TorchTrajectoryMiniBatch(**self._window_inputs(batch), device=self.algo._device)

    def learn(self, batch: dict[str, Any]) -> dict[str, float]:
        torch_batch = self._trajectory_batch(batch) if self.sequence \
            else self._transition_batch(batch)
        losses = self.impl.update(torch_batch, self.num_updates)
        self.algo.set_grad_step(self.num_updates + 1)
        return {k: float(v) for k, v in losses.items()}

    # -- acting -------------------------------------------------------------------------
    def act(
        self,
        obs: Any,
        deterministic: bool = True,
        histories: Sequence[EpisodeHistory] | None = None,
    ) -> np.ndarray:
        """Actions for a batch of observations (leading axis = batch).

        Q-learning algorithms act greedily (``deterministic=False`` samples where the
        d3rlpy policy is stochastic); ``dt`` acts on each observation's episode so far
        (``histories``; None: the first step of an episode), see :meth:`context_windows`.
        """
        size = check_batch(self.observation_space, obs)
        with torch.no_grad(), self.rng_scope():
            if self.sequence:
                output = self._act_sequence(obs, size, deterministic, histories)
            elif deterministic:
                output = self.impl.predict_best_action(self._observations(obs))
            else:
                output = self.impl.sample_action(self._observations(obs))
        actions = output.cpu().numpy()
        if self.scaler is None:
            return actions.reshape(size).astype(np.int64)
        return self.scaler.unscale(actions.reshape(size, self.action_size)).astype(
            self.action_space.dtype, copy=False)

    def _act_sequence(self, obs: Any, size: int, deterministic: bool,
                      histories: Sequence[EpisodeHistory] | None) -> torch.Tensor:
        inputs = self._window_inputs(self.context_windows(obs, size, histories))
        transformer = self.impl.modules.transformer
        transformer.eval()
        # d3rlpy's transformers take the attention mask as 1 where a position is padding.
        output = transformer(inputs["observations"], inputs["actions"], inputs["returns_to_go"],
                             inputs["timesteps"], 1 - inputs["masks"])
        if not self.discrete:
            return torch.as_tensor(output[:, -1])
        logits = output[1][:, -1]
        if deterministic:
            return logits.argmax(dim=-1)
        return torch.distributions.Categorical(logits=logits).sample()

    def context_windows(self, obs: Any, size: int,
                        histories: Sequence[EpisodeHistory] | None) -> dict[str, Any]:
        """The Decision Transformer's input for a batch: per env, the last ``context_size
        - 1`` steps of its history and the current observation, as numpy ``(B, K, ...)``
        arrays left-padded like the training windows (:meth:`read_windows`).

        Returns-to-go follow d3rlpy's ``StatefulTransformerWrapper``: the target return
        minus the rewards received before that step (so the current step's is
        ``target_return - episode_return``). Timesteps count from the episode's start,
        as in training, clipped to ``max_timestep - 1``. The action at the current step
        (unknown yet) is padding; the transformer predicts it from the observation token,
        which does not attend to it.

        Raises:
            InputError: If ``histories`` is not one per observation.
        """
        context = int(getattr(self.config, "context_size", 20))
        past = context - 1
        if histories is not None and len(histories) != size:
            raise InputError(f"histories must hold one EpisodeHistory per observation "
                             f"({size}), got {len(histories)}")
        target = float(self.target_return or 0.0)
        valid = np.zeros((size, context), dtype=bool)
        valid[:, -1] = True
        returns_to_go = np.zeros((size, context), dtype=np.float32)
        returns_to_go[:, -1] = target
        timesteps = np.zeros((size, context), dtype=np.int64)
        action_shape = tuple(self.action_space.shape or ())
        action_dtype = np.float32 if self.scaler is not None else np.int64
        actions = np.zeros((size, context, *action_shape), dtype=action_dtype)

        def window_of(batch: np.ndarray) -> np.ndarray:
            out = np.zeros((size, context, *batch.shape[1:]), dtype=batch.dtype)
            out[:, -1] = batch
            return out

        observations: Any = ({k: window_of(np.asarray(v)) for k, v in obs.items()}
                             if isinstance(obs, dict) else window_of(np.asarray(obs)))
        for row, history in enumerate(histories or []):
            kept = min(past, len(history.observations))
            returns_to_go[row, -1] = target - history.episode_return
            timesteps[row, -1] = history.steps
            if kept == 0:
                continue
            span = slice(context - 1 - kept, context - 1)
            valid[row, span] = True
            rewards = np.asarray(list(history.rewards)[-kept:], dtype=np.float64)
            # the return before each kept step: the episode's, less what it and later earned
            before = history.episode_return - np.cumsum(rewards[::-1])[::-1]
            returns_to_go[row, span] = target - before
            timesteps[row, span] = history.steps - kept + np.arange(kept)
            actions[row, span] = np.stack(list(history.actions)[-kept:])
            steps = list(history.observations)[-kept:]
            if isinstance(observations, dict):
                for key, values in observations.items():
                    values[row, span] = np.stack([step[key] for step in steps])
            else:
                observations[row, span] = np.stack(steps)
        max_step = int(getattr(self.config, "max_timestep", 1000)) - 1
        return {
            "obs": observations,
            "action": actions,
            "returns_to_go": returns_to_go * valid,
            "timesteps": np.clip(timesteps, 0, max_step) * valid,
            "valid": valid,
        }


__all__ = ["D3rlpyAgent", "GengapEncoder", "GengapEncoderFactory", "d3rlpy_config_class"]
