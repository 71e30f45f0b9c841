"""MiniGrid and BabyAI: registry conformance, level control, observation modes, success."""

from __future__ import annotations

import collections
import pickle

import gymnasium
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec
from gymnasium.utils.env_checker import check_env
from minigrid.wrappers import FullyObsWrapper, RGBImgPartialObsWrapper

import gengap.envs as ge
from gengap.envs.minigrid import DEFAULT_SPLIT, OBS_MODES, MiniGridEnv
from gengap.envs.splits import LevelSet, Split

# The plain wrapper's ids (entity and compositional variants have their own test files;
# tests/test_envs_registry.py covers every id).
MINIGRID_IDS = [
    i
    for i in ge.suite("minigrid")
    if gymnasium.spec(i).entry_point == "gengap.envs.minigrid:MiniGridEnv"
]
LEFT, RIGHT, FORWARD = 0, 1, 2


def _rollout(env: gymnasium.Env, seed: int, steps: int) -> list[tuple]:
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    trace: list[tuple] = [(obs.copy(), info["level_seed"], info["mission"])]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(int(rng.integers(7)))
        trace.append((obs.copy(), reward, terminated, truncated, info["level_seed"]))
        if terminated or truncated:
            obs, info = env.reset()
            trace.append((obs.copy(), info["level_seed"], info["mission"]))
    return trace


def _same(trace_a: list[tuple], trace_b: list[tuple]) -> bool:
    if len(trace_a) != len(trace_b):
        return False
    for row_a, row_b in zip(trace_a, trace_b, strict=True):
        if not np.array_equal(row_a[0], row_b[0]) or row_a[1:] != row_b[1:]:
            return False
    return True


def test_registry_holds_both_families() -> None:
    families = {ge.env_info(i).family for i in MINIGRID_IDS}
    assert families == {"minigrid", "babyai"}
    assert "gengap/minigrid-doorkey-8x8-v0" in MINIGRID_IDS
    assert {i for i in ge.suite("babyai") if i in MINIGRID_IDS} == {
        "gengap/babyai-gotolocal-v0",
        "gengap/babyai-pickuploc-v0",
        "gengap/babyai-putnextlocal-v0",
        "gengap/babyai-goto-redball-v0",
    }
    info = ge.env_info("gengap/babyai-gotolocal-v0")
    assert info.axes == ("levels",) and info.default_split == DEFAULT_SPLIT
    assert gymnasium.spec("gengap/babyai-gotolocal-v0").kwargs == {"task": "BabyAI-GoToLocal-v0"}


# -- conformance, generated from the registry ---------------------------------------------
@pytest.mark.parametrize("env_id", MINIGRID_IDS)
def test_check_env(env_id: str) -> None:
    env = ge.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id", MINIGRID_IDS)
def test_same_seed_same_rollout_and_seeds_vary_levels(env_id: str) -> None:
    first = _rollout(ge.make(env_id), seed=3, steps=60)
    second = _rollout(ge.make(env_id), seed=3, steps=60)
    assert _same(first, second)
    assert not _same(first, _rollout(ge.make(env_id), seed=4, steps=60))
    env = ge.make(env_id)
    initial = {env.reset(seed=seed)[0].tobytes() for seed in range(8)}
    assert len(initial) > 1


@pytest.mark.parametrize("env_id", MINIGRID_IDS)
def test_pickled_env_continues_identically(env_id: str) -> None:
    env = ge.make(env_id)
    env.reset(seed=1)
    env.step(FORWARD)
    clone = pickle.loads(pickle.dumps(env))
    for action in (LEFT, FORWARD, FORWARD, RIGHT, FORWARD):
        original, cloned = env.step(action), clone.step(action)
        assert np.array_equal(original[0], cloned[0]) and original[1:] == cloned[1:]


