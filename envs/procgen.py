"""Procgen: 16 procedurally generated games, split by level seed.

Two Gymnasium views over the native C++ ``ProcgenGym3Env`` of the ``procgen2``
wheel, both always built with explicit ``rand_seed``, ``num_levels``,
``start_level`` and ``distribution_mode``:

- :class:`ProcgenVecEnv`: a ``gymnasium.vector.VectorEnv`` over ONE native env
  with ``num=N`` (the fast path for training and evaluation);
- :class:`ProcgenEnv`: a single ``gymnasium.Env`` (``num=1``) for tools that
  need one: ``check_env``, the leakage check, evaluating one given level.

Importing this module registers ``gengap/procgen-<game>-v0`` for every game;
``procgen`` itself is imported lazily (it prints gym's notice and loads a C library).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, SupportsFloat

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from gengap.core import checks
from gengap.core.errors import InputError, unknown_name_message
from gengap.envs.registry import register_env
from gengap.envs.splits import PARTS, LevelSet, Split, level_for_reset

if TYPE_CHECKING:
    from procgen import ProcgenGym3Env

PROCGEN_GAMES: tuple[str, ...] = (
    "bigfish",
    "bossfight",
    "caveflyer",
    "chaser",
    "climber",
    "coinrun",
    "dodgeball",
    "fruitbot",
    "heist",
    "jumper",
    "leaper",
    "maze",
    "miner",
    "ninja",
    "plunder",
    "starpilot",
)

# Procgen ends an episode after this many steps (Cobbe et al. 2020).
EPISODE_LIMITS: dict[str, int] = {game: 1000 for game in PROCGEN_GAMES} | {
    "bigfish": 6000,
    "bossfight": 4000,
    "plunder": 4000,
    "leaper": 500,
    "maze": 500,
}

# (R_min, R_max) per distribution mode, from openai/train-procgen constants.py.
NORMALIZATION: dict[str, dict[str, tuple[float, float]]] = {
    "easy": {
        "bigfish": (1.0, 40.0),
        "bossfight": (0.5, 13.0),
        "caveflyer": (3.5, 12.0),
        "chaser": (0.5, 13.0),
        "climber": (2.0, 12.6),
        "coinrun": (5.0, 10.0),
        "dodgeball": (1.5, 19.0),
        "fruitbot": (-1.5, 32.4),
        "heist": (3.5, 10.0),
        "jumper": (1.0, 10.0),
        "leaper": (1.5, 10.0),
        "maze": (5.0, 10.0),
        "miner": (1.5, 13.0),
        "ninja": (3.5, 10.0),
        "plunder": (4.5, 30.0),
        "starpilot": (2.5, 64.0),
    },
    "hard": {
        "bigfish": (0.0, 40.0),
        "bossfight": (0.5, 13.0),
        "caveflyer": (2.0, 13.4),
        "chaser": (0.5, 14.2),
        "climber": (1.0, 12.6),
        "coinrun": (5.0, 10.0),
        "dodgeball": (1.5, 19.0),
        "fruitbot": (-0.5, 27.2),
        "heist": (2.0, 10.0),
        "jumper": (1.0, 10.0),
        "leaper": (1.5, 10.0),
        "maze": (4.0, 10.0),
        "miner": (1.5, 20.0),
        "ninja": (2.0, 10.0),
        "plunder": (3.0, 30.0),
        "starpilot": (1.5, 35.0),
    },
}

GAME_DESCRIPTIONS: dict[str, str] = {
    "bigfish": "eat smaller fish to grow, avoid bigger ones",
    "bossfight": "dodge and shoot down a boss ship",
    "caveflyer": "fly a ship through caves to a target",
    "chaser": "Pac-Man-like: collect orbs while chased",
    "climber": "climb platforms collecting stars",
    "coinrun": "platformer: reach the coin at the far right",
    "dodgeball": "hit enemies with balls, reach the exit",
    "fruitbot": "collect fruit, avoid non-fruit, scrolling",
    "heist": "collect keys to open locks, steal the gem",
    "jumper": "open-world platformer: find the carrot",
    "leaper": "Frogger-like: cross roads and rivers",
    "maze": "find the cheese in a maze",
    "miner": "dig for diamonds, avoid falling boulders",
    "ninja": "jump across ledges to the mushroom",
    "plunder": "shoot enemy ships, spare friendly ones",
    "starpilot": "side-scrolling shooter",
}

# Only these two have published normalization constants; "exploration" would
# override the split's levels, so it is not offered.
DISTRIBUTION_MODES: tuple[str, ...] = ("easy", "hard")
# Boolean rendering options of ProcgenGym3Env that may be passed through.
GAME_OPTIONS: frozenset[str] = frozenset(
    {
        "center_agent",
        "use_backgrounds",
        "use_monochrome_assets",
        "restrict_themes",
        "use_generated_assets",
        "paint_vel_info",
    }
)
NUM_ACTIONS = 15
OBS_SHAPE = (64, 64, 3)
_MAX_RAND_SEED = 2**31 - 1

DEFAULT_SPLIT = Split(
    train=LevelSet.range(0, 200),
    validation=LevelSet.range(200, 50),
    test=LevelSet.range(10_000, None),
    name="procgen-easy-200",
)


def normalized_return(game: str, ret: float | np.ndarray, mode: str = "easy") -> float | np.ndarray:
    """Normalized return ``(R - R_min) / (R_max - R_min)`` (Cobbe et al. 2020).

    Args:
        game: A Procgen game name, e.g. ``"coinrun"``.
        ret: A raw episode return, or an array of them.
        mode: Distribution mode whose constants to use: ``"easy"`` or ``"hard"``.

    Returns:
        A float for a scalar ``ret``, else an array of the same shape.

    Raises:
        ValueError: For an unknown game or mode.
    """
    checks.one_of("Procgen game", game, PROCGEN_GAMES)
    checks.one_of("distribution_mode", mode, DISTRIBUTION_MODES)
    r_min, r_max = NORMALIZATION[mode][game]
    value = (np.asarray(ret, dtype=np.float64) - r_min) / (r_max - r_min)
    return float(value) if value.ndim == 0 else value


def _game_options(options: dict[str, Any]) -> dict[str, bool]:
    return {checks.one_of("Procgen option", name, GAME_OPTIONS): checks.boolean(name, value)
            for name, value in options.items()}


def _resolve_levels(split: Split | dict[str, Any] | None, part: str) -> tuple[Split, LevelSet]:
    resolved = Split.coerce(split, DEFAULT_SPLIT)
    if part not in PARTS:
        raise InputError(unknown_name_message("split part", part, PARTS))
    return resolved, resolved.levels(part)


def _import_procgen() -> type[ProcgenGym3Env]:
    from procgen import ProcgenGym3Env

    return ProcgenGym3Env


def _make_gym3(
    num: int,
    game: str,
    distribution_mode: str,
    start_level: int,
    num_levels: int,
    rand_seed: int,
    num_threads: int,
    game_options: dict[str, bool],
) -> ProcgenGym3Env:
    ProcgenGym3Env = _import_procgen()
    return ProcgenGym3Env(
        num=num,
        env_name=game,
        distribution_mode=distribution_mode,
        start_level=start_level,
        num_levels=num_levels,
        rand_seed=rand_seed,
        num_threads=num_threads,
        **game_options,
    )


class _PicklesNativeState:
    """Pickling for classes holding a native gym3 env in ``_gym3``: the C++ state travels
    through Procgen's own ``get_state``/``set_state``, so an unpickled env continues the
    same episodes exactly."""

    _gym3: Any

    def _build(self, states: list[bytes] | None = None) -> None:
        raise NotImplementedError

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        gym3_env = state.pop("_gym3")
        state["_gym3_states"] = gym3_env.get_state() if gym3_env is not None else None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        states = state.pop("_gym3_states")
        self.__dict__.update(state)
        self._gym3 = None
        if states is not None:
            self._build(states)


class ProcgenVecEnv(_PicklesNativeState, VectorEnv):
    """``num_envs`` copies of one Procgen game, stepped natively in C++.

    ## Description
    A Gymnasium vector env over one ``ProcgenGym3Env(num=num_envs)``. Levels are
    drawn by Procgen's own sampler from the part's level range.

    ## Observation Space
    ``Box(0, 255, (num_envs, 64, 64, 3), uint8)``, RGB frames.

    ## Action Space
    ``MultiDiscrete([15] * num_envs)``.

    ## Rewards
    Procgen's game rewards (see :data:`NORMALIZATION` for each game's range).

    ## Termination
    Autoreset mode ``SAME_STEP``: on the step an episode ends, the returned
    observation is already the first frame of the next episode. **There is no
    ``final_obs``**: Procgen drops the true terminal frame. An episode that
    reaches the game's step limit (:data:`EPISODE_LIMITS`) without completing
    the level is reported as truncated, every other end as terminated.

    ## Infos
    Gymnasium vector layout (arrays with ``_key`` masks): ``level_seed`` on every
    reset and step (the level of the returned observation). On the step an
    episode ends: ``episode`` ``{"r", "l"}`` (return and length, as
    ``RecordEpisodeStatistics``), ``success`` (the level was completed),
    ``episode_level_seed`` (the finished episode's level) and ``excluded``.

    ## Generalization axis / splits
    Levels. The part's level set must be a range (``LevelSet.range``): Procgen
    samples natively from ``[start, stop)`` (unbounded: up to 2**31 - 1).
    Explicit-seed sets raise ``ValueError`` (use :class:`ProcgenEnv`). Seeds
    excluded from a range (duplicates found by the leakage check) cannot be
    skipped by the native sampler: episodes on them are still played, and
    flagged with ``excluded=True`` at their end so evaluation can drop them.

    Args:
        num_envs: Number of parallel games.
        game: One of :data:`PROCGEN_GAMES`.
        split: The split (dict, :class:`Split` or None for :data:`DEFAULT_SPLIT`).
        part: ``"train"``, ``"validation"`` or ``"test"``.
        distribution_mode: ``"easy"`` or ``"hard"``.
        num_threads: Procgen's worker threads (0 steps in the calling thread).
        render_mode: ``None`` or ``"rgb_array"`` (the current observations).
        **game_options: Boolean Procgen options in :data:`GAME_OPTIONS`.

    Raises:
        ValueError: For a bad game, part, mode, option, ``num_envs`` or an
            explicit-seed level set.
    """

    metadata: dict[str, Any] = {
        "autoreset_mode": AutoresetMode.SAME_STEP,
        "render_modes": ["rgb_array"],
        "render_fps": 15,
    }

    def __init__(
        self,
        num_envs: int = 1,
        game: str = "coinrun",
        split: Split | dict[str, Any] | None = None,
        part: str = "train",
        distribution_mode: str = "easy",
        num_threads: int = 4,
        render_mode: str | None = None,
        **game_options: bool,
    ) -> None:
        checks.positive_int("num_envs", num_envs)
        self.game = checks.one_of("Procgen game", game, PROCGEN_GAMES)
        self.distribution_mode = checks.one_of("distribution_mode", distribution_mode,
                                               DISTRIBUTION_MODES)
        self.split, self.levels = _resolve_levels(split, part)
        self.part = part
        if self.levels.seeds is not None:
            raise InputError(
                f"the {part!r} part of split {self.split.name!r} lists explicit level seeds; "
                "ProcgenVecEnv samples natively from a range (LevelSet.range). Use ProcgenEnv "
                "(gengap.envs.make without num_envs) to play explicit seeds"
            )
        if render_mode not in (None, "rgb_array"):
            raise InputError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.num_threads = checks.int_in("num_threads", num_threads, 0)
        self.game_options = _game_options(game_options)
        self.episode_limit = EPISODE_LIMITS[game]
        self._excluded = np.array(sorted(self.levels.exclude), dtype=np.int64)

        self.num_envs = num_envs
        self.single_observation_space = spaces.Box(0, 255, OBS_SHAPE, np.uint8)
        self.single_action_space = spaces.Discrete(NUM_ACTIONS)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

        self._gym3: ProcgenGym3Env | None = None
        self._rand_seed: int | None = None
        self._returns = np.zeros(num_envs, dtype=np.float64)
        self._lengths = np.zeros(num_envs, dtype=np.int64)
        self._last_obs: np.ndarray | None = None
        self._all_envs = np.ones(num_envs, dtype=bool)
        self._all_envs.flags.writeable = False

    @property
    def rand_seed(self) -> int | None:
        """Procgen's ``rand_seed`` of the current native env (None before ``reset``)."""
        return self._rand_seed

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start new episodes in every env by re-creating the native env.

        Args:
            seed: Seeds the env's ``np_random``, from which Procgen's ``rand_seed``
                is drawn (gym3 has no reset, so the env is rebuilt).
            options: Not supported (must be empty).
        """
        checks.optional(checks.int_in, "seed", seed, numpy=True)
        if options:
            raise InputError(f"ProcgenVecEnv.reset takes no options, got {sorted(options)}")
        super().reset(seed=seed)
        self._rand_seed = int(self.np_random.integers(0, _MAX_RAND_SEED))
        self._build()
        assert self._gym3 is not None
        _, ob, _ = self._gym3.observe()
        self._last_obs = ob["rgb"]
        infos = {
            "level_seed": self._gym3._info["level_seed"].copy(),
            "_level_seed": self._all_envs,
        }
        return self._last_obs, infos

    def _build(self, states: list[bytes] | None = None) -> None:
        if self._gym3 is not None:
            self._gym3.close()
        assert self._rand_seed is not None
        self._gym3 = _make_gym3(
            self.num_envs,
            self.game,
            self.distribution_mode,
            self.levels.start,
            self.levels.upper - self.levels.start,
            self._rand_seed,
            self.num_threads,
            self.game_options,
        )
        if states is not None:
            self._gym3.set_state(states)
        else:
            self._returns[:] = 0.0
            self._lengths[:] = 0

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every env; ended episodes restart at once (``SAME_STEP``)."""
        gym3_env = self._gym3
        if gym3_env is None:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), got {actions.shape}")
        if actions.min() < 0 or actions.max() >= NUM_ACTIONS:
            raise ValueError(f"actions must be in [0, {NUM_ACTIONS}), got {actions}")
        gym3_env.act(actions)
        rewards, ob, first = gym3_env.observe()
        raw_info = gym3_env._info
        obs = ob["rgb"]
        self._last_obs = obs
        rewards = rewards.astype(np.float64)
        self._returns += rewards
        self._lengths += 1
        infos: dict[str, Any] = {
            "level_seed": raw_info["level_seed"].copy(),
            "_level_seed": self._all_envs,
        }
        if not first.any():
            no_end = np.zeros(self.num_envs, dtype=bool)
            return obs, rewards, no_end, no_end.copy(), infos

        success = first & (raw_info["prev_level_complete"] != 0)
        truncations = first & ~success & (self._lengths >= self.episode_limit)
        terminations = first & ~truncations
        episode_level_seed = raw_info["prev_level_seed"].copy()
        infos["episode"] = {
            "r": np.where(first, self._returns, 0.0),
            "l": np.where(first, self._lengths, 0),
        }
        infos["_episode"] = first
        infos["success"] = success
        infos["_success"] = first
        infos["episode_level_seed"] = episode_level_seed
        infos["_episode_level_seed"] = first
        infos["excluded"] = first & np.isin(episode_level_seed, self._excluded)
        infos["_excluded"] = first
        self._returns[first] = 0.0
        self._lengths[first] = 0
        return obs, rewards, terminations, truncations, infos

    def render(self) -> tuple[np.ndarray, ...] | None:
        """The current frame of every env (``render_mode="rgb_array"``), else None."""
        if self.render_mode != "rgb_array" or self._last_obs is None:
            return None
        return tuple(self._last_obs.copy())

    def close_extras(self, **kwargs: Any) -> None:
        if self._gym3 is not None:
            self._gym3.close()
            self._gym3 = None

    def __repr__(self) -> str:
        return (
            f"ProcgenVecEnv({self.game}, num_envs={self.num_envs}, part={self.part!r}, "
            f"levels={self.levels.describe()}, mode={self.distribution_mode})"
        )


