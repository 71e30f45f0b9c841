"""The gengap environment registry.

Every gengap environment is registered twice from one call: with Gymnasium
(so ``gymnasium.make("gengap/procgen-coinrun-v0")`` works for any Gymnasium
user) and here, with what Gymnasium's spec has no room for: the family, the
generalization axes, the default split and tags. Named suites are derived
from the tags, never kept as a second list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium

from gengap.core.errors import InputError, InputTypeError, unknown_name_message
from gengap.envs.splits import Split

NAMESPACE = "gengap"
SCORES = ("return", "success", "normalized_return")

#: ``normalizer(episode_return, env_kwargs)``: the return on the family's normalized scale.
#: ``env_kwargs`` are the spec's kwargs with the caller's options over them.
Normalizer = Callable[[float, Mapping[str, Any]], float]

__all__ = [
    "NAMESPACE",
    "SCORES",
    "EnvInfo",
    "Normalizer",
    "env_info",
    "register_env",
    "registered_ids",
    "suite",
]


@dataclass(frozen=True)
class EnvInfo:
    """What gengap knows about a registered environment beyond its Gymnasium spec.

    Attributes:
        default_score: What reports rank by unless told otherwise: ``"success"`` where
            episodes report success, ``"normalized_return"`` where the family defines a
            normalizer (Procgen), else ``"return"``.
        normalizer: Maps an episode return to the family's normalized scale, or ``None``.
    """

    env_id: str
    family: str
    axes: tuple[str, ...]
    default_split: Split
    tags: frozenset[str] = field(default_factory=frozenset)
    description: str = ""
    native_vector: bool = False
    default_score: str = "return"
    normalizer: Normalizer | None = None

    def normalize(self, episode_return: float, env_kwargs: Mapping[str, Any]) -> float | None:
        """``episode_return`` on the normalized scale (``None`` without a normalizer).

        Args:
            episode_return: An episode's return.
            env_kwargs: The env options it was played with (over the spec's kwargs).
        """
        if self.normalizer is None:
            return None
        kwargs = {**gymnasium.spec(self.env_id).kwargs, **env_kwargs}
        return float(self.normalizer(episode_return, kwargs))


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
    default_score: str = "return",
    normalizer: Normalizer | None = None,
) -> None:
    """Register ``env_id`` with Gymnasium and with gengap.

    Args:
        default_score: See :class:`EnvInfo`; ``"normalized_return"`` needs a normalizer.
        normalizer: See :class:`EnvInfo`.

    Raises:
        ValueError: If the id is not ``gengap/<family>-<name>-v<N>`` or is already
            registered, or the default score is unknown or has no normalizer.
    """
    if default_score not in SCORES:
        raise ValueError(unknown_name_message("default_score", default_score, SCORES))
    if default_score == "normalized_return" and normalizer is None:
        raise ValueError(f"{env_id!r}: default_score 'normalized_return' needs a normalizer")
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
        default_score=default_score,
        normalizer=normalizer,
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
