"""Procgen: the single env view, the native vector env, splits and normalization."""

from __future__ import annotations

import pickle

import gymnasium
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import gengap.envs as ge
from gengap.envs.procgen import (
    DEFAULT_SPLIT,
    EPISODE_LIMITS,
    PROCGEN_GAMES,
    ProcgenEnv,
    ProcgenVecEnv,
    normalized_return,
)
from gengap.envs.splits import LevelSet, Split

PROCGEN_IDS = ge.suite("procgen")


def _rollout(env: gymnasium.Env, seed: int, steps: int) -> list[tuple]:
    obs, info = env.reset(seed=seed)
    env.action_space.seed(seed)
    trace: list[tuple] = [(obs.copy(), info["level_seed"])]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        trace.append((obs.copy(), reward, terminated, truncated, info["level_seed"]))
        if terminated or truncated:
            obs, info = env.reset()
            trace.append((obs.copy(), info["level_seed"]))
    return trace


def _assert_same_trace(a: list[tuple], b: list[tuple]) -> None:
    assert len(a) == len(b)
    for step_a, step_b in zip(a, b, strict=True):
        for x, y in zip(step_a, step_b, strict=True):
            np.testing.assert_array_equal(x, y)


def test_all_sixteen_games_registered() -> None:
    assert PROCGEN_IDS == sorted(f"gengap/procgen-{g}-v0" for g in PROCGEN_GAMES)
    info = ge.env_info("gengap/procgen-coinrun-v0")
    assert info.native_vector and info.axes == ("levels",) and info.family == "procgen"
    assert info.default_split == DEFAULT_SPLIT
    assert ge.suite("procgen-easy-200") == PROCGEN_IDS


@pytest.mark.parametrize("env_id", PROCGEN_IDS)
def test_registered_env_contract(env_id: str) -> None:
    env = ge.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    # Same seed: identical rollouts; different seeds: different initial levels.
    _assert_same_trace(_rollout(env, 3, 40), _rollout(ge.make(env_id), 3, 40))
    fingerprints = set()
    for seed in range(4):
        env.reset(seed=seed)
        fingerprints.add(env.unwrapped.level_fingerprint())
    assert len(fingerprints) > 1
    # The spec is JSON and rebuilds the same env.
    assert env.spec is not None
    spec = EnvSpec.from_json(env.spec.to_json())
    assert spec == env.spec
    rebuilt = gymnasium.make(spec)
    np.testing.assert_array_equal(rebuilt.reset(seed=5)[0], env.reset(seed=5)[0])


def test_steps_return_fresh_observation_arrays() -> None:
    env = ProcgenEnv(game="coinrun")
    previous, _ = env.reset(seed=0)
    for _ in range(20):
        obs, *_ = env.step(7)
        assert not np.shares_memory(obs, previous)
        previous = obs
    vec = ProcgenVecEnv(num_envs=3, game="coinrun")
    previous, _ = vec.reset(seed=0)
    for _ in range(20):
        obs, *_ = vec.step(np.full(3, 7))
        assert not np.shares_memory(obs, previous)
        previous = obs


def test_pickled_env_continues_the_same_episode() -> None:
    env = ProcgenEnv(game="heist")
    env.reset(seed=11)
    for _ in range(15):
        env.step(1)
    clone = pickle.loads(pickle.dumps(env))
    assert clone.level == env.level
    actions = np.random.default_rng(0).integers(0, 15, 60)
    for action in actions:
        a, b = env.step(int(action)), clone.step(int(action))
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:] == b[1:]
        if a[2] or a[3]:
            break


def test_pickled_vector_env_continues_identically() -> None:
    vec = ProcgenVecEnv(num_envs=4, game="chaser")
    vec.reset(seed=2)
    rng = np.random.default_rng(1)
    for _ in range(30):
        vec.step(rng.integers(0, 15, 4))
    clone = pickle.loads(pickle.dumps(vec))
    for _ in range(150):
        actions = rng.integers(0, 15, 4)
        a, b = vec.step(actions), clone.step(actions)
        for x, y in zip(a[:4], b[:4], strict=True):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(a[4]["level_seed"], b[4]["level_seed"])


