"""Meta-World v3 manipulation tasks, split by task and by goal position.

One class, :class:`MetaWorldEnv`, serves every ``gengap/metaworld-*`` id. The
task axis is a :class:`~gengap.envs.combinations.CombinationAxis` with one
factor, ``task``: the training tasks are its training combinations, and the
held-out tasks of ML10/ML45 (never seen in training, so new values of the
factor) are its ``extrapolation`` part. Goal and object positions are levels:
level ``n`` places them with ``numpy.random.default_rng(n)`` inside the task's
own reset space, so gengap's seeding, not the global NumPy state, controls
them.

Why gengap draws the positions itself: Meta-World's ``reset(seed=...)`` ignores
its seed (its docstring says so; Metaworld issue 147 and later reports), and
with ``_freeze_rand_vec`` off it draws positions from the *global*
``np.random``. ``tests/test_metaworld.py`` checks both facts on the installed
version and that gengap's episodes are reproducible.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.utils import EzPickle

from gengap.core import checks
from gengap.core.errors import InputError, unknown_name_message
from gengap.envs.combinations import extrapolation_split
from gengap.envs.headless import render_or_explain
from gengap.envs.registry import register_env
from gengap.envs.splits import Split, level_for_reset

OBS_DIM = 39
# The 50 goal positions Meta-World samples per task, as training levels; held-out goals beyond.
GOAL_LEVELS = Split.levels_split(50, num_validation_levels=50, test_start=10_000,
                                 name="metaworld-goals-50")


# Meta-World 3.1's task lists (metaworld.env_dict), written out so that registering the ids
# does not import metaworld (~1 s); tests/test_metaworld.py checks they match the package.
ALL_TASKS = (
    "assembly-v3", "basketball-v3", "bin-picking-v3", "box-close-v3",
    "button-press-topdown-v3", "button-press-topdown-wall-v3", "button-press-v3",
    "button-press-wall-v3", "coffee-button-v3", "coffee-pull-v3", "coffee-push-v3",
    "dial-turn-v3", "disassemble-v3", "door-close-v3", "door-lock-v3", "door-open-v3",
    "door-unlock-v3", "hand-insert-v3", "drawer-close-v3", "drawer-open-v3", "faucet-open-v3",
    "faucet-close-v3", "hammer-v3", "handle-press-side-v3", "handle-press-v3",
    "handle-pull-side-v3", "handle-pull-v3", "lever-pull-v3", "pick-place-wall-v3",
    "pick-out-of-hole-v3", "pick-place-v3", "plate-slide-v3", "plate-slide-side-v3",
    "plate-slide-back-v3", "plate-slide-back-side-v3", "peg-insert-side-v3",
    "peg-unplug-side-v3", "soccer-v3", "stick-push-v3", "stick-pull-v3", "push-v3",
    "push-wall-v3", "push-back-v3", "reach-v3", "reach-wall-v3", "shelf-place-v3",
    "sweep-into-v3", "sweep-v3", "window-open-v3", "window-close-v3",
)
MT10_TASKS = (
    "reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-open-v3",
    "drawer-close-v3", "button-press-topdown-v3", "peg-insert-side-v3", "window-open-v3",
    "window-close-v3",
)
ML10_TRAIN = (
    "reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-close-v3",
    "button-press-topdown-v3", "peg-insert-side-v3", "window-open-v3", "sweep-v3",
    "basketball-v3",
)
ML10_TEST = ("drawer-open-v3", "door-close-v3", "shelf-place-v3", "sweep-into-v3",
             "lever-pull-v3")
ML45_TEST = ("bin-picking-v3", "box-close-v3", "hand-insert-v3", "door-lock-v3",
             "door-unlock-v3")
ML45_TRAIN = tuple(t for t in ALL_TASKS if t not in ML45_TEST)

# benchmark -> (training tasks, held-out tasks, goal observable by default)
BENCHMARKS: dict[str, tuple[tuple[str, ...], tuple[str, ...], bool]] = {
    "mt10": (MT10_TASKS, (), True),
    "mt50": (ALL_TASKS, (), True),
    "ml10": (ML10_TRAIN, ML10_TEST, False),
    "ml45": (ML45_TRAIN, ML45_TEST, False),
}


def task_split(benchmark: str, *, levels: Split | None = None) -> Split:
    """The training and held-out tasks of ``benchmark`` (``mt10``, ``mt50``, ``ml10``,
    ``ml45``, or ``mt1-<task>`` for one task), with goal positions as levels.

    Raises:
        InputError: For an unknown benchmark or task.
    """
    base = GOAL_LEVELS if levels is None else levels
    train: tuple[str, ...]
    held: tuple[str, ...]
    if benchmark.startswith("mt1-"):
        task = benchmark.removeprefix("mt1-")
        if task not in ALL_TASKS:
            raise InputError(unknown_name_message("Meta-World task", task, ALL_TASKS))
        train, held = (task,), ()
    elif benchmark in BENCHMARKS:
        train, held, _ = BENCHMARKS[benchmark]
    else:
        raise InputError(unknown_name_message("Meta-World benchmark", benchmark,
                                              [*BENCHMARKS, "mt1-<task>"]))
    factors = {"task": train + held}
    split = extrapolation_split(factors, {"task": held} if held else {}, levels=base,
                                name=f"metaworld-{benchmark}")
    return split


def custom_task_split(train: list[str], held_out: list[str], *, levels: Split | None = None,
                      name: str = "metaworld-custom") -> Split:
    """Train on ``train`` tasks, hold out ``held_out`` (Meta-World's ``CustomML``).

    Raises:
        InputError: For an unknown task, an empty training set, or a task in both
            (the combination axis names it).
    """
    for task in (*train, *held_out):
        if task not in ALL_TASKS:
            raise InputError(unknown_name_message("Meta-World task", task, ALL_TASKS))
    if not train:
        raise InputError("train must name at least one Meta-World task, got none")
    both = sorted(set(train) & set(held_out))
    if both:
        raise InputError(f"train and held-out tasks overlap in {both}; held-out tasks must be "
                         "disjoint from training tasks")
    return extrapolation_split({"task": tuple(train) + tuple(held_out)},
                               {"task": tuple(held_out)} if held_out else {},
                               levels=GOAL_LEVELS if levels is None else levels, name=name)


def goal_vector(reset_space: spaces.Box, level: int) -> np.ndarray:
    """The object/goal vector (Meta-World's ``rand_vec``) of ``level``: uniform in the
    task's ``_random_reset_space``, drawn with ``numpy.random.default_rng(level)``."""
    rng = np.random.default_rng(level)
    return rng.uniform(reset_space.low, reset_space.high, size=reset_space.low.size)


_COMPILED: dict[str, Any] = {}
_TASK_CLASSES: dict[str, type] = {}


def _task_class(task: str) -> Any:
    """Meta-World's class for ``task``, compiling its MuJoCo XML once per process.

    Compiling the XML is ~90% of building a task env (0.55 s); copying a compiled model
    takes 0.07 s. Every env still gets a model of its own.
    """
    if task not in _TASK_CLASSES:
        import copy

        import mujoco
        from metaworld import env_dict

        base: Any = env_dict.ALL_V3_ENVIRONMENTS[task]

        def _initialize_simulation(self: Any) -> tuple[Any, Any]:
            if self.fullpath not in _COMPILED:
                _COMPILED[self.fullpath] = mujoco.MjModel.from_xml_path(self.fullpath)
            model = copy.deepcopy(_COMPILED[self.fullpath])
            # as Gymnasium's MujocoEnv: grow the offscreen buffer to the render size
            model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
            model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
            return model, mujoco.MjData(model)

        _TASK_CLASSES[task] = type(base.__name__, (base,), {
            "_initialize_simulation": _initialize_simulation, "__module__": __name__})
    return _TASK_CLASSES[task]


class MetaWorldEnv(gymnasium.Env[np.ndarray, np.ndarray], EzPickle):
    """Meta-World v3 tasks, drawn per episode from one part of a task split.

    ## Description
    A Sawyer arm on a table; each episode plays one task (``reach-v3``,
    ``door-open-v3``, ...) with one placement of its object and goal.

    ## Observation Space
    ``Box(-inf, inf, (39,), float64)``: hand, gripper, object poses (twice, for
    the previous step) and the goal position (zeros when the goal is hidden, as
    in Meta-World's ML benchmarks). With ``task_one_hot`` the one-hot id of the
    task among the axis's declared tasks is appended (as in Meta-World's MT10).

    ## Action Space
    ``Box(-1, 1, (4,), float32)``: end-effector displacement and gripper.

    ## Rewards
    Meta-World's v2 reward (0..10 per step).

    ## Termination
    Never terminates unless ``terminate_on_success``; truncates after
    ``max_episode_steps`` (Meta-World's 500 at most). ``info["success"]`` is True
    from the first step where the task succeeded on (the episode succeeded if
    it is True at the end).

    ## Generalization axis / splits
    Tasks: the split's combination axis (factor ``task``); held-out tasks are
    its ``extrapolation`` part. Levels: goal/object placements, drawn from the
    level seed (see :func:`goal_vector`). ``reset(seed=s)`` seeds ``np_random``,
    which draws the task and the level; ``reset(options={"level": n, "task":
    name})`` picks them (they must be in the part). ``info["task"]`` and
    ``info["level_seed"]`` are set on every reset and step.

    Args:
        benchmark: ``mt10``, ``mt50``, ``ml10``, ``ml45`` or ``mt1-<task>``: the default split.
        split: A split with a ``task`` combination axis (default: :func:`task_split`).
        part: ``train``, ``validation``, ``test`` (training tasks) or ``extrapolation``
            (held-out tasks).
        goal_observable: Put the goal in the observation (default: the benchmark's).
        task_one_hot: Append the task's one-hot id (default: for MT benchmarks of more
            than one task).
        max_episode_steps: Truncation limit (1..500).
        terminate_on_success: End an episode at its first success.
        render_mode: ``None`` or ``"rgb_array"``.

    Raises:
        InputError: For an unknown benchmark, a split without a ``task`` axis, an unknown
            task or part, or a bad limit.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}

    def __init__(
        self,
        benchmark: str = "ml10",
        split: Split | dict[str, Any] | None = None,
        part: str = "train",
        goal_observable: bool | None = None,
        task_one_hot: bool | None = None,
        max_episode_steps: int = 500,
        terminate_on_success: bool = False,
        render_mode: str | None = None,
    ) -> None:
        EzPickle.__init__(self, benchmark, split, part, goal_observable, task_one_hot,
                          max_episode_steps, terminate_on_success, render_mode)
        default = task_split(benchmark)
        self.split = Split.coerce(split, default)
        self.part = part
        self._levels = self.split.levels(part)
        axis = self.split.combinations
        if axis is None or axis.factor_names != ("task",):
            raise InputError(
                f"split {self.split.name!r} needs a combination axis with one factor 'task' "
                "(see gengap.envs.metaworld.task_split)"
            )
        self._declared = tuple(str(t) for t in axis.factors["task"])
        for task in self._declared:
            if task not in ALL_TASKS:
                raise InputError(unknown_name_message("Meta-World task", task, ALL_TASKS))
        self._tasks = sorted(str(c[0]) for c in self.split.combinations_for(part))
        is_mt = benchmark.startswith("mt")
        self.goal_observable = is_mt if goal_observable is None else bool(goal_observable)
        default_one_hot = is_mt and len(self._declared) > 1  # one task needs no id
        self.task_one_hot = default_one_hot if task_one_hot is None else bool(task_one_hot)
        checks.int_in("max_episode_steps", max_episode_steps, 1, 500)
        if render_mode not in (None, "rgb_array"):
            raise InputError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.max_episode_steps = max_episode_steps
        self.terminate_on_success = bool(terminate_on_success)
        self.render_mode = render_mode
        extra = len(self._declared) if self.task_one_hot else 0
        self.observation_space = spaces.Box(-np.inf, np.inf, (OBS_DIM + extra,), np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, (4,), np.float32)
        self._envs: dict[str, Any] = {}
        self._env: Any = None
        self._task: str | None = None
        self._level_seed: int | None = None
        self._elapsed = 0
        self._succeeded = False

    def _inner(self, task: str) -> Any:
        if task not in self._envs:
            self._envs[task] = _task_class(task)(render_mode=self.render_mode)
        return self._envs[task]

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        if not self.task_one_hot:
            return obs.copy()
        one_hot = np.zeros(len(self._declared))
        one_hot[self._declared.index(self._task or "")] = 1.0
        return np.concatenate([obs, one_hot])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode: a task and a goal placement of this env's part.

        Args:
            seed: Seeds the task and level draws.
            options: ``{"level": n}`` and/or ``{"task": name}`` to pick them.

        Raises:
            InputError: For a task or level outside this env's part, or an unknown option.
        """
        super().reset(seed=seed)
        options = dict(options or {})
        task = options.pop("task", None)
        level = level_for_reset(options, self._levels, self.np_random, part=self.part,
                                split_name=self.split.name)
        if task is None:
            task = self._tasks[int(self.np_random.integers(len(self._tasks)))]
        elif task not in self._tasks:
            raise InputError(f"task {task!r} is not in the {self.part} tasks of split "
                             f"{self.split.name!r} ({', '.join(self._tasks)})")
        import metaworld

        env = self._inner(task)
        # Meta-World pickles the class into the task: name its own (our subclass's base)
        data = {"rand_vec": goal_vector(env._random_reset_space, level),
                "env_cls": type(env).__bases__[0],
                "partially_observable": not self.goal_observable}
        env.set_task(metaworld._encode_task(task, data))
        obs, _ = env.reset()
        self._env, self._task, self._level_seed = env, task, level
        self._elapsed, self._succeeded = 0, False
        return self._observe(obs), {"level_seed": level, "task": task}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._env is None:
            raise RuntimeError("call reset() before step()")
        action = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        obs, reward, _, _, inner_info = self._env.step(action)
        self._elapsed += 1
        self._succeeded = self._succeeded or bool(inner_info.get("success", 0.0))
        terminated = self.terminate_on_success and self._succeeded
        truncated = self._elapsed >= self.max_episode_steps and not terminated
        info = {**inner_info, "success": self._succeeded, "level_seed": self._level_seed,
                "task": self._task}
        return self._observe(obs), float(reward), terminated, truncated, info

    def render(self) -> Any:
        """An RGB frame of the current task (``render_mode="rgb_array"``).

        Raises:
            RuntimeError: Before reset, or when no OpenGL backend is available.
        """
        if self._env is None:
            raise RuntimeError("call reset() before render()")
        return render_or_explain(self._env)

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()

    @property
    def task(self) -> str | None:
        return self._task

    @property
    def level_seed(self) -> int | None:
        return self._level_seed


def register_metaworld_envs() -> None:
    """Register ``gengap/metaworld-{mt10,mt50,ml10,ml45,reach}-v0``."""
    entries = {
        "mt10": "MT10: one policy for 10 tasks (task one-hot, goal visible)",
        "ml10": "ML10: 10 training tasks, 5 held-out tasks (extrapolation part)",
        "ml45": "ML45: 45 training tasks, 5 held-out tasks (extrapolation part)",
        "mt1-reach-v3": "reach-v3 alone, goal positions as levels (cheap)",
    }
    for benchmark, description in entries.items():
        short = "reach" if benchmark == "mt1-reach-v3" else benchmark
        register_env(
            f"gengap/metaworld-{short}-v0",
            "gengap.envs.metaworld:MetaWorldEnv",
            family="metaworld",
            axes=("levels", "combinations"),
            default_split=task_split(benchmark),
            kwargs={"benchmark": benchmark},
            tags={"metaworld", "robotics"},
            description=description,
        )


register_metaworld_envs()
