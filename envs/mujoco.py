"""Gymnasium's MuJoCo robots under physics contexts (sim-to-sim transfer).

One class, :class:`MujocoContextEnv`, serves every ``gengap/mujoco-*`` id through
its ``robot`` argument (a Gymnasium MuJoCo id). At every reset it writes the
episode's context into ``env.unwrapped.model`` *from the nominal values stored
once at construction*, so nothing drifts over thousands of resets, and it adds
the sim-to-real nuisances (observation noise, action noise, action delay).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.utils import EzPickle

from gengap.core import checks
from gengap.core.errors import InputError, unknown_name_message
from gengap.envs.contexts import kirk_split, split_param
from gengap.envs.headless import render_or_explain
from gengap.envs.registry import register_env
from gengap.envs.splits import Split, level_for_reset

# gengap name -> Gymnasium id
ROBOTS: dict[str, str] = {
    "halfcheetah": "HalfCheetah-v5",
    "hopper": "Hopper-v5",
    "walker2d": "Walker2d-v5",
    "ant": "Ant-v5",
    "invertedpendulum": "InvertedPendulum-v5",
}

# RRLS's uncertainty sets (SuReLI/RRLS, ``<Robot>ParamsBound``), in gengap parameter names:
# "worldfriction" is every geom's sliding friction, "<body>mass" a body's mass in kg.
RRLS_UNCERTAINTY_SETS: dict[str, dict[str, dict[str, tuple[float, float]]]] = {
    "hopper": {
        "1d": {"world_friction": (0.1, 3.0)},
        "2d": {"world_friction": (0.1, 3.0), "mass.torso": (0.1, 3.0)},
        "3d": {"world_friction": (0.1, 3.0), "mass.torso": (0.1, 3.0), "mass.thigh": (0.1, 4.0)},
    },
    "halfcheetah": {
        "1d": {"world_friction": (0.1, 3.0)},
        "2d": {"world_friction": (0.1, 4.0), "mass.torso": (0.1, 7.0)},
        "3d": {"world_friction": (0.1, 4.0), "mass.torso": (0.1, 7.0), "mass.bthigh": (0.1, 3.0)},
    },
}

# The default protocol of every robot: whole-robot mass and friction scales, with the
# "real robot" heavier, on a slipperier floor, and one control step late.
DEFAULT_RANGES = {"mass_scale": (0.75, 1.25), "friction_scale": (0.75, 1.25),
                  "action_delay": (0.0, 0.0)}
DEFAULT_EXTRAPOLATION = {"mass_scale": (0.5, 1.5), "friction_scale": (0.5, 1.5)}
DEFAULT_TARGET = {"mass_scale": 1.2, "friction_scale": 0.6, "action_delay": 1.0}


def default_split(train: str = "nominal", *, levels: Split | None = None) -> Split:
    """The default context protocol (:func:`~gengap.envs.contexts.kirk_split`) over
    ``mass_scale`` x ``friction_scale`` in [0.75, 1.25], extrapolating to 0.5 and 1.5,
    with the target ``mass_scale=1.2, friction_scale=0.6, action_delay=1``.

    Args:
        train: ``"nominal"`` (default), ``"box"`` (domain randomization) or ``"grid"``.
        levels: The level axis (initial-state seeds); default 0..9999 train, 10000 on test.
    """
    return kirk_split(
        DEFAULT_RANGES, DEFAULT_EXTRAPOLATION, train=train, target=DEFAULT_TARGET,
        levels=levels, name=f"mujoco-{train}",
    )


def rrls_split(
    robot: str, dims: str = "3d", *, train: str = "box", points_per_factor: int = 3,
    levels: Split | None = None,
) -> Split:
    """RRLS's uncertainty set as a split: train on its box (or the nominal robot),
    test on a ``points_per_factor`` grid over the box (``interpolation``), RRLS's
    worst-case evaluation.

    Args:
        robot: ``"hopper"`` or ``"halfcheetah"``.
        dims: ``"1d"``, ``"2d"`` or ``"3d"`` (RRLS's ONE_DIM, TWO_DIM, THREE_DIM).
        train: ``"box"`` or ``"nominal"``.
        points_per_factor: Grid points per parameter.
        levels: The level axis.

    Raises:
        InputError: For an unknown robot, set or train mode.
    """
    from gengap.envs.contexts import ContextAxis, ContextBox, with_contexts

    if robot not in RRLS_UNCERTAINTY_SETS:
        raise InputError(unknown_name_message("RRLS robot", robot, RRLS_UNCERTAINTY_SETS))
    sets = RRLS_UNCERTAINTY_SETS[robot]
    if dims not in sets:
        raise InputError(unknown_name_message(f"RRLS uncertainty set of {robot}", dims, sets))
    if train not in ("box", "nominal"):
        raise InputError(unknown_name_message("RRLS train mode", train, ("box", "nominal")))
    ranges = sets[dims]
    box = ContextBox(ranges=dict(ranges))
    params = tuple(ranges)
    columns = [np.linspace(lo, hi, points_per_factor) for lo, hi in ranges.values()]
    grid = [dict(zip(params, (float(v) for v in combo), strict=True))
            for combo in np.array(np.meshgrid(*columns, indexing="ij")).reshape(len(params), -1).T]
    nominal = nominal_context(robot, params)
    axis = ContextAxis(
        params=params,
        train_box=box if train == "box" else None,
        train_points=(nominal,) if train == "nominal" else (),
        held_out={"interpolation": [p for p in grid if p != nominal]},
        reference=box,
    )
    return with_contexts(axis, levels, name=f"rrls-{robot}-{dims}-{train}")


def nominal_context(robot: str, params: Sequence[str]) -> dict[str, float]:
    """The nominal value of each parameter for ``robot`` (read from its model).

    Raises:
        InputError: For an unknown robot or parameter.
    """
    if robot not in ROBOTS:
        raise InputError(unknown_name_message("robot", robot, ROBOTS))
    env = gymnasium.make(ROBOTS[robot], disable_env_checker=True)
    physics = _Physics(env.unwrapped.model)  # type: ignore[attr-defined]
    values = {p: physics.nominal_value(p) for p in params}
    env.close()
    return values


# The model arrays each parameter kind writes (the noises and the delay write none).
_ARRAYS: dict[str, tuple[str, ...]] = {
    "mass_scale": ("body_mass", "body_inertia"), "mass": ("body_mass", "body_inertia"),
    "friction_scale": ("geom_friction",), "friction": ("geom_friction",),
    "world_friction": ("geom_friction",), "damping_scale": ("dof_damping",),
    "damping": ("dof_damping",), "gear_scale": ("actuator_gear",), "gear": ("actuator_gear",),
    "gravity": ("gravity",), "obs_noise": (), "action_noise": (), "action_delay": (),
}
# Levels whose initial random state a MuJoCo env keeps (~0.5 kB each).
_LEVEL_STATES_KEPT = 20_000
_NEUTRAL_SCALES = frozenset({"mass_scale", "friction_scale", "damping_scale", "gear_scale"})
# A compiled context parameter: (name, its neutral value or None, the arrays it writes, its
# writer (None: it acts in the step), and for whole-model scales the writer that scales in
# place, used when another parameter wrote the arrays first; else None).
_Step = tuple[str, float | None, tuple[str, ...], "Callable[[float], None] | None",
              "Callable[[float], None] | None"]


class _Physics:
    """Writes contexts into a MuJoCo model, always starting from its nominal values."""

    def __init__(self, model: Any) -> None:
        import mujoco  # here, not at module level: registering the ids must stay cheap

        self._mujoco = mujoco
        self._resolved: dict[str, tuple[str, int | None]] = {}
        self._dirty: set[str] = set()
        self.model = model
        self.nominal = {
            "body_mass": model.body_mass.copy(),
            "body_inertia": model.body_inertia.copy(),
            "geom_friction": model.geom_friction.copy(),
            "dof_damping": model.dof_damping.copy(),
            "actuator_gear": model.actuator_gear.copy(),
            "gravity": model.opt.gravity.copy(),
        }
        # Views into the model's memory, fetched once (each attribute access builds a new one).
        self._views: dict[str, np.ndarray] = {
            "body_mass": model.body_mass, "body_inertia": model.body_inertia,
            "geom_friction": model.geom_friction, "dof_damping": model.dof_damping,
            "actuator_gear": model.actuator_gear, "gravity": model.opt.gravity,
        }
        self._plans: dict[tuple[str, ...], list[_Step]] = {}
        self.names = {
            "mass": self._names(mujoco.mjtObj.mjOBJ_BODY, model.nbody, skip_first=True),
            "friction": self._names(mujoco.mjtObj.mjOBJ_GEOM, model.ngeom),
            "damping": self._names(mujoco.mjtObj.mjOBJ_JOINT, model.njnt),
            "gear": self._actuator_names(),
        }

    def _names(self, kind: Any, count: int, skip_first: bool = False) -> dict[str, int]:
        out = {}
        for index in range(1 if skip_first else 0, count):
            name = self._mujoco.mj_id2name(self.model, kind, index)
            if name:
                out[name] = index
        return out

    def _actuator_names(self) -> dict[str, int]:
        """Actuators by name, and by the joint they drive (Hopper's are unnamed)."""
        out: dict[str, int] = {}
        mujoco = self._mujoco
        for index in range(self.model.nu):
            name = mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_ACTUATOR, index)
            joint = mujoco.mj_id2name(
                self.model, mujoco.mjtObj.mjOBJ_JOINT, int(self.model.actuator_trnid[index, 0])
            )
            for key in (name, joint):
                if key:
                    out.setdefault(key, index)
        return out

    def resolve(self, param: str) -> tuple[str, int | None]:
        """``param`` checked against this model: its kind and target index (cached).

        Raises:
            InputError: For an unknown parameter or an unknown body/geom/joint/actuator.
        """
        if param not in self._resolved:
            self._resolved[param] = self._resolve(param)
        return self._resolved[param]

    def _resolve(self, param: str) -> tuple[str, int | None]:
        kind, target = split_param(param)
        if target is None:
            return kind, None
        names = self.names[kind]
        if target not in names:
            what = {"mass": "body", "friction": "geom", "damping": "joint", "gear": "actuator"}
            raise InputError(
                f"context parameter {param!r}: {unknown_name_message(what[kind], target, names)}"
            )
        return kind, names[target]

    def nominal_value(self, param: str) -> float:
        kind, index = self.resolve(param)
        neutral = {"mass_scale": 1.0, "friction_scale": 1.0, "damping_scale": 1.0,
                   "gear_scale": 1.0, "obs_noise": 0.0, "action_noise": 0.0,
                   "action_delay": 0.0}
        if kind in neutral:
            return neutral[kind]
        if kind == "gravity":
            return float(self.nominal["gravity"][2])
        if kind == "world_friction":  # the floor's (geom 0), what the robot stands on
            return float(self.nominal["geom_friction"][0, 0])
        array, column = {"mass": ("body_mass", None), "friction": ("geom_friction", 0),
                         "damping": ("dof_damping", None), "gear": ("actuator_gear", 0)}[kind]
        if kind == "damping":
            index = int(self.model.jnt_dofadr[index])
        value = self.nominal[array][index] if column is None else self.nominal[array][index,
                                                                                      column]
        return float(value)

    def apply(self, context: Mapping[str, float]) -> None:
        """Write ``context`` into the model from the nominal values (scales before named
        values, so ``mass.torso`` wins over ``mass_scale`` for the torso).

        Only arrays that the previous or this context touch are written: the others still
        hold their nominal values. A whole-model scale writes ``nominal * value`` straight
        into its arrays; other arrays are restored from the nominal copy first. The writers
        of a set of parameter names are compiled once (a reset applies a context every
        episode, and the parameter names of a part never change).
        """
        keys = tuple(context)
        steps = self._plans.get(keys)
        if steps is None:
            steps = self._plans[keys] = self._compile(keys)
        touched: set[str] = set()
        from_nominal: set[str] = set()
        writes = []
        for param, neutral, arrays, write, scale_in_place in steps:
            value = context[param]
            if value == neutral or write is None:  # e.g. scale 1: nothing to write
                continue
            if scale_in_place is not None:  # a whole-model scale
                if touched.isdisjoint(arrays):
                    from_nominal.update(arrays)
                else:  # another parameter wrote these arrays first: scale what it wrote
                    write = scale_in_place
            touched.update(arrays)
            writes.append((write, value))
        views, nominal = self._views, self.nominal
        for array in (self._dirty | touched) - from_nominal:
            np.copyto(views[array], nominal[array])
        self._dirty = touched
        for write, value in writes:
            write(value)

    def _compile(self, params: Sequence[str]) -> list[_Step]:
        """The writers of ``params``, whole-model parameters first (see :meth:`apply`)."""
        steps = [self._step(param) for param in params]
        return sorted(steps, key=lambda step: split_param(step[0])[1] is not None)

    def _step(self, param: str) -> _Step:
        kind, index = self.resolve(param)
        views, nominal = self._views, self.nominal
        arrays = _ARRAYS[kind]
        if kind in _NEUTRAL_SCALES:
            return (param, 1.0, arrays, *self._scale_writers(kind))
        write: Callable[[float], None] | None = None
        mass, inertia = views["body_mass"], views["body_inertia"]
        friction, damping, gear = (views["geom_friction"], views["dof_damping"],
                                   views["actuator_gear"])
        if kind == "mass":
            body_mass = float(nominal["body_mass"][index])
            body_inertia = nominal["body_inertia"][index]

            def write(value: float) -> None:  # same shape, denser: inertia scales with mass
                mass[index] = value
                inertia[index] = body_inertia * (value / body_mass if body_mass else 1.0)
        elif kind == "friction":
            def write(value: float) -> None:
                friction[index, 0] = value
        elif kind == "world_friction":
            def write(value: float) -> None:
                friction[:, 0] = value
        elif kind == "damping":
            start = int(self.model.jnt_dofadr[index])
            width = {0: 6, 1: 3}.get(int(self.model.jnt_type[index]), 1)  # free, ball, else 1

            def write(value: float) -> None:
                damping[start:start + width] = value
        elif kind == "gear":
            def write(value: float) -> None:
                gear[index, 0] = value
        elif kind == "gravity":
            gravity = views["gravity"]

            def write(value: float) -> None:
                gravity[2] = value
        # obs_noise, action_noise and action_delay act in the env's step, not the model
        return param, None, arrays, write, None

    def _scale_writers(
        self, kind: str
    ) -> tuple[Callable[[float], None], Callable[[float], None]]:
        """A whole-model scale's writers: ``nominal * value`` written over its arrays (no
        restore needed), and ``*= value`` for arrays another parameter wrote first."""
        targets = [(self._views[a], self.nominal[a]) for a in _ARRAYS[kind]]
        if kind == "friction_scale":  # sliding friction only (column 0)
            factor = np.ones(targets[0][0].shape[1])

            def from_nominal(value: float) -> None:
                factor[0] = value
                np.multiply(targets[0][1], factor, out=targets[0][0])

            def in_place(value: float) -> None:
                targets[0][0][:, 0] *= value

            return from_nominal, in_place

        def scale_from_nominal(value: float) -> None:
            for view, nominal in targets:  # mass: inertia scales with it (same shape, denser)
                np.multiply(nominal, value, out=view)

        def scale_in_place(value: float) -> None:
            for view, _ in targets:
                view *= value

        return scale_from_nominal, scale_in_place


class MujocoContextEnv(gymnasium.Env[np.ndarray, np.ndarray], EzPickle):
    """A Gymnasium MuJoCo robot whose physics come from one part of a split.

    ## Description
    Wraps the Gymnasium MuJoCo env ``robot`` (e.g. ``"Hopper-v5"``). At reset the
    episode's context (see :mod:`gengap.envs.contexts`) is written into
    ``env.unwrapped.model``: ``mass_scale`` / ``mass.<body>`` (inertia scaled with
    the mass), ``friction_scale`` / ``world_friction`` / ``friction.<geom>`` (sliding
    friction; MuJoCo gives a contact the larger of its two geoms' values),
    ``damping_scale`` / ``damping.<joint>``, ``gear_scale`` / ``gear.<actuator>``,
    ``gravity`` (vertical, m/s^2); and in the step: ``obs_noise`` and
    ``action_noise`` (Gaussian std; noisy actions are clipped to the action
    bounds), ``action_delay`` (an action acts ``k`` steps later; the first ``k``
    steps apply zero). Every reset starts from the nominal model values stored
    at construction.

    ## Observation Space
    The robot's (``Box(-inf, inf, (n,), float64)``).

    ## Action Space
    The robot's (``Box(low, high, (m,), float32)``).

    ## Rewards
    The robot's.

    ## Termination
    The robot's (e.g. Hopper falls); truncated at ``max_episode_steps`` (default:
    the robot's registered limit, 1000).

    ## Generalization axis / splits
    Levels: the seed the robot's initial-state noise is drawn with. Contexts: the
    split's context axis (``train``/``validation``/``test`` use the training
    contexts, sampled per episode from a box or a set; the held-out context
    parts use the test levels). ``reset(seed=s)`` seeds this env's
    ``np_random``, which draws the level, the context and all noise;
    ``reset(options={"level": n, "context": {...}})`` picks them (they must be
    in the part). ``info["context"]`` and ``info["level_seed"]`` are set on
    every reset and step. A split without a context axis plays the nominal robot.

    Args:
        robot: A Gymnasium MuJoCo id (one of :data:`ROBOTS`' values).
        split: The split (``Split`` or its dict); ``None`` gives :func:`default_split`.
        part: A part of the split.
        max_episode_steps: Truncation limit (default: the robot's).
        render_mode: ``None`` or ``"rgb_array"``.

    Raises:
        InputError: For an unknown robot, part, parameter or body/geom/joint/actuator
            name (with close matches).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        robot: str,
        split: Split | dict[str, Any] | None = None,
        part: str = "train",
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        EzPickle.__init__(self, robot, split, part, max_episode_steps, render_mode)
        if robot not in ROBOTS.values():
            raise InputError(unknown_name_message("MuJoCo robot", robot, ROBOTS.values()))
        if render_mode not in (None, "rgb_array"):
            raise InputError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        checks.optional(checks.positive_int, "max_episode_steps", max_episode_steps)
        self.split = Split.coerce(split, DEFAULT_SPLIT)
        self.part = part
        self._levels = self.split.levels(part)  # raises for an unknown or missing part
        self.robot = robot
        self.render_mode = render_mode
        wrapped = gymnasium.make(robot, disable_env_checker=True, render_mode=render_mode)
        limit = wrapped.spec.max_episode_steps if wrapped.spec is not None else None
        self.max_episode_steps = max_episode_steps or limit or 1000
        inner: Any = wrapped.unwrapped
        self._inner = inner
        self._physics = _Physics(inner.model)
        axis = self.split.contexts
        if axis is not None:
            for param in axis.params:
                self._physics.resolve(param)  # unknown bodies, geoms, ... fail here
            if part not in ("train", "validation", "test"):
                axis.points(part)
        self.observation_space: spaces.Box = inner.observation_space
        self.action_space: spaces.Box = inner.action_space
        self._zero_action = np.clip(
            np.zeros(self.action_space.shape), self.action_space.low, self.action_space.high
        )
        self._context: dict[str, float] = {}
        self._level_seed: int | None = None
        self._elapsed = 0
        self._obs_noise = self._action_noise = 0.0
        self._queue: collections.deque[np.ndarray] = collections.deque()
        self._level_states: dict[int, Any] = {}  # level -> PCG64 state
        self._level_bits = np.random.PCG64()
        self._level_generator = np.random.Generator(self._level_bits)

    # -- gymnasium API ----------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode on a level and context of this env's part.

        Args:
            seed: Seeds the level, context and noise draws.
            options: ``{"level": n}`` and/or ``{"context": {param: value}}`` to pick them.

        Raises:
            InputError: For a level or context outside this env's part, or an unknown option.
        """
        super().reset(seed=seed)
        options = dict(options or {})
        forced = options.pop("context", None)
        level = level_for_reset(
            options, self._levels, self.np_random, part=self.part, split_name=self.split.name
        )
        axis = self.split.contexts
        if forced is not None:
            if axis is None:
                raise InputError(
                    f"options['context'] needs a split with a context axis; {self.split.name!r} "
                    "has none"
                )
            context = axis.allows(self.part, forced)
        else:
            context = {} if axis is None else axis.sample(self.part, self.np_random)
        self._physics.apply(context)
        self._context = context
        self._obs_noise = context.get("obs_noise", 0.0)
        self._action_noise = context.get("action_noise", 0.0)
        delay = int(context.get("action_delay", 0))
        self._queue = collections.deque([self._zero_action.copy() for _ in range(delay)])
        self._level_seed = level
        self._elapsed = 0
        # The level seeds the robot's initial-state noise: the same stream as
        # reset(seed=level) (both go through SeedSequence(level)), without Gymnasium's
        # per-call checks, which cost ~5% of steps/s on robots that fall every ~20 steps.
        # Seeding a PCG64 costs ~20 us, so each level's initial state is kept and set.
        state = self._level_states.get(level)
        if state is None:
            if len(self._level_states) >= _LEVEL_STATES_KEPT:
                self._level_states.clear()
            state = self._level_states[level] = np.random.PCG64(level).state
        self._level_bits.state = state
        self._inner.np_random = self._level_generator
        obs, _ = self._inner.reset()
        return self._observe(obs), {"level_seed": level, "context": dict(context)}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._level_seed is None:
            raise RuntimeError("call reset() before step()")
        action = np.asarray(action, dtype=np.float64)
        if self._action_noise:
            noise = self.np_random.normal(0.0, self._action_noise, action.shape)
            action = np.clip(action + noise, self.action_space.low, self.action_space.high)
        if self._queue:
            self._queue.append(action)
            action = self._queue.popleft()
        obs, reward, terminated, truncated, inner_info = self._inner.step(action)
        self._elapsed += 1
        truncated = bool(truncated) or self._elapsed >= self.max_episode_steps
        info = {**inner_info, "level_seed": self._level_seed, "context": dict(self._context)}
        return self._observe(obs), float(reward), bool(terminated), truncated, info

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        if self._obs_noise:
            return obs + self.np_random.normal(0.0, self._obs_noise, obs.shape)
        return obs

    def render(self) -> Any:
        """An RGB frame (``render_mode="rgb_array"``).

        Raises:
            RuntimeError: When no OpenGL backend is available, saying what to install or set.
        """
        return render_or_explain(self._inner)

    def close(self) -> None:
        self._inner.close()

    # -- gengap conventions -----------------------------------------------------------
    @property
    def context(self) -> dict[str, float]:
        """The context of the current episode (``{}``: the nominal robot)."""
        return dict(self._context)

    @property
    def level_seed(self) -> int | None:
        return self._level_seed

    @property
    def model(self) -> Any:
        """The MuJoCo model the contexts are written into."""
        return self._inner.model

    def nominal_arrays(self) -> dict[str, np.ndarray]:
        """Copies of the nominal model arrays every context starts from."""
        return {k: v.copy() for k, v in self._physics.nominal.items()}


DEFAULT_SPLIT = default_split("nominal")


def register_mujoco_envs() -> None:
    """Register ``gengap/mujoco-<robot>-v0`` for every robot in :data:`ROBOTS`."""
    for name, robot in ROBOTS.items():
        register_env(
            f"gengap/mujoco-{name}-v0",
            "gengap.envs.mujoco:MujocoContextEnv",
            family="mujoco",
            axes=("levels", "contexts"),
            default_split=DEFAULT_SPLIT,
            kwargs={"robot": robot},
            tags={"mujoco", "robotics"},
            description=f"{robot} under physics contexts (mass, friction, damping, gear, "
            "gravity, noise, delay)",
        )


register_mujoco_envs()
