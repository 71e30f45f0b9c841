"""Every registered env trains and evaluates with every online algorithm that fits it.

Generated from the env and algorithm registries, so a new id or a new algorithm is covered
by construction: for each (id, algorithm) pair whose action space fits, the DEFAULT agent
of :func:`gengap.agents.agent_config_for_env` (its network chosen by "auto" from the
observation space) trains a tiny budget on 2 envs, is saved and loaded back (same actions),
and is evaluated on a few episodes of the test part. Every pair that does not fit is
refused up front, in one line that names the algorithms that fit.

Only the budget is shrunk (rollout length, replay warm-up and size): hyperparameters that
shape the network stay the defaults.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
import torch

import gengap.envs as genv
from gengap.agents import (
    OnlineAgent,
    agent_config_class,
    agent_config_for_env,
    algos_fitting,
    load_agent,
    registered_algos,
)
from gengap.agents.base import env_action_space
from gengap.core.errors import InputError
from gengap.eval.evaluate import evaluate

BUDGET = 64  # env steps over 2 envs: one PPO update, a few DQN/SAC gradient steps
NUM_ENVS = 2
EVAL_EPISODES = 2
# Keys shrink the budget where a config has them; a default longer than the budget would
# mean no update at all (PPO's 256-step rollouts, DQN's 10k warm-up steps on procgen).
TINY_BUDGET = {"n_steps": 32, "learning_starts": 32, "buffer_size": 512}


@functools.cache
def _action_space(env_id: str) -> gymnasium.Space[Any]:
    return env_action_space(env_id)


def _online_algos() -> list[str]:
    return [a for a in registered_algos()
            if issubclass(agent_config_class(a)().agent_class(), OnlineAgent)]


def _pairs(fitting: bool) -> list[tuple[str, str]]:
    return [(env_id, algo) for env_id in genv.registered_ids() for algo in _online_algos()
            if agent_config_class(algo).fits_action_space(_action_space(env_id)) == fitting]


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_every_env_has_an_algorithm_and_every_algorithm_an_env() -> None:
    fitting = _pairs(True)
    assert {env_id for env_id, _ in fitting} == set(genv.registered_ids())
    assert {algo for _, algo in fitting} == set(_online_algos())


@pytest.mark.parametrize(("env_id", "algo"), _pairs(True))
def test_default_agent_trains_saves_loads_and_evaluates(
    env_id: str, algo: str, tmp_path: Path
) -> None:
    defaults = agent_config_for_env(algo, env_id, device="cpu")
    fields = {f.name for f in dataclasses.fields(defaults)}
    config = defaults.replace(**{k: v for k, v in TINY_BUDGET.items() if k in fields})
    env = genv.make(env_id, part="train", num_envs=NUM_ENVS)
    try:
        agent = config.create(env.single_observation_space, env.single_action_space)
        assert isinstance(agent, OnlineAgent)
        agent.learn(env, BUDGET)
        assert agent.num_timesteps >= BUDGET
        obs, _ = env.reset(seed=7)
    finally:
        env.close()
    actions = agent.act(obs)
    assert len(actions) == NUM_ENVS
    assert all(env.single_action_space.contains(
        np.asarray(a, dtype=env.single_action_space.dtype)) for a in actions)

    agent.save(tmp_path / "agent")
    loaded = load_agent(tmp_path / "agent", device="cpu")
    np.testing.assert_array_equal(loaded.act(obs), actions)

    # Sampled actions: a barely trained deterministic policy often repeats one action until
    # the step limit (6000 steps in bigfish), which is all the cost and tests nothing more.
    records = evaluate(loaded, env_id, part="test", num_episodes=EVAL_EPISODES,
                       num_envs=EVAL_EPISODES, deterministic=False)
    assert len(records) == EVAL_EPISODES
    assert all(r.part == "test" and r.length > 0 for r in records)
    test_levels = genv.env_info(env_id).default_split.levels("test")
    assert all(r.level_seed in test_levels for r in records)


@pytest.mark.parametrize(("env_id", "algo"), _pairs(False))
def test_algorithm_that_does_not_fit_is_refused_in_one_line(env_id: str, algo: str) -> None:
    space = _action_space(env_id)
    fitting = ", ".join(algos_fitting(space, online=True))
    message = (f"{algo.upper()} needs a .* action space; {env_id} has "
               f"{space}; algorithms that fit: {fitting}")
    with pytest.raises(InputError) as raised:
        agent_config_for_env(algo, env_id)
    assert "\n" not in str(raised.value)
    assert raised.match("^" + message.replace("(", r"\(").replace(")", r"\)")
                        .replace("[", r"\[").replace("]", r"\]") + "$")
    # An agent built directly from the config refuses the space the same way, before SB3.
    with pytest.raises(InputError, match=f"^{algo.upper()} needs a "):
        agent_config_class(algo)().create(
            gymnasium.spaces.Box(-1.0, 1.0, (3,)), space)
