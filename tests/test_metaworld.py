"""Meta-World through gengap: task splits, goal levels, seeding, success."""

from __future__ import annotations

import numpy as np
import pytest

from gengap.core.errors import InputError
from gengap.envs import env_info, make
from gengap.envs.metaworld import (
    ALL_TASKS,
    BENCHMARKS,
    MT10_TASKS,
    MetaWorldEnv,
    custom_task_split,
    task_split,
)

REACH = "gengap/metaworld-reach-v0"


def test_task_lists_match_the_installed_metaworld():
    from metaworld import env_dict

    assert ALL_TASKS == tuple(env_dict.ALL_V3_ENVIRONMENTS)
    assert MT10_TASKS == tuple(env_dict.MT10_V3)
    for name in ("ml10", "ml45"):
        train, held_out, _ = BENCHMARKS[name]
        groups = getattr(env_dict, f"{name.upper()}_V3")
        assert set(train) == set(groups["train"]) and set(held_out) == set(groups["test"])


@pytest.mark.parametrize("benchmark", ["ml10", "ml45"])
def test_train_and_held_out_tasks_are_disjoint(benchmark):
    split = task_split(benchmark)
    train = {c[0] for c in split.combinations_for("train")}
    held_out = {c[0] for c in split.combinations_for("extrapolation")}
    assert train == set(BENCHMARKS[benchmark][0]) and held_out == set(BENCHMARKS[benchmark][1])
    assert not train & held_out and len(held_out) == 5
    assert split.levels("extrapolation") == split.test  # held-out tasks on held-out goals


def test_episodes_draw_tasks_from_their_part():
    env = make("gengap/metaworld-ml10-v0", part="extrapolation", max_episode_steps=5)
    held_out = set(BENCHMARKS["ml10"][1])
    seen = set()
    for seed in range(8):
        _, info = env.reset(seed=seed)
        assert info["task"] in held_out and info["level_seed"] in task_split("ml10").test
        seen.add(info["task"])
    assert len(seen) > 1
    with pytest.raises(InputError, match="task 'reach-v3' is not in the extrapolation tasks"):
        env.reset(options={"task": "reach-v3"})
    env.close()


def test_metaworld_own_reset_seed_is_ignored():
    """Metaworld issue 147 and later reports: verified on the installed version."""
    from metaworld import env_dict

    env = env_dict.ALL_V3_ENVIRONMENTS["reach-v3"]()
    env._freeze_rand_vec, env._set_task_called, env._partially_observable = False, True, False
    first, _ = env.reset(seed=1)
    second, _ = env.reset(seed=1)
    assert not np.allclose(first[-3:], second[-3:])  # same seed, different goal: seed ignored
    np.random.seed(0)
    third, _ = env.reset(seed=123)
    np.random.seed(0)
    fourth, _ = env.reset(seed=456)
    assert np.allclose(third[-3:], fourth[-3:])  # the global NumPy state decides instead
    env.close()


def test_gengap_seeding_controls_goals():
    def first_obs(seed, global_seed):
        np.random.seed(global_seed)  # must not matter
        env = make(REACH)
        obs, info = env.reset(seed=seed)
        env.close()
        return obs, info

    obs_a, info_a = first_obs(3, 0)
    obs_b, info_b = first_obs(3, 99)
    assert np.array_equal(obs_a, obs_b) and info_a == info_b
    goals = {tuple(first_obs(seed, 0)[0][36:39]) for seed in range(4)}
    assert len(goals) > 1  # seeds vary the goal
    env = make(REACH)
    goal_5 = env.reset(options={"level": 5})[0][36:39]
    assert np.array_equal(env.reset(seed=8, options={"level": 5})[0][36:39], goal_5)
    assert not np.array_equal(env.reset(options={"level": 6})[0][36:39], goal_5)
    env.close()


def test_scripted_policy_succeeds_and_success_sticks():
    from metaworld.policies.sawyer_reach_v3_policy import SawyerReachV3Policy

    env = make(REACH, max_episode_steps=150)
    policy = SawyerReachV3Policy()
    obs, _ = env.reset(seed=0)
    successes = []
    for _ in range(150):
        obs, _, terminated, truncated, info = env.step(policy.get_action(obs))
        successes.append(info["success"])
        if terminated or truncated:
            break
    assert successes[-1] is True and successes[0] is False
    first = successes.index(True)
    assert all(successes[first:])  # once succeeded, the episode counts as a success
    env.close()


def test_mt10_appends_a_task_one_hot():
    env = make("gengap/metaworld-mt10-v0", max_episode_steps=5)
    obs, info = env.reset(seed=0)
    assert obs.shape == (49,) and obs[39 + MT10_TASKS.index(info["task"])] == 1.0
    assert obs[39:].sum() == 1.0
    assert env_info("gengap/metaworld-mt10-v0").family == "metaworld"
    env.close()


def test_bad_input():
    with pytest.raises(InputError, match="unknown Meta-World task 'reach-v2'; did you mean "
                                         "'reach-v3'"):
        custom_task_split(["reach-v2"], ["push-v3"])
    with pytest.raises(InputError, match=r"train and held-out tasks overlap in \['push-v3'\]"):
        custom_task_split(["reach-v3", "push-v3"], ["push-v3"])
    with pytest.raises(InputError, match="unknown Meta-World benchmark 'ml11'; did you mean"):
        task_split("ml11")
    from gengap.envs import Split

    with pytest.raises(InputError, match="needs a combination axis with one factor 'task'"):
        MetaWorldEnv("ml10", split=Split.levels_split(5))
    with pytest.raises(InputError, match=r"max_episode_steps must be an integer in \[1, 500\]"):
        MetaWorldEnv("mt1-reach-v3", max_episode_steps=501)


def test_custom_split_trains_and_holds_out_named_tasks():
    split = custom_task_split(["reach-v3"], ["push-v3"])
    env = make(REACH, split=split, part="extrapolation", max_episode_steps=5)
    assert env.reset(seed=0)[1]["task"] == "push-v3"
    env.close()


def test_the_metaworld_study_file_holds_out_the_ml10_test_tasks():
    from pathlib import Path

    from gengap.drivers.study import load_study
    from gengap.envs.metaworld import ML10_TEST

    path = Path(__file__).resolve().parent.parent / "studies" / "metaworld_reach_heldout.toml"
    split = load_study(path).experiments()[0].resolved_split()
    assert {c[0] for c in split.combinations_for("train")} == {"reach-v3"}
    assert {c[0] for c in split.combinations_for("extrapolation")} == set(ML10_TEST)
