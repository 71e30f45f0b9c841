"""Behaviour cloning: the online agents' encoder plus a linear (or MLP) action head.

Discrete actions: cross-entropy on the dataset's actions; ``act`` takes the argmax, or
samples the softmax. Box actions: mean squared error on actions scaled to [-1, 1], a
tanh output (the policy is deterministic, so sampled and greedy actions agree).

Validation (gen_dgrl's protocol): every ``eval_interval`` updates the loss on a fixed
sample of the validation levels' transitions is measured; the weights with the lowest
validation loss so far are the agent's selected checkpoint (what ``act`` and ``save``
use), and with ``patience`` set, training stops after that many evaluations without
improvement. Without validation data the latest weights act.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import gymnasium
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from gengap.agents.base import TransitionSource, register_agent
from gengap.agents.history import EpisodeHistory
from gengap.agents.networks import ObservationEncoder
from gengap.core import checks
from gengap.offline.learner import (
    ActionScaler,
    OfflineConfig,
    OfflineLearner,
    check_batch,
    to_torch,
)


@register_agent
@dataclasses.dataclass
class BCConfig(OfflineConfig):
    """Behaviour cloning (gen_dgrl's BC: IMPALA CNN on Procgen, Adam, lr 5e-4).

    Attributes:
        learning_rate: Adam step size.
        net_arch: Hidden ReLU layers between the encoder and the action head.
        eval_interval: Updates between two validation evaluations.
        validation_samples: Validation transitions scored per evaluation (a fixed sample,
            drawn once from the seed).
        patience: Evaluations without a better validation loss before training stops
            (``None``: never stop early; the best weights are still selected).
        max_grad_norm: Gradient norm clip (``None``: no clipping).
    """

    algo: ClassVar[str] = "bc"

    learning_rate: float = 5e-4
    net_arch: tuple[int, ...] = ()
    eval_interval: int = 1000
    validation_samples: int = 4096
    patience: int | None = None
    max_grad_norm: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        checks.positive_number("learning_rate", self.learning_rate)
        self.net_arch = tuple(self.net_arch)
        for units in self.net_arch:
            checks.positive_int("net_arch entries", units)
        checks.positive_int("eval_interval", self.eval_interval)
        checks.positive_int("validation_samples", self.validation_samples)
        checks.optional(checks.positive_int, "patience", self.patience)
        checks.optional(checks.positive_number, "max_grad_norm", self.max_grad_norm)

    def agent_class(self) -> type[BCAgent]:
        return BCAgent


class BCPolicy(nn.Module):
    """Encoder -> hidden layers -> one logit per action (Discrete) or tanh action (Box)."""

    def __init__(self, config: BCConfig, observation_space: gymnasium.Space[Any],
                 action_space: gymnasium.Space[Any]) -> None:
        super().__init__()
        self.encoder = ObservationEncoder(observation_space, config.features_extractor,
                                          config.features_dim)
        layers: list[nn.Module] = []
        width = self.encoder.features_dim
        for units in config.net_arch:
            layers += [nn.Linear(width, units), nn.ReLU()]
            width = units
        self.discrete = isinstance(action_space, spaces.Discrete)
        outputs = int(action_space.n) if isinstance(action_space, spaces.Discrete) \
            else int(np.prod(action_space.shape or (1,)))
        self.head = nn.Sequential(*layers, nn.Linear(width, outputs))

    def forward(self, observations: Any) -> torch.Tensor:
        out = self.head(self.encoder(observations))
        return out if self.discrete else torch.tanh(out)


class BCAgent(OfflineLearner):
    """Behaviour cloning agent (see the module docstring)."""

    config: BCConfig

    def __init__(self, config: BCConfig, observation_space: gymnasium.Space[Any],
                 action_space: gymnasium.Space[Any]) -> None:
        super().__init__(config, observation_space, action_space)
        with self.rng_scope():
            self.policy = BCPolicy(config, observation_space, action_space).to(self.device)
            self.best_policy = BCPolicy(config, observation_space, action_space).to(self.device)
        self.best_policy.load_state_dict(self.policy.state_dict())
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=config.learning_rate)
        self.scaler = ActionScaler(action_space) if isinstance(action_space, spaces.Box) \
            else None
        self.best_loss = math.inf
        self.best_update = 0
        self.evaluations_since_best = 0
        self.validated = False
        self.act_generator = torch.Generator().manual_seed(config.seed)

    def networks(self) -> dict[str, nn.Module]:
        return {"policy": self.policy}

    def optimizers(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer}

    def acting_networks(self) -> dict[str, nn.Module]:
        return {"policy": self.best_policy if self.validated else self.policy}

    def checkpoint_networks(self) -> dict[str, nn.Module]:
        return {"policy": self.policy, "best_policy": self.best_policy}

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Self:
        """Load a saved agent: its selected weights become both the acting and trained ones."""
        agent = super().load(path, device)
        if agent.validated:
            agent.policy.load_state_dict(agent.best_policy.state_dict())
        return agent

    def extra_state(self) -> dict[str, Any]:
        return {"best_loss": None if math.isinf(self.best_loss) else self.best_loss,
                "best_update": self.best_update,
                "evaluations_since_best": self.evaluations_since_best,
                "validated": self.validated}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        loss = state.get("best_loss")
        self.best_loss = math.inf if loss is None else float(loss)
        self.best_update = int(state.get("best_update", 0))
        self.evaluations_since_best = int(state.get("evaluations_since_best", 0))
        self.validated = bool(state.get("validated", False))

    # -- learning -----------------------------------------------------------------------
    def _loss(self, policy: BCPolicy, batch: dict[str, Any], reduction: str = "mean"
              ) -> torch.Tensor:
        output = policy(to_torch(batch["obs"], self.device))
        if self.scaler is None:
            target = torch.as_tensor(np.asarray(batch["action"]), device=self.device).long()
            return F.cross_entropy(output, target.reshape(-1), reduction=reduction)
        actions = self.scaler.scale(np.asarray(batch["action"]).reshape(output.shape))
        errors = (output - torch.as_tensor(actions, device=self.device)) ** 2
        return errors.mean() if reduction == "mean" else errors.mean(dim=1).sum()

    def read_batch(self, dataset: TransitionSource, update: int) -> Any:
        return dataset.transitions(self.sample_indices(update, dataset))

    def learn(self, batch: Any) -> dict[str, float]:
        self.policy.train()
        loss = self._loss(self.policy, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.policy.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        return {"loss": float(loss.detach())}

    def prepare(self, dataset: TransitionSource, validation: TransitionSource | None) -> None:
        self._validation_indices = None
        if validation is not None:
            rng = np.random.default_rng(self.config.seed + 1)
            total = validation.num_transitions
            count = min(total, self.config.validation_samples)
            self._validation_indices = np.sort(rng.choice(total, size=count, replace=False))

    def validation_loss(self, validation: TransitionSource) -> float:
        """Mean loss of the current weights on the fixed validation sample."""
        indices = self._validation_indices
        if indices is None:
            raise RuntimeError("validation_loss is called during fit(validation=...)")
        self.policy.eval()
        total = 0.0
        with torch.no_grad():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                total += float(self._loss(self.policy, validation.transitions(chunk),
                                          reduction="sum"))
        return total / len(indices)

    def after_update(self, validation: TransitionSource | None) -> None:
        if validation is None or self.num_updates % self.config.eval_interval:
            return
        loss = self.validation_loss(validation)
        self.validated = True
        if loss < self.best_loss:
            self.best_loss, self.best_update = loss, self.num_updates
            self.evaluations_since_best = 0
            self.best_policy.load_state_dict(self.policy.state_dict())
        else:
            self.evaluations_since_best += 1

    def stopped_early(self, validation: TransitionSource | None) -> bool:
        patience = self.config.patience
        return validation is not None and patience is not None \
            and self.evaluations_since_best >= patience

    # -- acting -------------------------------------------------------------------------
    def act(
        self,
        obs: Any,
        deterministic: bool = True,
        histories: Sequence[EpisodeHistory] | None = None,
    ) -> np.ndarray:
        """Actions for a batch of observations (leading axis = batch)."""
        check_batch(self.observation_space, obs)
        policy = self.best_policy if self.validated else self.policy
        policy.eval()
        with torch.no_grad():
            output = policy(to_torch(obs, self.device))
            if self.scaler is not None:
                return self.scaler.unscale(output.cpu().numpy()).astype(
                    self.action_space.dtype, copy=False)
            if deterministic:
                return output.argmax(dim=1).cpu().numpy().astype(np.int64)
            probs = torch.softmax(output.float().cpu(), dim=1)
            return torch.multinomial(probs, 1, generator=self.act_generator)[:, 0].numpy()


__all__ = ["BCAgent", "BCConfig", "BCPolicy"]
