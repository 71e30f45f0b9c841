"""Offline agent conformance, generated from the algorithm registry (d3rlpy's algo_tester).

Every registered offline algorithm, on every action-space kind it supports, on a tiny
dataset rolled out from real envs: fit a few updates -> act gives valid batched actions
-> save/load gives identical actions -> the same seed twice gives identical agents ->
a checkpoint resumes to exactly the weights of an uninterrupted run. An algorithm that
does not fit the action space, zero updates, and a dataset for other spaces are refused
with one-line InputErrors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium import spaces

import gengap.envs as genv
import gengap.offline  # noqa: F401  (registers the offline algorithms)
from gengap.agents import (
    OfflineAgent,
    agent_config_class,
    agent_config_for_env,
    agent_config_from_dict,
    load_agent,
    registered_algos,
)
from gengap.agents.history import EpisodeHistory
from gengap.agents.networks import ImpalaCNN, MiniGridCNN, SlotAttentionExtractor
from gengap.core.errors import InputError
from gengap.offline.bc import BCAgent, BCConfig
from gengap.offline.d3rlpy_impl import D3rlpyAgent, GengapEncoder
from gengap.offline.learner import OfflineLearner
from gengap.offline.memory import InMemoryTransitions as ArrayTransitions

MINIGRID_ID = "gengap/minigrid-doorkey-5x5-v0"
CONTINUOUS_ID = "Pendulum-v1"
KINDS = {"discrete": spaces.Discrete, "continuous": spaces.Box}

# Tiny settings per algorithm; a new offline algorithm must add its own line here.
TINY_OFFLINE: dict[str, dict[str, Any]] = {
    "bc": {"batch_size": 16, "eval_interval": 2, "validation_samples": 32},
    "cql": {"batch_size": 16, "target_update_interval": 2},
    "bcq": {"batch_size": 16, "target_update_interval": 2},
    "iql": {"batch_size": 16},
    "td3bc": {"batch_size": 16},
    "dt": {"batch_size": 4, "context_size": 3, "num_layers": 1, "num_heads": 1},
}
UPDATES = 4


def _stack(values: list[Any]) -> Any:
    if isinstance(values[0], dict):
        return {k: np.stack([v[k] for v in values]) for k in values[0]}
    return np.stack(values)


def rollout(env_id: str, num_transitions: int, *, seed: int = 0, part: str = "train",
            **env_kwargs: Any) -> ArrayTransitions:
    """Random-policy episodes of a real env on ``part``'s levels (single envs, so every
    episode keeps its true last observation); the last episode is cut and truncated."""
    if env_id.startswith("gengap/"):
        env = genv.make(env_id, part=part, **env_kwargs)
    else:
        env = gymnasium.make(env_id, **env_kwargs)
    env.action_space.seed(seed)
    rows: dict[str, list[Any]] = {k: [] for k in (
        "obs", "next_obs", "action", "reward", "terminated", "truncated", "level_seed")}
    bounds = [0]
    while len(rows["action"]) < num_transitions:
        obs, info = env.reset(seed=seed * 10_000 + len(bounds))
        level = int(info.get("level_seed", len(bounds)))
        done = False
        while not done:
            action = env.action_space.sample()
            next_obs, reward, terminated, truncated, _ = env.step(action)
            full = len(rows["action"]) + 1 >= num_transitions
            for key, value in (("obs", obs), ("next_obs", next_obs), ("action", action),
                               ("reward", reward), ("terminated", terminated),
                               ("truncated", truncated or (full and not terminated)),
                               ("level_seed", level)):
                rows[key].append(value)
            obs = next_obs
            done = bool(terminated or truncated or full)
        bounds.append(len(rows["action"]))
    env.close()
    arrays: dict[str, Any] = {k: _stack(rows[k]) for k in ("obs", "next_obs")}
    arrays["action"] = np.asarray(rows["action"])
    arrays["reward"] = np.asarray(rows["reward"], dtype=np.float32)
    for key in ("terminated", "truncated"):
        arrays[key] = np.asarray(rows[key], dtype=bool)
    arrays["level_seed"] = np.asarray(rows["level_seed"], dtype=np.int64)
    return ArrayTransitions(env.observation_space, env.action_space, arrays,
                            np.asarray(bounds, dtype=np.int64))


# The LM policy reads entity observations only (mission words and entities become its
# token sequence); its conformance test runs on BabyAI entity data in test_lm_policy.py.
OWN_CONFORMANCE = {"lm"}


def offline_algos() -> list[str]:
    return [a for a in registered_algos()
            if issubclass(agent_config_class(a)().agent_class(), OfflineAgent)
            and a not in OWN_CONFORMANCE]


def supported(algo: str) -> list[str]:
    config = agent_config_class(algo)()
    return [kind for kind, space in KINDS.items() if space in config.action_space_types]


CASES = [(algo, kind) for algo in offline_algos() for kind in supported(algo)]
MISFITS = [(algo, kind) for algo in offline_algos() for kind in KINDS
           if kind not in supported(algo)]


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def datasets() -> dict[str, ArrayTransitions]:
    return {"discrete": rollout(MINIGRID_ID, 160, seed=0),
            "continuous": rollout(CONTINUOUS_ID, 160, seed=0)}


def tiny(algo: str, seed: int = 0, **overrides: Any) -> Any:
    assert algo in TINY_OFFLINE, f"add a tiny test config for new offline algo {algo!r}"
    return agent_config_class(algo).from_dict(
        {**TINY_OFFLINE[algo], "seed": seed, "device": "cpu", **overrides})


def build(algo: str, data: ArrayTransitions, seed: int = 0, **overrides: Any) -> OfflineLearner:
    agent = tiny(algo, seed, **overrides).create(data.observation_space, data.action_space)
    assert isinstance(agent, OfflineLearner)
    return agent


def weights(agent: OfflineLearner) -> dict[str, torch.Tensor]:
    return {f"{name}.{k}": v.detach().clone()
            for name, module in agent.checkpoint_networks().items()
            for k, v in module.state_dict().items()}


def assert_same_weights(a: OfflineLearner, b: OfflineLearner) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=0, atol=0, msg=key)


def probe(data: ArrayTransitions, count: int = 5) -> Any:
    return data.transitions(np.arange(count))["obs"]


@pytest.mark.parametrize(("algo", "kind"), CASES)
def test_fit_act_save_load(algo: str, kind: str, datasets: dict[str, ArrayTransitions],
                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = datasets[kind]
    agent = build(algo, data)
    data.reads = 0
    agent.fit(data, UPDATES)
    assert agent.num_updates == UPDATES
    # Batches are read by index, never the whole dataset (DT reads rewards once for
    # returns-to-go, then windows).
    per_update = agent.batch_size * getattr(agent.config, "context_size", 1)
    upfront = data.num_transitions if algo == "dt" else 0
    assert data.reads <= upfront + UPDATES * per_update
    obs = probe(data)
    space = data.action_space
    for deterministic in (True, False):
        actions = agent.act(obs, deterministic=deterministic)
        assert actions.shape == (5, *space.shape)
        if kind == "discrete":
            assert actions.dtype == np.int64
        else:
            assert actions.dtype == space.dtype
        assert all(space.contains(np.asarray(a, dtype=space.dtype)) for a in actions)
    actions = agent.act(obs)

    agent.save(tmp_path / "agent")
    assert {p.name for p in (tmp_path / "agent").iterdir()} == {
        "config.json", "agent.json", "model.safetensors"}
    loaded = load_agent(tmp_path / "agent", device="cpu")
    assert type(loaded) is type(agent) and loaded.config == agent.config
    assert isinstance(loaded, OfflineLearner) and loaded.num_updates == UPDATES
    np.testing.assert_array_equal(loaded.act(obs), actions)
    with pytest.raises(InputError, match="must be a batch of shape"):
        agent.act(data.transitions(np.arange(1))["obs"][0])
    assert not (tmp_path / "d3rlpy_logs").exists()


@pytest.mark.parametrize(("algo", "kind"), CASES)
def test_same_seed_same_agent(algo: str, kind: str,
                              datasets: dict[str, ArrayTransitions]) -> None:
    data = datasets[kind]
    first, second, other = build(algo, data, 3), build(algo, data, 3), build(algo, data, 4)
    for agent in (first, second, other):
        torch.manual_seed(agent.config.seed + 100)  # the global RNG must not matter
        agent.fit(data, UPDATES)
    assert_same_weights(first, second)
    np.testing.assert_array_equal(first.act(probe(data)), second.act(probe(data)))
    assert any(not torch.equal(a, b) for a, b in
               zip(weights(first).values(), weights(other).values(), strict=True))


@pytest.mark.parametrize(("algo", "kind"), CASES)
def test_checkpoint_resume_matches_uninterrupted_run(
        algo: str, kind: str, datasets: dict[str, ArrayTransitions], tmp_path: Path) -> None:
    data = datasets[kind]
    uninterrupted = build(algo, data)
    uninterrupted.fit(data, UPDATES)
    uninterrupted.save_checkpoint(tmp_path / "ckpt")
    uninterrupted.save_checkpoint(tmp_path / "ckpt")  # overwriting is atomic and allowed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    uninterrupted.fit(data, 2 * UPDATES)

    resumed = type(uninterrupted).load_checkpoint(tmp_path / "ckpt", device="cpu")
    assert resumed.num_updates == UPDATES
    seen: list[int] = []

    def hook(updates: int) -> bool:
        seen.append(updates)
        return True

    resumed.fit(data, 2 * UPDATES, hook=hook)
    assert seen == list(range(UPDATES + 1, 2 * UPDATES + 1))
    assert resumed.num_updates == uninterrupted.num_updates == 2 * UPDATES
    assert_same_weights(uninterrupted, resumed)
    for name, optimizer in uninterrupted.optimizers().items():
        state = optimizer.state_dict()
        state = state.get("optim", state)
        assert state["state"], f"optimizer {name} has no state to resume"
    np.testing.assert_array_equal(resumed.act(probe(data)), uninterrupted.act(probe(data)))


@pytest.mark.parametrize(("algo", "kind"), MISFITS)
def test_algorithm_that_does_not_fit_the_action_space(
        algo: str, kind: str, datasets: dict[str, ArrayTransitions]) -> None:
    data = datasets[kind]
    with pytest.raises(InputError, match=rf"^{algo.upper()} needs a .* action space; the env "
                                         r"has .*; algorithms that fit: (\w+, )*bc\b"):
        tiny(algo).create(data.observation_space, data.action_space)


def test_observation_space_the_encoder_does_not_fit_is_refused_when_built() -> None:
    # DoorKey-5x5's full grid is 5x5: too small for the MiniGrid CNN that "auto" picks.
    with pytest.raises(InputError, match=r"^gengap/minigrid-doorkey-5x5-v0 observations do not "
                                         r"fit features extractor 'minigrid_cnn' \(auto\): "
                                         r"MiniGridCNN needs H and W >= 6"):
        agent_config_for_env("bc", "gengap/minigrid-doorkey-5x5-v0",
                             env_kwargs={"obs_mode": "full"})
    fitting = agent_config_for_env("bc", "gengap/minigrid-doorkey-5x5-v0",
                                   env_kwargs={"obs_mode": "full"}, features_extractor="mlp")
    assert fitting.features_extractor == "mlp"


@pytest.mark.parametrize("algo", offline_algos())
def test_bad_fit_arguments(algo: str, datasets: dict[str, ArrayTransitions]) -> None:
    kind = supported(algo)[0]
    data = datasets[kind]
    agent = build(algo, data)
    with pytest.raises(InputError, match=r"num_updates must be a positive integer, got 0"):
        agent.fit(data, 0)
    with pytest.raises(InputError, match=r"num_updates must be a positive integer, got 2.5"):
        agent.fit(data, 2.5)  # type: ignore[arg-type]
    other = datasets["continuous" if kind == "discrete" else "discrete"]
    with pytest.raises(InputError, match=r"dataset has observation_space .* this agent was "
                                         r"built for"):
        agent.fit(other, 1)
    with pytest.raises(TypeError, match="hook must return a bool"):
        agent.fit(data, 2, hook=lambda n: None)  # type: ignore[arg-type,return-value]
    assert agent.num_updates == 1
    agent.fit(data, 3, hook=lambda n: n < 2)
    assert agent.num_updates == 2


def test_bc_validation_selects_and_stops(tmp_path: Path) -> None:
    data = rollout(MINIGRID_ID, 96, seed=0)
    validation = rollout(MINIGRID_ID, 64, seed=1, part="validation")
    assert set(validation.arrays["level_seed"]).isdisjoint(data.arrays["level_seed"])
    agent = build("bc", data, learning_rate=3e-3, eval_interval=5, patience=2,
                  validation_samples=64)
    assert isinstance(agent, BCAgent)
    losses: list[float] = []

    def record(updates: int) -> bool:
        if updates % 5 == 0:
            losses.append(agent.validation_loss(validation))
        return True

    agent.fit(data, 400, validation=validation, hook=record)
    # Random actions on other levels: the training loss falls, the validation loss rises
    # soon, so training stops after ``patience`` evaluations without improvement.
    assert agent.num_updates < 400 and agent.evaluations_since_best == 2
    assert agent.best_loss == pytest.approx(min([*losses, agent.best_loss]))
    assert agent.best_update < agent.num_updates
    # The selected checkpoint, not the last weights, acts and is saved.
    selected = agent.best_policy.state_dict()
    assert any(not torch.equal(v, agent.policy.state_dict()[k]) for k, v in selected.items())
    obs = probe(validation, 32)
    agent.save(tmp_path / "agent")
    loaded = load_agent(tmp_path / "agent", device="cpu")
    np.testing.assert_array_equal(loaded.act(obs), agent.act(obs))
    for key, value in loaded.policy.state_dict().items():  # type: ignore[attr-defined]
        torch.testing.assert_close(value, selected[key], rtol=0, atol=0)
    stopped_at = agent.num_updates
    agent.fit(data, 500, validation=validation)  # a stopped run stays stopped
    assert agent.num_updates == stopped_at


def test_offline_learners_use_the_online_encoders(datasets: dict[str, ArrayTransitions]
                                                   ) -> None:
    data = datasets["discrete"]
    bc = build("bc", data)
    assert isinstance(bc, BCAgent)
    assert isinstance(bc.policy.encoder.extractor, MiniGridCNN)
    cql = build("cql", data)
    assert isinstance(cql, D3rlpyAgent)
    encoders = [m for m in cql.networks()["q_funcs"].modules() if isinstance(m, GengapEncoder)]
    assert encoders and all(isinstance(e.encoder.extractor, MiniGridCNN) for e in encoders)
    bc_shapes = [p.shape for p in bc.policy.encoder.parameters()]
    assert [p.shape for p in encoders[0].encoder.parameters()] == bc_shapes


@pytest.mark.parametrize("algo", ["bc", "cql"])
def test_procgen_pixels_channel_last(algo: str) -> None:
    data = rollout("gengap/procgen-coinrun-v0", 24, seed=0)
    obs = probe(data, 3)
    assert obs.shape == (3, 64, 64, 3) and obs.dtype == np.uint8
    agent = build(algo, data, batch_size=4)
    modules = agent.networks()["policy" if algo == "bc" else "q_funcs"].modules()
    assert any(isinstance(m, ImpalaCNN) for m in modules)
    agent.fit(data, 2)
    actions = agent.act(obs)
    assert actions.shape == (3,) and all(data.action_space.contains(a) for a in actions)


@pytest.mark.parametrize("algo", ["bc", "cql", "dt"])
def test_slot_observations(algo: str) -> None:
    data = rollout("gengap/shapes-objectgoal-v0", 48, seed=0)
    assert isinstance(data.observation_space, spaces.Dict)
    agent = build(algo, data)
    modules = list(agent.networks().values())[0].modules()
    assert any(isinstance(m, SlotAttentionExtractor) for m in modules)
    agent.fit(data, 2)
    obs = probe(data, 3)
    assert agent.act(obs).shape == (3,)


def test_decision_transformer_windows(datasets: dict[str, ArrayTransitions]) -> None:
    data = datasets["discrete"]
    agent = build("dt", data, context_size=4)
    assert isinstance(agent, D3rlpyAgent)
    agent.prepare(data, None)
    bounds = data.episode_bounds()
    rewards = data.arrays["reward"]
    assert agent._returns_to_go is not None
    for begin, end in zip(bounds[:-1], bounds[1:], strict=True):
        assert agent._returns_to_go[begin] == pytest.approx(rewards[begin:end].sum())
    assert agent.target_return == pytest.approx(max(
        rewards[b:e].sum() for b, e in zip(bounds[:-1], bounds[1:], strict=True)))
    batch = agent._trajectory_batch(agent.read_windows(data, update=0))
    masks = batch.masks.numpy()
    assert masks.shape == (agent.batch_size, 4)
    # Padding only on the left, and timesteps count from each episode's start.
    assert np.all(np.diff(masks, axis=1) >= 0)
    steps = batch.timesteps.numpy()
    assert np.all(np.diff(steps, axis=1)[masks[:, 1:] > 0 & (masks[:, :-1] > 0)] >= 0)


def test_config_errors() -> None:
    with pytest.raises(InputError, match=r"unknown features_extractor 'impal'"):
        BCConfig(features_extractor="impal")
    with pytest.raises(InputError, match=r"batch_size must be a positive integer or None, got 0"):
        agent_config_class("cql").from_dict({"batch_size": 0})
    with pytest.raises(InputError, match=r"context_size must be a positive integer or None, got 0"):
        agent_config_class("dt").from_dict({"context_size": 0})


@pytest.mark.parametrize("algo", offline_algos())
def test_config_json_round_trip(algo: str) -> None:
    config = tiny(algo, seed=7)
    data = json.loads(json.dumps(config.to_dict()))
    assert data["algo"] == algo
    assert agent_config_from_dict(data) == config


def history_of(data: ArrayTransitions, maxlen: int, step: int, episode: int = 0
               ) -> tuple[Any, EpisodeHistory]:
    """The observation at ``step`` of one dataset episode, and its history up to there."""
    begin = int(data.episode_bounds()[episode])
    rows = data.transitions(np.arange(begin, begin + step + 1))
    history = EpisodeHistory(maxlen)
    for index in range(step):
        history.record(rows["obs"][index], rows["action"][index], float(rows["reward"][index]))
    return rows["obs"][step:], history


@pytest.mark.parametrize("kind", ["discrete", "continuous"])
def test_decision_transformer_acts_on_the_windows_it_trains_on(
        kind: str, datasets: dict[str, ArrayTransitions]) -> None:
    """The acting window at step t of a dataset episode is the training window ending at t:
    same observations, past actions, timesteps and padding; with the target set to the
    episode's return, the same returns-to-go (d3rlpy's StatefulTransformerWrapper rule)."""
    data = datasets[kind]
    agent = build("dt", data, context_size=4)
    assert isinstance(agent, D3rlpyAgent) and agent.context_length == 3
    agent.prepare(data, None)
    assert agent._returns_to_go is not None
    bounds = data.episode_bounds()
    agent.target_return = float(agent._returns_to_go[bounds[0]])
    for step in (0, 2, 5):
        obs, history = history_of(data, agent.context_length, step)
        window = agent.context_windows(obs, 1, [history])
        kept = min(step, 3)
        rows = np.arange(bounds[0] + step - kept, bounds[0] + step + 1)
        assert window["valid"][0].tolist() == [False] * (3 - kept) + [True] * (kept + 1)
        np.testing.assert_array_equal(window["obs"][0, 3 - kept:], data.arrays["obs"][rows])
        assert not window["obs"][0, : 3 - kept].any()
        np.testing.assert_array_equal(window["action"][0, 3 - kept : 3],
                                      data.arrays["action"][rows[:-1]])
        np.testing.assert_allclose(window["returns_to_go"][0, 3 - kept:],
                                   agent._returns_to_go[rows], rtol=1e-5, atol=1e-5)
        assert window["timesteps"][0, 3 - kept:].tolist() == list(range(step - kept, step + 1))
    # None is the first step of an episode: the current observation and the target only.
    obs, history = history_of(data, agent.context_length, 0)
    first = agent.context_windows(obs, 1, None)
    assert first["valid"][0].tolist() == [False, False, False, True]
    assert first["returns_to_go"][0, -1] == pytest.approx(agent.target_return)
    with pytest.raises(InputError, match="one EpisodeHistory per observation"):
        agent.context_windows(obs, 1, [history, history])
    if kind == "discrete":  # the evaluation loop hands dt its histories
        from gengap.eval.evaluate import evaluate

        records = evaluate(agent, MINIGRID_ID, num_episodes=3, num_envs=2,
                           env_kwargs={"max_steps": 8})
        assert len(records) == 3 and all(r.length <= 8 for r in records)


def test_decision_transformer_actions_depend_on_the_history(
        datasets: dict[str, ArrayTransitions], tmp_path: Path) -> None:
    """Continuous actions (any input change moves them): the past observations, actions and
    rewards each change the action; the same seed, and save/load, give the same actions."""
    data = datasets["continuous"]
    agent, twin = build("dt", data, context_size=4), build("dt", data, context_size=4)
    for each in (agent, twin):
        each.fit(data, UPDATES)
    assert agent.target_return is not None
    obs, history = history_of(data, agent.context_length, 5)
    with_history = agent.act(obs, histories=[history])
    assert not np.array_equal(with_history, agent.act(obs))
    # Pendulum's returns-to-go are ~-700 and unscaled, so the rtg embedding saturates the
    # layer norm: only a change of sign moves the action (a reward of -1000 flips it).
    for field, change in (("observations", 0.5), ("actions", 0.5), ("rewards", -1000.0)):
        changed = history_of(data, agent.context_length, 5)[1]
        values = getattr(changed, field)
        values[-1] = values[-1] + change
        if field == "rewards":
            changed.episode_return += change
        assert not np.array_equal(agent.act(obs, histories=[changed]), with_history), field
    np.testing.assert_array_equal(twin.act(obs, histories=[history]), with_history)
    # a batch of envs at different steps acts as each env alone
    other_obs, other = history_of(data, agent.context_length, 1)
    batch = agent.act(np.concatenate([obs, other_obs]), histories=[history, other])
    np.testing.assert_array_equal(batch[:1], with_history)
    np.testing.assert_allclose(batch[1:], agent.act(other_obs, histories=[other]), atol=1e-6)
    agent.save(tmp_path / "dt")
    loaded = load_agent(tmp_path / "dt", device="cpu")
    assert loaded.context_length == agent.context_length
    np.testing.assert_array_equal(loaded.act(obs, histories=[history]), with_history)