@pytest.mark.parametrize("env_id", MINIGRID_IDS)
def test_spec_json_round_trip(env_id: str) -> None:
    split = Split.levels_split(5, test_start=100, name="tiny")
    env = ge.make(env_id, split=split, part="test", obs_mode="vector")
    assert env.spec is not None
    spec = EnvSpec.from_json(env.spec.to_json())
    assert spec == env.spec
    remade = gymnasium.make(spec)
    obs, info = remade.reset(seed=0)
    assert remade.observation_space == env.observation_space
    assert info["level_seed"] >= 100 and remade.unwrapped.split == split


@pytest.mark.parametrize("env_id", MINIGRID_IDS)
def test_observations_do_not_share_memory(env_id: str) -> None:
    env = ge.make(env_id)
    obs_reset, _ = env.reset(seed=0)
    obs_1 = env.step(LEFT)[0]
    obs_2 = env.step(LEFT)[0]
    assert not np.shares_memory(obs_reset, obs_1)
    assert not np.shares_memory(obs_1, obs_2)


# -- observation modes --------------------------------------------------------------------
@pytest.mark.parametrize("obs_mode", OBS_MODES)
@pytest.mark.parametrize(
    "env_id", ["gengap/minigrid-doorkey-8x8-v0", "gengap/babyai-putnextlocal-v0"]
)
def test_obs_modes_stay_in_their_space(env_id: str, obs_mode: str) -> None:
    env = ge.make(env_id, obs_mode=obs_mode)
    expected = {
        "image": ((3, 7, 7), np.float32),
        "rgb": ((56, 56, 3), np.uint8),
        "vector": ((151,), np.float32),
    }
    inner = env.unwrapped.unwrapped_task
    expected["full"] = ((3, inner.width, inner.height), np.float32)
    shape, dtype = expected[obs_mode]
    assert env.observation_space.shape == shape and env.observation_space.dtype == dtype
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(30):
        assert obs.shape == shape and obs.dtype == dtype
        assert env.observation_space.contains(obs)
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(7)))
        if terminated or truncated:
            obs, _ = env.reset()


def _raw_minigrid(task: str, wrapper: type | None = None) -> gymnasium.Env:
    raw = gymnasium.make(task, disable_env_checker=True)
    return wrapper(raw) if wrapper is not None else raw


@pytest.mark.parametrize("task", ["MiniGrid-DoorKey-8x8-v0", "BabyAI-GoToLocal-v0"])
def test_modes_match_minigrid_own_encodings(task: str) -> None:
    level = 7
    actions = [LEFT, FORWARD, FORWARD, RIGHT, FORWARD, 3, FORWARD]
    references = {
        "image": _raw_minigrid(task),
        "full": _raw_minigrid(task, FullyObsWrapper),
        "rgb": _raw_minigrid(task, RGBImgPartialObsWrapper),
    }
    for obs_mode, raw in references.items():
        env = MiniGridEnv(task, obs_mode=obs_mode)
        ours, info = env.reset(options={"level": level})
        theirs, raw_info = raw.reset(seed=level)
        assert info["mission"] == theirs["mission"]
        for action in [None, *actions]:
            if action is not None:
                ours = env.step(action)[0]
                theirs = raw.step(action)[0]
            if obs_mode == "rgb":
                assert np.array_equal(ours, theirs["image"])
            else:
                symbols = np.rint(ours * 10).astype(np.uint8)
                assert np.array_equal(symbols, theirs["image"].transpose(2, 0, 1))
    vector_env = MiniGridEnv(task, obs_mode="vector")
    vector, _ = vector_env.reset(options={"level": level})
    image, _ = MiniGridEnv(task).reset(options={"level": level})
    assert np.array_equal(vector[:147], image.reshape(-1))
    direction = np.zeros(4, np.float32)
    direction[vector_env.unwrapped_task.agent_dir] = 1.0
    assert np.array_equal(vector[147:], direction)


