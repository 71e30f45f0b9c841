"""Agent conformance tests, generated from the algorithm registry (d3rlpy's algo_tester).

Every registered online algorithm: fit on a tiny budget on a real env -> act returns valid
batched actions -> save/load gives the same actions -> the same seed twice gives the same
agent -> a checkpoint resumes to exactly the weights of an uninterrupted run.
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
from gymnasium.vector import AutoresetMode

import gengap.envs as genv
from gengap.agents import (
    DEFAULT_AGENT_CONFIGS,
    AgentConfig,
    OnlineAgent,
    PPOConfig,
    SB3Agent,
    agent_config_class,
    agent_config_from_dict,
    default_agent_config,
    load_agent,
    register_agent,
    registered_algos,
    resolve_device,
)
from gengap.agents.networks import (
    GoalFiLMCNN,
    GoalFiLMPoolCNN,
    ImpalaCNN,
    MiniGridCNN,
    SlotAttentionExtractor,
    auto_features_extractor,
)
from gengap.core.errors import InputError
from gengap.core.files import atomic_directory
from gengap.core.spaces import space_from_dict, space_to_dict

MINIGRID_ID = "gengap/minigrid-doorkey-5x5-v0"
PROCGEN_ID = "gengap/procgen-coinrun-v0"

# Tiny budgets per algorithm; a new online algorithm must add its own line here.
TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "ppo": {"n_steps": 32, "batch_size": 32, "n_epochs": 2, "lr_schedule": "linear"},
    "dqn": {"learning_starts": 32, "batch_size": 16, "train_freq": 2,
            "target_update_interval": 16, "exploration_fraction": 0.5},
    "sac": {"learning_starts": 32, "batch_size": 16, "net_arch": [32, 32],
            "buffer_size": 1000},
}
BUDGET = 128


def online_algos() -> list[str]:
    algos = []
    for algo in registered_algos():
        if issubclass(agent_config_class(algo)().agent_class(), OnlineAgent):
            algos.append(algo)
    return algos


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    # Two cores shared with other processes: torch's intra-op threads then spin and a
    # 7x7 conv takes milliseconds. One thread keeps the file fast and deterministic.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_env(algo: str) -> gymnasium.vector.VectorEnv:
    """Two-env vector env suited to the algorithm's action space."""
    config_cls = agent_config_class(algo)
    if spaces.Discrete in getattr(config_cls, "action_space_types", (spaces.Discrete,)):
        if MINIGRID_ID not in genv.registered_ids():
            pytest.skip(f"{MINIGRID_ID} is not registered yet")
        env = genv.make(MINIGRID_ID, num_envs=2)
        assert isinstance(env, gymnasium.vector.VectorEnv)
        return env
    return gymnasium.make_vec(
        "Pendulum-v1", num_envs=2, vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
    )


def tiny_config(algo: str, seed: int = 0) -> AgentConfig:
    assert algo in TINY_CONFIGS, f"add a tiny test config for new algo {algo!r}"
    return agent_config_class(algo).from_dict({**TINY_CONFIGS[algo], "seed": seed,
                                                "device": "cpu"})


def train(algo: str, seed: int = 0, steps: int = BUDGET) -> tuple[OnlineAgent, Any]:
    env = make_env(algo)
    agent = tiny_config(algo, seed).create(env.single_observation_space, env.single_action_space)
    assert isinstance(agent, OnlineAgent)
    agent.learn(env, steps)
    return agent, env


def probe_obs(env: gymnasium.vector.VectorEnv, seed: int = 123) -> np.ndarray:
    obs, _ = env.reset(seed=seed)
    return obs


def weights(agent: OnlineAgent) -> dict[str, torch.Tensor]:
    assert isinstance(agent, SB3Agent)
    return {k: v.detach().clone() for k, v in agent.model.policy.state_dict().items()}


def assert_same_weights(a: OnlineAgent, b: OnlineAgent) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("algo", online_algos())
def test_fit_act_save_load(algo: str, tmp_path: Path) -> None:
    agent, env = train(algo)
    assert agent.num_timesteps >= BUDGET
    obs = probe_obs(env)
    actions = agent.act(obs)
    space = env.single_action_space
    assert actions.shape == (2, *space.shape)
    if isinstance(space, spaces.Discrete):
        assert np.issubdtype(actions.dtype, np.integer)
    assert all(space.contains(np.asarray(a, dtype=space.dtype)) for a in actions)
    sampled = agent.act(obs, deterministic=False)
    assert sampled.shape == actions.shape
    assert all(space.contains(np.asarray(a, dtype=space.dtype)) for a in sampled)

    agent.save(tmp_path / "agent")
    assert {p.name for p in (tmp_path / "agent").iterdir()} == {
        "config.json", "agent.json", "model.safetensors"}
    loaded = load_agent(tmp_path / "agent", device="cpu")
    assert type(loaded) is type(agent)
    assert loaded.config == agent.config
    np.testing.assert_array_equal(loaded.act(obs), actions)
    assert_same_weights(agent, loaded)  # type: ignore[arg-type]

    with pytest.raises(ValueError, match="must be a batch of shape"):
        agent.act(obs[0])
    env.close()


