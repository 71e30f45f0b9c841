"""Stable-Baselines3 ``VecEnv`` view of a Gymnasium vector env.

SB3 has its own vector API (list-of-dict infos, auto-reset with the terminal
observation in ``info["terminal_observation"]``). :class:`Sb3VecEnvAdapter`
lets SB3 algorithms train directly on any Gymnasium ``VectorEnv`` that
auto-resets in ``SAME_STEP`` mode: gengap's native :class:`ProcgenVecEnv` and
``gymnasium.vector.SyncVectorEnv(..., autoreset_mode=SAME_STEP)`` alike.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import gymnasium
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

# Keys of gymnasium's SAME_STEP infos that describe the step that ended an episode.
_FINAL_KEYS = ("final_obs", "_final_obs", "final_info", "_final_info")


def _unbatch(infos: Mapping[str, Any], num_envs: int) -> list[dict[str, Any]]:
    """Gymnasium's dict-of-arrays infos (with ``_key`` masks) as one dict per env."""
    out: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get(f"_{key}")
        indices: Iterable[int] = np.flatnonzero(mask) if mask is not None else range(num_envs)
        if isinstance(value, Mapping):
            per_env = _unbatch(value, num_envs)
            for i in indices:
                out[i][key] = per_env[i]
        else:
            for i in indices:
                item = value[i]
                out[i][key] = item.item() if isinstance(item, np.generic) else item
    return out