def test_explicit_level_reset_and_fingerprint() -> None:
    env = ProcgenEnv(game="maze")
    _, info = env.reset(seed=0, options={"level": 42})
    assert info["level_seed"] == 42 and env.level == 42
    first = env.level_fingerprint()
    # The layout depends on the level only, not on the seed.
    other = ProcgenEnv(game="maze")
    other.reset(seed=99, options={"level": 42})
    assert other.level_fingerprint() == first
    other.reset(seed=99, options={"level": 43})
    assert other.level_fingerprint() != first
    with pytest.raises(
        ValueError, match="level 500 is not in the train levels of split 'procgen-easy-200'"
    ):
        env.reset(options={"level": 500})
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"levle": 3})
    with pytest.raises(RuntimeError, match="reset"):
        ProcgenEnv().level_fingerprint()


def test_single_env_draws_levels_from_explicit_seeds_and_honours_exclusions() -> None:
    split = Split(train=LevelSet.of([5, 17, 300]), test=LevelSet.range(1000, 5).without([1001]))
    train = ProcgenEnv(game="coinrun", split=split)
    seen = {train.reset(seed=s)[1]["level_seed"] for s in range(40)}
    assert seen == {5, 17, 300}
    test = ProcgenEnv(game="coinrun", split=split.to_dict(), part="test")
    seen = {test.reset(seed=s)[1]["level_seed"] for s in range(60)}
    assert seen == {1000, 1002, 1003, 1004}
    with pytest.raises(ValueError, match="explicit level seeds"):
        ProcgenVecEnv(num_envs=2, split=split)


def test_single_env_after_natural_episode_end() -> None:
    env = ProcgenEnv(game="chaser")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(EPISODE_LIMITS["chaser"]):
        obs, _, terminated, truncated, info = env.step(int(rng.integers(15)))
        if terminated or truncated:
            break
    assert terminated or truncated, "a chaser episode ends within its step limit"
    assert "success" in info and info["level_seed"] == env.level
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    obs, info = env.reset()
    assert obs.shape == (64, 64, 3) and info["level_seed"] in DEFAULT_SPLIT.train
    env.step(0)


def test_vector_env_shapes_and_metadata() -> None:
    vec = ge.make("gengap/procgen-coinrun-v0", num_envs=5)
    assert isinstance(vec, ProcgenVecEnv)
    assert vec.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    obs, infos = vec.reset(seed=0)
    assert obs.shape == (5, 64, 64, 3) and obs.dtype == np.uint8
    assert obs in vec.observation_space
    assert infos["level_seed"].shape == (5,) and infos["_level_seed"].all()
    obs, rewards, terminations, truncations, infos = vec.step(vec.action_space.sample())
    assert obs.shape == (5, 64, 64, 3)
    assert rewards.shape == terminations.shape == truncations.shape == (5,)
    assert terminations.dtype == truncations.dtype == np.bool_
    with pytest.raises(ValueError, match=r"actions must have shape \(5,\)"):
        vec.step(np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match="actions must be in"):
        vec.step(np.full(5, 15))


def test_vector_env_same_seed_same_rollout() -> None:
    def rollout(seed: int) -> list[np.ndarray]:
        vec = ProcgenVecEnv(num_envs=3, game="bigfish")
        obs, infos = vec.reset(seed=seed)
        rng = np.random.default_rng(0)
        out = [obs, infos["level_seed"]]
        for _ in range(40):
            obs, rewards, terminations, _, infos = vec.step(rng.integers(0, 15, 3))
            out += [obs, rewards, terminations, infos["level_seed"]]
        return out

    a, b, c = rollout(7), rollout(7), rollout(8)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize(("part", "low", "high"), [("train", 0, 200), ("test", 10_000, 2**31 - 1)])