def test_full_mode_marks_agent_cell() -> None:
    env = MiniGridEnv("MiniGrid-FourRooms-v0", obs_mode="full")
    obs, _ = env.reset(seed=0)
    inner = env.unwrapped_task
    x, y = inner.agent_pos
    assert np.allclose(obs[:, x, y], np.array([10, 0, inner.agent_dir]) / 10)


# -- levels -------------------------------------------------------------------------------
def test_levels_come_only_from_the_part() -> None:
    train = ge.make("gengap/minigrid-doorkey-5x5-v0")
    test = ge.make("gengap/minigrid-doorkey-5x5-v0", part="test")
    train_levels = [train.reset(seed=s)[1]["level_seed"] for s in range(100)]
    test_levels = [test.reset(seed=s)[1]["level_seed"] for s in range(100)]
    assert all(0 <= level < 200 for level in train_levels) and len(set(train_levels)) > 50
    assert all(level >= 10_000 for level in test_levels)
    split = Split(train=LevelSet.of([3, 5, 7]), test=LevelSet.range(100, 10), name="three")
    env = ge.make("gengap/minigrid-fourrooms-v0", split=split)
    env.reset(seed=0)
    drawn = collections.Counter(env.reset()[1]["level_seed"] for _ in range(60))
    assert set(drawn) == {3, 5, 7}


def test_explicit_level_option() -> None:
    env = ge.make("gengap/minigrid-multiroom-n2-s4-v0", part="test")
    obs_a, info = env.reset(seed=0, options={"level": 12_345})
    assert info["level_seed"] == 12_345
    assert env.step(LEFT)[4]["level_seed"] == 12_345
    obs_b, _ = ge.make("gengap/minigrid-multiroom-n2-s4-v0", part="test").reset(
        seed=99, options={"level": 12_345}
    )
    assert np.array_equal(obs_a, obs_b)
    assert env.unwrapped.level_seed == 12_345


def test_level_outside_the_part_is_rejected() -> None:
    env = ge.make("gengap/minigrid-doorkey-5x5-v0")
    with pytest.raises(ValueError, match=r"level 10000 is not in the train levels of split "):
        env.reset(options={"level": 10_000})
    with pytest.raises(TypeError, match=r"options\['level'\] must be an integer level seed"):
        env.reset(options={"level": "3"})
    with pytest.raises(ValueError, match=r"unknown reset option\(s\) \['lvl'\]"):
        env.reset(options={"lvl": 3})


def test_constructor_validates_arguments() -> None:
    with pytest.raises(ValueError, match=r"unknown obs_mode 'pixels'"):
        MiniGridEnv("MiniGrid-DoorKey-5x5-v0", obs_mode="pixels")
    with pytest.raises(ValueError, match=r"unknown minigrid task 'MiniGrid-DoorKey-5x6-v0'"):
        MiniGridEnv("MiniGrid-DoorKey-5x6-v0")
    with pytest.raises(ValueError, match=r"max_repeats must be a positive integer or None, got 0"):
        MiniGridEnv("MiniGrid-DoorKey-5x5-v0", max_repeats=0)
    with pytest.raises(ValueError, match=r"has no validation part"):
        MiniGridEnv("MiniGrid-DoorKey-5x5-v0", split=Split.levels_split(5), part="validation")


def test_babyai_reset_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    env = ge.make("gengap/babyai-gotolocal-v0")
    for seed in range(30):  # several of these levels need rejected samples
        env.reset(seed=seed)
    assert capsys.readouterr().out == ""


def test_fingerprint_identifies_the_initial_level() -> None:
    env = ge.make("gengap/minigrid-doorkey-8x8-v0")
    env.reset(options={"level": 5})
    at_reset = env.unwrapped.level_fingerprint()
    for action in (LEFT, FORWARD, 3, FORWARD):
        env.step(action)
    other = ge.make("gengap/minigrid-doorkey-8x8-v0")
    other.reset(options={"level": 5})
    for action in (RIGHT, FORWARD):
        other.step(action)
    assert other.unwrapped.level_fingerprint() == at_reset  # regenerated after steps
    other.reset(options={"level": 6})
    assert other.unwrapped.level_fingerprint() != at_reset


