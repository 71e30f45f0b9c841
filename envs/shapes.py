"""A native object-centric shapes world: coloured shapes in a 2D arena, in pure numpy.

In the spirit of the OCRL benchmark's Spriteworld tasks, without the
``spriteworld`` package (it needs ``enum34``, which breaks Python 3.11's
``enum``). One class, :class:`ShapesEnv`, serves every ``gengap/shapes-*`` id
through its ``task``, ``action_type`` and ``obs_mode`` arguments.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from gengap.core import checks
from gengap.core.errors import InputError, InputTypeError, unknown_name_message
from gengap.envs.combinations import extrapolation_split
from gengap.envs.registry import register_env
from gengap.envs.splits import PARTS, Split, level_for_reset

# Colour palette (name -> RGB). None is white or grey: those are the agent and the target.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 190, 60),
    "blue": (40, 90, 240),
    "yellow": (240, 220, 40),
    "magenta": (220, 50, 220),
    "cyan": (40, 210, 220),
    "orange": (245, 140, 20),
    "purple": (130, 60, 190),
}
SHAPES = ("square", "circle", "triangle", "diamond")
FACTORS: dict[str, tuple[str, ...]] = {"color": tuple(COLORS), "shape": SHAPES}
AGENT_COLOR = (255, 255, 255)
TARGET_COLOR = (110, 110, 110)

TASKS = ("object_goal", "interaction", "odd_one_out")
ACTION_TYPES = ("discrete", "continuous")
OBS_MODES = ("slots", "pixels")

RESOLUTION = 64  # the arena is the unit square; pixels are RESOLUTION x RESOLUTION
_OBJECT_RADII_PX = (4, 5, 6)
_OBJECT_RADII = np.array(_OBJECT_RADII_PX) / RESOLUTION
_AGENT_RADIUS_PX = 4
_TARGET_RADIUS_PX = 4
STEP_SIZE = 4 / RESOLUTION  # one discrete move, and the top speed of a continuous one
SUCCESS_DISTANCE = 4 / RESOLUTION  # interaction: object centre within this of the target
_GAP = 2 / RESOLUTION  # free space kept between things at reset
_PLACEMENT_TRIES = 24  # candidate positions per thing before a layout is restarted
# Discrete actions: noop, up, down, left, right (y grows downwards, as in the image).
_MOVES = np.array([[0, 0], [0, -1], [0, 1], [-1, 0], [1, 0]], np.float64) * STEP_SIZE

# Slot layout: is_agent, colour one-hot, shape one-hot, x, y, radius.
_SLOT_COLOR = 1
_SLOT_SHAPE = _SLOT_COLOR + len(COLORS)
_SLOT_POS = _SLOT_SHAPE + len(SHAPES)
SLOT_DIM = _SLOT_POS + 3
# Goal layout: colour one-hot, shape one-hot, target x, y, compared attribute one-hot.
_GOAL_SHAPE = len(COLORS)
_GOAL_TARGET = _GOAL_SHAPE + len(SHAPES)
_GOAL_ATTRIBUTE = _GOAL_TARGET + 2
GOAL_DIM = _GOAL_ATTRIBUTE + 2

HELD_OUT_COUNTS = (5, 7)  # the count-generalization protocol: train on 2-4, test on 5-7
_DEFAULT_COUNTS = {"object_goal": (2, 4), "interaction": (2, 4), "odd_one_out": (3, 4)}
_DEFAULT_MAX_STEPS = {"object_goal": 50, "interaction": 100, "odd_one_out": 50}

DEFAULT_SPLIT = extrapolation_split(
    FACTORS,
    {"color": ("yellow",)},
    held_out=[
        ("red", "square"),
        ("green", "circle"),
        ("blue", "triangle"),
        ("purple", "diamond"),
        ("cyan", "square"),
    ],
    levels=Split.levels_split(
        10_000, num_validation_levels=1_000, test_start=100_000, name="shapes-levels"
    ),
    name="shapes-combinatorial",
)


def _stamp(shape: str, radius: int) -> np.ndarray:
    """Boolean mask of ``shape`` inside a ``(2r+1, 2r+1)`` box."""
    dy, dx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    if shape == "square":
        return np.ones_like(dx, bool)
    if shape == "circle":
        return dx * dx + dy * dy <= (radius + 0.3) ** 2
    if shape == "triangle":  # apex up, base on the bottom row
        return np.abs(dx) * 2 <= dy + radius
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= radius
    raise InputError(unknown_name_message("shape", shape, SHAPES))


_STAMPS = {(s, r): _stamp(s, r) for s in SHAPES for r in {*_OBJECT_RADII_PX, _AGENT_RADIUS_PX}}
_COLOR_ARRAY = np.array(list(COLORS.values()), np.uint8)


def _draw(canvas: np.ndarray, mask: np.ndarray, centre: np.ndarray, color: Any) -> None:
    """Paint ``mask`` centred on the pixel holding arena point ``centre`` (x, y), clipped."""
    radius = mask.shape[0] // 2
    col, row = int(centre[0] * RESOLUTION), int(centre[1] * RESOLUTION)
    top, left = row - radius, col - radius
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + mask.shape[0], RESOLUTION), min(left + mask.shape[1], RESOLUTION)
    if r0 >= r1 or c0 >= c1:
        return
    canvas[r0:r1, c0:c1][mask[r0 - top : r1 - top, c0 - left : c1 - left]] = color


def _count_range(name: str, value: Any, max_objects: int) -> tuple[int, int]:
    if (
        isinstance(value, str)
        or not isinstance(value, Sequence)
        or len(value) != 2
        or not all(checks.is_int(v, numpy=True) for v in value)
    ):
        raise InputTypeError(f"{name} must be a (min, max) pair of integers, got {value!r}")
    low, high = int(value[0]), int(value[1])
    if not 1 <= low <= high <= max_objects:
        raise InputError(
            f"{name} must satisfy 1 <= min <= max <= max_objects={max_objects}, got {value!r}"
        )
    return low, high


class ShapesEnv(gymnasium.Env[dict[str, Any], Any]):
    """Coloured shapes in a 2D arena, with tasks described by object attributes.

    ## Description
    The arena is the unit square, drawn at 64x64 pixels. It holds 1 to
    ``max_objects`` objects, each with a colour (8 named colours), a shape
    (square, circle, triangle, diamond), a size (radius 4, 5 or 6 pixels) and a
    position, and the agent (a white disc of radius 4 pixels). Tasks:

    - ``"object_goal"``: touch the object whose (colour, shape) the goal names.
      No other object shows that combination; others may share its colour or
      its shape, so the agent must bind both attributes.
    - ``"interaction"``: push the named object until its centre is within
      4 pixels of the target mark (a grey disc; its position is in the goal).
      Touching an object pushes it along the contact normal; a pushed object
      slides along walls (the agent stops against it) and objects do not push
      each other.
    - ``"odd_one_out"``: the goal names an attribute (colour or shape); every
      object but one shares a value of it; touch the one that differs. Needs at
      least 3 objects.

    Contact is between discs (an object's radius, whatever its shape). At reset
    the bounding boxes of the objects and the agent are apart, so nothing touches
    and every shape is drawn whole.

    ## Observation Space
    A ``Dict`` (SB3 trains on it with ``MultiInputPolicy``; for ``MlpPolicy`` wrap
    the slot mode in ``gymnasium.wrappers.FlattenObservation``):

    - ``obs_mode="slots"``: ``"slots"``: ``Box(0, 1, (max_objects + 1, 16), float32)``,
      one row per thing: is_agent, colour one-hot (8), shape one-hot (4), x, y,
      radius (arena units; y grows downwards). Row 0 is the agent; objects follow
      in a random order; padding rows are zero. ``"mask"``:
      ``Box(0, 1, (max_objects + 1,), float32)``, 1 for real rows.
    - ``obs_mode="pixels"``: ``"pixels"``: ``Box(0, 255, (64, 64, 3), uint8)``, the
      same scene drawn on black (target mark, then objects, then the agent on top).
    - Both: ``"goal"``: ``Box(0, 1, (16,), float32)``: colour one-hot (8), shape
      one-hot (4), target x, y (interaction), compared attribute one-hot
      (colour, shape; odd_one_out); parts a task does not use are zero.

    ## Action Space
    ``action_type="discrete"``: ``Discrete(5)``: noop, up, down, left, right, each
    moving 4 pixels. ``"continuous"``: ``Box(-1, 1, (2,), float32)``, a velocity
    (dx, dy) times 4 pixels per step.

    ## Rewards
    ``1 - 0.9 * steps / max_steps`` on success, else 0; plus, with
    ``distance_shaping=c``, ``c`` times the decrease of the task distance (agent
    to goal object; goal object to target for interaction) on every step.

    ## Termination
    object_goal and odd_one_out terminate when the agent touches any object
    (success if it is the right one); interaction terminates on success.
    Episodes truncate after ``max_steps`` (50; 100 for interaction).

    ## Generalization axis / splits
    Levels: ``reset(seed=s)`` seeds ``np_random``, which draws a level seed from
    ``split.levels(part)`` (or ``options={"level": n}`` names it); the scene is
    generated from a generator seeded by that level seed alone, so a level is
    the same scene whichever way it is reached. ``info["level_seed"]`` on every
    reset and step, ``info["success"]`` on the last step; ``info["objects"]``
    (each object's (colour, shape)) and ``info["goal_combination"]`` on reset.

    Combinations (factors ``color`` x ``shape``): the goal object's combination
    (the odd one for odd_one_out) is drawn from ``split.combinations_for(part)``;
    every other object from the *training* combinations, in every part. So no
    object in a train, validation or (IID) test episode shows a held-out
    combination, and in a held-out part only the goal object is new. A split
    without a combination axis allows every colour x shape pair. Default split
    ``"shapes-combinatorial"``: yellow held out entirely (extrapolation), red
    square, green circle, blue triangle, purple diamond and cyan square held out
    as combinations; train levels 0..9999, validation 10000..10999, test (and
    the held-out parts) from 100000 on.

    Counts: ``num_objects`` gives the (min, max) object count, one pair for every
    part or a ``{part: pair}`` mapping; default (2, 4) ((3, 4) for odd_one_out)
    in every part, so the held-out parts differ from training only in levels and
    combinations. The count protocol is ``num_objects=HELD_OUT_COUNTS`` (5-7) on
    a held-out part; the observation space depends only on ``max_objects``.

    Args:
        task: ``"object_goal"``, ``"interaction"`` or ``"odd_one_out"``.
        split: A ``Split`` or its dict; ``None`` gives ``"shapes-combinatorial"``.
        part: ``"train"``, ``"validation"``, ``"test"``, ``"combinatorial"`` or
            ``"extrapolation"``.
        obs_mode: ``"slots"`` or ``"pixels"``.
        action_type: ``"discrete"`` or ``"continuous"``.
        num_objects: ``(min, max)`` objects per scene, or ``{part: (min, max)}``.
        max_objects: Most objects any scene may hold (sets the slot count).
        max_steps: Step limit; ``None`` uses the task's default.
        distance_shaping: Weight of the dense distance reward (0 turns it off).
        render_mode: ``None`` or ``"rgb_array"``.

    Raises:
        ValueError: For unknown task/obs_mode/action_type/part, a split whose
            factors are not colour x shape from this palette, bad counts, or
            combinations that cannot fill a scene.
        TypeError: For arguments of the wrong type.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(
        self,
        task: str = "object_goal",
        split: Split | dict[str, Any] | None = None,
        part: str = "train",
        obs_mode: str = "slots",
        action_type: str = "discrete",
        num_objects: Sequence[int] | Mapping[str, Sequence[int]] | None = None,
        max_objects: int = 7,
        max_steps: int | None = None,
        distance_shaping: float = 0.0,
        render_mode: str | None = None,
    ) -> None:
        for name, value, options in (
            ("task", task, TASKS),
            ("obs_mode", obs_mode, OBS_MODES),
            ("action_type", action_type, ACTION_TYPES),
            ("part", part, PARTS),
        ):
            if value not in options:
                raise InputError(unknown_name_message(name, value, options))
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise InputError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        for name, limit in (("max_objects", max_objects), ("max_steps", max_steps)):
            if limit is not None:
                checks.positive_int(name, limit)
        checks.number("distance_shaping", distance_shaping)
        resolved = Split.coerce(split, DEFAULT_SPLIT)
        self.split: Split = resolved
        self.part = part
        self._levels = resolved.levels(part)  # raises for a part the split lacks
        self.task = task
        self.obs_mode = obs_mode
        self.action_type = action_type
        self.max_objects = max_objects
        self.max_steps = max_steps if max_steps is not None else _DEFAULT_MAX_STEPS[task]
        self.distance_shaping = float(distance_shaping)
        self.render_mode = render_mode
        self.num_objects = self._resolve_counts(num_objects)
        self._goal_pool, self._distractor_pool = self._combination_pools()
        distractors = self._distractor_pool
        # Per goal combination, the rows other objects may take (object_goal, interaction) ...
        self._others = {
            (int(c), int(sh)): distractors[np.any(distractors != (c, sh), axis=1)]
            for c, sh in self._goal_pool
        }
        # ... and for odd_one_out, per attribute: the rows showing each value, and the
        # values the others may share given the odd one's value.
        self._by_value = [
            {int(v): distractors[distractors[:, a] == v] for v in np.unique(distractors[:, a])}
            for a in (0, 1)
        ]
        self._odd_values = [
            {
                int(v): [w for w in self._by_value[a] if w != v]
                for v in range(len(COLORS) if a == 0 else len(SHAPES))
            }
            for a in (0, 1)
        ]

        unit = spaces.Box(0.0, 1.0, (GOAL_DIM,), np.float32)
        if obs_mode == "slots":
            slots = max_objects + 1
            self.observation_space = spaces.Dict(
                {
                    "slots": spaces.Box(0.0, 1.0, (slots, SLOT_DIM), np.float32),
                    "mask": spaces.Box(0.0, 1.0, (slots,), np.float32),
                    "goal": unit,
                }
            )
        else:
            self.observation_space = spaces.Dict(
                {
                    "pixels": spaces.Box(0, 255, (RESOLUTION, RESOLUTION, 3), np.uint8),
                    "goal": unit,
                }
            )
        self.action_space: spaces.Space[Any]
        if action_type == "discrete":
            self.action_space = spaces.Discrete(len(_MOVES))
        else:
            self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)

        self._level_seed: int | None = None
        self._fingerprint = b""
        self._initial_scene: tuple[np.ndarray, ...] = ()
        self._steps = 0
        self._agent = np.zeros(2)
        self._agent_radius = _AGENT_RADIUS_PX / RESOLUTION
        self._pos = np.zeros((0, 2))
        self._radius = np.zeros(0)
        self._colors = np.zeros(0, np.int64)
        self._shapes = np.zeros(0, np.int64)
        self._goal_index = 0
        self._target = np.zeros(2)
        self._goal = np.zeros(GOAL_DIM, np.float32)
        self._slots = np.zeros((max_objects + 1, SLOT_DIM), np.float32)
        self._mask = np.zeros(max_objects + 1, np.float32)
        self._background = np.zeros((RESOLUTION, RESOLUTION, 3), np.uint8)
        self._background_stale = True
        self._distance = 0.0

    # -- construction -----------------------------------------------------------------
    def _resolve_counts(self, num_objects: Any) -> tuple[int, int]:
        if num_objects is None:
            counts = _DEFAULT_COUNTS[self.task]
        elif isinstance(num_objects, Mapping):
            unknown = set(num_objects) - set(PARTS)
            if unknown:
                raise InputError(
                    f"num_objects has unknown part(s) {sorted(unknown)}; expected {list(PARTS)}"
                )
            counts = num_objects.get(self.part, _DEFAULT_COUNTS[self.task])
        else:
            counts = num_objects
        low, high = _count_range(f"num_objects for part {self.part!r}", counts, self.max_objects)
        if self.task == "odd_one_out" and low < 3:
            raise InputError(f"odd_one_out needs at least 3 objects, got num_objects={counts!r}")
        return low, high

    def _combination_pools(self) -> tuple[np.ndarray, np.ndarray]:
        """(colour index, shape index) rows the goal object and the others are drawn from."""
        axis = self.split.combinations
        if axis is None:
            every = np.array([(c, s) for c in range(len(COLORS)) for s in range(len(SHAPES))])
            return every, every
        if set(axis.factors) != set(FACTORS):
            raise InputError(
                f"split {self.split.name!r} has factors {list(axis.factors)}; the shapes world "
                f"needs exactly {list(FACTORS)}"
            )
        index: dict[str, dict[str | int, int]] = {
            name: {v: i for i, v in enumerate(values)} for name, values in FACTORS.items()
        }
        for name, values in axis.factors.items():
            unknown = [v for v in values if v not in index[name]]
            if unknown:
                raise InputError(
                    f"split {self.split.name!r} declares {name} value(s) {unknown} that the "
                    f"shapes world lacks (it has {list(FACTORS[name])})"
                )
        order = list(axis.factors)

        def rows(combos: frozenset[tuple[str | int, ...]]) -> np.ndarray:
            pairs = [
                (index["color"][c[order.index("color")]], index["shape"][c[order.index("shape")]])
                for c in combos
            ]
            return np.array(sorted(pairs), np.int64).reshape(-1, 2)

        goal_pool = rows(self.split.combinations_for(self.part))
        distractors = rows(self.split.combinations_for("train"))
        if self.task == "odd_one_out":
            for color, shape in goal_pool:
                if not (np.any(distractors[:, 0] != color) or np.any(distractors[:, 1] != shape)):
                    raise InputError(
                        f"odd_one_out cannot make ({list(COLORS)[color]!r}, {SHAPES[shape]!r}) "
                        "odd: every training combination shares its colour and its shape"
                    )
        elif self.num_objects[1] > 1 and len(distractors) < 2:
            raise InputError(
                "scenes with distractors need at least 2 training combinations, got "
                f"{len(distractors)}"
            )
        return goal_pool, distractors

    # -- level generation ---------------------------------------------------------------
    def _generate(self, level: int) -> None:
        rng = np.random.default_rng(level)
        count = int(rng.integers(self.num_objects[0], self.num_objects[1] + 1))
        goal = self._goal_pool[int(rng.integers(len(self._goal_pool)))]
        attribute = 0
        if self.task == "odd_one_out":
            feasible = [a for a in (0, 1) if self._odd_values[a][int(goal[a])]]
            attribute = feasible[int(rng.integers(len(feasible)))]
            values = self._odd_values[attribute][int(goal[attribute])]
            common = values[int(rng.integers(len(values)))]
            pool = self._by_value[attribute][common]
        else:
            pool = self._others[int(goal[0]), int(goal[1])]
        others = pool[rng.integers(len(pool), size=count - 1)] if count > 1 else pool[:0]
        combos = np.concatenate([goal[None], others])
        order = rng.permutation(count)
        combos = combos[order]
        self._goal_index = int(np.flatnonzero(order == 0)[0])
        self._colors, self._shapes = combos[:, 0].copy(), combos[:, 1].copy()
        self._radius = _OBJECT_RADII[rng.integers(len(_OBJECT_RADII), size=count)]

        radii = np.concatenate([self._radius, [self._agent_radius]])
        margins = np.zeros(count + 1)
        if self.task == "interaction":
            # The agent must be able to get behind the object, whichever way the target lies.
            margins[self._goal_index] = 2 * self._agent_radius + _GAP
        placed = self._place(rng, radii, margins)
        self._pos, self._agent = placed[:-1], placed[-1].copy()
        self._goal = np.zeros(GOAL_DIM, np.float32)
        self._target = np.zeros(2)
        if self.task == "odd_one_out":
            self._goal[_GOAL_ATTRIBUTE + attribute] = 1.0
        else:
            self._goal[goal[0]] = 1.0
            self._goal[_GOAL_SHAPE + goal[1]] = 1.0
        if self.task == "interaction":
            self._target = self._place_target(rng)
            self._goal[_GOAL_TARGET : _GOAL_TARGET + 2] = self._target

        self._slots[:] = 0.0
        self._mask[:] = 0.0
        self._mask[: count + 1] = 1.0
        self._slots[0, 0] = 1.0
        self._slots[0, _SLOT_POS + 2] = self._agent_radius
        rows = np.arange(1, count + 1)
        self._slots[rows, _SLOT_COLOR + self._colors] = 1.0
        self._slots[rows, _SLOT_SHAPE + self._shapes] = 1.0
        self._slots[rows, _SLOT_POS + 2] = self._radius
        self._sync_slots()
        self._background_stale = True

        # Hashed on demand (level_fingerprint), not on every reset.
        self._initial_scene = (placed, combos, self._radius, self._goal.copy())
        self._fingerprint = b""

    def _place(
        self, rng: np.random.Generator, radii: np.ndarray, margins: np.ndarray
    ) -> np.ndarray:
        """Centres whose boxes of half-width ``radii`` do not overlap, each at least
        its margin from the walls; the most constrained are placed first.

        Plain Python over one batch of uniform draws: with at most a few things to
        place, this is several times faster than numpy's per-call overhead.
        """
        count = len(radii)
        order = sorted(range(count), key=lambda k: -margins[k])
        low = (radii + margins).tolist()
        half = radii.tolist()
        for _ in range(50):
            draws = rng.random((count, _PLACEMENT_TRIES, 2)).tolist()
            centres: list[tuple[float, float]] = [(0.0, 0.0)] * count
            done: list[int] = []
            for i in order:
                span = 1.0 - 2.0 * low[i]
                for u, v in draws[i]:
                    x, y = low[i] + u * span, low[i] + v * span
                    # Chebyshev distance: the bounding boxes, and so the drawn shapes,
                    # stay apart (for discs alone the Euclidean one would do).
                    if all(
                        max(abs(x - centres[j][0]), abs(y - centres[j][1]))
                        >= half[j] + half[i] + _GAP
                        for j in done
                    ):
                        centres[i] = (x, y)
                        done.append(i)
                        break
                else:
                    break
            if len(done) == count:
                return np.array(centres)
        raise RuntimeError(f"could not place {count} things in the arena without overlap")

    def _place_target(self, rng: np.random.Generator) -> np.ndarray:
        """A target mark far enough from the goal object, off the walls (so it can be reached)."""
        margin = max(_OBJECT_RADII_PX) / RESOLUTION + _GAP + STEP_SIZE
        goal_pos = self._pos[self._goal_index]
        candidates = rng.uniform(margin, 1.0 - margin, size=(64, 2))
        far = np.linalg.norm(candidates - goal_pos, axis=1) >= 0.25
        return candidates[int(np.argmax(far))].copy()

    def _sync_slots(self) -> None:
        self._slots[0, _SLOT_POS : _SLOT_POS + 2] = self._agent
        self._slots[1 : len(self._pos) + 1, _SLOT_POS : _SLOT_POS + 2] = self._pos

    # -- observations -------------------------------------------------------------------
    def _task_distance(self) -> float:
        goal_pos = self._pos[self._goal_index]
        if self.task == "interaction":
            return float(np.hypot(*(goal_pos - self._target)))
        return float(np.hypot(*(goal_pos - self._agent)))

    def render_frame(self) -> np.ndarray:
        """The scene as a new ``(64, 64, 3)`` uint8 image."""
        if self._background_stale:
            background = self._background
            background[:] = 0
            if self.task == "interaction":
                disc = _STAMPS["circle", _TARGET_RADIUS_PX]
                _draw(background, disc, self._target, TARGET_COLOR)
            for i in range(len(self._pos)):
                mask = _STAMPS[SHAPES[self._shapes[i]], round(self._radius[i] * RESOLUTION)]
                _draw(background, mask, self._pos[i], _COLOR_ARRAY[self._colors[i]])
            self._background_stale = False
        frame = self._background.copy()
        _draw(frame, _STAMPS["circle", _AGENT_RADIUS_PX], self._agent, AGENT_COLOR)
        return frame

    def _observation(self) -> dict[str, np.ndarray]:
        if self.obs_mode == "slots":
            return {
                "slots": self._slots.copy(),
                "mask": self._mask.copy(),
                "goal": self._goal.copy(),
            }
        return {"pixels": self.render_frame(), "goal": self._goal.copy()}

    # -- gymnasium API ------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode on a level of this env's part.

        Args:
            seed: Seeds the level draw (and so the whole episode sequence).
            options: ``{"level": n}`` plays level ``n`` instead of drawing one.

        Raises:
            ValueError: If the level is not in this env's part, or an option is unknown.
            TypeError: If the level is not an integer.
        """
        super().reset(seed=seed)
        level = level_for_reset(
            options, self._levels, self.np_random, part=self.part, split_name=self.split.name
        )
        self._level_seed = level
        self._steps = 0
        self._generate(level)
        self._distance = self._task_distance()
        objects = self.scene_combinations()
        info = {
            "level_seed": level,
            "objects": objects,
            "goal_combination": objects[self._goal_index],
        }
        return self._observation(), info

    def _velocity(self, action: Any) -> np.ndarray:
        if self.action_type == "discrete":
            if not checks.is_int(action, numpy=True):
                action = np.asarray(action)
                if action.shape != () or action.dtype.kind not in "iu":
                    raise TypeError(f"action must be an integer in [0, 5), got {action!r}")
            if not 0 <= action < len(_MOVES):
                raise ValueError(f"action must be in [0, {len(_MOVES)}), got {action!r}")
            return _MOVES[int(action)]
        velocity = np.asarray(action, np.float64)
        if velocity.shape != (2,):
            raise ValueError(f"action must have shape (2,), got {velocity.shape}")
        return np.clip(velocity, -1.0, 1.0) * STEP_SIZE

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self._level_seed is None:
            raise RuntimeError("call reset() before step()")
        low, high = self._agent_radius, 1.0 - self._agent_radius
        moved = np.clip(self._agent + self._velocity(action), low, high)
        if self.task == "interaction":
            moved = self._push(moved)
        self._agent = moved
        self._sync_slots()
        self._steps += 1

        success = terminated = False
        if self.task == "interaction":
            goal_pos = self._pos[self._goal_index]
            success = terminated = bool(np.hypot(*(goal_pos - self._target)) <= SUCCESS_DISTANCE)
        else:
            offsets = self._pos - moved
            touching = np.hypot(offsets[:, 0], offsets[:, 1]) < self._radius + self._agent_radius
            if touching.any():
                terminated = True
                success = bool(touching[self._goal_index])
        truncated = not terminated and self._steps >= self.max_steps

        reward = 1.0 - 0.9 * self._steps / self.max_steps if success else 0.0
        if self.distance_shaping:
            distance = self._task_distance()
            reward += self.distance_shaping * (self._distance - distance)
            self._distance = distance
        info: dict[str, Any] = {"level_seed": self._level_seed}
        if terminated or truncated:
            info["success"] = success
        return self._observation(), float(reward), terminated, truncated, info

    def _push(self, moved: np.ndarray) -> np.ndarray:
        """Push every object the agent now overlaps out along the contact normal.

        A pushed object stays inside the arena (it slides along a wall) and the
        agent stops where it touches it; if that would leave the agent inside
        another object, nothing moves this step.
        """
        offsets = self._pos - moved
        distances = np.hypot(offsets[:, 0], offsets[:, 1])
        reach = self._radius + self._agent_radius
        touching = np.flatnonzero(distances < reach)
        if not len(touching):
            return moved
        pushed = self._pos.copy()
        agent = moved.copy()
        for i in touching:
            normal = offsets[i] if distances[i] > 1e-9 else moved - self._agent
            norm = np.hypot(*normal)
            if norm < 1e-9:
                continue
            radius = self._radius[i]
            pushed[i] = np.clip(moved + normal / norm * reach[i], radius, 1.0 - radius)
            gap = agent - pushed[i]
            gap_norm = np.hypot(*gap)
            if gap_norm < reach[i]:  # the wall stopped the object: the agent stops at it
                if gap_norm < 1e-9:
                    return self._agent.copy()
                agent = pushed[i] + gap / gap_norm * reach[i]
        low, high = self._agent_radius, 1.0 - self._agent_radius
        agent = np.clip(agent, low, high)
        offsets = pushed - agent
        if np.any(np.hypot(offsets[:, 0], offsets[:, 1]) < reach - 1e-6):
            return self._agent.copy()
        self._pos = pushed
        self._background_stale = True
        return agent

    def render(self) -> np.ndarray | None:
        if self.render_mode == "rgb_array":
            return self.render_frame()
        return None

    # -- gengap conventions -------------------------------------------------------------
    @property
    def level_seed(self) -> int | None:
        """The level being played (``None`` before the first reset)."""
        return self._level_seed

    def level_fingerprint(self) -> bytes:
        """SHA-1 of the level's initial scene: task, every position, combination and
        size, and the goal vector.

        Raises:
            RuntimeError: Before the first reset.
        """
        if self._level_seed is None:
            raise RuntimeError("call reset() before level_fingerprint()")
        if not self._fingerprint:
            placed, combos, radius, goal = self._initial_scene
            digest = hashlib.sha1(self.task.encode())
            digest.update(np.round(placed, 6).tobytes())
            digest.update(combos.astype(np.int64).tobytes())
            digest.update(np.round(radius, 6).tobytes())
            digest.update(goal.tobytes())
            self._fingerprint = digest.digest()
        return self._fingerprint

    def scene_combinations(self) -> tuple[tuple[str, str], ...]:
        """Each object's (colour, shape), in slot order (slot ``i + 1`` is object ``i``)."""
        names = list(COLORS)
        return tuple((names[c], SHAPES[s]) for c, s in zip(self._colors, self._shapes, strict=True))

    @property
    def goal_index(self) -> int:
        """Index of the goal object (odd_one_out: the odd one) in :meth:`scene_combinations`."""
        return self._goal_index

    @property
    def agent_position(self) -> np.ndarray:
        return self._agent.copy()

    @property
    def object_positions(self) -> np.ndarray:
        return self._pos.copy()

    @property
    def target_position(self) -> np.ndarray:
        """The interaction target (zeros for the other tasks)."""
        return self._target.copy()


_TASK_IDS = {
    "objectgoal": ("object_goal", "discrete", "reach the object named by colour and shape"),
    "objectgoal-continuous": (
        "object_goal",
        "continuous",
        "reach the named object (velocity actions)",
    ),
    "interaction": ("interaction", "discrete", "push the named object onto a target"),
    "interaction-continuous": (
        "interaction",
        "continuous",
        "push the named object onto a target (velocity actions)",
    ),
    "oddoneout": ("odd_one_out", "discrete", "reach the object that differs in an attribute"),
}

for _suffix, (_task, _action_type, _what) in _TASK_IDS.items():
    register_env(
        f"gengap/shapes-{_suffix}-v0",
        "gengap.envs.shapes:ShapesEnv",
        family="shapes",
        axes=("levels", "combinations", "counts"),
        default_split=DEFAULT_SPLIT,
        kwargs={"task": _task, "action_type": _action_type},
        tags={"shapes", "object-centric", "combinatorial"},
        description=f"shapes world: {_what} (obs_mode='slots' or 'pixels')",
        default_score="success",  # episodes report info["success"]
    )