@pytest.mark.parametrize("algo", online_algos())
def test_same_seed_same_agent(algo: str) -> None:
    first, env = train(algo, seed=3)
    second, _ = train(algo, seed=3)
    other, _ = train(algo, seed=4)
    assert_same_weights(first, second)
    obs = probe_obs(env)
    np.testing.assert_array_equal(first.act(obs), second.act(obs))
    assert any(not torch.equal(a, b) for a, b in
               zip(weights(first).values(), weights(other).values(), strict=True))


@pytest.mark.parametrize("algo", online_algos())
def test_checkpoint_resume_matches_uninterrupted_run(algo: str, tmp_path: Path) -> None:
    uninterrupted, _ = train(algo, steps=BUDGET)
    uninterrupted.save_checkpoint(tmp_path / "ckpt")
    uninterrupted.save_checkpoint(tmp_path / "ckpt")  # overwriting is atomic and allowed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]

    # Both continue on a fresh env: the resumed agent must not start again from step 0.
    # Loading seeds the global RNGs (SB3 does at model setup), so it comes after the
    # uninterrupted run, as it would in a new process.
    uninterrupted.learn(make_env(algo), 2 * BUDGET)
    resumed = type(uninterrupted).load_checkpoint(tmp_path / "ckpt", device="cpu")
    assert resumed.num_timesteps == BUDGET
    seen: list[int] = []

    def hook(num_timesteps: int) -> bool:
        seen.append(num_timesteps)
        return True

    resumed.learn(make_env(algo), 2 * BUDGET, hook=hook)
    assert seen[0] == BUDGET + 2 and seen[-1] == resumed.num_timesteps
    assert resumed.num_timesteps == uninterrupted.num_timesteps >= 2 * BUDGET
    assert_same_weights(uninterrupted, resumed)


@pytest.mark.parametrize("algo", online_algos())
def test_hook_false_stops_and_learn_is_idempotent_at_total(algo: str) -> None:
    env = make_env(algo)
    agent = tiny_config(algo).create(env.single_observation_space, env.single_action_space)
    assert isinstance(agent, OnlineAgent)
    agent.learn(env, 10_000, hook=lambda n: n < 10)
    assert agent.num_timesteps == 10
    agent.learn(env, 10)
    assert agent.num_timesteps == 10
    with pytest.raises(TypeError, match="hook must return a bool"):
        agent.learn(env, 20, hook=lambda n: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match="total_timesteps"):
        agent.learn(env, -1)


@pytest.mark.parametrize("algo", registered_algos())
def test_config_json_round_trip(algo: str) -> None:
    config = agent_config_class(algo)(seed=7)
    data = json.loads(json.dumps(config.to_dict()))
    assert data["algo"] == algo
    assert agent_config_from_dict(data) == config


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match=r"unknown key in ppo config 'learning_rat'.*"
                                         r"did you mean 'learning_rate'"):
        PPOConfig.from_dict({"learning_rat": 1e-3})
    with pytest.raises(TypeError, match=r"ppo config\.n_steps must be int, got '64'"):
        PPOConfig.from_dict({"n_steps": "64"})
    with pytest.raises(TypeError, match=r"n_steps"):
        agent_config_from_dict({"algo": "ppo", "n_steps": 64.5})
    with pytest.raises(ValueError, match=r"unknown algo 'ppp'; did you mean 'ppo'"):
        agent_config_from_dict({"algo": "ppp"})
    with pytest.raises(ValueError, match="needs an 'algo' key"):
        agent_config_from_dict({"seed": 1})
    with pytest.raises(ValueError, match=r"gamma must be in \(0, 1\], got 1.5"):
        PPOConfig(gamma=1.5)
    with pytest.raises(ValueError, match=r"unknown lr_schedule 'cosine'"):
        PPOConfig(lr_schedule="cosine")
    with pytest.raises(ValueError, match=r"unknown features_extractor 'impal'.*'impala'"):
        PPOConfig(features_extractor="impal")
    with pytest.raises(ValueError, match="already registered"):
        register_agent(PPOConfig)
    with pytest.raises(InputError, match=r"^DQN needs a discrete \(Discrete\) action space; "
                                         r"the env has Box\(.*\); algorithms that fit: ppo, sac$"):
        agent_config_class("dqn")().create(
            spaces.Box(-1, 1, (3,)), spaces.Box(-1, 1, (2,)))


