"""The shapes world: env conventions, the combination and count axes, slots vs pixels."""

from __future__ import annotations

import pickle

import gymnasium
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec
from gymnasium.utils.env_checker import check_env

from gengap.envs import env_info, make, suite
from gengap.envs.combinations import combinatorial_split, random_combinatorial_split
from gengap.envs.shapes import (
    _MOVES,
    AGENT_COLOR,
    COLORS,
    FACTORS,
    HELD_OUT_COUNTS,
    SHAPES,
    ShapesEnv,
    _stamp,
)
from gengap.envs.splits import Split

SHAPES_IDS = suite("shapes")
CASES = [(env_id, mode) for env_id in SHAPES_IDS for mode in ("slots", "pixels")]


def _rollout(env: gymnasium.Env, seed: int, steps: int = 30) -> list[tuple]:
    obs, info = env.reset(seed=seed)
    env.action_space.seed(seed)
    trace = [(obs, info["level_seed"])]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        trace.append((obs, reward, terminated, truncated, info.get("success")))
        if terminated or truncated:
            obs, info = env.reset()
            trace.append((obs, info["level_seed"]))
    return trace


def _same(a: object, b: object) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


def test_registered_ids_and_axes() -> None:
    assert {
        "gengap/shapes-objectgoal-v0",
        "gengap/shapes-objectgoal-continuous-v0",
        "gengap/shapes-interaction-v0",
        "gengap/shapes-oddoneout-v0",
    } <= set(SHAPES_IDS)
    info = env_info("gengap/shapes-objectgoal-v0")
    assert info.axes == ("levels", "combinations", "counts")
    assert info.default_split.combination_parts == ("combinatorial", "extrapolation")


# -- registry-style env checks ----------------------------------------------------------
@pytest.mark.parametrize(("env_id", "obs_mode"), CASES)
def test_check_env(env_id: str, obs_mode: str) -> None:
    env = make(env_id, obs_mode=obs_mode, render_mode="rgb_array")
    check_env(env.unwrapped)


@pytest.mark.parametrize(("env_id", "obs_mode"), CASES)
def test_determinism_seeds_pickling_and_memory(env_id: str, obs_mode: str) -> None:
    env_a, env_b = make(env_id, obs_mode=obs_mode), make(env_id, obs_mode=obs_mode)
    assert _same(_rollout(env_a, 7), _rollout(env_b, 7))
    fingerprints = set()
    for seed in range(6):
        env_a.reset(seed=seed)
        fingerprints.add(env_a.unwrapped.level_fingerprint())
    assert len(fingerprints) == 6

    env_a.reset(seed=3)
    env_a.step(env_a.action_space.sample())
    clone = pickle.loads(pickle.dumps(env_a))
    actions = [env_a.action_space.sample() for _ in range(5)]
    for action in actions:
        out_a, out_c = env_a.step(action), clone.step(action)
        assert _same(out_a, out_c)
        if out_a[2] or out_a[3]:
            break

    first, _ = env_a.reset(seed=1)
    second = env_a.step(env_a.action_space.sample())[0]
    for key in first:
        assert not np.shares_memory(first[key], second[key]), key


@pytest.mark.parametrize("env_id", SHAPES_IDS)
def test_spec_round_trip(env_id: str) -> None:
    env = make(env_id, obs_mode="pixels", num_objects={"train": [3, 5]})
    assert env.spec is not None
    spec = EnvSpec.from_json(env.spec.to_json())
    assert spec == env.spec
    rebuilt = gymnasium.make(spec)
    assert _same(_rollout(env, 2, steps=5), _rollout(rebuilt, 2, steps=5))


def test_levels_and_options() -> None:
    env = make("gengap/shapes-objectgoal-v0")
    _, info = env.reset(seed=0, options={"level": 42})
    assert info["level_seed"] == 42
    scene = env.unwrapped.level_fingerprint()
    env.reset(seed=99, options={"level": 42})
    assert env.unwrapped.level_fingerprint() == scene
    assert env.step(0)[4]["level_seed"] == 42
    with pytest.raises(ValueError, match=r"level 20000 is not in the train levels"):
        env.reset(options={"level": 20_000})
    with pytest.raises(ValueError, match=r"level 20000 is not in the combinatorial levels"):
        make("gengap/shapes-objectgoal-v0", part="combinatorial").reset(options={"level": 20_000})
    held_out = make("gengap/shapes-objectgoal-v0", part="combinatorial")
    _, info = held_out.reset(seed=0)
    assert info["level_seed"] in held_out.unwrapped.split.test
    with pytest.raises(ValueError, match="has no combinatorial part"):
        ShapesEnv(split=Split.levels_split(10), part="combinatorial")
    with pytest.raises(ValueError, match=r"unknown task 'objectgoal'; did you mean 'object_goal'"):
        ShapesEnv(task="objectgoal")
    with pytest.raises(ValueError, match="shapes world needs exactly"):
        ShapesEnv(split=combinatorial_split({"color": ("red", "blue")}, []))
    vector = make("gengap/shapes-objectgoal-v0", num_envs=2)
    obs, infos = vector.reset(seed=0)
    assert obs["slots"].shape == (2, 8, 16) and len(infos["level_seed"]) == 2
    vector.close()