class ProcgenEnv(_PicklesNativeState, gymnasium.Env[np.ndarray, np.int64]):
    """One Procgen game as a single Gymnasium env, one level per episode.

    ## Description
    A view over ``ProcgenGym3Env(num=1)`` rebuilt on every ``reset`` with
    ``start_level=level, num_levels=1``: the level is chosen here, exactly, so
    explicit-seed level sets and exclusions are honoured. For training use
    :class:`ProcgenVecEnv` (one native env for all copies, much faster).

    ## Observation Space
    ``Box(0, 255, (64, 64, 3), uint8)``, an RGB frame.

    ## Action Space
    ``Discrete(15)``.

    ## Rewards
    Procgen's game rewards (see :data:`NORMALIZATION` for each game's range).

    ## Termination
    Procgen drops the true terminal frame, so the observation returned on the
    last step is a copy of the previous frame. Reaching the game's step limit
    (:data:`EPISODE_LIMITS`) without completing the level is a truncation; any
    other end is a termination. After an episode ends, call ``reset()``.

    ## Infos
    ``level_seed`` on every reset and step; ``success`` (level completed) on the
    last step of an episode.

    ## Generalization axis / splits
    Levels. ``reset(seed=s)`` seeds ``np_random``, which draws the level from
    the part's :class:`LevelSet`; ``reset(options={"level": k})`` plays level
    ``k``, which must belong to the part.

    Args:
        game: One of :data:`PROCGEN_GAMES`.
        split: The split (dict, :class:`Split` or None for :data:`DEFAULT_SPLIT`).
        part: ``"train"``, ``"validation"`` or ``"test"``.
        distribution_mode: ``"easy"`` or ``"hard"``.
        num_threads: Procgen's worker threads; 0 (default) steps in the calling
            thread, the fastest for a single env.
        render_mode: ``None`` or ``"rgb_array"`` (the current observation).
        **game_options: Boolean Procgen options in :data:`GAME_OPTIONS`.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(
        self,
        game: str = "coinrun",
        split: Split | dict[str, Any] | None = None,
        part: str = "train",
        distribution_mode: str = "easy",
        num_threads: int = 0,
        render_mode: str | None = None,
        **game_options: bool,
    ) -> None:
        self.game = checks.one_of("Procgen game", game, PROCGEN_GAMES)
        self.distribution_mode = checks.one_of("distribution_mode", distribution_mode,
                                               DISTRIBUTION_MODES)
        self.split, self.levels = _resolve_levels(split, part)
        self.part = part
        if render_mode not in (None, "rgb_array"):
            raise InputError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.num_threads = checks.int_in("num_threads", num_threads, 0)
        self.game_options = _game_options(game_options)
        self.episode_limit = EPISODE_LIMITS[game]
        self.observation_space = spaces.Box(0, 255, OBS_SHAPE, np.uint8)
        self.action_space = spaces.Discrete(NUM_ACTIONS)

        self._gym3: ProcgenGym3Env | None = None
        self._level: int | None = None
        self._rand_seed = 0
        self._obs: np.ndarray | None = None
        self._first_frame_hash = b""
        self._length = 0
        self._episode_over = True
        self._action = np.zeros(1, dtype=np.int32)

    @property
    def level(self) -> int | None:
        """Level seed of the current episode (None before the first reset)."""
        return self._level

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode on a level drawn from the part, or on ``options["level"]``.

        Raises:
            ValueError: For unknown options or a level outside the part's set.
        """
        super().reset(seed=seed)
        self._level = level_for_reset(
            options, self.levels, self.np_random, part=self.part, split_name=self.split.name
        )
        self._rand_seed = int(self.np_random.integers(0, _MAX_RAND_SEED))
        self._build()
        assert self._gym3 is not None
        _, ob, _ = self._gym3.observe()
        self._obs = ob["rgb"][0]
        self._first_frame_hash = hashlib.sha1(self._obs.tobytes()).digest()
        self._length = 0
        self._episode_over = False
        return self._obs, {"level_seed": self._level}

    def _build(self, states: list[bytes] | None = None) -> None:
        if self._gym3 is not None:
            self._gym3.close()
        assert self._level is not None
        self._gym3 = _make_gym3(
            1,
            self.game,
            self.distribution_mode,
            self._level,
            1,
            self._rand_seed,
            self.num_threads,
            self.game_options,
        )
        if states is not None:
            self._gym3.set_state(states)

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Play one step.

        Raises:
            RuntimeError: If called before ``reset()`` or after the episode ended.
            ValueError: For an action outside ``[0, 15)``.
        """
        if self._gym3 is None or self._episode_over:
            raise RuntimeError("call reset() before step() (and after an episode ends)")
        if not 0 <= action < NUM_ACTIONS:
            raise ValueError(f"action must be in [0, {NUM_ACTIONS}), got {action!r}")
        self._action[0] = action
        self._gym3.act(self._action)
        rewards, ob, first = self._gym3.observe()
        self._length += 1
        info: dict[str, Any] = {"level_seed": self._level}
        if not first[0]:
            self._obs = ob["rgb"][0]
            return self._obs, float(rewards[0]), False, False, info
        # The frame gym3 returns is the next episode's; the terminal one is lost.
        assert self._obs is not None
        self._obs = self._obs.copy()
        success = bool(self._gym3._info["prev_level_complete"][0])
        truncated = not success and self._length >= self.episode_limit
        info["success"] = success
        self._episode_over = True
        return self._obs, float(rewards[0]), not truncated, truncated, info

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """The current frame (``render_mode="rgb_array"``), else None."""
        if self.render_mode != "rgb_array" or self._obs is None:
            return None
        return self._obs.copy()

    def level_fingerprint(self) -> bytes:
        """SHA-1 of the current episode's first frame (identifies the level layout).

        Raises:
            RuntimeError: Before the first ``reset()``.
        """
        if not self._first_frame_hash:
            raise RuntimeError("call reset() before level_fingerprint()")
        return self._first_frame_hash

    def close(self) -> None:
        if self._gym3 is not None:
            self._gym3.close()
            self._gym3 = None


_registered = False


def _normalize(episode_return: float, env_kwargs: Mapping[str, Any]) -> float:
    """The registry's normalizer: Procgen's per-game (R_min, R_max) scaling."""
    mode = env_kwargs.get("distribution_mode", "easy")
    return float(normalized_return(env_kwargs["game"], episode_return, mode))


def register_procgen_envs() -> None:
    """Register ``gengap/procgen-<game>-v0`` for all 16 games (once per process)."""
    global _registered
    if _registered:
        return
    for game in PROCGEN_GAMES:
        register_env(
            f"gengap/procgen-{game}-v0",
            "gengap.envs.procgen:ProcgenEnv",
            vector_entry_point="gengap.envs.procgen:ProcgenVecEnv",
            family="procgen",
            axes=("levels",),
            default_split=DEFAULT_SPLIT,
            kwargs={"game": game},
            tags={"procgen", "pixels", "discrete-actions", DEFAULT_SPLIT.name},
            description=f"Procgen {game}: {GAME_DESCRIPTIONS[game]}",
            default_score="normalized_return",
            normalizer=_normalize,
        )
    _registered = True


register_procgen_envs()
