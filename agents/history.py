"""The past of each running episode, for agents that act on more than the current observation.

A Decision Transformer conditions on the last K (observation, action, return-to-go) steps and
the time step; an LM policy may read the last k actions. Where does that past live? SB3's
recurrent policies hand a ``state`` back and forth with ``predict``; d3rlpy's
``StatefulTransformerWrapper`` keeps it inside the agent, for one env. gengap's evaluation and
collection loops run many envs and drop finished ones from the batch, so the loop that steps
the envs keeps one :class:`EpisodeHistory` per env and passes the live ones to
:meth:`gengap.agents.Agent.act`. The agent stays a pure function of its inputs: the same
histories give the same actions, whichever env they came from and however the batch is
composed.

Agents say how much past they read with :attr:`gengap.agents.Agent.context_length` (0: none,
the loops then keep nothing). An agent that gets ``histories=None`` acts as at the first step
of an episode.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["EpisodeHistory", "new_histories", "record_step"]


@dataclass
class EpisodeHistory:
    """The last ``maxlen`` steps of one env's current episode.

    Attributes:
        maxlen: How many past steps are kept (the agent's ``context_length``).
        observations: The observation each kept action was taken on, oldest first.
        actions: The kept actions, oldest first.
        rewards: The reward each kept action earned.
        steps: Steps taken in the episode so far (all of them, not only the kept ones): the
            time step of the next action.
        episode_return: Sum of all rewards of the episode so far (a Decision Transformer's
            return-to-go is its target minus this).
    """

    maxlen: int
    observations: deque[Any] = field(init=False)
    actions: deque[Any] = field(init=False)
    rewards: deque[float] = field(init=False)
    steps: int = 0
    episode_return: float = 0.0

    def __post_init__(self) -> None:
        if self.maxlen < 1:
            raise ValueError(f"an episode history keeps at least 1 step, got maxlen={self.maxlen}")
        self.observations = deque(maxlen=self.maxlen)
        self.actions = deque(maxlen=self.maxlen)
        self.rewards = deque(maxlen=self.maxlen)

    def record(self, observation: Any, action: Any, reward: float) -> None:
        """Append one step: ``action`` taken on ``observation`` earned ``reward``.

        The observation and action are copied: vector envs reuse their output buffers.
        """
        if isinstance(observation, dict):
            observation = {key: np.array(value) for key, value in observation.items()}
        else:
            observation = np.array(observation)
        self.observations.append(observation)
        self.actions.append(np.array(action))
        self.rewards.append(float(reward))
        self.steps += 1
        self.episode_return += float(reward)


def new_histories(context_length: int, count: int) -> list[EpisodeHistory] | None:
    """Fresh histories for ``count`` envs, or None when the agent reads no past."""
    if context_length <= 0:
        return None
    return [EpisodeHistory(context_length) for _ in range(count)]


def record_step(
    histories: list[EpisodeHistory] | None,
    observations: Any,
    actions: np.ndarray,
    rewards: np.ndarray,
    done: np.ndarray,
) -> None:
    """Record one step of a whole vector env; envs whose episode ended start a fresh history.

    Args:
        histories: One per env (None: nothing is kept).
        observations: The batch the actions were taken on (a dict of batches for Dict spaces).
        actions: The actions taken, one per env.
        rewards: The rewards they earned.
        done: True where the episode ended with this step (terminated or truncated).
    """
    if histories is None:
        return
    for index, history in enumerate(histories):
        if done[index]:
            histories[index] = EpisodeHistory(history.maxlen)
            continue
        observation = (
            {key: value[index] for key, value in observations.items()}
            if isinstance(observations, dict)
            else observations[index]
        )
        history.record(observation, actions[index], float(rewards[index]))
