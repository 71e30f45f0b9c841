"""Tests generated from the registry: every registered gengap env gets them."""

from __future__ import annotations

import pickle

import gymnasium
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec
from gymnasium.utils.env_checker import check_env

from gengap.envs import env_info, make, registered_ids, suite
from gengap.envs.registry import register_env

ALL_IDS = registered_ids()


def _flat(obs):
    if isinstance(obs, dict):
        return np.concatenate(
            [np.asarray(v, dtype=np.float64).ravel() for _, v in sorted(obs.items())]
        )
    return np.asarray(obs, dtype=np.float64).ravel()


def _rollout(env_id: str, seed: int, steps: int = 30):
    env = make(env_id)
    env.action_space.seed(seed)
    obs, info = env.reset(seed=seed)
    frames, rewards, levels = [_flat(obs)], [], [info["level_seed"]]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        frames.append(_flat(obs))
        rewards.append(float(reward))
        if terminated or truncated:
            obs, info = env.reset()
            frames.append(_flat(obs))
            levels.append(info["level_seed"])
    env.close()
    return frames, rewards, levels


def test_registry_is_populated_with_each_family():
    families = {env_info(i).family for i in ALL_IDS}
    assert {"procgen", "minigrid"} <= families
    assert all(i.startswith("gengap/") and i.endswith("-v0") for i in ALL_IDS)


def test_unknown_id_suggests_close_matches():
    with pytest.raises(
        ValueError,
        match="unknown env id 'gengap/procgen-coinrn-v0'; did you mean 'gengap/procgen-coinrun-v0'",
    ):
        make("gengap/procgen-coinrn-v0")


def test_reregistering_is_an_error():
    with pytest.raises(ValueError, match="already registered"):
        register_env(
            ALL_IDS[0],
            "gengap.envs.minigrid:MiniGridEnv",
            family="x",
            axes=("levels",),
            default_split=env_info(ALL_IDS[0]).default_split,
        )


def test_suites_are_derived_from_tags():
    procgen = suite("procgen")
    assert len(procgen) == 16
    assert all(env_info(i).family == "procgen" for i in procgen)
    with pytest.raises(ValueError, match="unknown suite tag 'procgenn'; did you mean 'procgen'"):
        suite("procgenn")


def test_bad_make_arguments():
    with pytest.raises(ValueError, match="num_envs must be a positive integer or None, got 0"):
        make(ALL_IDS[0], num_envs=0)
    with pytest.raises(ValueError, match="unknown split part 'held-out'"):
        make(ALL_IDS[0], part="held-out")


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_env_checker(env_id):
    env = make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_same_seed_same_rollout_and_seeds_vary(env_id):
    frames_a, rewards_a, levels_a = _rollout(env_id, seed=3)
    frames_b, rewards_b, levels_b = _rollout(env_id, seed=3)
    assert levels_a == levels_b and rewards_a == rewards_b
    assert all(np.array_equal(a, b) for a, b in zip(frames_a, frames_b, strict=True))
    # different seeds: different levels, so different first observations for most seeds
    firsts = {_flat(make(env_id).reset(seed=s)[0]).tobytes() for s in range(6)}
    assert len(firsts) > 1


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_levels_come_from_the_requested_part(env_id):
    split = env_info(env_id).default_split
    for part in split.parts:
        env = make(env_id, part=part)
        for seed in range(5):
            _, info = env.reset(seed=seed)
            assert info["level_seed"] in split.levels(part)
        env.close()


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_pickle_and_spec_round_trip(env_id):
    env = make(env_id)
    env.reset(seed=0)
    clone = pickle.loads(pickle.dumps(env))
    obs_a, _ = env.reset(seed=11)
    obs_b, _ = clone.reset(seed=11)
    assert np.array_equal(_flat(obs_a), _flat(obs_b))
    spec = EnvSpec.from_json(env.spec.to_json())
    assert spec == env.spec
    remade = gymnasium.make(spec)
    assert np.array_equal(_flat(remade.reset(seed=11)[0]), _flat(obs_a))
    for e in (env, clone, remade):
        e.close()


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_observations_do_not_share_memory(env_id):
    env = make(env_id)
    obs, _ = env.reset(seed=1)
    kept = [obs]
    for _ in range(3):
        obs, *_ = env.step(env.action_space.sample())
        kept.append(obs)
    arrays = [list(o.values()) if isinstance(o, dict) else [o] for o in kept]
    for i in range(len(arrays)):
        for j in range(i + 1, len(arrays)):
            for a, b in zip(arrays[i], arrays[j], strict=True):
                assert not np.shares_memory(a, b)
    env.close()


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_default_score_is_one_the_episodes_report(env_id):
    info = env_info(env_id)
    env = make(env_id)
    env.reset(seed=0)
    terminated = truncated = False
    step_info: dict = {}
    for _ in range(2000):
        _, _, terminated, truncated, step_info = env.step(env.action_space.sample())
        if terminated or truncated:
            break
    env.close()
    if info.default_score == "success":
        assert terminated or truncated, "no episode ended; raise the step count"
        assert isinstance(step_info.get("success"), bool)
    elif info.default_score == "normalized_return":
        assert info.normalizer is not None
    assert (info.normalizer is not None) == (info.family == "procgen")


def test_procgen_normalizer_follows_the_game_and_distribution_mode():
    from gengap.envs.procgen import normalized_return

    info = env_info("gengap/procgen-coinrun-v0")
    assert info.default_score == "normalized_return"
    assert info.normalize(7.0, {}) == pytest.approx(normalized_return("coinrun", 7.0, "easy"))
    assert info.normalize(7.0, {"distribution_mode": "hard"}) == pytest.approx(
        normalized_return("coinrun", 7.0, "hard")
    )
    assert env_info("gengap/minigrid-doorkey-5x5-v0").normalize(1.0, {}) is None


def test_register_env_checks_the_default_score():
    split = env_info(ALL_IDS[0]).default_split
    with pytest.raises(ValueError, match="unknown default_score 'sucess'; did you mean 'success'"):
        register_env("gengap/test-x-v0", "x:y", family="t", axes=(), default_split=split,
                     default_score="sucess")  # fmt: skip
    with pytest.raises(ValueError, match="needs a normalizer"):
        register_env("gengap/test-x-v0", "x:y", family="t", axes=(), default_split=split,
                     default_score="normalized_return")  # fmt: skip