def test_family_defaults_are_data() -> None:
    procgen = default_agent_config("ppo", "procgen")
    assert isinstance(procgen, PPOConfig)
    expected = {"learning_rate": 5e-4, "ent_coef": 0.01, "gamma": 0.999, "gae_lambda": 0.95,
                "n_steps": 256, "n_minibatches": 8, "n_epochs": 3, "clip_range": 0.2,
                "clip_range_vf": 0.2, "vf_coef": 0.5, "max_grad_norm": 0.5,
                "normalize_reward": True, "features_extractor": "auto", "features_dim": 256}
    assert {k: getattr(procgen, k) for k in expected} == expected
    assert procgen.sb3_kwargs(n_envs=64)["batch_size"] == 256 * 64 // 8
    minigrid = default_agent_config("ppo", "minigrid", seed=5)
    assert (minigrid.seed, minigrid.lr_schedule, minigrid.features_extractor) == (
        5, "linear", "auto")
    for (algo, _family), values in DEFAULT_AGENT_CONFIGS.items():
        agent_config_class(algo).from_dict(values)  # every row is a valid config
        # The extractor is chosen from the observation space, never per family.
        assert values.get("features_extractor", "auto") == "auto"
    # A pair without tuned values gets the algorithm's own defaults.
    assert default_agent_config("sac", "procgen") == agent_config_class("sac")()
    with pytest.raises(InputError, match=r"unknown env family 'procgn'; did you mean 'procgen'"):
        default_agent_config("ppo", "procgn")
    with pytest.raises(TypeError, match="ent_coef"):
        default_agent_config("ppo", "procgen", ent_coef="high")


def test_feature_extractors() -> None:
    image = spaces.Box(0, 255, (64, 64, 3), np.uint8)
    grid = spaces.Box(0.0, 1.0, (3, 7, 7), np.float32)
    assert auto_features_extractor(image) == "impala"
    assert auto_features_extractor(grid) == "minigrid_cnn"
    assert auto_features_extractor(spaces.Box(-1, 1, (4,))) == "mlp"
    impala = ImpalaCNN(spaces.Box(0, 255, (3, 64, 64), np.uint8))
    assert impala(torch.zeros(5, 3, 64, 64)).shape == (5, 256)
    n_conv = sum(isinstance(m, torch.nn.Conv2d) for m in impala.modules())
    assert n_conv == 3 * 5  # per stack: one conv and two residual blocks of two convs
    assert MiniGridCNN(grid)(torch.zeros(2, 3, 7, 7)).shape == (2, 128)
    with pytest.raises(ValueError, match="3-D"):
        MiniGridCNN(spaces.Box(0, 1, (10,)))



@pytest.mark.parametrize("self_attention", [False, True])
def test_slot_attention_extractor_is_a_masked_set_function(self_attention: bool) -> None:
    space = spaces.Dict(
        {
            "slots": spaces.Box(0.0, 1.0, (6, 16), np.float32),
            "mask": spaces.Box(0.0, 1.0, (6,), np.float32),
            "goal": spaces.Box(0.0, 1.0, (16,), np.float32),
        }
    )
    assert auto_features_extractor(space) == "slot_attention"
    torch.manual_seed(0)
    extractor = SlotAttentionExtractor(space, features_dim=32, self_attention=self_attention)
    slots = torch.rand(3, 6, 16)
    mask = torch.tensor([[1.0, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0]])
    slots = slots * mask[..., None]
    goal = torch.rand(3, 16)
    with torch.no_grad():
        features = extractor({"slots": slots, "mask": mask, "goal": goal})
        assert features.shape == (3, 32)
        order = torch.tensor([4, 2, 0, 5, 1, 3])  # real rows move, padding rows interleave
        permuted = extractor({"slots": slots[:, order], "mask": mask[:, order], "goal": goal})
        torch.testing.assert_close(permuted, features)
        noisy = torch.where(mask[..., None] > 0, slots, torch.rand(3, 6, 16) * 5)
        masked_noise = extractor({"slots": noisy, "mask": mask, "goal": goal})
        torch.testing.assert_close(masked_noise, features)
        other_goal = extractor({"slots": slots, "mask": mask, "goal": goal.flip(0)})
        assert not torch.allclose(other_goal, features)  # the goal conditions the features
    with pytest.raises(ValueError, match="keys"):
        SlotAttentionExtractor(spaces.Dict({"slots": space["slots"]}))

