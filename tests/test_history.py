"""Episode histories: the loops that step envs hand each agent its episodes' past, aligned."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import pytest

from gengap.agents import Agent, default_agent_config
from gengap.agents.history import EpisodeHistory, new_histories, record_step
from gengap.envs import make
from gengap.eval.evaluate import evaluate

ENV_ID = "gengap/minigrid-doorkey-5x5-v0"


class HistoryCheckingAgent(Agent):
    """Turns left forever and records, for every history it is handed, what it held.

    Not a stand-in for a library: it is a real :class:`Agent`, the thing under test is the
    evaluation loop that feeds it.
    """

    context_length = 3

    def __init__(self, env: Any) -> None:
        self.config = default_agent_config("ppo", "minigrid")
        self.device = "cpu"
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self.seen: list[tuple[int, int, float, float]] = []
        self.calls_without_histories = 0

    def act(
        self,
        obs: Any,
        deterministic: bool = True,
        histories: Sequence[EpisodeHistory] | None = None,
    ) -> np.ndarray:
        if histories is None:
            self.calls_without_histories += 1
            return np.zeros(len(obs), dtype=np.int64)
        assert len(histories) == len(obs)
        for history in histories:
            self.seen.append(
                (history.steps, len(history.actions), history.episode_return, sum(history.rewards))
            )
            if history.observations:  # the last kept observation is the one acted on last
                assert history.observations[-1].shape == obs.shape[1:]
        return np.zeros(len(obs), dtype=np.int64)

    def save(self, path: str | Path) -> None:
        raise NotImplementedError("this test agent is never saved")

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Self:
        raise NotImplementedError("this test agent is never loaded")


def test_evaluation_hands_each_episode_its_own_history() -> None:
    env = make(ENV_ID)
    agent = HistoryCheckingAgent(env)
    env.close()
    records = evaluate(agent, ENV_ID, num_episodes=5, num_envs=3, env_kwargs={"max_steps": 12})
    assert agent.calls_without_histories == 0
    steps = [seen[0] for seen in agent.seen]
    # Every episode starts from an empty history, and only then: one start per episode.
    assert steps.count(0) == len(records) == 5
    # A history holds the whole episode so far, capped at the agent's context length.
    assert all(kept == min(step, 3) for step, kept, _, _ in agent.seen)
    assert max(steps) + 1 == max(record.length for record in records)
    assert sum(1 for _ in agent.seen) == sum(record.length for record in records)


def test_record_step_restarts_finished_episodes_and_copies_observations() -> None:
    histories = new_histories(2, 2)
    assert histories is not None
    assert new_histories(0, 2) is None
    obs = np.zeros((2, 3), dtype=np.float32)
    actions, rewards = np.array([1, 2]), np.array([0.5, 1.0])
    for step in range(3):
        obs[:] = step
        record_step(histories, obs, actions, rewards, np.array([False, False]))
    assert [h.steps for h in histories] == [3, 3]
    assert [len(h.actions) for h in histories] == [2, 2]
    assert histories[1].episode_return == pytest.approx(3.0)
    assert sum(histories[1].rewards) == pytest.approx(2.0)  # only the kept steps
    assert [float(o[0]) for o in histories[0].observations] == [1.0, 2.0]  # copies, not views
    record_step(histories, obs, actions, rewards, np.array([True, False]))
    assert histories[0].steps == 0 and not histories[0].actions
    assert histories[1].steps == 4


def test_a_history_keeps_at_least_one_step() -> None:
    with pytest.raises(ValueError, match="maxlen=0"):
        EpisodeHistory(0)
