"""Entity (object-centric) observations for MiniGrid and BabyAI.

The scene is a fixed-size, padded set of entities, one per object on the grid
(everything but empty cells and walls) plus the object the agent carries, with
a mask, the mission as token ids from a fixed vocabulary and the agent's
direction and position. Two ways to get it:

* :class:`EntityMiniGridEnv`: :class:`~gengap.envs.minigrid.MiniGridEnv` with
  ``obs_mode="entities"`` (the default), registered as
  ``gengap/babyai-gotolocal-entities-v0`` and friends; the compositional BabyAI
  envs (:mod:`gengap.envs.babyai`) inherit it, so
  ``make("gengap/babyai-gotolocal-compositional-v0", obs_mode="entities")`` works.
* :class:`EntityObservation`: a Gymnasium observation wrapper around any gengap
  MiniGrid/BabyAI env (whatever its ``obs_mode``).
"""

from __future__ import annotations

import re
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from minigrid.core.constants import COLOR_NAMES, COLOR_TO_IDX, DIR_TO_VEC, OBJECT_TO_IDX
from minigrid.core.world_object import WorldObj
from minigrid.minigrid_env import MiniGridEnv as _MiniGridBase

from gengap.core import checks
from gengap.core.errors import InputError, unknown_name_message
from gengap.envs.minigrid import OBS_MODES as _GRID_OBS_MODES
from gengap.envs.minigrid import MiniGridEnv
from gengap.envs.registry import register_env
from gengap.envs.splits import Split

OBS_MODES = (*_GRID_OBS_MODES, "entities")

PAD, UNKNOWN = "<pad>", "<unk>"
# BabyAI's grammar (minigrid.envs.babyai.core.verifier: verbs, articles, colours, object
# types, locations, sequencing words) first, then words of MiniGrid's fixed missions.
_BABYAI_WORDS = (
    "go", "to", "pick", "up", "open", "put", "next", "the", "a", "and", "then", ",",
    "after", "you", "on", "your", "left", "right", "in", "front", "of", "behind",
    *COLOR_NAMES, "door", "key", "ball", "box", "object",
)  # fmt: skip
_MINIGRID_WORDS = (
    "get", "goal", "square", "use", "avoid", "lava", "traverse", "rooms", "reach", "find",
    "fetch", "must", "grab", "from", "at", "end", "hallway", "matching", "opening",
)  # fmt: skip
VOCABULARY: tuple[str, ...] = (PAD, UNKNOWN, *dict.fromkeys(_BABYAI_WORDS + _MINIGRID_WORDS))
WORD_TO_ID: dict[str, int] = {word: index for index, word in enumerate(VOCABULARY)}
_TOKEN = re.compile(r"[a-z]+|,")

# Entity feature columns (raw integer codes as float32).
ENTITY_FEATURES = ("type", "color", "state", "x", "y", "forward", "right", "carried")
ENTITY_DIM = len(ENTITY_FEATURES)
_SKIPPED = (OBJECT_TO_IDX["unseen"], OBJECT_TO_IDX["empty"], OBJECT_TO_IDX["wall"])
DEFAULT_MAX_TOKENS = 32