def test_goal_film_pool_cnn_is_chosen_for_pixels_and_a_goal() -> None:
    env = genv.make("gengap/shapes-objectgoal-v0", num_envs=2, obs_mode="pixels")
    agent = default_agent_config("ppo", "shapes", device="cpu").create(
        env.single_observation_space, env.single_action_space)
    extractor = agent.model.policy.features_extractor  # type: ignore[attr-defined]
    assert isinstance(extractor, GoalFiLMPoolCNN)
    obs, _ = env.reset(seed=0)
    env.close()
    assert agent.act(obs).shape == (2,)
    space = spaces.Dict({"pixels": spaces.Box(0.0, 1.0, (3, 64, 64), np.float32),
                         "goal": spaces.Box(0.0, 1.0, (16,), np.float32)})
    assert auto_features_extractor(space) == "goal_film_pool_cnn"
    assert auto_features_extractor(spaces.Dict({**space.spaces, "extra": space["goal"]})) == (
        "combined")
    for extractor_cls in (GoalFiLMCNN, GoalFiLMPoolCNN):
        torch.manual_seed(0)
        film = extractor_cls(space, features_dim=32)
        torch.nn.init.normal_(film.films[0].weight)  # an untrained FiLM layer is near identity
        images, goal = torch.rand(3, 3, 64, 64), torch.rand(3, 16)
        with torch.no_grad():
            features = film({"pixels": images, "goal": goal})
            assert features.shape == (3, 32 + 64) == (3, film.features_dim)
            # The goal modulates the image features, not only the goal embedding.
            other = film({"pixels": images, "goal": goal.flip(0)})
            assert not torch.allclose(other[:, :32], features[:, :32])
        with pytest.raises(InputError, match=f"{extractor_cls.__name__} needs a Dict"):
            extractor_cls(spaces.Dict({"goal": space["goal"]}))


def test_goal_film_pool_cnn_finds_an_object_wherever_it_is() -> None:
    """Max-pooling over space keeps where an object is (through the coordinate channels):
    moving a lone object changes the features; there is no dense per-position readout;
    bad layer settings are refused."""
    space = spaces.Dict({"pixels": spaces.Box(0.0, 1.0, (3, 64, 64), np.float32),
                         "goal": spaces.Box(0.0, 1.0, (16,), np.float32)})
    torch.manual_seed(0)
    pool = GoalFiLMPoolCNN(space, features_dim=32)
    goal = torch.zeros(2, 16)
    images = torch.zeros(2, 3, 64, 64)
    images[0, 0, 10:18, 10:18] = 1.0  # a red square top-left
    images[1, 0, 40:48, 44:52] = 1.0  # the same square bottom-right
    with torch.no_grad():
        features = pool({"pixels": images, "goal": goal})
    assert not torch.allclose(features[0], features[1])
    assert sum(p.numel() for p in pool.parameters()) < sum(
        p.numel() for p in GoalFiLMCNN(space).parameters()) / 10  # no dense map readout
    with pytest.raises(InputError, match="unknown pooling 'mean'"):
        GoalFiLMCNN(space, pooling="mean")
    with pytest.raises(InputError, match="one stride per conv layer"):
        GoalFiLMCNN(space, channels=(8, 8), strides=(2,))


def test_procgen_pixels_ppo(tmp_path: Path) -> None:
    if PROCGEN_ID not in genv.registered_ids():
        pytest.skip(f"{PROCGEN_ID} is not registered yet")
    env = genv.make(PROCGEN_ID, num_envs=2)
    assert isinstance(env, gymnasium.vector.VectorEnv)
    config = default_agent_config("ppo", "procgen", n_steps=16, n_epochs=1, device="cpu")
    agent = config.create(env.single_observation_space, env.single_action_space)
    assert isinstance(agent, SB3Agent)
    assert isinstance(agent.model.policy.features_extractor, ImpalaCNN)
    agent.learn(env, 32)
    obs = probe_obs(env)
    assert obs.shape == (2, 64, 64, 3) and obs.dtype == np.uint8
    actions = agent.act(obs)
    assert actions.shape == (2,) and all(env.single_action_space.contains(a) for a in actions)
    agent.save_checkpoint(tmp_path / "ckpt")
    state = json.loads((tmp_path / "ckpt" / "training_state.json").read_text())
    assert state["return_rms"]["count"] > 1  # reward normalization statistics are kept
    resumed = type(agent).load_checkpoint(tmp_path / "ckpt", device="cpu")
    np.testing.assert_array_equal(resumed.act(obs), actions)
    assert resumed._return_rms is not None
    assert resumed._return_rms.var == pytest.approx(float(state["return_rms"]["var"]))
    env.close()


