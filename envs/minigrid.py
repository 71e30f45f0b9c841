"""MiniGrid and BabyAI levels, split by reset seed.

One class, :class:`MiniGridEnv`, serves every ``gengap/minigrid-*`` and
``gengap/babyai-*`` id through its ``task`` argument (the ``minigrid``
package's own id). A MiniGrid level *is* the seed its generator is reset with,
so the level axis of a :class:`~gengap.envs.splits.Split` is a set of those
seeds.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from typing import Any

import gymnasium
import minigrid  # noqa: F401  (registers the MiniGrid-* and BabyAI-* ids)
import numpy as np
from gymnasium import spaces
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX
from minigrid.envs.babyai.core.roomgrid_level import RoomGridLevel
from minigrid.minigrid_env import MiniGridEnv as _MiniGridBase

from gengap.core import checks
from gengap.core.errors import InputError, unknown_name_message
from gengap.envs.registry import register_env
from gengap.envs.splits import Split, level_for_reset

OBS_MODES = ("image", "full", "rgb", "vector")
# Largest value of any channel of minigrid's symbolic encoding is OBJECT_TO_IDX["agent"] == 10.
_SYMBOL_SCALE = np.float32(0.1)
_RGB_TILE_SIZE = 8
_AGENT_CELL = (OBJECT_TO_IDX["agent"], COLOR_TO_IDX["red"])

DEFAULT_SPLIT = Split.levels_split(
    200, num_validation_levels=50, test_start=10_000, name="minigrid-200"
)


class MiniGridEnv(gymnasium.Env[np.ndarray, np.int64]):
    """A MiniGrid or BabyAI task whose levels come from one part of a split.

    ## Description
    Wraps the ``minigrid`` env ``task`` (e.g. ``"MiniGrid-DoorKey-8x8-v0"``,
    ``"BabyAI-GoToLocal-v0"``) without Gymnasium's checker wrappers, turns its
    dict observation into one array and reports the level seed and success.
    The mission string is in ``info["mission"]`` after reset; it is not part of
    the observation.

    ## Observation Space
    By ``obs_mode``:

    - ``"image"``: the agent's 7x7 partial view in minigrid's symbolic encoding
      (object, color, state), channel-first and divided by 10:
      ``Box(0, 1, (3, 7, 7), float32)``. SB3 then neither rescales nor transposes it.
    - ``"full"``: the whole grid in the same encoding, the agent's cell holding
      (agent, red, direction) as minigrid's ``FullyObsWrapper``: ``Box(0, 1, (3, W, H), float32)``.
    - ``"rgb"``: the partial view rendered at 8 pixels per tile (as
      ``RGBImgPartialObsWrapper``): ``Box(0, 255, (56, 56, 3), uint8)``.
    - ``"vector"``: the ``"image"`` array flattened, then a one-hot direction:
      ``Box(0, 1, (151,), float32)``.

    ## Action Space
    ``Discrete(7)``: left, right, forward, pickup, drop, toggle, done.

    ## Rewards
    The task's: ``1 - 0.9 * step_count / max_steps`` on success, else 0.

    ## Termination
    Terminates when the task ends (goal reached, lava, BabyAI mission done or
    failed); truncates at the task's ``max_steps``. With ``max_repeats=k`` an
    episode is also truncated (``info["repeated_state"] = True``) once one exact
    state (agent position and direction, carried object, full grid encoding) has
    been repeated ``k`` times, i.e. is visited for the ``k + 1``-th time. A
    memoryless greedy policy that loops (common on DoorKey and KeyCorridor under
    argmax actions) then ends early instead of burning the step budget; evaluation
    uses it so that looping is not mistaken for a generalization gap.

    ## Generalization axis / splits
    Levels: the seed the task's generator is reset with. ``reset(seed=s)`` seeds
    this env's ``np_random``, which draws a level seed uniformly from
    ``split.levels(part)``; ``reset(options={"level": n})`` picks level ``n``
    (it must be in that part). ``info["level_seed"]`` is set on every reset and
    step; ``info["success"]`` on the last step of an episode. Default split
    (``"minigrid-200"``): train 0..199, validation 200..249, test 10000 on.

    Args:
        task: A ``minigrid`` id such as ``"MiniGrid-DoorKey-8x8-v0"``.
        split: The split (``Split`` or its dict); ``None`` gives ``"minigrid-200"``.
        part: ``"train"``, ``"validation"`` or ``"test"``.
        obs_mode: ``"image"``, ``"full"``, ``"rgb"`` or ``"vector"``.
        render_mode: ``None``, ``"rgb_array"`` or ``"human"`` (passed to the task).
        max_repeats: Truncate an episode when one exact state has repeated this
            many times; ``None`` (default) never does.
        max_steps: Override of the task's step limit; ``None`` keeps the task's.

    Raises:
        ValueError: For an unknown task, part or obs_mode, a split without that
            part, or a non-positive ``max_repeats``/``max_steps``.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 10}

    def __init__(
        self,
        task: str,
        split: Split | dict[str, Any] | None = None,
        part: str = "train",
        obs_mode: str = "image",
        render_mode: str | None = None,
        max_repeats: int | None = None,
        max_steps: int | None = None,
    ) -> None:
        if not isinstance(task, str) or not task.startswith(("MiniGrid-", "BabyAI-")):
            raise InputError(f"task must be a MiniGrid-* or BabyAI-* id, got {task!r}")
        if task not in gymnasium.registry:
            known = [k for k in gymnasium.registry if k.startswith(("MiniGrid-", "BabyAI-"))]
            raise InputError(unknown_name_message("minigrid task", task, known))
        if obs_mode not in OBS_MODES:
            raise InputError(unknown_name_message("obs_mode", obs_mode, OBS_MODES))
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise InputError(
                f"render_mode must be None, 'rgb_array' or 'human', got {render_mode!r}"
            )
        checks.optional(checks.positive_int, "max_repeats", max_repeats)
        checks.optional(checks.positive_int, "max_steps", max_steps)
        resolved = Split.coerce(split, DEFAULT_SPLIT)
        self.split = resolved
        self.part = part
        self._levels = resolved.levels(part)  # raises for an unknown or missing part
        self.task = task
        self.obs_mode = obs_mode
        self.render_mode = render_mode
        self.max_repeats = max_repeats
        self._max_steps = max_steps

        self._inner = self._make_inner(render_mode)
        # BabyAI's rejection sampler prints every rejected layout to stdout.
        self._quiet_reset = isinstance(self._inner, RoomGridLevel)
        self.action_space = self._inner.action_space
        self.observation_space = self._build_observation_space()
        self._level_seed: int | None = None
        self._fingerprint: bytes | None = None
        self._visits: dict[tuple[Any, ...], int] = {}

    # -- construction -----------------------------------------------------------------
    def _make_inner(self, render_mode: str | None) -> _MiniGridBase:
        kwargs: dict[str, Any] = {"render_mode": render_mode}
        if self._max_steps is not None:
            kwargs["max_steps"] = self._max_steps
        # The passive checker and order-enforcing wrappers cost time on every step.
        inner = gymnasium.make(self.task, disable_env_checker=True, **kwargs).unwrapped
        if not isinstance(inner, _MiniGridBase):
            raise InputError(f"task {self.task!r} is not a minigrid environment")
        return inner

    def _build_observation_space(self) -> spaces.Box:
        view = self._inner.agent_view_size
        if self.obs_mode == "image":
            return spaces.Box(0.0, 1.0, (3, view, view), np.float32)
        if self.obs_mode == "full":
            return spaces.Box(0.0, 1.0, (3, self._inner.width, self._inner.height), np.float32)
        if self.obs_mode == "rgb":
            side = view * _RGB_TILE_SIZE
            return spaces.Box(0, 255, (side, side, 3), np.uint8)
        return spaces.Box(0.0, 1.0, (3 * view * view + 4,), np.float32)

    # -- observations -----------------------------------------------------------------
    def _observation(self, image: np.ndarray) -> np.ndarray:
        inner = self._inner
        if self.obs_mode == "image":
            return np.multiply(image.transpose(2, 0, 1), _SYMBOL_SCALE, dtype=np.float32)
        if self.obs_mode == "full":
            grid = inner.grid.encode()
            x, y = inner.agent_pos
            grid[x, y] = (*_AGENT_CELL, inner.agent_dir)
            return np.multiply(grid.transpose(2, 0, 1), _SYMBOL_SCALE, dtype=np.float32)
        if self.obs_mode == "rgb":
            return np.asarray(inner.get_frame(tile_size=_RGB_TILE_SIZE, agent_pov=True), np.uint8)
        flat = image.size
        vector = np.zeros(flat + 4, np.float32)
        np.multiply(image.transpose(2, 0, 1).reshape(-1), _SYMBOL_SCALE, out=vector[:flat])
        vector[flat + inner.agent_dir] = 1.0
        return vector

    def _state_key(self) -> tuple[Any, ...]:
        inner = self._inner
        carrying = inner.carrying.encode() if inner.carrying is not None else None
        return (tuple(inner.agent_pos), inner.agent_dir, carrying, inner.grid.encode().tobytes())

    # -- gymnasium API ----------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
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
        self._fingerprint = None
        obs_dict = self._reset_inner(self._inner, level)
        if self.max_repeats is not None:
            self._visits = {self._state_key(): 1}
        info = {"level_seed": level, "mission": self._inner.mission}
        return self._observation(obs_dict["image"]), info

    def _reset_inner(self, inner: _MiniGridBase, level: int) -> dict[str, Any]:
        if self._quiet_reset:
            with contextlib.redirect_stdout(io.StringIO()):
                obs, _ = inner.reset(seed=level)
        else:
            obs, _ = inner.reset(seed=level)
        return obs

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._level_seed is None:
            raise RuntimeError("call reset() before step()")
        obs_dict, inner_reward, terminated, truncated, _ = self._inner.step(action)
        reward = float(inner_reward)
        info: dict[str, Any] = {"level_seed": self._level_seed}
        if self.max_repeats is not None and not terminated:
            key = self._state_key()
            visits = self._visits.get(key, 0) + 1
            self._visits[key] = visits
            if visits > self.max_repeats:
                truncated = True
                info["repeated_state"] = True
        if terminated or truncated:
            info["success"] = bool(terminated and reward > 0)
        return self._observation(obs_dict["image"]), reward, terminated, truncated, info

    def render(self) -> Any:
        return self._inner.render()

    def close(self) -> None:
        self._inner.close()

    # -- gengap conventions -----------------------------------------------------------
    @property
    def level_seed(self) -> int | None:
        """The level being played (``None`` before the first reset)."""
        return self._level_seed

    @property
    def unwrapped_task(self) -> _MiniGridBase:
        """The ``minigrid`` env underneath (for scripted policies and tests)."""
        return self._inner

    def level_fingerprint(self) -> bytes:
        """SHA-1 of the current level's initial state: full grid encoding, agent
        position and direction, and the mission (two BabyAI levels with one layout
        but different instructions are different tasks).

        Raises:
            RuntimeError: Before the first reset.
        """
        if self._level_seed is None:
            raise RuntimeError("call reset() before level_fingerprint()")
        if self._fingerprint is None:
            inner = self._inner
            if inner.step_count != 0:
                # The grid has changed since reset: regenerate the level on a spare copy.
                inner = self._make_inner(None)
                self._reset_inner(inner, self._level_seed)
            digest = hashlib.sha1(inner.grid.encode().tobytes())
            digest.update(np.asarray([*inner.agent_pos, inner.agent_dir], np.int64).tobytes())
            digest.update(str(inner.mission).encode())
            self._fingerprint = digest.digest()
        return self._fingerprint