# -- the combination axis -----------------------------------------------------------------
@pytest.mark.parametrize("task", ["object_goal", "interaction", "odd_one_out"])
def test_no_held_out_combination_in_training_episodes(task: str) -> None:
    split = ShapesEnv().split
    held_out = split.combinations_for("combinatorial") | split.combinations_for("extrapolation")
    train = split.combinations_for("train")
    seen: set[tuple[str, str]] = set()
    for part in ("train", "validation", "test"):
        counts = (3, 7) if task == "odd_one_out" else (1, 7)
        env = ShapesEnv(task=task, split=split, part=part, num_objects=counts)
        for seed in range(1200 if part == "train" else 200):
            _, info = env.reset(seed=seed)
            objects = set(info["objects"])
            assert objects == set(env.scene_combinations())
            assert not objects & held_out, (part, seed, objects & held_out)
            seen |= objects
    assert seen == set(train)  # every training combination shows up, nothing else


@pytest.mark.parametrize("part", ["combinatorial", "extrapolation"])
def test_held_out_parts_present_only_the_goal_as_new(part: str) -> None:
    env = ShapesEnv(part=part, num_objects=HELD_OUT_COUNTS)
    pool = env.split.combinations_for(part)
    train = env.split.combinations_for("train")
    goals = set()
    for seed in range(400):
        _, info = env.reset(seed=seed)
        objects = list(info["objects"])
        goal = objects.pop(env.goal_index)
        assert goal == info["goal_combination"] and goal in pool
        assert all(o in train for o in objects) and goal not in objects
        goals.add(goal)
    assert goals == set(pool)


def test_random_split_in_the_env() -> None:
    split = random_combinatorial_split(FACTORS, 0.25, seed=4)
    env = ShapesEnv(split=split, num_objects=(4, 7))
    held_out = split.combinations_for("combinatorial")
    for seed in range(1000):
        _, info = env.reset(seed=seed)
        assert not set(info["objects"]) & held_out


def test_odd_one_out_is_unique() -> None:
    env = ShapesEnv(task="odd_one_out", num_objects=HELD_OUT_COUNTS)
    for seed in range(200):
        obs, info = env.reset(seed=seed)
        attribute = int(np.argmax(obs["goal"][-2:]))
        values = [combo[attribute] for combo in info["objects"]]
        odd = values.pop(env.goal_index)
        assert len(set(values)) == 1 and odd not in values


def test_counts_per_part() -> None:
    counts = {"train": (2, 4), "test": HELD_OUT_COUNTS}
    for part, (low, high) in counts.items():
        env = make("gengap/shapes-objectgoal-v0", part=part, num_objects=counts)
        sizes = set()
        for seed in range(100):
            obs, info = env.reset(seed=seed)
            sizes.add(len(info["objects"]))
            assert obs["mask"].sum() == len(info["objects"]) + 1
        assert sizes == set(range(low, high + 1))
    assert len(make("gengap/shapes-objectgoal-v0", part="validation",
                    num_objects=counts).reset(seed=0)[1]["objects"]) in (2, 3, 4)
    with pytest.raises(ValueError, match=r"max <= max_objects=7, got \(5, 9\)"):
        ShapesEnv(num_objects=(5, 9))
    with pytest.raises(ValueError, match="odd_one_out needs at least 3 objects"):
        ShapesEnv(task="odd_one_out", num_objects=(2, 4))
    with pytest.raises(ValueError, match=r"num_objects has unknown part\(s\) \['tset'\]"):
        ShapesEnv(num_objects={"tset": (5, 7)})


# -- slots and pixels ---------------------------------------------------------------------
@pytest.mark.parametrize("task", ["object_goal", "interaction", "odd_one_out"])
def test_slots_and_pixels_show_the_same_scene(task: str) -> None:
    slots_env = ShapesEnv(task=task, obs_mode="slots", num_objects=(3, 7))
    pixels_env = ShapesEnv(task=task, obs_mode="pixels", num_objects=(3, 7))
    colors, names = np.array(list(COLORS.values())), list(COLORS)
    checked = 0
    for seed in range(40):
        slots_obs, _ = slots_env.reset(seed=seed)
        pixels_obs, _ = pixels_env.reset(seed=seed)
        if seed % 2:  # also after some moves (interaction pushes objects)
            for action in [4, 4, 2, 2, 3, 1, 1]:
                slots_obs, *_, done, cut, _ = slots_env.step(action)
                pixels_obs, *_ = pixels_env.step(action)
                if done or cut:
                    break
        assert np.array_equal(slots_obs["goal"], pixels_obs["goal"])
        frame = pixels_obs["pixels"]
        rows = slots_obs["slots"][slots_obs["mask"] > 0]
        agent_x, agent_y = rows[0, 13:15]
        assert tuple(frame[int(agent_y * 64), int(agent_x * 64)]) == AGENT_COLOR
        objects = rows[1:]
        for index, row in enumerate(objects):
            color = int(np.argmax(row[1:9]))
            shape = SHAPES[int(np.argmax(row[9:13]))]
            x, y, radius = row[13:16]
            col, line, r = int(x * 64), int(y * 64), round(float(radius) * 64)
            # Boxes of every other thing (the agent's half-width is 4 pixels) must be clear.
            boxes = np.delete(rows, index + 1, axis=0)
            pixels = (boxes[:, 13:15] * 64).astype(int)
            half = np.round(boxes[:, 15] * 64)
            apart = np.abs(pixels - (col, line)).max(axis=1) > half + r
            clear = bool(np.all(apart))
            if not clear or not (r <= col <= 63 - r and r <= line <= 63 - r):
                continue  # a push made things overlap or touch a wall: shape is not checkable
            box = frame[line - r : line + r + 1, col - r : col + r + 1]
            painted = np.all(box == colors[color], axis=-1)
            assert np.array_equal(painted, _stamp(shape, r)), (seed, names[color], shape)
            checked += 1
    assert checked >= 100  # most objects are checked, not skipped


