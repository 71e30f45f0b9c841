"""``make``: the one factory the rest of gengap builds environments with."""

from __future__ import annotations

from typing import Any, overload

import gymnasium
from gymnasium.vector import AutoresetMode

from gengap.envs.registry import env_info
from gengap.envs.splits import PARTS, Split


def resolve_split(env_id: str, split: Split | dict[str, Any] | None) -> Split:
    """``split`` as a :class:`Split`; ``None`` gives the env's default split.

    Raises:
        InputError: If the split has a context axis and the env has no physics contexts.
    """
    info = env_info(env_id)
    resolved = Split.coerce(split, info.default_split)
    if resolved.contexts is not None and "contexts" not in info.axes:
        from gengap.envs.errors import InputError

        raise InputError(
            f"split {resolved.name!r} has a contexts axis, but {env_id} has no physics "
            f"contexts (its axes: {', '.join(info.axes)})"
        )
    return resolved


@overload
def make(
    env_id: str,
    *,
    split: Split | dict[str, Any] | None = None,
    part: str = "train",
    num_envs: None = None,
    **kwargs: Any,
) -> gymnasium.Env: ...


@overload
def make(
    env_id: str,
    *,
    split: Split | dict[str, Any] | None = None,
    part: str = "train",
    num_envs: int,
    **kwargs: Any,
) -> gymnasium.vector.VectorEnv: ...


def make(
    env_id: str,
    *,
    split: Split | dict[str, Any] | None = None,
    part: str = "train",
    num_envs: int | None = None,
    **kwargs: Any,
) -> gymnasium.Env | gymnasium.vector.VectorEnv:
    """Build a gengap environment on one part of a split.

    Args:
        env_id: A registered id such as ``"gengap/procgen-coinrun-v0"``.
        split: The split (default: the env's registered default split).
        part: Which part's levels to sample from: ``train``, ``validation`` or ``test``.
        num_envs: ``None`` for a single ``gymnasium.Env``; an int for a
            ``gymnasium.vector.VectorEnv`` of that many copies. Vector envs
            auto-reset in ``SAME_STEP`` mode: when an episode ends, the returned
            observation is already the next episode's first one (Procgen's native
            behaviour; other families are made to match so every vector env in
            gengap behaves alike).
        **kwargs: Family options (e.g. ``obs_mode``, ``distribution_mode``).

    Raises:
        ValueError: For an unknown env id (with close matches), an unknown part,
            or a non-positive ``num_envs``.
    """
    info = env_info(env_id)
    resolved = resolve_split(env_id, split)
    if part not in PARTS:
        from gengap.envs.registry import unknown_name_message

        raise ValueError(unknown_name_message("split part", part, PARTS))
    resolved.levels(part)  # raises if the split lacks this part
    # Specs must stay JSON-serializable, so the split travels as a dict.
    env_kwargs = {"split": resolved.to_dict(), "part": part, **kwargs}
    if num_envs is None:
        return gymnasium.make(env_id, **env_kwargs)
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs must be a positive integer or None, got {num_envs!r}")
    if info.native_vector:
        return gymnasium.make_vec(
            env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **env_kwargs
        )
    return gymnasium.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
        **env_kwargs,
    )
