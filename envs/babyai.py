"""BabyAI with held-out colour x type combinations (compositional splits).

:class:`CompositionalBabyAIEnv` wraps a BabyAI level (``minigrid``'s own code,
unforked) and, at reset, resamples the level's generator until the mission's
objects fit the split's combination axis for the env's part. The default split
holds out the BabyAI-Text "Mixed" combinations (yellow box, red key, red door,
green ball, grey door) that the level can generate. Recording BabyAI's expert bot
(``minigrid.utils.baby_ai_bot.BabyAIBot``) is dataset code: ``gengap.offline.collect``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from minigrid.core.constants import COLOR_NAMES
from minigrid.envs.babyai.core.roomgrid_level import RoomGridLevel
from minigrid.envs.babyai.core.verifier import (
    ActionInstr,
    ObjDesc,
    PutNextInstr,
    SeqInstr,
)
from minigrid.minigrid_env import MiniGridEnv as _MiniGridBase

from gengap.core import checks
from gengap.core.errors import InputError
from gengap.envs.combinations import Combination, combinatorial_split
from gengap.envs.entities import DEFAULT_MAX_TOKENS, EntityMiniGridEnv
from gengap.envs.registry import register_env
from gengap.envs.splits import LEVEL_PARTS, Split

# BabyAI-Text's "Mixed" held-out set (colour, type).
MIXED_HELD_OUT: tuple[Combination, ...] = (
    ("yellow", "box"),
    ("red", "key"),
    ("red", "door"),
    ("green", "ball"),
    ("grey", "door"),
)
# Object types a level can name in its mission. The local levels place only keys, balls
# and boxes (no doors), so the two door combinations of the Mixed set cannot occur there.
LEVEL_OBJECT_TYPES: dict[str, tuple[str, ...]] = {
    "BabyAI-GoToLocal-v0": ("ball", "box", "key"),
    "BabyAI-PickupLoc-v0": ("ball", "box", "key"),
    "BabyAI-PutNextLocal-v0": ("ball", "box", "key"),
}
_ANY_TYPES = ("ball", "box", "key", "door")
FACTOR_NAMES = ("color", "type")
DEFAULT_MAX_ATTEMPTS = 5000
_CACHE_LIMIT = 100_000


def mixed_split(task: str, *, levels: Split | None = None) -> Split:
    """The Mixed protocol on ``task``: train on every colour x type combination the level
    can generate except the Mixed set, test on the Mixed combinations it can generate.

    Args:
        task: A BabyAI id (its object types come from :data:`LEVEL_OBJECT_TYPES`; other
            levels get ball, box, key and door).
        levels: The level axis (default: train 0..9999, test from 10000 on).
    """
    types = LEVEL_OBJECT_TYPES.get(task, _ANY_TYPES)
    held_out = [combo for combo in MIXED_HELD_OUT if combo[1] in types]
    name = f"babyai-mixed-{task.removeprefix('BabyAI-').removesuffix('-v0').lower()}"
    return combinatorial_split(
        {"color": tuple(COLOR_NAMES), "type": types}, held_out, levels=levels, name=name
    )


def _descriptions(instr: Any) -> list[ObjDesc]:
    """The object descriptions of an instruction, the primary (acted-on) object first."""
    if isinstance(instr, SeqInstr):
        return _descriptions(instr.instr_a) + _descriptions(instr.instr_b)
    if isinstance(instr, PutNextInstr):
        return [instr.desc_move, instr.desc_fixed]
    if isinstance(instr, ActionInstr) and isinstance(getattr(instr, "desc", None), ObjDesc):
        return [instr.desc]  # type: ignore[attr-defined]
    raise TypeError(f"unsupported BabyAI instruction {type(instr).__name__}")


def mission_combinations(task: RoomGridLevel) -> list[tuple[str | None, str | None]]:
    """The (colour, type) each object description of the current mission names (either
    may be ``None`` when the description leaves it open), primary object first."""
    return [(desc.color, desc.type) for desc in _descriptions(task.instrs)]  # type: ignore[attr-defined]


def scene_combinations(task: _MiniGridBase, types: Iterable[str]) -> list[Combination]:
    """The (colour, type) of every object of the given types on the grid, row-major."""
    wanted = set(types)
    return [
        (obj.color, obj.type) for obj in task.grid.grid if obj is not None and obj.type in wanted
    ]


def _inner_seed(level: int, attempt: int) -> int:
    """The ``attempt``-th generator seed tried for ``level`` (a fixed function of both)."""
    state = np.random.SeedSequence([level, attempt]).generate_state(1, np.uint32)
    return int(state[0]) & 0x7FFFFFFF


class CompositionalBabyAIEnv(EntityMiniGridEnv):
    """A BabyAI level whose missions name only the combinations of the env's part.

    ## Description
    The BabyAI level ``task`` (e.g. ``"BabyAI-GoToLocal-v0"``) as
    :class:`~gengap.envs.entities.EntityMiniGridEnv` plays it, with every mission
    object's (colour, type) drawn from one part of a colour x type combination axis.

    ## Observation Space
    ``obs_mode="entities"`` (default): the entity set plus the mission tokens
    (:class:`~gengap.envs.entities.EntityMiniGridEnv`); the image modes of
    :class:`~gengap.envs.minigrid.MiniGridEnv` do not show the mission.

    ## Action Space
    ``Discrete(7)``: left, right, forward, pickup, drop, toggle, done.

    ## Rewards
    The level's: ``1 - 0.9 * step_count / max_steps`` on success, else 0.

    ## Termination
    The level's (mission done or failed; truncation at its ``max_steps``).

    ## Generalization axis / splits
    Two axes. Levels: ``reset(seed=s)`` draws a level seed from
    ``split.levels(part)`` (or ``options={"level": n}`` names one); the level seed
    then fixes the instance: BabyAI's generator is reset with the seeds
    ``g(level, 0), g(level, 1), ...`` (a hash of both) and the first instance
    accepted below is the level, so a level is always the same instance.
    ``info["level_seed"]`` on every reset and step, ``info["success"]`` on the last
    step, ``info["inner_seed"]`` and ``info["mission_combinations"]`` on reset.

    Combinations (factors ``color`` x ``type``): an instance is accepted for part
    ``p`` when

    - ``train``/``validation``/``test``: every object any mission description
      matches (e.g. both objects of "put the red ball next to a key", or every
      ball of "pick up a ball") has a training combination;
    - ``combinatorial``/``extrapolation``: the primary description (the object to
      go to, pick up or move) names colour and type, and that combination is one
      of the part's; objects matched by other descriptions (PutNext's second
      object) have training combinations, so only the goal object is new;
    - distractors: with ``held_out_distractors=False`` (default) every other
      object of a declared type has a training combination in every part, so a
      training scene never shows a held-out combination at all and a held-out
      scene shows it only as the mission's target. With ``True`` distractors may
      show any combination (never as a training mission's object).

    Default split (:func:`mixed_split`): the Mixed set restricted to what the
    level generates. GoToLocal, PickupLoc and PutNextLocal place only keys,
    balls and boxes, so they hold out yellow box, red key and green ball
    (15 training combinations); the door combinations are dropped. Levels:
    train 0..9999, test (and the held-out parts) from 10000 on.

    Args:
        task: A BabyAI id.
        split: A ``Split`` with a ``color`` x ``type`` combination axis (or its
            dict); ``None`` gives :func:`mixed_split` of ``task``.
        part: ``train``, ``validation``, ``test``, ``combinatorial`` or ``extrapolation``.
        obs_mode: ``"entities"`` or a MiniGridEnv mode.
        held_out_distractors: Whether distractors may show held-out combinations.
        max_attempts: Generator seeds tried per level before giving up.
        max_entities: Entity rows (``None``: fits any scene).
        max_tokens: Mission token slots.
        **kwargs: ``render_mode``, ``max_repeats``, ``max_steps`` (see MiniGridEnv).

    Raises:
        ValueError: For a non-BabyAI task, a split without a ``(color, type)`` axis,
            undeclared colours, types the level cannot name, or a bad ``max_attempts``.
        RuntimeError: At reset, if no instance of a level fits within ``max_attempts``.
    """

    def __init__(
        self,
        task: str,
        split: Split | dict[str, Any] | None = None,
        part: str = "train",
        obs_mode: str = "entities",
        held_out_distractors: bool = False,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        max_entities: int | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        **kwargs: Any,
    ) -> None:
        if not isinstance(task, str) or not task.startswith("BabyAI-"):
            raise InputError(f"task must be a BabyAI-* id, got {task!r}")
        resolved = mixed_split(task) if split is None else Split.coerce(split)
        checks.boolean("held_out_distractors", held_out_distractors)
        checks.positive_int("max_attempts", max_attempts)
        self._types = self._check_axis(task, resolved)
        super().__init__(
            task,
            split=resolved,
            part=part,
            obs_mode=obs_mode,
            max_entities=max_entities,
            max_tokens=max_tokens,
            **kwargs,
        )
        if not isinstance(self._inner, RoomGridLevel):
            raise InputError(f"task {task!r} is not a BabyAI level (RoomGridLevel)")
        self.held_out_distractors = held_out_distractors
        self.max_attempts = max_attempts
        self._train_combos = resolved.combinations_for("train")
        self._part_combos = resolved.combinations_for(part)
        self._held_out_part = part not in LEVEL_PARTS
        self._accepted: dict[int, int] = {}
        self._inner_seed: int | None = None

    @staticmethod
    def _check_axis(task: str, split: Split) -> tuple[str, ...]:
        axis = split.combinations
        if axis is None or axis.factor_names != FACTOR_NAMES:
            got = None if axis is None else axis.factor_names
            raise InputError(
                f"split {split.name!r} must have a combination axis with factors "
                f"{FACTOR_NAMES}, got {got}"
            )
        unknown_colors = [c for c in axis.factors["color"] if c not in COLOR_NAMES]
        if unknown_colors:
            raise InputError(
                f"split {split.name!r} declares colours {unknown_colors} that BabyAI does not "
                f"have (expected some of {list(COLOR_NAMES)})"
            )
        possible = LEVEL_OBJECT_TYPES.get(task, _ANY_TYPES)
        impossible = [t for t in axis.factors["type"] if t not in possible]
        if impossible:
            raise InputError(
                f"split {split.name!r} declares object types {impossible} that {task} never "
                f"names in a mission (it places {list(possible)})"
            )
        return tuple(str(t) for t in axis.factors["type"])

    # -- resampling ---------------------------------------------------------------------
    def _accepts(self, task: RoomGridLevel) -> bool:
        """Whether the generated instance fits this env's part (see the class docstring)."""
        descriptions = _descriptions(task.instrs)  # type: ignore[attr-defined]
        primary, others = descriptions[0], descriptions[1:]
        allowed = self._train_combos
        if self._held_out_part:
            # Only the primary object is new: the README's statement of the protocol.
            if (primary.color, primary.type) not in self._part_combos:
                return False
        else:
            others = descriptions
        matched: set[int] = set()
        for desc in descriptions:
            matched.update(id(obj) for obj in desc.obj_set)
        for desc in others:
            if any((obj.color, obj.type) not in allowed for obj in desc.obj_set):
                return False
        if self.held_out_distractors:
            return True
        return all(
            (obj.color, obj.type) in self._train_combos
            for obj in task.grid.grid
            if obj is not None and obj.type in self._types and id(obj) not in matched
        )

    def _reset_inner(self, inner: _MiniGridBase, level: int) -> dict[str, Any]:
        known = self._accepted.get(level)
        if known is not None:
            self._inner_seed = known
            return super()._reset_inner(inner, known)
        for attempt in range(self.max_attempts):
            seed = _inner_seed(level, attempt)
            obs = super()._reset_inner(inner, seed)
            if isinstance(inner, RoomGridLevel) and self._accepts(inner):
                if len(self._accepted) >= _CACHE_LIMIT:
                    self._accepted.clear()
                self._accepted[level] = seed
                self._inner_seed = seed
                return obs
        raise RuntimeError(
            f"no instance of {self.task} level {level} fits part {self.part!r} of split "
            f"{self.split.name!r} within max_attempts={self.max_attempts} generator seeds "
            f"(part combinations: {sorted(self._part_combos)})"
        )

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Start an episode on a level of this env's part (see MiniGridEnv.reset)."""
        obs, info = super().reset(seed=seed, options=options)
        info["inner_seed"] = self._inner_seed
        if isinstance(self._inner, RoomGridLevel):
            info["mission_combinations"] = mission_combinations(self._inner)
        return obs, info

    @property
    def inner_seed(self) -> int | None:
        """The generator seed of the current level's instance."""
        return self._inner_seed


# gengap id suffix -> (BabyAI id, what the agent must do)
_COMPOSITIONAL_TASKS: dict[str, tuple[str, str]] = {
    "gotolocal": ("BabyAI-GoToLocal-v0", "go to the named object"),
    "pickuploc": ("BabyAI-PickupLoc-v0", "pick up an object described by colour/type/location"),
    "putnextlocal": ("BabyAI-PutNextLocal-v0", "put one named object next to another"),
}


def register_babyai_envs() -> None:
    """Register the compositional BabyAI ids (once, at import of this module)."""
    for suffix, (task, description) in _COMPOSITIONAL_TASKS.items():
        register_env(
            f"gengap/babyai-{suffix}-compositional-v0",
            "gengap.envs.babyai:CompositionalBabyAIEnv",
            family="babyai",
            axes=("levels", "combinations"),
            default_split=mixed_split(task),
            kwargs={"task": task},
            tags={"babyai", "compositional"},
            description=f"{task}: {description}; Mixed colour x type combinations held out",
            default_score="success",  # episodes report info["success"]
        )


register_babyai_envs()