# -- scripted policies --------------------------------------------------------------------
def _walk_to_goal(env: ShapesEnv) -> int:
    """Greedy: the move that brings the agent closest to the goal object without
    touching another object."""
    agent, positions = env.agent_position, env.object_positions
    reach = env._radius + env._agent_radius + 1e-3
    others = np.arange(len(positions)) != env.goal_index
    best, best_distance = 0, np.inf
    for action in range(1, 5):
        step = np.clip(agent + _MOVES[action], env._agent_radius, 1 - env._agent_radius)
        if np.any(np.linalg.norm(positions[others] - step, axis=1) < reach[others]):
            continue
        distance = np.linalg.norm(positions[env.goal_index] - step)
        if distance < best_distance:
            best, best_distance = action, distance
    return best


class _Pusher:
    """Go round the goal object to its far side from the target, then push it there."""

    def __init__(self) -> None:
        self.side = 0.0

    def __call__(self, env: ShapesEnv) -> np.ndarray:
        goal = env.object_positions[env.goal_index]
        direction = env.target_position - goal
        direction /= max(np.linalg.norm(direction), 1e-9)
        reach = env._radius[env.goal_index] + env._agent_radius
        offset = env.agent_position - goal
        along = float(np.dot(offset, direction))
        normal = np.array([-direction[1], direction[0]])
        if along > -0.5 * reach:
            if not self.side:
                self.side = 1.0 if np.dot(offset, normal) >= 0 else -1.0
            back = reach if along < 0.3 * reach else 0.0
            waypoint = goal + self.side * normal * (reach + 0.05) - direction * back
        else:
            self.side = 0.0
            waypoint = goal - direction * reach * 0.5
        velocity = waypoint - env.agent_position
        return (velocity / max(np.abs(velocity).max(), 1e-9)).astype(np.float32)


def _success_rate(env_id: str, policy_factory, episodes: int, **kwargs) -> tuple[float, list]:
    env = make(env_id, **kwargs)
    successes, rewards = 0, []
    for seed in range(episodes):
        env.reset(seed=seed)
        policy = policy_factory()
        while True:
            _, reward, terminated, truncated, info = env.step(policy(env.unwrapped))
            if terminated or truncated:
                successes += info["success"]
                rewards.append(reward)
                break
    return successes / episodes, rewards


@pytest.mark.parametrize("env_id", ["gengap/shapes-objectgoal-v0", "gengap/shapes-oddoneout-v0"])
def test_scripted_walker_succeeds(env_id: str) -> None:
    rate, rewards = _success_rate(env_id, lambda: _walk_to_goal, 100)
    assert rate >= 0.85
    assert all((r > 0) == (r >= 0.1) for r in rewards)
    held_out, _ = _success_rate(env_id, lambda: _walk_to_goal, 60, part="combinatorial")
    assert held_out >= 0.85
    random_rate, _ = _success_rate(env_id, lambda: lambda e: int(e.np_random.integers(5)), 100)
    assert random_rate < rate - 0.3


def test_scripted_pusher_succeeds() -> None:
    rate, _ = _success_rate("gengap/shapes-interaction-continuous-v0", _Pusher, 60)
    assert rate >= 0.9
    idle, _ = _success_rate("gengap/shapes-interaction-continuous-v0",
                            lambda: lambda e: np.zeros(2, np.float32), 20)
    assert idle == 0.0


def test_sb3_multi_input_policy_trains_on_both_modes() -> None:
    from stable_baselines3 import PPO

    for mode in ("slots", "pixels"):
        env = make("gengap/shapes-objectgoal-v0", obs_mode=mode)
        model = PPO("MultiInputPolicy", env, n_steps=32, batch_size=32, n_epochs=1, seed=0,
                    device="cpu")
        model.learn(32)
        action, _ = model.predict(env.reset(seed=0)[0], deterministic=True)
        assert env.action_space.contains(int(action))