# -- episodes -----------------------------------------------------------------------------
def _shortest_path(env: MiniGridEnv) -> list[int]:
    """Breadth-first search over (position, direction) to the goal of an obstacle-free room."""
    inner = env.unwrapped_task
    start = (tuple(int(v) for v in inner.agent_pos), int(inner.agent_dir))
    steps = [(1, 0), (0, 1), (-1, 0), (0, -1)]  # minigrid's direction vectors
    parents: dict[tuple, tuple | None] = {start: None}
    queue = collections.deque([start])
    while queue:
        state = queue.popleft()
        (x, y), direction = state
        dx, dy = steps[direction]
        ahead = inner.grid.get(x + dx, y + dy)
        if ahead is not None and ahead.type == "goal":
            path = [FORWARD]
            while parents[state] is not None:
                state, action = parents[state]
                path.append(action)
            return path[::-1]
        moves = [(LEFT, ((x, y), (direction - 1) % 4)), (RIGHT, ((x, y), (direction + 1) % 4))]
        if ahead is None:
            moves.append((FORWARD, ((x + dx, y + dy), direction)))
        for action, nxt in moves:
            if nxt not in parents:
                parents[nxt] = (state, action)
                queue.append(nxt)
    raise AssertionError("no path to the goal")


def test_success_is_reported_on_the_last_step() -> None:
    env = MiniGridEnv("MiniGrid-Empty-Random-6x6-v0", split=DEFAULT_SPLIT, part="test")
    for level in (10_000, 10_001, 10_002):
        env.reset(options={"level": level})
        path = _shortest_path(env)
        for action in path[:-1]:
            _, reward, terminated, truncated, info = env.step(action)
            assert not (terminated or truncated) and "success" not in info and reward == 0
        _, reward, terminated, truncated, info = env.step(path[-1])
        assert terminated and not truncated and reward > 0
        assert info == {"level_seed": level, "success": True}
    short = MiniGridEnv("MiniGrid-Empty-Random-6x6-v0", max_steps=3)
    short.reset(seed=0)
    outcomes = [short.step(LEFT) for _ in range(3)]
    assert [o[3] for o in outcomes] == [False, False, True]
    assert outcomes[-1][4]["success"] is False


def test_max_repeats_truncates_a_loop() -> None:
    env = MiniGridEnv("MiniGrid-DoorKey-8x8-v0", max_repeats=2)
    env.reset(seed=0)
    # Four left turns bring back the start state: its 2nd, 3rd visit after 4 and 8 turns.
    truncated_at = [env.step(LEFT)[3] for _ in range(8)]
    assert truncated_at == [False] * 7 + [True]
    env.reset(seed=0)
    for _ in range(7):
        env.step(LEFT)
    _, _, terminated, truncated, info = env.step(LEFT)
    assert truncated and not terminated
    assert info["repeated_state"] is True and info["success"] is False
    unlimited = MiniGridEnv("MiniGrid-DoorKey-8x8-v0")
    unlimited.reset(seed=0)
    assert not any(unlimited.step(LEFT)[3] for _ in range(40))


def test_vector_env_autoresets_same_step_with_success_info() -> None:
    envs = ge.make("gengap/minigrid-empty-random-6x6-v0", num_envs=2, max_steps=2)
    envs.reset(seed=0)
    _, _, _, truncated, info = envs.step(np.array([LEFT, LEFT]))
    assert not truncated.any()
    obs, _, _, truncated, info = envs.step(np.array([LEFT, LEFT]))
    assert truncated.all()
    # SAME_STEP autoreset: the ended episodes' infos are under final_info, the new ones' on top.
    final = info["final_info"]
    assert final["success"].tolist() == [False, False] and final["_success"].all()
    assert (info["level_seed"] < 200).all() and info["_mission"].all()
    assert envs.observation_space.contains(obs)
    envs.close()
