"""The dataset store: exact round trips (store, Minari, d3rlpy), integrity, split hygiene."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gengap.agents.base import TransitionSource
from gengap.core.errors import InputError, InputFileExistsError, InputFileNotFoundError
from gengap.envs import LevelSet, Split, make
from gengap.envs.babyai import mixed_split
from gengap.offline.dataset import Dataset, DatasetWriter
from gengap.offline.interop import from_minari, to_d3rlpy, to_minari

CHASER = "gengap/procgen-chaser-v0"
GOTO = "gengap/babyai-gotolocal-compositional-v0"


def _procgen_episodes(num_episodes: int, seed: int = 0) -> list[dict]:
    """Complete episodes of a real Procgen vector env under random actions, as plain arrays."""
    env = make(CHASER, num_envs=4, split=Split.levels_split(5))
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    running = [
        {"obs": [obs[i].copy()], "actions": [], "rewards": [], "terms": [], "truncs": []}
        for i in range(4)
    ]
    finished = []
    while len(finished) < num_episodes:
        actions = rng.integers(0, 15, 4)
        obs, rewards, terms, truncs, info = env.step(actions)
        for i in range(4):
            episode = running[i]
            episode["actions"].append(int(actions[i]))
            episode["rewards"].append(float(rewards[i]))
            episode["terms"].append(bool(terms[i]))
            episode["truncs"].append(bool(truncs[i]))
            if terms[i] or truncs[i]:
                episode["obs"].append(episode["obs"][-1].copy())
                episode["level"] = int(info["episode_level_seed"][i])
                finished.append(
                    {k: np.asarray(v) if k != "level" else v for k, v in episode.items()}
                )
                running[i] = {
                    "obs": [obs[i].copy()],
                    "actions": [],
                    "rewards": [],
                    "terms": [],
                    "truncs": [],
                }
            else:
                episode["obs"].append(obs[i].copy())
    env.close()
    return finished[:num_episodes]


@pytest.fixture(scope="module")
def procgen_episodes() -> list[dict]:
    return _procgen_episodes(5)


def _write(path: Path, episodes: list[dict], **kwargs) -> Dataset:
    env = make(CHASER)
    with DatasetWriter(
        path,
        env.observation_space,
        env.action_space,
        {"env_id": CHASER, "split": Split.levels_split(5).to_dict()},
        **kwargs,
    ) as writer:
        for e in episodes:
            writer.add_episode(
                e["obs"], e["actions"], e["rewards"], e["terms"], e["truncs"], level_seed=e["level"]
            )
    env.close()
    return Dataset.open(path, verify=True)


@pytest.mark.parametrize("codec", ["zstd", "none"])
def test_every_pixel_and_transition_round_trips(tmp_path, procgen_episodes, codec):
    dataset = _write(tmp_path / "ds", procgen_episodes, codec=codec, chunk_rows=16)
    assert isinstance(dataset, TransitionSource)
    lengths = [len(e["actions"]) for e in procgen_episodes]
    assert dataset.num_transitions == sum(lengths) and dataset.num_episodes == 5
    assert dataset.episode_bounds().tolist() == np.concatenate([[0], np.cumsum(lengths)]).tolist()
    assert dataset.card["layout"]["obs"][""]["codec"] == codec
    for stored, original in zip(dataset.episodes(), procgen_episodes, strict=True):
        assert np.array_equal(stored["observations"], original["obs"])
        assert np.array_equal(stored["actions"], original["actions"])
        assert np.array_equal(stored["rewards"], original["rewards"].astype(np.float32))
        assert np.array_equal(stored["terminations"], original["terms"])
        assert np.array_equal(stored["truncations"], original["truncs"])
        assert stored["level_seed"] == original["level"]
    # transitions(): random indices give obs / next_obs / action / level of their episode
    indices = np.random.default_rng(0).permutation(dataset.num_transitions)[:50]
    batch = dataset.transitions(indices)
    bounds = dataset.episode_bounds()
    for row, index in enumerate(indices):
        episode = int(np.searchsorted(bounds, index, side="right") - 1)
        step = index - bounds[episode]
        original = procgen_episodes[episode]
        assert np.array_equal(batch["obs"][row], original["obs"][step])
        assert np.array_equal(batch["next_obs"][row], original["obs"][step + 1])
        assert batch["action"][row] == original["actions"][step]
        assert batch["terminated"][row] == original["terms"][step]
        assert batch["level_seed"][row] == original["level"]
    assert batch["reward"].dtype == np.float32 and batch["level_seed"].dtype == np.int64
    with pytest.raises(InputError, match="transition indices must be in"):
        dataset.transitions(np.array([dataset.num_transitions]))


def test_sample_indices_is_uniform_chunk_local_and_a_function_of_seed_and_update(
        tmp_path, procgen_episodes):
    """Training minibatches come from a small pool of resident chunks, yet every transition
    is equally likely, and batch ``u`` is the same whatever was drawn before it (a resumed
    run draws what an uninterrupted one would)."""
    from gengap.offline.bc import BCConfig

    chunk_rows = 8
    _write(tmp_path / "ds", procgen_episodes, chunk_rows=chunk_rows)
    chunk_bytes = chunk_rows * 64 * 64 * 3
    dataset = Dataset.open(tmp_path / "ds", cache_bytes=16 * chunk_bytes)  # a pool of 8 chunks
    total, bounds = dataset.num_transitions, dataset.episode_bounds()
    assert total > 40 * chunk_rows  # many more chunks than the pool holds
    batch_size, updates = 32, 400
    drawn = [dataset.sample_indices(batch_size, seed=3, update=u) for u in range(updates)]
    fresh = Dataset.open(tmp_path / "ds", cache_bytes=16 * chunk_bytes)
    for update in (0, 7, updates - 1):  # alone, in a fresh process-like state
        assert fresh.sample_indices(batch_size, seed=3, update=update).tolist() == \
            drawn[update].tolist()
    assert dataset.sample_indices(batch_size, seed=4, update=7).tolist() != drawn[7].tolist()
    for indices in drawn:
        assert indices.dtype == np.int64 and indices.shape == (batch_size,)
        assert indices.min() >= 0 and indices.max() < total
        obs_rows = indices + np.searchsorted(bounds, indices, side="right") - 1
        assert len(np.unique(obs_rows // chunk_rows)) <= 8  # reads stay in the pool
    counts = np.bincount(np.concatenate(drawn), minlength=total)
    assert (counts > 0).mean() > 0.95
    tenths = np.array([part.sum() for part in np.array_split(counts, 10)])
    expected = batch_size * updates / 10
    assert np.all(np.abs(tenths - expected) < 0.25 * expected), tenths
    with pytest.raises(InputError, match="update must be a non-negative integer"):
        dataset.sample_indices(4, seed=0, update=-1)
    # learners draw their batches through it, with their own seed
    agent = BCConfig(seed=3, batch_size=batch_size, device="cpu").create(
        dataset.observation_space, dataset.action_space)
    assert agent.sample_indices(7, dataset).tolist() == drawn[7].tolist()


def test_minari_and_d3rlpy_round_trips_are_lossless(tmp_path, procgen_episodes, monkeypatch):
    import minari

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    dataset = _write(tmp_path / "ds", procgen_episodes)
    to_minari(dataset, "gengap/chaser/test-v0")
    loaded = minari.load_dataset("gengap/chaser/test-v0")
    assert loaded.total_episodes == 5 and loaded.total_steps == dataset.num_transitions
    for minari_episode, original in zip(loaded.iterate_episodes(), procgen_episodes, strict=True):
        # channel-first in Minari: the layout its arrow backend keeps lossless
        assert np.array_equal(minari_episode.observations.transpose(0, 2, 3, 1), original["obs"])
        assert np.array_equal(minari_episode.actions, original["actions"])
        assert np.array_equal(minari_episode.rewards, original["rewards"].astype(np.float32))
        assert np.array_equal(minari_episode.terminations, original["terms"])
        assert np.array_equal(minari_episode.truncations, original["truncs"])
    back = from_minari("gengap/chaser/test-v0", tmp_path / "back")
    assert back.card["env_id"] == CHASER and back.num_transitions == dataset.num_transitions
    for a, b in zip(dataset.episodes(), back.episodes(), strict=True):
        for key in a:
            assert np.array_equal(np.asarray(a[key]), np.asarray(b[key])), key
    with pytest.raises(InputFileExistsError, match="already exists"):
        to_minari(dataset, "gengap/chaser/test-v0")
    with pytest.raises(InputFileNotFoundError, match="unknown Minari dataset"):
        from_minari("gengap/chaser/tset-v0", tmp_path / "other")

    mdp = to_d3rlpy(dataset)
    assert len(mdp.episodes) == 5
    for d3_episode, original in zip(mdp.episodes, procgen_episodes, strict=True):
        length = len(original["actions"])
        assert d3_episode.observations.shape == (length, 3, 64, 64)
        assert np.array_equal(d3_episode.observations.transpose(0, 2, 3, 1), original["obs"][:-1])
        assert np.array_equal(d3_episode.actions.ravel(), original["actions"])
        assert np.array_equal(d3_episode.rewards.ravel(), original["rewards"].astype(np.float32))
        assert bool(d3_episode.terminated) == bool(original["terms"][-1])


def _bot_dataset(path: Path, combinations: list[list[list[str]]]) -> Dataset:
    from gengap.offline.collect import bot_demonstrations

    demos = bot_demonstrations(GOTO, num_episodes=len(combinations), seed=3)
    env = make(GOTO)
    with DatasetWriter(
        path,
        env.observation_space,
        env.action_space,
        {"env_id": GOTO, "split": mixed_split("BabyAI-GoToLocal-v0").to_dict()},
    ) as writer:
        for demo, combos in zip(demos, combinations, strict=True):
            observations = {
                k: np.stack([o[k] for o in demo.observations]) for k in demo.observations[0]
            }
            length = len(demo.actions)
            writer.add_episode(
                observations,
                demo.actions,
                demo.rewards,
                np.arange(length) == length - 1,
                np.zeros(length, bool),
                level_seed=demo.level_seed,
                combinations=combos,
                success=demo.success,
            )
    env.close()
    return Dataset.open(path)


def test_dict_observations_round_trip_through_minari(tmp_path, monkeypatch):
    import minari

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    dataset = _bot_dataset(tmp_path / "ds", [[["blue", "ball"]], [["grey", "key"]]])
    assert set(dataset.observation_space.keys()) == {
        "direction",
        "entities",
        "mask",
        "mission",
        "position",
    }
    assert dataset.card["episodes_per_combination"] == {"blue-ball": 1, "grey-key": 1}
    batch = dataset.transitions(np.arange(dataset.num_transitions))
    assert batch["obs"]["entities"].shape == (dataset.num_transitions, 37, 8)
    first = int(dataset.episode_bounds()[1])  # within an episode, next_obs[t] == obs[t + 1]
    for key in ("entities", "position", "direction"):
        assert np.array_equal(batch["obs"][key][1:first], batch["next_obs"][key][: first - 1])
    to_minari(dataset, "gengap/goto/bot-v0")
    loaded = minari.load_dataset("gengap/goto/bot-v0")
    for minari_episode, ours in zip(loaded.iterate_episodes(), dataset.episodes(), strict=True):
        for key, values in ours["observations"].items():
            assert np.array_equal(minari_episode.observations[key], values), key
        assert np.array_equal(minari_episode.actions, ours["actions"])
    back = from_minari("gengap/goto/bot-v0", tmp_path / "back")
    assert back.episode_combinations() == dataset.episode_combinations()
    assert back.card["returns"] == dataset.card["returns"]


def test_split_hygiene_names_the_offending_levels_and_combinations(tmp_path, procgen_episodes):
    dataset = _write(tmp_path / "ds", procgen_episodes)
    levels = sorted({e["level"] for e in procgen_episodes})
    dataset.check_split(Split.levels_split(5))  # collected on exactly these training levels
    held_out = Split(train=LevelSet.range(100, 10), test=LevelSet.of(levels[:2]), name="other")
    with pytest.raises(InputError, match=rf"on test levels {levels[0]}, {levels[1]}") as error:
        dataset.check_split(held_out)
    assert "split 'other'" in str(error.value)

    bot = _bot_dataset(tmp_path / "bot", [[["blue", "ball"]], [["red", "key"], ["grey", "box"]]])
    split = mixed_split("BabyAI-GoToLocal-v0")
    with pytest.raises(InputError, match=r"held-out combinations red-key \(1\)"):
        bot.check_split(split)
    with pytest.raises(InputError, match="collected on gengap/babyai-gotolocal-compositional"):
        bot.check_env(CHASER)
    with pytest.raises(InputError, match="holds observations"):
        dataset.check_env(CHASER, make(GOTO).observation_space)


def test_truncated_and_corrupted_files_are_refused_by_name(tmp_path, procgen_episodes):
    path = tmp_path / "ds"
    _write(path, procgen_episodes)
    frames = path / "obs/obs.bin"
    data = bytearray(frames.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the checksum can tell
    frames.write_bytes(bytes(data))
    Dataset.open(path)  # sizes are fine
    with pytest.raises(InputError, match=r"dataset file obs/obs\.bin .* is corrupted"):
        Dataset.open(path, verify=True)
    with pytest.raises(InputError, match=r"obs/obs\.bin .* corrupted"):
        Dataset.open(path).verify()
    frames.write_bytes(bytes(data[:-100]))
    with pytest.raises(InputError, match=r"dataset file obs/obs\.bin in .* is truncated"):
        Dataset.open(path)
    frames.write_bytes(bytes(data))
    (path / "rewards.bin").unlink()
    with pytest.raises(InputFileNotFoundError, match="rewards.bin is missing"):
        Dataset.open(path)
    with pytest.raises(InputFileNotFoundError, match="no gengap dataset at"):
        Dataset.open(tmp_path / "nothing")
    with pytest.raises(InputFileExistsError, match="already exists"):
        DatasetWriter(path, make(CHASER).observation_space, make(CHASER).action_space)


def test_writer_refuses_inconsistent_episodes(tmp_path):
    env = make(CHASER)
    writer = DatasetWriter(tmp_path / "ds", env.observation_space, env.action_space)
    frames = np.zeros((3, 64, 64, 3), np.uint8)
    with pytest.raises(InputError, match="has 3 rows, expected 4"):
        writer.add_episode(
            frames,
            np.zeros(3, np.int64),
            np.zeros(3),
            np.zeros(3, bool),
            np.zeros(3, bool),
            level_seed=0,
        )
    with pytest.raises(InputError, match="needs at least one episode"):
        writer.finish()
    assert not (tmp_path / "ds").exists() and not list(tmp_path.iterdir())


def test_a_collection_killed_with_sigkill_leaves_no_dataset(tmp_path):
    """``gengap collect`` in a real process, killed with SIGKILL while writing frames."""
    target = tmp_path / "ds"
    command = [
        sys.executable,
        "-m",
        "gengap.scripts.cli",
        "collect",
        "--env",
        CHASER,
        "--transitions",
        "100000000",
        "--num-envs",
        "4",
        "--out",
        str(target),
        "--quiet",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy()
    )
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:  # until compressed frames are on disk
            frames = list(tmp_path.glob(".ds.tmp-*/obs/obs.bin"))
            if frames and frames[0].stat().st_size > 0:
                break
            assert process.poll() is None, "the collection ended before it was killed"
            time.sleep(0.2)
        else:
            raise AssertionError("the collection wrote no frames within 180 s")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert not target.exists()
    with pytest.raises(InputFileNotFoundError, match="no gengap dataset"):
        Dataset.open(target)
    # the next writer to the same path removes the dead collection's folder and succeeds
    _write(target, _procgen_episodes(1))
    assert not list(tmp_path.glob(".ds.tmp-*"))
    assert json.loads((target / "card.json").read_text())["num_episodes"] == 1
