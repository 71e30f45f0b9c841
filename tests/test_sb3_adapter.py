"""The SB3 VecEnv adapter over gengap's Procgen vector env and a gymnasium SyncVectorEnv."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from stable_baselines3 import PPO

import gengap.envs as ge
from gengap.envs.sb3 import Sb3VecEnvAdapter, to_sb3


def _cartpole(num_envs: int, max_episode_steps: int | None = None) -> gymnasium.vector.VectorEnv:
    kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    return gymnasium.make_vec(
        "CartPole-v1",
        num_envs=num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
        **kwargs,
    )


def _params(model: PPO) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in model.policy.parameters()])


def test_ppo_learns_on_procgen_vector_env() -> None:
    venv = to_sb3(ge.make("gengap/procgen-chaser-v0", num_envs=4))
    venv.seed(0)
    model = PPO("CnnPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu")
    before = _params(model)
    model.learn(total_timesteps=640)
    assert not torch.equal(before, _params(model))
    episodes = list(model.ep_info_buffer)
    assert episodes, "random chaser episodes end within 160 steps per env"
    assert all(ep["l"] > 0 and np.isfinite(ep["r"]) for ep in episodes)
    actions, _ = model.predict(venv.reset(), deterministic=True)
    assert actions.shape == (4,)
    venv.close()


def test_procgen_infos_have_no_terminal_observation() -> None:
    venv = to_sb3(ge.make("gengap/procgen-chaser-v0", num_envs=8))
    venv.seed(1)
    obs = venv.reset()
    assert obs.shape == (8, 64, 64, 3)
    assert all(0 <= info["level_seed"] < 200 for info in venv.reset_infos)
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(300):
        obs, rewards, dones, infos = venv.step(rng.integers(0, 15, 8))
        assert len(infos) == 8 and all("level_seed" in info for info in infos)
        for done, info in zip(dones, infos, strict=True):
            assert ("episode" in info) == done
            if done:
                ended += 1
                assert "terminal_observation" not in info
                assert "TimeLimit.truncated" not in info
                assert isinstance(info["success"], bool)
                assert 0 <= info["episode_level_seed"] < 200
    assert ended > 0


def test_ppo_learns_on_sync_vector_env() -> None:
    venv = Sb3VecEnvAdapter(_cartpole(4))
    model = PPO("MlpPolicy", venv, n_steps=16, batch_size=32, n_epochs=2, seed=0, device="cpu")
    before = _params(model)
    model.learn(total_timesteps=640)
    assert not torch.equal(before, _params(model))
    episodes = list(model.ep_info_buffer)
    assert episodes
    # CartPole pays 1 per step, so a correctly counted episode has r == l.
    assert all(ep["r"] == ep["l"] for ep in episodes)


def test_sync_vector_env_terminal_observation_and_truncation() -> None:
    venv = to_sb3(_cartpole(3, max_episode_steps=10))
    venv.seed(3)
    venv.reset()
    saw_truncation = False
    for t in range(12):
        # alternating pushes keep the pole up, so episodes hit the 10-step limit
        obs, _, dones, infos = venv.step(np.full(3, t % 2, dtype=np.int64))
        for i in np.flatnonzero(dones):
            info = infos[i]
            terminal = info["terminal_observation"]
            assert terminal.shape == (4,)
            assert not np.array_equal(terminal, obs[i])  # obs is the next episode's start
            assert info["episode"]["l"] <= 10
            saw_truncation |= info["TimeLimit.truncated"]
            if info["TimeLimit.truncated"]:
                assert info["episode"]["l"] == 10
    assert saw_truncation


def test_seeded_reset_is_reproducible() -> None:
    venv = to_sb3(ge.make("gengap/procgen-coinrun-v0", num_envs=2))
    venv.seed(5)
    first = venv.reset()
    venv.seed(5)
    np.testing.assert_array_equal(venv.reset(), first)
    sync = to_sb3(_cartpole(2))
    sync.seed(5)
    a = sync.reset()
    sync.seed(5)
    np.testing.assert_array_equal(sync.reset(), a)


def test_attribute_access_and_errors() -> None:
    procgen = to_sb3(ge.make("gengap/procgen-coinrun-v0", num_envs=3))
    assert procgen.get_attr("game") == ["coinrun"] * 3
    assert procgen.env_is_wrapped(gymnasium.Wrapper) == [False] * 3
    procgen.set_attr("render_mode", "rgb_array")
    assert procgen.get_attr("render_mode", indices=[1]) == ["rgb_array"]
    with pytest.raises(ValueError, match="indices must cover all 3 envs"):
        procgen.set_attr("render_mode", None, indices=[0])
    sync = to_sb3(_cartpole(2))
    assert sync.env_is_wrapped(gymnasium.wrappers.TimeLimit) == [True, True]
    sync.set_attr("flag", 7, indices=[1])
    assert sync.get_attr("flag", indices=[1]) == [7]
    assert len(sync.env_method("reset", seed=0)) == 2
    with pytest.raises(ValueError, match="SAME_STEP"):
        Sb3VecEnvAdapter(gymnasium.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync"))
    with pytest.raises(TypeError, match="gymnasium.vector.VectorEnv"):
        Sb3VecEnvAdapter(gymnasium.make("CartPole-v1"))  # type: ignore[arg-type]