def tokenize_mission(mission: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> np.ndarray:
    """Token ids of ``mission``: lower-cased words and commas, padded with 0 (``<pad>``).

    Words outside :data:`VOCABULARY` get id 1 (``<unk>``); every word of BabyAI's grammar
    is in the vocabulary.

    Raises:
        ValueError: If the mission has more than ``max_tokens`` tokens (never truncated).
    """
    words = _TOKEN.findall(mission.lower())
    if len(words) > max_tokens:
        raise InputError(
            f"mission {mission!r} has {len(words)} tokens, more than max_tokens={max_tokens}; "
            "build the env with a larger max_tokens"
        )
    ids = np.zeros(max_tokens, np.int64)
    ids[: len(words)] = [WORD_TO_ID.get(word, WORD_TO_ID[UNKNOWN]) for word in words]
    return ids


class EntityEncoder:
    """Turns a ``minigrid`` env's current state into the entity observation.

    Entity rows (:data:`ENTITY_FEATURES`): object type, colour and state as in
    minigrid's grid encoding (``OBJECT_TO_IDX``, ``COLOR_TO_IDX``, door state
    0 open / 1 closed / 2 locked), the absolute cell ``(x, y)``, the position
    relative to the agent in its own frame (``forward``: cells ahead, negative
    behind; ``right``: cells to its right, negative to its left; BabyAI's
    "in front of you"/"on your right" use the same frame), and ``carried``
    (1 for the object the agent holds; it sits on the agent's cell). Rows follow
    the grid in row-major order (y, then x); the carried object comes last.
    Walls and empty cells are not entities (the room layout is not part of this
    view). Padding rows are zero with mask 0.

    Args:
        width: Grid width.
        height: Grid height.
        max_entities: Rows of the entity array; ``None``: every inner cell plus a
            carried object, which can never overflow.
        max_tokens: Length of the mission token array.
    """

    def __init__(
        self,
        width: int,
        height: int,
        max_entities: int | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        self.width = checks.positive_int("width", width, numpy=True)
        self.height = checks.positive_int("height", height, numpy=True)
        default = max(width - 2, 1) * max(height - 2, 1) + 1
        self.max_entities = default if max_entities is None else checks.positive_int(
            "max_entities", max_entities, numpy=True)
        self.max_tokens = checks.positive_int("max_tokens", max_tokens, numpy=True)
        reach = max(width, height) - 1
        low = np.zeros(ENTITY_DIM, np.float32)
        high = np.array(
            [max(OBJECT_TO_IDX.values()), max(COLOR_TO_IDX.values()), 2, width - 1, height - 1,
             reach, reach, 1],
            np.float32,
        )  # fmt: skip
        low[5:7] = -reach
        self.space = spaces.Dict(
            {
                "entities": spaces.Box(
                    np.tile(low, (self.max_entities, 1)),
                    np.tile(high, (self.max_entities, 1)),
                    dtype=np.float32,
                ),
                "mask": spaces.Box(0.0, 1.0, (self.max_entities,), np.float32),
                "mission": spaces.Box(0, len(VOCABULARY) - 1, (self.max_tokens,), np.int64),
                "direction": spaces.Discrete(4),
                "position": spaces.Box(
                    np.zeros(2, np.float32),
                    np.array([width - 1, height - 1], np.float32),
                    dtype=np.float32,
                ),
            }
        )

    def encode(self, task: _MiniGridBase) -> dict[str, Any]:
        """The observation of ``task``'s current state (fresh arrays every call).

        Raises:
            RuntimeError: If the scene holds more entities than ``max_entities``.
        """
        grid = task.grid.encode()  # (W, H, 3): object, colour, state
        # Row-major (y, x) order: transpose to (H, W, 3) before selecting.
        cells = grid.transpose(1, 0, 2)
        ys, xs = np.nonzero(~np.isin(cells[:, :, 0], _SKIPPED))
        rows = [cells[ys, xs].astype(np.float32)]
        positions = [np.stack([xs, ys], axis=1)]
        carried = [np.zeros(len(xs), np.float32)]
        agent = np.asarray(task.agent_pos, np.int64)
        if task.carrying is not None:
            rows.append(np.asarray([task.carrying.encode()], np.float32))
            positions.append(agent[None, :])
            carried.append(np.ones(1, np.float32))
        features = np.concatenate(rows)
        count = len(features)
        if count > self.max_entities:
            raise RuntimeError(
                f"the scene holds {count} entities, more than max_entities={self.max_entities}"
            )
        where = np.concatenate(positions)
        forward_vec = DIR_TO_VEC[task.agent_dir]
        right_vec = np.array([-forward_vec[1], forward_vec[0]])
        offsets = where - agent
        entities = np.zeros((self.max_entities, ENTITY_DIM), np.float32)
        entities[:count, :3] = features
        entities[:count, 3:5] = where
        entities[:count, 5] = offsets @ forward_vec
        entities[:count, 6] = offsets @ right_vec
        entities[:count, 7] = np.concatenate(carried)
        mask = np.zeros(self.max_entities, np.float32)
        mask[:count] = 1.0
        return {
            "entities": entities,
            "mask": mask,
            "mission": tokenize_mission(str(task.mission), self.max_tokens),
            "direction": int(task.agent_dir),
            "position": agent.astype(np.float32),
        }


def decode_entities(observation: dict[str, Any]) -> list[dict[str, int]]:
    """The real (unmasked) entity rows of an observation as dicts of ints (for tests, logs)."""
    rows = np.asarray(observation["entities"])[np.asarray(observation["mask"]) > 0]
    return [dict(zip(ENTITY_FEATURES, map(int, row), strict=True)) for row in rows]


def entity_object(row: dict[str, int]) -> WorldObj:
    """The ``minigrid`` object an entity row describes (type, colour, state).

    Raises:
        ValueError: If the row describes an empty cell.
    """
    obj = WorldObj.decode(row["type"], row["color"], row["state"])
    if obj is None:
        raise ValueError(f"entity row {row} describes an empty cell, not an object")
    return obj


class EntityMiniGridEnv(MiniGridEnv):
    """A MiniGrid or BabyAI task seen as a set of entities plus the mission.

    ## Description
    :class:`~gengap.envs.minigrid.MiniGridEnv` (same task, levels, rewards and
    termination) with one more observation mode, ``"entities"``, the default.

    ## Observation Space
    ``obs_mode="entities"``: a ``Dict`` (:class:`EntityEncoder` documents the rows):

    - ``"entities"``: ``Box((max_entities, 8), float32)``: type, colour, state, x,
      y, forward, right, carried per entity; zero padding.
    - ``"mask"``: ``Box(0, 1, (max_entities,), float32)``: 1 for real rows.
    - ``"mission"``: ``Box(0, len(VOCABULARY) - 1, (max_tokens,), int64)``: the
      mission's token ids (:func:`tokenize_mission`), 0-padded.
    - ``"direction"``: ``Discrete(4)``: the agent's direction (0 east, 1 south,
      2 west, 3 north).
    - ``"position"``: ``Box((2,), float32)``: the agent's cell (x, y).

    The entities are the whole grid's objects (fully observed), exactly the
    non-empty, non-wall cells of ``grid.encode()`` plus the carried object.
    The other modes are :class:`~gengap.envs.minigrid.MiniGridEnv`'s.

    ## Action Space
    ``Discrete(7)``: left, right, forward, pickup, drop, toggle, done.

    ## Rewards
    The task's: ``1 - 0.9 * step_count / max_steps`` on success, else 0.

    ## Termination
    As :class:`~gengap.envs.minigrid.MiniGridEnv`.

    ## Generalization axis / splits
    Levels are reset seeds, as :class:`~gengap.envs.minigrid.MiniGridEnv`.

    Args:
        task: A ``minigrid`` id such as ``"BabyAI-GoToLocal-v0"``.
        split: The split (``Split`` or its dict); ``None`` gives ``"minigrid-200"``.
        part: The split part to draw levels from.
        obs_mode: ``"entities"`` or one of MiniGridEnv's modes.
        max_entities: Entity rows; ``None`` fits any scene of the grid.
        max_tokens: Mission token slots.
        **kwargs: ``render_mode``, ``max_repeats``, ``max_steps`` (see MiniGridEnv).

    Raises:
        ValueError: For an unknown obs_mode or non-positive sizes (and MiniGridEnv's errors).
    """

    def __init__(
        self,
        task: str,
        split: Split | dict[str, Any] | None = None,
        part: str = "train",
        obs_mode: str = "entities",
        max_entities: int | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        **kwargs: Any,
    ) -> None:
        if obs_mode not in OBS_MODES:
            raise InputError(unknown_name_message("obs_mode", obs_mode, OBS_MODES))
        entities = obs_mode == "entities"
        super().__init__(
            task, split=split, part=part, obs_mode="image" if entities else obs_mode, **kwargs
        )
        self.obs_mode = obs_mode
        self._encoder = EntityEncoder(
            self._inner.width, self._inner.height, max_entities, max_tokens
        )
        if entities:
            self.observation_space = self._encoder.space  # type: ignore[assignment]

    def _observation(self, image: np.ndarray) -> Any:
        if self.obs_mode == "entities":
            return self._encoder.encode(self._inner)
        return super()._observation(image)


class EntityObservation(gymnasium.ObservationWrapper[dict[str, Any], Any, Any]):
    """Replace a gengap MiniGrid/BabyAI env's observation with the entity observation.

    Works on any env whose ``unwrapped`` is a :class:`~gengap.envs.minigrid.MiniGridEnv`
    (including the compositional BabyAI envs), whatever its ``obs_mode``.

    Args:
        env: The env to wrap.
        max_entities: Entity rows; ``None`` fits any scene of the grid.
        max_tokens: Mission token slots.

    Raises:
        TypeError: If ``env.unwrapped`` is not a gengap MiniGridEnv.
    """

    def __init__(
        self,
        env: gymnasium.Env[Any, Any],
        max_entities: int | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        base = env.unwrapped
        if not isinstance(base, MiniGridEnv):
            raise TypeError(
                "EntityObservation needs a gengap MiniGridEnv underneath, got "
                f"{type(base).__name__}"
            )
        super().__init__(env)
        task = base.unwrapped_task
        self._task = task
        self._encoder = EntityEncoder(task.width, task.height, max_entities, max_tokens)
        self.observation_space = self._encoder.space

    def observation(self, observation: Any) -> dict[str, Any]:
        return self._encoder.encode(self._task)


# gengap id -> minigrid task (the BabyAI local levels, and one MiniGrid task with doors)
_ENTITY_TASKS: dict[str, str] = {
    "gengap/babyai-gotolocal-entities-v0": "BabyAI-GoToLocal-v0",
    "gengap/babyai-putnextlocal-entities-v0": "BabyAI-PutNextLocal-v0",
    "gengap/minigrid-doorkey-5x5-entities-v0": "MiniGrid-DoorKey-5x5-v0",
}


def register_entity_envs() -> None:
    """Register the entity-observation ids (once, at import of this module)."""
    from gengap.envs.minigrid import DEFAULT_SPLIT

    for env_id, task in _ENTITY_TASKS.items():
        family = env_id.split("/")[1].split("-")[0]
        register_env(
            env_id,
            "gengap.envs.entities:EntityMiniGridEnv",
            family=family,
            axes=("levels",),
            default_split=DEFAULT_SPLIT,
            kwargs={"task": task},
            tags={"minigrid", family, "entities"},
            description=f"{task} with entity observations (objects + mission tokens)",
            default_score="success",  # episodes report info["success"]
        )


register_entity_envs()