class Sb3VecEnvAdapter(VecEnv):
    """An SB3 ``VecEnv`` over a Gymnasium ``VectorEnv`` in ``SAME_STEP`` autoreset mode.

    Infos become one dict per env. At every episode end ``info["episode"]`` holds
    ``{"r", "l", "t"}`` (taken from the vector env when it reports ``episode``,
    else counted here), so SB3's ``ep_info_buffer`` and logger see episodes.

    ``info["terminal_observation"]`` is set only when the vector env provides the
    true last observation (``SyncVectorEnv`` in ``SAME_STEP`` mode gives
    ``infos["final_obs"]``); ``info["TimeLimit.truncated"]`` is then set too, so
    SB3 bootstraps the value of truncated episodes. gengap's Procgen vector env
    has no terminal observation (gym3 drops it): neither key is set, and SB3
    treats timeouts as terminal, as the Procgen paper's PPO also does.

    Args:
        vec_env: A Gymnasium vector env whose ``metadata["autoreset_mode"]`` is
            ``AutoresetMode.SAME_STEP``.

    Raises:
        TypeError: If ``vec_env`` is not a Gymnasium ``VectorEnv``.
        ValueError: If it auto-resets in another mode.
    """

    def __init__(self, vec_env: VectorEnv) -> None:
        if not isinstance(vec_env, VectorEnv):
            raise TypeError(
                f"vec_env must be a gymnasium.vector.VectorEnv, got {type(vec_env).__name__}"
            )
        mode = vec_env.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                "vec_env must auto-reset in AutoresetMode.SAME_STEP (gengap.envs.make builds "
                f"vector envs that way), got metadata['autoreset_mode']={mode!r}"
            )
        self.vec_env = vec_env
        self._native = not hasattr(vec_env, "envs")
        super().__init__(
            vec_env.num_envs, vec_env.single_observation_space, vec_env.single_action_space
        )
        self._actions: np.ndarray | None = None
        self._reset_seed: int | None = None
        self._returns = np.zeros(self.num_envs, dtype=np.float64)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._start_time = time.time()

    # -- stepping ---------------------------------------------------------------------
    def reset(self) -> VecEnvObs:
        options = self._options[0] if self._options else {}
        if any(o != options for o in self._options):
            raise ValueError(
                "Sb3VecEnvAdapter passes one options dict to the vector env; "
                f"got different options per env: {self._options}"
            )
        obs, infos = self.vec_env.reset(seed=self._reset_seed, options=options or None)
        self.reset_infos = _unbatch(infos, self.num_envs)
        self._reset_seed = None
        self._reset_seeds()
        self._reset_options()
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("call step_async() before step_wait()")
        obs, rewards, terminations, truncations, infos = self.vec_env.step(self._actions)
        self._actions = None
        dones = np.logical_or(terminations, truncations)
        self._returns += rewards
        self._lengths += 1
        if not dones.any():
            return obs, rewards, dones, _unbatch(infos, self.num_envs)

        step_infos = {k: v for k, v in infos.items() if k not in _FINAL_KEYS}
        infos_list = _unbatch(step_infos, self.num_envs)
        final_obs = infos.get("final_obs")
        final_infos = (
            _unbatch(infos["final_info"], self.num_envs) if "final_info" in infos else None
        )
        elapsed = round(time.time() - self._start_time, 6)
        for i in np.flatnonzero(dones):
            if final_infos is not None:
                # The env's own info of its last step; the rest is its reset info.
                self.reset_infos[i] = infos_list[i]
                infos_list[i] = final_infos[i]
            info = infos_list[i]
            if final_obs is not None and final_obs[i] is not None:
                info["terminal_observation"] = final_obs[i]
                info["TimeLimit.truncated"] = bool(truncations[i] and not terminations[i])
            if "episode" not in info:
                info["episode"] = {
                    "r": float(self._returns[i]),
                    "l": int(self._lengths[i]),
                    "t": elapsed,
                }
        self._returns[dones] = 0.0
        self._lengths[dones] = 0
        return obs, rewards, dones, infos_list

    def close(self) -> None:
        self.vec_env.close()

    # -- seeding and rendering --------------------------------------------------------
    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seed the next ``reset()`` (the vector env seeds its copies from ``seed``)."""
        if seed is None:
            seed = int(np.random.randint(0, np.iinfo(np.uint32).max, dtype=np.uint32))
        self._reset_seed = int(seed)
        return [self._reset_seed + idx for idx in range(self.num_envs)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        frames = self.vec_env.render()
        if frames is None:
            return [None] * self.num_envs
        return [frame if isinstance(frame, np.ndarray) else None for frame in frames]

    # -- attribute access -------------------------------------------------------------
    def _indices(self, indices: VecEnvIndices) -> list[int]:
        return list(self._get_indices(indices))

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        targets = self._indices(indices)
        if self._native:
            value = getattr(self.vec_env, attr_name)
            return [value for _ in targets]
        envs = self.vec_env.envs  # type: ignore[attr-defined]
        return [envs[i].get_wrapper_attr(attr_name) for i in targets]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        targets = self._indices(indices)
        if self._native:
            if len(targets) != self.num_envs:
                raise ValueError(
                    "a natively vectorized env shares its attributes across copies; "
                    f"indices must cover all {self.num_envs} envs, got {targets}"
                )
            setattr(self.vec_env, attr_name, value)
            return
        for i in targets:
            setattr(self.vec_env.envs[i], attr_name, value)  # type: ignore[attr-defined]

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        targets = self._indices(indices)
        if self._native:
            if len(targets) != self.num_envs:
                raise ValueError(
                    "a natively vectorized env runs methods on all copies at once; "
                    f"indices must cover all {self.num_envs} envs, got {targets}"
                )
            result = getattr(self.vec_env, method_name)(*method_args, **method_kwargs)
            return [result for _ in targets]
        envs = self.vec_env.envs  # type: ignore[attr-defined]
        return [
            envs[i].get_wrapper_attr(method_name)(*method_args, **method_kwargs) for i in targets
        ]

    def env_is_wrapped(
        self, wrapper_class: type[gymnasium.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        targets = self._indices(indices)
        if self._native:
            return [False for _ in targets]
        from stable_baselines3.common.env_util import is_wrapped

        envs = self.vec_env.envs  # type: ignore[attr-defined]
        return [is_wrapped(envs[i], wrapper_class) for i in targets]


def to_sb3(vec_env: VectorEnv) -> Sb3VecEnvAdapter:
    """Wrap a ``SAME_STEP`` Gymnasium vector env for SB3 (see :class:`Sb3VecEnvAdapter`)."""
    return Sb3VecEnvAdapter(vec_env)