def test_vector_env_levels_stay_in_the_part(part: str, low: int, high: int) -> None:
    vec = ge.make("gengap/procgen-chaser-v0", num_envs=8, part=part)
    _, infos = vec.reset(seed=0)
    level_seeds = [infos["level_seed"]]
    episode_seeds: list[np.ndarray] = []
    rng = np.random.default_rng(0)
    for _ in range(300):
        _, _, _, _, infos = vec.step(rng.integers(0, 15, 8))
        level_seeds.append(infos["level_seed"])
        if "episode" in infos:
            episode_seeds.append(infos["episode_level_seed"][infos["_episode_level_seed"]])
    seeds = np.concatenate(level_seeds + episode_seeds)
    assert episode_seeds, "random chaser episodes end within 300 steps"
    assert seeds.min() >= low and seeds.max() < high
    assert len(np.unique(seeds)) > 8  # new levels are drawn after episodes end


def test_vector_env_episode_infos_and_truncation() -> None:
    vec = ProcgenVecEnv(num_envs=16, game="maze")
    vec.reset(seed=0)
    rng = np.random.default_rng(0)
    returns = np.zeros(16)
    ends = truncated_ends = 0
    for _ in range(EPISODE_LIMITS["maze"] + 5):
        _, rewards, terminations, truncations, infos = vec.step(rng.integers(0, 15, 16))
        returns += rewards
        done = terminations | truncations
        assert not (terminations & truncations).any()
        if done.any():
            np.testing.assert_array_equal(infos["_episode"], done)
            np.testing.assert_allclose(infos["episode"]["r"][done], returns[done])
            lengths = infos["episode"]["l"]
            assert (lengths[truncations] == EPISODE_LIMITS["maze"]).all()
            assert not infos["success"][truncations].any()
            # maze rewards 10 exactly when the level is completed
            np.testing.assert_array_equal(infos["success"][done], returns[done] == 10)
            assert not infos["excluded"].any()
            ends += int(done.sum())
            truncated_ends += int(truncations.sum())
            returns[done] = 0
    assert ends > truncated_ends > 0


def test_vector_env_flags_excluded_levels() -> None:
    split = Split(train=LevelSet.range(0, 3).without([1]), test=LevelSet.range(100, None))
    vec = ProcgenVecEnv(num_envs=8, game="chaser", split=split)
    vec.reset(seed=0)
    rng = np.random.default_rng(0)
    flagged: dict[int, set[bool]] = {}
    for _ in range(400):
        _, _, _, _, infos = vec.step(rng.integers(0, 15, 8))
        if "episode" in infos:
            mask = infos["_excluded"]
            for seed, excluded in zip(
                infos["episode_level_seed"][mask], infos["excluded"][mask], strict=True
            ):
                flagged.setdefault(int(seed), set()).add(bool(excluded))
    assert flagged == {0: {False}, 1: {True}, 2: {False}}


def test_invalid_arguments_name_the_problem() -> None:
    with pytest.raises(ValueError, match="did you mean 'coinrun'"):
        ProcgenEnv(game="coinrn")
    with pytest.raises(ValueError, match="distribution_mode"):
        ProcgenVecEnv(num_envs=2, distribution_mode="medium")
    with pytest.raises(ValueError, match="split part"):
        ProcgenEnv(part="tests")
    with pytest.raises(ValueError, match="Procgen option"):
        ProcgenEnv(center_agnt=False)
    with pytest.raises(ValueError, match="num_envs must be a positive integer, got 0"):
        ProcgenVecEnv(num_envs=0)
    with pytest.raises(ValueError, match="action must be in"):
        env = ProcgenEnv()
        env.reset(seed=0)
        env.step(15)


def test_normalized_return_matches_hand_computed_values() -> None:
    assert normalized_return("coinrun", 10.0) == 1.0
    assert normalized_return("coinrun", 7.5) == 0.5
    assert normalized_return("fruitbot", 0.0) == pytest.approx(1.5 / 33.9)
    assert normalized_return("starpilot", 20.0, mode="hard") == pytest.approx(18.5 / 33.5)
    np.testing.assert_allclose(
        normalized_return("bigfish", np.array([1.0, 40.0, 20.5])), [0.0, 1.0, 0.5]
    )
    with pytest.raises(ValueError, match="did you mean 'maze'"):
        normalized_return("maz", 1.0)
    with pytest.raises(ValueError, match="distribution_mode"):
        normalized_return("maze", 1.0, mode="extreme")
