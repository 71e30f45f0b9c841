"""Entity observations match minigrid's full grid encoding exactly."""

from __future__ import annotations

import numpy as np
import pytest
from minigrid.core.constants import OBJECT_TO_IDX

import gengap.envs.babyai  # noqa: F401  (registers the compositional ids)
import gengap.envs.entities  # noqa: F401  (registers the entity ids)
from gengap.envs import make
from gengap.envs.entities import (
    ENTITY_DIM,
    VOCABULARY,
    WORD_TO_ID,
    EntityObservation,
    decode_entities,
    entity_object,
    tokenize_mission,
)

_SKIP = {OBJECT_TO_IDX[name] for name in ("unseen", "empty", "wall")}


def _grid_cells(task) -> dict[tuple[int, int], tuple[int, int, int]]:
    grid = task.grid.encode()
    return {
        (x, y): tuple(int(v) for v in grid[x, y])
        for x in range(grid.shape[0])
        for y in range(grid.shape[1])
        if int(grid[x, y, 0]) not in _SKIP
    }


def _check_consistent(obs, task) -> None:
    rows = decode_entities(obs)
    on_grid = [r for r in rows if not r["carried"]]
    carried = [r for r in rows if r["carried"]]
    cells = _grid_cells(task)
    # every non-empty non-wall cell is exactly one entity with the same encoding, and vice versa
    assert len(on_grid) == len(cells)
    assert {(r["x"], r["y"]): (r["type"], r["color"], r["state"]) for r in on_grid} == cells
    ax, ay = (int(v) for v in task.agent_pos)
    forward = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]])[task.agent_dir]
    right = np.array([-forward[1], forward[0]])
    for r in rows:
        offset = np.array([r["x"] - ax, r["y"] - ay])
        assert (r["forward"], r["right"]) == (offset @ forward, offset @ right)
    if task.carrying is None:
        assert not carried
    else:
        assert len(carried) == 1 and (carried[0]["x"], carried[0]["y"]) == (ax, ay)
        assert entity_object(carried[0]).encode() == task.carrying.encode()
    mask = np.asarray(obs["mask"])
    assert mask.sum() == len(rows) and np.all(mask[: len(rows)] == 1)
    assert np.all(np.asarray(obs["entities"])[len(rows) :] == 0)
    assert obs["direction"] == task.agent_dir
    assert tuple(obs["position"]) == (ax, ay)
    assert np.array_equal(obs["mission"], tokenize_mission(task.mission, len(obs["mission"])))


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("gengap/babyai-gotolocal-entities-v0", {}),
        ("gengap/babyai-putnextlocal-entities-v0", {}),
        ("gengap/minigrid-doorkey-5x5-entities-v0", {}),
        ("gengap/babyai-pickuploc-compositional-v0", {"obs_mode": "entities"}),
    ],
)
def test_entities_match_the_grid_over_random_rollouts(env_id, kwargs):
    env = make(env_id, **kwargs)
    env.action_space.seed(0)
    task = env.unwrapped.unwrapped_task
    for episode in range(6):
        obs, _ = env.reset(seed=episode)
        assert env.observation_space.contains(obs)
        _check_consistent(obs, task)
        for _ in range(60):
            # favour pickup/drop/toggle so carried objects and opened doors occur
            action = int(env.action_space.sample()) if episode % 2 else episode % 7
            obs, _, terminated, truncated, _ = env.step(action)
            _check_consistent(obs, task)
            if terminated or truncated:
                break
    env.close()


def test_doors_keys_and_carrying_show_their_state():
    env = make("gengap/minigrid-doorkey-5x5-entities-v0")
    obs, _ = env.reset(seed=0)
    types = {row["type"] for row in decode_entities(obs)}
    assert {OBJECT_TO_IDX["door"], OBJECT_TO_IDX["key"], OBJECT_TO_IDX["goal"]} <= types
    door = next(r for r in decode_entities(obs) if r["type"] == OBJECT_TO_IDX["door"])
    assert door["state"] == 2  # locked
    # Carry the key by hand: the entity moves from its cell to the agent.
    task = env.unwrapped.unwrapped_task
    key_pos = next(pos for pos, cell in _grid_cells(task).items() if cell[0] == 5)
    task.carrying = task.grid.get(*key_pos)
    task.grid.set(*key_pos, None)
    obs, *_ = env.step(0)
    _check_consistent(obs, task)
    assert sum(r["carried"] for r in decode_entities(obs)) == 1


def test_wrapper_on_the_plain_env_matches_the_entity_env():
    plain = EntityObservation(make("gengap/babyai-gotolocal-v0"))
    native = make("gengap/babyai-gotolocal-entities-v0")
    for seed in range(3):
        a, _ = plain.reset(seed=seed)
        b, _ = native.reset(seed=seed)
        for key in ("entities", "mask", "mission", "position"):
            assert np.array_equal(a[key], b[key])
        assert a["direction"] == b["direction"]
    with pytest.raises(TypeError, match="needs a gengap MiniGridEnv underneath"):
        EntityObservation(make("gengap/shapes-objectgoal-v0"))


def test_mission_tokens_cover_babyai_grammar():
    ids = tokenize_mission("put the red ball next to a key, then go to the door on your left")
    words = [VOCABULARY[i] for i in ids if i]
    assert words[:3] == ["put", "the", "red"] and "," in words and "<unk>" not in words
    assert ids[len(words) :].sum() == 0
    assert tokenize_mission("zebra")[0] == WORD_TO_ID["<unk>"]
    with pytest.raises(ValueError, match="has 5 tokens, more than max_tokens=4"):
        tokenize_mission("go to the red ball", max_tokens=4)
    env = make("gengap/babyai-putnextlocal-entities-v0")
    for seed in range(30):
        obs, info = env.reset(seed=seed)
        assert WORD_TO_ID["<unk>"] not in obs["mission"], info["mission"]


def test_sizes_are_checked():
    with pytest.raises(ValueError, match="max_entities must be a positive integer, got 0"):
        make("gengap/babyai-gotolocal-entities-v0", max_entities=0)
    with pytest.raises(ValueError, match="unknown obs_mode 'entity'"):
        make("gengap/babyai-gotolocal-entities-v0", obs_mode="entity")
    env = make("gengap/babyai-gotolocal-entities-v0", max_entities=3)
    assert env.observation_space["entities"].shape == (3, ENTITY_DIM)
    with pytest.raises(RuntimeError, match="more than max_entities=3"):
        env.reset(seed=0)
    image = make("gengap/babyai-gotolocal-entities-v0", obs_mode="image")
    assert image.observation_space.shape == (3, 7, 7)