@pytest.mark.parametrize("space", [
    spaces.Box(-np.inf, np.inf, (4,), np.float32),
    spaces.Box(np.array([0.0, -1.0]), np.array([1.0, 2.0]), dtype=np.float64),
    spaces.Box(0, 255, (64, 64, 3), np.uint8),
    spaces.Discrete(5, start=1),
    spaces.MultiDiscrete([3, 4]),
    spaces.Dict({"image": spaces.Box(0, 1, (3, 7, 7)), "mission": spaces.Discrete(9)}),
])
def test_space_json_round_trip(space: gymnasium.Space[Any]) -> None:
    assert space_from_dict(json.loads(json.dumps(space_to_dict(space)))) == space


def test_atomic_directory_keeps_old_version_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with atomic_directory(target) as staging:
        (staging / "a.txt").write_text("old")
    with pytest.raises(RuntimeError, match="killed"), atomic_directory(target) as staging:
        (staging / "a.txt").write_text("half")
        raise RuntimeError("killed")
    assert (target / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_checkpoint_without_replay_buffer(tmp_path: Path) -> None:
    env = make_env("dqn")
    config = tiny_config("dqn").replace(checkpoint_replay_buffer=False)
    agent = config.create(env.single_observation_space, env.single_action_space)
    assert isinstance(agent, OnlineAgent)
    agent.learn(env, 64)
    agent.save_checkpoint(tmp_path / "ckpt")
    assert not (tmp_path / "ckpt" / "replay_buffer.safetensors").exists()
    resumed = type(agent).load_checkpoint(tmp_path / "ckpt", device="cpu")
    resumed.learn(env, 96)
    assert resumed.num_timesteps == 96


def test_device_auto_resolves() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == expected
    with pytest.raises(InputError, match="device must be 'auto' or a torch device"):
        PPOConfig(device="gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_is_refused_up_front() -> None:
    # Explicitly asking for a device the machine lacks is an error, not a silent CPU run.
    message = (r"^device 'cuda' is not available on this machine \(available: cpu\); "
               r"device='auto' uses CUDA when present, else the CPU$")
    with pytest.raises(InputError, match=message):
        PPOConfig(device="cuda")
    with pytest.raises(InputError, match="device 'cuda:1' is not available"):
        resolve_device("cuda:1")
    assert resolve_device("cpu") == "cpu"
    agent = PPOConfig(device="auto").create(spaces.Box(-1, 1, (3,)), spaces.Discrete(2))
    assert agent.device == "cpu"


def test_agent_saved_for_cuda_loads_on_this_machine(tmp_path: Path) -> None:
    # A config.json that names a device this machine lacks still loads with device="auto".
    agent = PPOConfig(device="cpu").create(spaces.Box(-1, 1, (3,)), spaces.Discrete(2))
    agent.save(tmp_path / "agent")
    config_path = tmp_path / "agent" / "config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()),
                                       "device": "cuda:7"}))
    loaded = load_agent(tmp_path / "agent")
    assert loaded.device == resolve_device("auto")
    obs = np.zeros((4, 3), np.float32)
    np.testing.assert_array_equal(loaded.act(obs), agent.act(obs))


@pytest.mark.parametrize("algo", ["ppo", "bc"])
def test_a_saved_agent_records_what_auto_picked_and_loads_after_the_default_changes(
    algo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gengap.offline  # noqa: F401  (registers the offline learners, bc among them)

    env = genv.make("gengap/minigrid-doorkey-5x5-v0")
    config = default_agent_config(algo, "minigrid")
    assert config.features_extractor == "auto"  # type: ignore[attr-defined]
    agent = config.create(env.observation_space, env.action_space)
    assert agent.config.features_extractor == "minigrid_cnn"  # type: ignore[attr-defined]
    agent.save(tmp_path / "agent")
    obs = np.stack([env.reset(seed=s)[0] for s in range(4)])
    before = agent.act(obs)
    # A later gengap picks another network for "auto": the saved agent must still rebuild
    # the one it was trained with.
    import gengap.agents.networks as networks

    monkeypatch.setattr(networks, "auto_features_extractor", lambda space: "mlp")
    loaded = load_agent(tmp_path / "agent")
    assert loaded.config.features_extractor == "minigrid_cnn"  # type: ignore[attr-defined]
    np.testing.assert_array_equal(loaded.act(obs), before)
