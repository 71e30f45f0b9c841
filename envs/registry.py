"""The gengap environment registry.

Every gengap environment is registered twice from one call: with Gymnasium
(so ``gymnasium.make("gengap/procgen-coinrun-v0")`` works for any Gymnasium
user) and here, with what Gymnasium's spec has no room for: the family, the
generalization axes, the default split and tags. Named suites are derived
from the tags, never kept as a second list.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium

from gengap.envs.errors import InputError, InputTypeError
from gengap.envs.splits import Split

NAMESPACE = "gengap"


def unknown_name_message(kind: str, name: object, options: Iterable[str]) -> str:
    """One line naming the bad value, the closest matches and the options."""
    options = sorted(options)
    close = difflib.get_close_matches(str(name), options, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    shown = ", ".join(options[:12]) + (
        f", ... ({len(options)} in all)" if len(options) > 12 else ""
    )
    return f"unknown {kind} {name!r}{hint} (expected one of: {shown})"


@dataclass(frozen=True)
class EnvInfo:
    """What gengap knows about a registered environment beyond its Gymnasium spec."""

    env_id: str
    family: str
    axes: tuple[str, ...]
    default_split: Split
    tags: frozenset[str] = field(default_factory=frozenset)
    description: str = ""
    native_vector: bool = False


_REGISTRY: dict[str, EnvInfo] = {}


def register_env(
    env_id: str,
    entry_point: str,
    *,
    family: str,
    axes: Sequence[str],
    default_split: Split,
    kwargs: dict[str, Any] | None = None,
    tags: Iterable[str] = (),
    description: str = "",
    vector_entry_point: str | None = None,
) -> None:
    """Register ``env_id`` with Gymnasium and with gengap.

    Raises:
        ValueError: If the id is not ``gengap/<family>-<name>-v<N>`` or is already registered.
    """
    if not env_id.startswith(f"{NAMESPACE}/"):
        raise ValueError(f"env_id must start with {NAMESPACE!r}/, got {env_id!r}")
    if env_id in _REGISTRY:
        raise ValueError(f"env_id {env_id!r} is already registered")
    gymnasium.register(
        id=env_id,
        entry_point=entry_point,
        vector_entry_point=vector_entry_point,
        kwargs=dict(kwargs or {}),
    )
    _REGISTRY[env_id] = EnvInfo(
        env_id=env_id,
        family=family,
        axes=tuple(axes),
        default_split=default_split,
        tags=frozenset(tags),
        description=description,
        native_vector=vector_entry_point is not None,
    )


def registered_ids() -> list[str]:
    return sorted(_REGISTRY)


def env_info(env_id: str) -> EnvInfo:
    """Registry entry of ``env_id``; unknown ids raise with the closest matches."""
    if not isinstance(env_id, str):
        raise InputTypeError(f"env_id must be a string, got {type(env_id).__name__}")
    try:
        return _REGISTRY[env_id]
    except KeyError:
        raise InputError(unknown_name_message("env id", env_id, _REGISTRY)) from None


def suite(tag: str) -> list[str]:
    """Env ids carrying ``tag`` (e.g. ``"procgen"``, ``"minigrid"``, ``"benchmark"``)."""
    ids = [i for i, info in _REGISTRY.items() if tag in info.tags]
    if not ids:
        tags = {t for info in _REGISTRY.values() for t in info.tags}
        raise InputError(unknown_name_message("suite tag", tag, tags))
    return sorted(ids)
