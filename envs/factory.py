"""``make``: the one factory the rest of gengap builds environments with."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, overload

import gymnasium
from gymnasium.envs.registration import load_env_creator
from gymnasium.vector import AutoresetMode

from gengap.core import checks
from gengap.core.errors import InputError, unknown_name_message
from gengap.envs.registry import env_info
from gengap.envs.splits import PARTS, Split

#: Most copies of an env one ``make(..., num_envs=N)`` builds. Each copy is a simulator of
#: its own (a Python env, or a Procgen game in one C++ batch) built one after the other, with
#: its own observation buffers: far beyond this, building alone takes minutes and the
#: rollout buffers of an agent (N x n_steps observations) no longer fit in memory.
MAX_NUM_ENVS = 1024


def resolve_split(env_id: str, split: Split | dict[str, Any] | None) -> Split:
    """``split`` as a :class:`Split`; ``None`` gives the env's default split.

    Raises:
        InputError: If the split has a context axis and the env has no physics contexts.
    """
    info = env_info(env_id)
    resolved = Split.coerce(split, info.default_split)
    if resolved.contexts is not None and "contexts" not in info.axes:
        from gengap.core.errors import InputError

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
        raise InputError(unknown_name_message("split part", part, PARTS))
    resolved.levels(part)  # raises if the split lacks this part
    # Specs must stay JSON-serializable, so the split travels as a dict.
    env_kwargs = {"split": resolved.to_dict(), "part": part, **kwargs}
    if num_envs is None:
        return gymnasium.make(env_id, **env_kwargs)
    checks.optional(checks.positive_int, "num_envs", num_envs)
    check_num_envs(num_envs)
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


def check_num_envs(num_envs: int, what: str = "num_envs") -> None:
    """Refuse more than :data:`MAX_NUM_ENVS` envs, saying why.

    Raises:
        InputError: If ``num_envs`` exceeds the limit.
    """
    if num_envs > MAX_NUM_ENVS:
        raise InputError(
            f"{what} must be at most {MAX_NUM_ENVS}, got {num_envs}: every env is a simulator of "
            "its own, built one after the other, so building that many takes minutes and "
            "an agent's rollout buffers would not fit in memory"
        )


def env_options(env_id: str) -> tuple[tuple[str, ...], bool]:
    """The options ``make(env_id, ...)`` accepts besides ``split`` and ``part``.

    Read from the signatures of the env class and of the classes its ``**kwargs`` go to.

    Returns:
        The option names, and whether the list is complete (False when some class takes
        ``**kwargs`` that go elsewhere).
    """
    spec = gymnasium.spec(env_info(env_id).env_id)
    entry_point = spec.entry_point
    if entry_point is None:
        return (), False
    creator = entry_point if callable(entry_point) else load_env_creator(entry_point)
    fixed = set(spec.kwargs) | {"split", "part", "self"}
    names: set[str] = set()
    complete = False
    for owner in creator.__mro__ if isinstance(creator, type) else (creator,):
        function = owner.__init__ if isinstance(owner, type) else owner  # type: ignore[misc]
        if function is object.__init__:
            break
        parameters = inspect.signature(function).parameters.values()
        names |= {
            p.name
            for p in parameters
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        }
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            complete = True
            break
    return tuple(sorted(names - fixed)), complete


def check_env_options(
    env_id: str, options: Mapping[str, Any], *, what: str = "env option"
) -> None:
    """Refuse env options ``env_id`` does not take (with close matches) or values it rejects.

    The values are checked by building one env with them (cheap: envs build their
    simulator lazily), so a bad value fails here, before any run folder exists.

    Args:
        env_id: A registered id.
        options: Keyword arguments for :func:`make`, e.g. ``{"obs_mode": "entities"}``.
        what: How the caller names the options in messages (``"--env-option"``,
            ``"env_kwargs"``).

    Raises:
        InputError: Naming ``what`` and the option.
    """
    if not isinstance(options, Mapping):
        raise InputError(f"{what} must be a mapping of option names to values, got {options!r}")
    accepted, complete = env_options(env_id)
    fixed = gymnasium.spec(env_id).kwargs
    for key in options:
        if key in fixed or key in ("split", "part"):
            raise InputError(
                f"{what} {key!r} cannot be set for {env_id}: the id (or the split) fixes it"
            )
        if complete and key not in accepted:
            raise InputError(f"{what}: " + unknown_name_message(f"{env_id} option", key, accepted))
    try:
        env = gymnasium.make(env_id, disable_env_checker=True, **options)
    except InputError as error:
        raise InputError(f"{what}: {error}") from None
    except TypeError as error:  # a keyword no class in the chain takes
        if "unexpected keyword argument" not in str(error):
            raise
        raise InputError(f"{what}: {env_id} does not take option(s) {sorted(options)}: "
                         f"{error}; it takes {', '.join(accepted)}") from None
    env.close()
