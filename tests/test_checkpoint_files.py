"""Checkpoint files: nothing pickled, byte-identical for the same seed, damage named.

For every registered online algorithm (PPO's shared feature extractor gives the weights
file shared tensors; DQN and SAC add a replay buffer): two same-seed tiny runs write
checkpoints whose files are byte-for-byte equal (so a checksum verifies a reproduction),
every file is JSON or safetensors, and a truncated or corrupt file is refused with one
InputError naming it.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

import gengap.envs as genv
from gengap.agents import OnlineAgent, agent_config_class, load_agent, registered_algos
from gengap.core.errors import InputError

ENV_ID = "gengap/minigrid-doorkey-5x5-v0"
TINY = {"ppo": {"n_steps": 32, "batch_size": 32, "n_epochs": 2},
        "dqn": {"learning_starts": 32, "batch_size": 16, "buffer_size": 256},
        "sac": {"learning_starts": 32, "batch_size": 16, "buffer_size": 256,
                "net_arch": [32, 32]}}
BUDGET = 96


def _online_algos() -> list[str]:
    return [a for a in registered_algos()
            if issubclass(agent_config_class(a)().agent_class(), OnlineAgent)]


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _env(algo: str) -> gymnasium.vector.VectorEnv:
    if agent_config_class(algo).fits_action_space(spaces.Discrete(7)):
        return genv.make(ENV_ID, num_envs=2)
    return gymnasium.make_vec("Pendulum-v1", num_envs=2, vectorization_mode="sync",
                              vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})


def _checkpoint(algo: str, path: Path) -> OnlineAgent:
    assert algo in TINY, f"add a tiny config for new online algo {algo!r}"
    config = agent_config_class(algo).from_dict({**TINY[algo], "seed": 11, "device": "cpu"})
    env = _env(algo)
    agent = config.create(env.single_observation_space, env.single_action_space)
    assert isinstance(agent, OnlineAgent)
    agent.learn(env, BUDGET)
    agent.save_checkpoint(path)
    env.close()
    return agent


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.iterdir())}


@pytest.mark.parametrize("algo", _online_algos())
def test_same_seed_checkpoints_are_byte_identical_and_pickle_free(
    algo: str, tmp_path: Path
) -> None:
    _checkpoint(algo, tmp_path / "first")
    _checkpoint(algo, tmp_path / "second")
    first = _digests(tmp_path / "first")
    assert first == _digests(tmp_path / "second")
    assert all(name.endswith((".json", ".safetensors")) for name in first), sorted(first)
    assert {"model.safetensors", "optimizers.safetensors", "optimizers.json"} <= set(first)
    # safetensors stores metadata as a hash map (its order varies between processes and
    # maps): gengap writes at most one entry.
    for name in first:
        if name.endswith(".safetensors"):
            raw = (tmp_path / "first" / name).read_bytes()
            (size,) = struct.unpack("<Q", raw[:8])
            header = json.loads(raw[8 : 8 + size])
            assert len(header.get("__metadata__", {})) <= 1, (name, header["__metadata__"])


def test_shared_weights_are_stored_once_and_load_into_every_name(tmp_path: Path) -> None:
    agent = _checkpoint("ppo", tmp_path / "ckpt")
    policy = agent.model.policy  # type: ignore[attr-defined]
    assert policy.features_extractor is policy.pi_features_extractor  # shared: PPO default
    loaded = load_agent(tmp_path / "ckpt", device="cpu")
    for name, value in policy.state_dict().items():
        torch.testing.assert_close(loaded.model.policy.state_dict()[name], value,  # type: ignore[attr-defined]
                                   rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("algo", ["dqn", "ppo"])
def test_damaged_checkpoint_file_is_named(algo: str, tmp_path: Path) -> None:
    agent = _checkpoint(algo, tmp_path / "good")
    names = sorted(p.name for p in (tmp_path / "good").iterdir())
    for name in names:
        for damage in ("truncate", "garbage"):
            broken = tmp_path / f"{name}-{damage}"
            agent.save_checkpoint(broken)
            target = broken / name
            raw = target.read_bytes()
            target.write_bytes(raw[: len(raw) // 2] if damage == "truncate"
                               else b"\x07not a checkpoint file" * 3)
            with pytest.raises(InputError) as raised:
                type(agent).load_checkpoint(broken, device="cpu")
            message = str(raised.value)
            assert str(target) in message or (name == "config.json" and str(broken) in message)
            assert "\n" not in message


def test_truncated_weights_fail_load_agent_with_the_file_name(tmp_path: Path) -> None:
    agent = _checkpoint("ppo", tmp_path / "ckpt")
    agent.save(tmp_path / "agent")
    weights = tmp_path / "agent" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(InputError, match=rf"^{weights} is truncated or corrupt"):
        load_agent(tmp_path / "agent")
    # Weights of another network are refused by name too, not with a torch traceback.
    other = _checkpoint("dqn", tmp_path / "dqn")
    other.save(tmp_path / "dqn-agent")
    (tmp_path / "agent" / "model.safetensors").write_bytes(
        (tmp_path / "dqn-agent" / "model.safetensors").read_bytes())
    with pytest.raises(InputError, match=r"do not fit this agent's network"):
        load_agent(tmp_path / "agent")
    assert np.isfinite(agent.act(np.zeros((1, 3, 7, 7), np.float32))).all()


def test_checkpoint_of_an_older_format_is_refused_for_resume_but_loads(tmp_path: Path) -> None:
    agent = _checkpoint("ppo", tmp_path / "ckpt")
    meta_path = tmp_path / "ckpt" / "agent.json"
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "format_version": 1}))
    with pytest.raises(InputError, match=r"is a format 1 checkpoint; this gengap resumes "
                                         r"format 2 only"):
        type(agent).load_checkpoint(tmp_path / "ckpt", device="cpu")
    obs = np.zeros((2, 3, 7, 7), np.float32)
    np.testing.assert_array_equal(load_agent(tmp_path / "ckpt", device="cpu").act(obs),
                                  agent.act(obs))
