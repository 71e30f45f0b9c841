"""The LM-initialized policy: agent conformance on real BabyAI bot demonstrations, the
shipped MiniLM really is pretrained, trunk references are checked, bad input is one line."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium import spaces
from safetensors.torch import load_file

from gengap.agents import LMPolicyAgent, LMPolicyConfig, agent_config_for_env, load_agent
from gengap.agents.history import EpisodeHistory
from gengap.agents.lm_network import load_trunk, resolve_model_path, shipped_model_path
from gengap.core.errors import InputError, InputFileNotFoundError
from gengap.envs import make
from gengap.offline.collect import DemonstrationSource, bot_demonstrations

ENV_ID = "gengap/babyai-gotolocal-compositional-v0"
TINY = {"batch_size": 8, "head_hidden": 16}



@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def env() -> Iterator[gymnasium.Env[Any, Any]]:
    environment = make(ENV_ID, obs_mode="entities")
    yield environment
    environment.close()


@pytest.fixture(scope="module")
def demos(env: gymnasium.Env[Any, Any]) -> DemonstrationSource:
    episodes = bot_demonstrations(ENV_ID, num_episodes=6, env_kwargs={"obs_mode": "entities"})
    return DemonstrationSource(episodes, env.observation_space, env.action_space)


def logits(agent: LMPolicyAgent, obs: dict[str, Any]) -> torch.Tensor:
    agent.network.eval()
    with torch.no_grad():
        return agent._logits(obs)


@pytest.mark.parametrize("variant", [
    {"trunk": "frozen", "entity_tokens": "language"},
    {"trunk": "finetune", "entity_tokens": "learned", "pretrained": False},
    {"trunk": "frozen", "entity_tokens": "language", "action_history": 2},
])
def test_agent_conformance(variant: dict[str, Any], demos: DemonstrationSource,
                           tmp_path: Path) -> None:
    config = LMPolicyConfig(seed=3, **TINY, **variant)
    count = min(12, demos.num_transitions)
    batch = demos.transitions(np.arange(count))["obs"]
    agent = config.create(demos.observation_space, demos.action_space)
    assert isinstance(agent, LMPolicyAgent)
    before = logits(agent, batch)
    agent.fit(demos, 4)
    assert agent.num_updates == 4
    after = logits(agent, batch)
    assert not torch.equal(before, after)  # it learned something
    actions = agent.act(batch)
    assert actions.shape == (count,) and actions.dtype == np.int64
    assert all(demos.action_space.contains(int(a)) for a in actions)
    sampled = agent.act(batch, deterministic=False)
    assert sampled.shape == (count,) and all(0 <= a < 7 for a in sampled)

    agent.save(tmp_path / "agent")
    saved = load_file(str(tmp_path / "agent" / "model.safetensors"))
    assert any(k.startswith("trunk.") for k in saved) == config.saves_trunk
    reference = json.loads((tmp_path / "agent" / "agent.json").read_text())["trunk"]
    assert (reference["weights_sha256"] is None) == (not config.pretrained)
    loaded = load_agent(tmp_path / "agent")
    assert isinstance(loaded, LMPolicyAgent) and loaded.num_updates == 4
    assert torch.equal(logits(loaded, batch), after)
    np.testing.assert_array_equal(loaded.act(batch), actions)

    twin = config.create(demos.observation_space, demos.action_space)
    twin.fit(demos, 4)
    assert torch.equal(logits(twin, batch), after)  # same seed, same agent

    interrupted = config.create(demos.observation_space, demos.action_space)
    interrupted.fit(demos, 2)
    interrupted.save_checkpoint(tmp_path / "checkpoint")
    resumed = LMPolicyAgent.load_checkpoint(tmp_path / "checkpoint")
    assert resumed.num_updates == 2
    resumed.fit(demos, 4)
    assert torch.equal(logits(resumed, batch), after)  # resumes to the uninterrupted run


def sentence_embeddings(model: torch.nn.Module, tokenizer: Any,
                        sentences: list[str]) -> torch.Tensor:
    inputs = tokenizer(sentences, padding=True, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        hidden = model(**inputs).last_hidden_state
    mask = inputs["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)


def test_shipped_trunk_is_pretrained(env: gymnasium.Env[Any, Any]) -> None:
    sentences = ["A man is playing a guitar.", "Someone strums an acoustic instrument.",
                 "The quarterly tax report is due on Monday."]

    def paraphrase_margin(pretrained: bool) -> float:
        torch.manual_seed(0)
        model, tokenizer = load_trunk(resolve_model_path(""), pretrained)
        anchor, paraphrase, unrelated = sentence_embeddings(model, tokenizer, sentences)
        return float(anchor @ paraphrase - anchor @ unrelated)

    assert paraphrase_margin(True) > 0.3  # measured 0.58 for all-MiniLM-L6-v2
    assert abs(paraphrase_margin(False)) < 0.1  # measured -0.01 for a random trunk
    # The agent's trunk holds the shipped weights (no silent fall-back to random ones).
    shipped = load_file(str(shipped_model_path() / "model.safetensors"))
    name = next(k for k in shipped if k.endswith("word_embeddings.weight"))
    agent = LMPolicyConfig(**TINY).create(env.observation_space, env.action_space)
    assert isinstance(agent, LMPolicyAgent)
    table = agent.network.trunk.get_input_embeddings().weight.detach()
    assert torch.equal(table, shipped[name])


def test_bad_input_is_one_line(env: gymnasium.Env[Any, Any], tmp_path: Path) -> None:
    obs_space, action_space = env.observation_space, env.action_space
    with pytest.raises(InputFileNotFoundError,
                       match=r"^lm_path must be a local Hugging Face model folder .*'/nope'$"):
        LMPolicyConfig(lm_path="/nope").create(obs_space, action_space)
    no_weights = tmp_path / "no-weights"
    shutil.copytree(shipped_model_path(), no_weights,
                    ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    with pytest.raises(InputFileNotFoundError, match=r"has no weights \(model\.safetensors or"):
        LMPolicyConfig(lm_path=str(no_weights)).create(obs_space, action_space)
    (no_weights / "config.json").write_text("{not json")
    with pytest.raises(InputError, match=r"is not a loadable Hugging Face model"):
        LMPolicyConfig(lm_path=str(no_weights), pretrained=False).create(obs_space, action_space)
    pixels = spaces.Box(0, 255, (7, 7, 3), np.uint8)
    with pytest.raises(InputError, match=r"^the lm policy needs MiniGrid/BabyAI entity obs"):
        LMPolicyConfig().create(pixels, action_space)
    # ... and refused when the config is built for an env, before any run folder exists
    with pytest.raises(InputError, match=r"^gengap/babyai-gotolocal-v0 observations do not fit: "
                                         r"the lm policy needs MiniGrid/BabyAI entity obs"):
        agent_config_for_env("lm", "gengap/babyai-gotolocal-v0")
    assert isinstance(agent_config_for_env("lm", ENV_ID), LMPolicyConfig)
    with pytest.raises(InputError, match=r"^LM needs a discrete \(Discrete\) action space"):
        LMPolicyConfig().create(obs_space, spaces.Box(-1, 1, (2,)))
    with pytest.raises(InputError, match=r"unknown trunk 'frozn'.*'frozen'"):
        LMPolicyConfig(trunk="frozn")
    with pytest.raises(InputError, match=r"unknown entity_tokens 'words'"):
        LMPolicyConfig(entity_tokens="words")
    with pytest.raises(InputError, match=r"^action_history must be a non-negative integer, "
                                         r"got -1$"):
        LMPolicyConfig(action_history=-1)


def test_changed_trunk_weights_are_refused(env: gymnasium.Env[Any, Any],
                                           tmp_path: Path) -> None:
    agent = LMPolicyConfig(**TINY).create(env.observation_space, env.action_space)
    agent.save(tmp_path / "agent")
    info_path = tmp_path / "agent" / "agent.json"
    info = json.loads(info_path.read_text())
    info["trunk"]["weights_sha256"] = "0" * 64
    info_path.write_text(json.dumps(info))
    with pytest.raises(InputError, match=r"have sha256 [0-9a-f]{64}, but .* was trained on 0{64}"):
        load_agent(tmp_path / "agent")


def test_a_local_decoder_folder_works(env: gymnasium.Env[Any, Any], tmp_path: Path) -> None:
    """A GPT-2 (decoder) folder serves as the trunk too: a tiny one, saved locally, with
    the shipped WordPiece tokenizer (no GPT-2 vocabulary is on this machine)."""
    from transformers import GPT2Config, GPT2Model

    folder = tmp_path / "tiny-gpt2"
    shutil.copytree(shipped_model_path(), folder,
                    ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "config.json"))
    torch.manual_seed(0)
    GPT2Model(GPT2Config(vocab_size=30522, n_positions=128, n_embd=32, n_layer=1,
                         n_head=2)).save_pretrained(folder)
    agent = LMPolicyConfig(lm_path=str(folder), **TINY).create(env.observation_space,
                                                                 env.action_space)
    assert isinstance(agent, LMPolicyAgent)
    assert type(agent.network.trunk).__name__ == "GPT2Model"
    obs = env.reset(seed=0)[0]
    batch = {key: np.asarray(value)[None] for key, value in obs.items()}
    assert agent.act(batch).shape == (1,)


def test_cached_frozen_features_match_the_trunk(demos: DemonstrationSource) -> None:
    """A frozen trunk's features are computed once per block of transitions: the head must
    see what the trunk gives for each transition alone (to float rounding)."""
    agent = LMPolicyConfig(seed=0, **TINY).create(demos.observation_space, demos.action_space)
    assert isinstance(agent, LMPolicyAgent) and agent.config.caches_features
    agent.fit(demos, 1)
    assert agent._fit_data is not None
    indices = np.array([0, 3, demos.num_transitions - 1])
    cached = agent._cached_features(agent._fit_data, indices)
    obs = demos.transitions(indices)["obs"]
    for row in range(len(indices)):
        alone = {key: value[row: row + 1] for key, value in obs.items()}
        with torch.no_grad():
            direct = agent.network.features(agent.network.encode_batch(alone, torch.device("cpu")))
        torch.testing.assert_close(cached[row: row + 1], direct, atol=1e-5, rtol=1e-4)


def history_of(actions: list[int], maxlen: int, obs: dict[str, Any]) -> EpisodeHistory:
    history = EpisodeHistory(maxlen)
    for action in actions:
        history.record({key: value[0] for key, value in obs.items()}, action, 0.0)
    return history


@pytest.mark.parametrize("entity_tokens", ["language", "learned"])
def test_action_history_is_read(entity_tokens: str, demos: DemonstrationSource,
                                tmp_path: Path) -> None:
    config = LMPolicyConfig(seed=1, action_history=2, entity_tokens=entity_tokens, **TINY)
    agent = config.create(demos.observation_space, demos.action_space)
    assert isinstance(agent, LMPolicyAgent) and agent.context_length == 2
    assert LMPolicyConfig(**TINY).create(demos.observation_space,
                                         demos.action_space).context_length == 0
    agent.fit(demos, 3)
    # Training reads each transition's previous actions within its own episode.
    assert agent._fit_data is not None
    bounds = demos.episode_bounds()
    start = next(int(b) for b, e in zip(bounds[1:-1], bounds[2:], strict=True) if e - b >= 4)
    first, second, third = start, start + 1, start + 2
    past = agent._fit_data.past_actions(np.array([first, second, third, third + 1]), 2)
    assert past[0] == []  # an episode's first step has no past, whatever came before it
    assert past[1] == [int(demos.action[first])]
    assert past[2] == [int(demos.action[first]), int(demos.action[second])]
    assert past[3] == [int(demos.action[second]), int(demos.action[third])]

    obs = demos.transitions(np.array([0]))["obs"]

    def logits_after(actions: list[int] | None, policy: LMPolicyAgent = agent) -> torch.Tensor:
        histories = None if actions is None else [history_of(actions, 2, obs)]
        past = None if histories is None else [list(h.actions) for h in histories]
        with torch.no_grad():
            return policy._logits(obs, past)

    fresh, turned, walked = logits_after(None), logits_after([0, 0]), logits_after([2, 3])
    assert torch.equal(fresh, logits_after([]))  # no history: the first step of an episode
    assert not torch.equal(fresh, turned) and not torch.equal(turned, walked)
    assert torch.equal(logits_after([1, 2, 3]), walked)  # only the last two are read
    # act() reads the histories it is handed, aligned with the batch.
    batch = demos.transitions(np.arange(3))["obs"]
    histories = [history_of(a, 2, obs) for a in ([], [0, 0], [2, 3])]
    expected = agent._logits(batch, [list(h.actions) for h in histories]).argmax(-1).numpy()
    np.testing.assert_array_equal(agent.act(batch, histories=histories), expected)
    with pytest.raises(InputError, match=r"^act got 2 histories for 3 observations$"):
        agent.act(batch, histories=histories[:2])

    agent.save(tmp_path / "agent")
    loaded = load_agent(tmp_path / "agent")
    assert isinstance(loaded, LMPolicyAgent) and loaded.context_length == 2
    assert torch.equal(logits_after([2, 3], loaded), walked)
    twin = config.create(demos.observation_space, demos.action_space)
    assert isinstance(twin, LMPolicyAgent)
    twin.fit(demos, 3)
    assert torch.equal(logits_after([2, 3], twin), walked)


def test_evaluation_hands_the_lm_policy_its_action_history(demos: DemonstrationSource) -> None:
    """The real evaluation loop: an lm policy with action_history gets each env's episode
    history, and the same seed gives the same episodes."""
    from gengap.eval.evaluate import evaluate

    lengths: list[int] = []

    class RecordingLMPolicy(LMPolicyAgent):
        def act(self, obs: Any, deterministic: bool = True,
                histories: Any = None) -> np.ndarray:
            lengths.extend(-1 if histories is None else len(h.actions) for h in histories)
            return super().act(obs, deterministic, histories)

    config = LMPolicyConfig(seed=2, action_history=2, **TINY)
    agent = RecordingLMPolicy(config, demos.observation_space, demos.action_space)
    agent.fit(demos, 2)
    kwargs = {"num_episodes": 2, "num_envs": 2, "env_kwargs": {"max_steps": 6}}
    first = evaluate(agent, ENV_ID, part="combinatorial", **kwargs)  # type: ignore[arg-type]
    assert -1 not in lengths and max(lengths) == 2 and lengths[0] == 0
    again = evaluate(agent, ENV_ID, part="combinatorial", **kwargs)  # type: ignore[arg-type]
    assert [(r.length, r.episode_return) for r in first] == [
        (r.length, r.episode_return) for r in again]