# gengap id suffix -> (minigrid id, what the agent must do)
_MINIGRID_TASKS: dict[str, tuple[str, str]] = {
    "doorkey-5x5": ("MiniGrid-DoorKey-5x5-v0", "pick up a key, open a door, reach the goal"),
    "doorkey-8x8": ("MiniGrid-DoorKey-8x8-v0", "pick up a key, open a door, reach the goal"),
    "multiroom-n2-s4": ("MiniGrid-MultiRoom-N2-S4-v0", "cross two small rooms to the goal"),
    "keycorridor-s3r1": ("MiniGrid-KeyCorridorS3R1-v0", "fetch a key, unlock the ball's room"),
    "empty-random-6x6": ("MiniGrid-Empty-Random-6x6-v0", "reach the goal (few distinct levels)"),
    "fourrooms": ("MiniGrid-FourRooms-v0", "reach the goal through four rooms"),
    "lavagap-s7": ("MiniGrid-LavaGapS7-v0", "cross a lava wall through its gap"),
    "simplecrossing-s9n1": ("MiniGrid-SimpleCrossingS9N1-v0", "reach the goal through a wall gap"),
}
_BABYAI_TASKS: dict[str, tuple[str, str]] = {
    "gotolocal": ("BabyAI-GoToLocal-v0", "go to the named object among distractors"),
    "pickuploc": ("BabyAI-PickupLoc-v0", "pick up an object described by its location"),
    "putnextlocal": ("BabyAI-PutNextLocal-v0", "put one named object next to another"),
    "goto-redball": ("BabyAI-GoToRedBall-v0", "go to the red ball among distractors"),
}


def register_minigrid_envs() -> None:
    """Register the gengap MiniGrid and BabyAI ids (once, at import of this module)."""
    for family, tasks in (("minigrid", _MINIGRID_TASKS), ("babyai", _BABYAI_TASKS)):
        for suffix, (task, description) in tasks.items():
            register_env(
                f"gengap/{family}-{suffix}-v0",
                "gengap.envs.minigrid:MiniGridEnv",
                family=family,
                axes=("levels",),
                default_split=DEFAULT_SPLIT,
                kwargs={"task": task},
                tags={"minigrid", family},
                description=f"{task}: {description}",
                default_score="success",  # episodes report info["success"]
            )


register_minigrid_envs()
