"""Splits: which variations are for training and which are held out.

A :class:`Split` is an immutable, serializable value. This module holds the
level axis (level seeds); the optional task-combination axis
(:class:`~gengap.envs.combinations.CombinationAxis`) rides on the same type as
``Split.combinations``, and the optional physics-context axis
(:class:`~gengap.envs.contexts.ContextAxis`) as ``Split.contexts``. Every split
checks at construction that its parts are disjoint and names the values that
overlap.

Parts: the level parts ``train``, ``validation`` and ``test`` have level sets of
their own. A split with a combination axis also has the held-out combination
parts ``combinatorial`` and ``extrapolation``; they play on the ``test`` level
set (so the IID ``test`` part and the held-out combination parts differ only in
their combinations), and ``train``/``validation``/``test`` use the training
combinations. A context axis likewise adds its held-out context parts
(``interpolation``, ..., ``target``) on the ``test`` level set.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from gengap.core import checks
from gengap.core.config import check_keys
from gengap.core.errors import InputError, InputTypeError, unknown_name_message
from gengap.core.files import atomic_write_text, parse_json, parse_toml, read_json, read_toml
from gengap.envs.combination_axis import Combination, CombinationAxis
from gengap.envs.context_axis import CONTEXT_PARTS, ContextAxis

# Procgen and MiniGrid both take 31-bit level seeds.
MAX_LEVEL_SEED = 2**31 - 1
LEVEL_PARTS = ("train", "validation", "test")
# Held-out combination parts (see gengap.envs.combinations); they use the test levels.
COMBINATION_PARTS = ("combinatorial", "extrapolation")
HELD_OUT_AXIS_PARTS = COMBINATION_PARTS + CONTEXT_PARTS
PARTS = LEVEL_PARTS + HELD_OUT_AXIS_PARTS


@dataclass(frozen=True)
class LevelSet:
    """A set of level seeds: a half-open range ``[start, stop)`` or explicit seeds.

    Args:
        start: First level seed of the range.
        stop: One past the last seed; ``None`` means unbounded (up to 2**31 - 1).
        seeds: Explicit seeds instead of a range (``start``/``stop`` are then ignored).
        exclude: Seeds removed from the set (e.g. held-out levels found to duplicate
            a training level by the leakage check).
    """

    start: int = 0
    stop: int | None = None
    seeds: tuple[int, ...] | None = None
    exclude: frozenset[int] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.seeds is not None:
            seeds = tuple(checks.non_negative_int("seeds[]", s, numpy=True) for s in self.seeds)
            if len(set(seeds)) != len(seeds):
                raise InputError("seeds must not repeat a level seed")
            if not seeds:
                raise InputError("seeds must hold at least one level seed, got an empty list")
            object.__setattr__(self, "seeds", seeds)
        else:
            checks.non_negative_int("start", self.start, numpy=True)
            if self.stop is not None:
                checks.non_negative_int("stop", self.stop, numpy=True)
                if self.stop <= self.start:
                    raise InputError(
                        f"stop must be greater than start, got start={self.start}, stop={self.stop}"
                    )
            if self.upper > MAX_LEVEL_SEED:
                raise InputError(f"stop must be <= {MAX_LEVEL_SEED}, got {self.stop}")
        exclude = frozenset(checks.non_negative_int("exclude[]", s, numpy=True)
                            for s in self.exclude)
        object.__setattr__(self, "exclude", exclude)
        if len(self) == 0:
            raise InputError("the level set is empty after exclusions")

    # -- constructors -----------------------------------------------------------------
    @classmethod
    def range(cls, start: int, count: int | None) -> LevelSet:
        """``count`` levels from ``start`` on; ``count=None`` means unbounded."""
        checks.non_negative_int("start", start, numpy=True)
        if count is None:
            return cls(start=start, stop=None)
        checks.positive_int("count", count, numpy=True)
        return cls(start=start, stop=start + count)

    @classmethod
    def of(cls, seeds: Iterable[int]) -> LevelSet:
        return cls(seeds=tuple(seeds))

    # -- queries ----------------------------------------------------------------------
    @property
    def upper(self) -> int:
        """One past the largest seed that can be in the set."""
        if self.seeds is not None:
            return max(self.seeds) + 1
        return MAX_LEVEL_SEED if self.stop is None else self.stop

    @property
    def is_contiguous(self) -> bool:
        """True when the set is a plain range (what Procgen's native level sampler takes)."""
        return self.seeds is None and not self.exclude

    @property
    def bounded(self) -> bool:
        return self.seeds is not None or self.stop is not None

    def __len__(self) -> int:
        if self.seeds is not None:
            return len(set(self.seeds) - self.exclude)
        excluded = sum(1 for s in self.exclude if self.start <= s < self.upper)
        return self.upper - self.start - excluded

    def __contains__(self, seed: object) -> bool:
        if not isinstance(seed, int | np.integer) or seed in self.exclude:
            return False
        if self.seeds is not None:
            return int(seed) in self.seeds
        return self.start <= int(seed) < self.upper

    def first(self, count: int) -> list[int]:
        """The first ``count`` seeds of the set, in order (fewer if the set is smaller)."""
        checks.positive_int("count", count, numpy=True)
        if self.seeds is not None:
            return [s for s in self.seeds if s not in self.exclude][:count]
        out: list[int] = []
        seed = self.start
        while len(out) < count and seed < self.upper:
            if seed not in self.exclude:
                out.append(seed)
            seed += 1
        return out

    def sample(self, rng: np.random.Generator) -> int:
        """One seed drawn uniformly from the set with ``rng``."""
        if self.seeds is not None:
            pool = [s for s in self.seeds if s not in self.exclude]
            return int(pool[int(rng.integers(len(pool)))])
        while True:  # rejection keeps the draw uniform; exclusions are a small fraction
            seed = int(rng.integers(self.start, self.upper))
            if seed not in self.exclude:
                return seed

    def overlap(self, other: LevelSet, limit: int = 10) -> tuple[int, list[int]]:
        """Number of seeds in both sets and up to ``limit`` examples."""
        if self.seeds is not None or other.seeds is not None:
            small, big = (self, other) if self.seeds is not None else (other, self)
            assert small.seeds is not None
            common = sorted(s for s in small.seeds if s in small and s in big)
            return len(common), common[:limit]
        lo, hi = max(self.start, other.start), min(self.upper, other.upper)
        if lo >= hi:
            return 0, []
        excluded = self.exclude | other.exclude
        count = hi - lo - sum(1 for s in excluded if lo <= s < hi)
        examples = [s for s in range(lo, min(hi, lo + limit + len(excluded))) if s not in excluded]
        return count, examples[:limit]

    def describe(self) -> str:
        if self.seeds is not None:
            text = f"{len(self.seeds)} seeds"
        elif self.stop is None:
            text = f"{self.start}.. (unbounded)"
        else:
            text = f"{self.start}..{self.stop - 1} ({self.stop - self.start} levels)"
        return text + (f" minus {len(self.exclude)} excluded" if self.exclude else "")

    def without(self, seeds: Iterable[int]) -> LevelSet:
        return replace(self, exclude=self.exclude | frozenset(int(s) for s in seeds))

    # -- serialization ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.seeds is not None:
            data["seeds"] = list(self.seeds)
        else:
            data["start"] = self.start
            if self.stop is not None:
                data["stop"] = self.stop
        if self.exclude:
            data["exclude"] = sorted(self.exclude)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LevelSet:
        check_keys(data, "a level set", ("start", "stop", "seeds", "exclude"))
        seeds = data.get("seeds")
        return cls(
            start=data.get("start", 0),
            stop=data.get("stop"),
            seeds=tuple(seeds) if seeds is not None else None,
            exclude=frozenset(data.get("exclude", ())),
        )


@dataclass(frozen=True)
class Split:
    """Training and held-out parts along the level axis, and optionally the
    task-combination axis.

    Args:
        train: Level seeds the agent trains on.
        test: Held-out level seeds for zero-shot evaluation.
        validation: Optional held-out seeds for model selection.
        name: A label saved with results (e.g. ``"procgen-easy-200"``).
        combinations: Optional combination axis; it adds the ``combinatorial``
            and ``extrapolation`` parts (on the ``test`` levels).
        contexts: Optional physics-context axis
            (:class:`~gengap.envs.contexts.ContextAxis`); it adds its held-out context
            parts (``interpolation``, ..., ``target``, on the ``test`` levels).

    Raises:
        ValueError: If two parts share level seeds (the message names them).
    """

    train: LevelSet
    test: LevelSet
    validation: LevelSet | None = None
    name: str = "custom"
    combinations: CombinationAxis | None = None
    contexts: ContextAxis | None = None

    def __post_init__(self) -> None:
        for part in LEVEL_PARTS:
            value = getattr(self, part)
            if value is not None and not isinstance(value, LevelSet):
                raise InputTypeError(f"Split.{part} must be a LevelSet, got {type(value).__name__}")
        if self.combinations is not None:
            if not isinstance(self.combinations, CombinationAxis):
                raise InputTypeError(
                    "Split.combinations must be a CombinationAxis or None, got "
                    f"{type(self.combinations).__name__}"
                )
        if self.contexts is not None:
            if isinstance(self.contexts, Mapping):
                object.__setattr__(self, "contexts", ContextAxis.from_dict(self.contexts))
            elif not isinstance(self.contexts, ContextAxis):
                raise TypeError(
                    "Split.contexts must be a ContextAxis or None, got "
                    f"{type(self.contexts).__name__}"
                )
        parts = [(p, self.levels(p)) for p in self.parts]
        for i, (name_a, set_a) in enumerate(parts):
            for name_b, set_b in parts[i + 1 :]:
                count, examples = set_a.overlap(set_b)
                if count:
                    raise InputError(
                        f"split {self.name!r}: {name_a} and {name_b} levels overlap in {count} "
                        f"level seed(s), e.g. {examples}; held-out levels must be disjoint "
                        "from training levels"
                    )

    @property
    def parts(self) -> tuple[str, ...]:
        """The level parts this split has (each with a level set of its own)."""
        return tuple(p for p in LEVEL_PARTS if getattr(self, p) is not None)

    @property
    def combination_parts(self) -> tuple[str, ...]:
        """The held-out combination parts this split has (none without a combination axis)."""
        return () if self.combinations is None else self.combinations.held_out_parts

    @property
    def context_parts(self) -> tuple[str, ...]:
        """The held-out context parts this split has (none without a context axis)."""
        return () if self.contexts is None else self.contexts.held_out_parts

    @property
    def all_parts(self) -> tuple[str, ...]:
        """Every part an env can be built on: level parts, then held-out axis parts."""
        return self.parts + self.combination_parts + self.context_parts

    def levels(self, part: str) -> LevelSet:
        """The level set of ``part``: ``train``, ``validation`` or ``test``, or a
        combination part (``combinatorial``, ``extrapolation``), which uses ``test``'s."""
        if part not in PARTS:
            raise InputError(unknown_name_message("split part", part, PARTS))
        if part in HELD_OUT_AXIS_PARTS:
            if part not in self.combination_parts + self.context_parts:
                raise InputError(
                    f"split {self.name!r} has no {part} part; it has {list(self.all_parts)}"
                )
            return self.test
        value = getattr(self, part)
        if value is None:
            raise InputError(f"split {self.name!r} has no {part} part; it has {list(self.parts)}")
        return value

    def combinations_for(self, part: str) -> frozenset[Combination]:
        """The task combinations ``part`` may present: the training ones for
        ``train``/``validation``/``test``, the held-out ones for ``combinatorial``
        and ``extrapolation``.

        Raises:
            ValueError: If the split has no combination axis or no such part.
        """
        self.levels(part)  # unknown or missing part
        if self.combinations is None:
            raise InputError(
                f"split {self.name!r} has no combination axis, so no combinations for {part!r}"
            )
        return self.combinations.combinations_for(part)

    def with_excluded(self, part: str, seeds: Iterable[int]) -> Split:
        """A copy with ``seeds`` removed from ``part`` (e.g. duplicated held-out levels).

        Combination parts share the ``test`` levels: excluding from one excludes from ``test``.
        """
        field_name = "test" if part in HELD_OUT_AXIS_PARTS else part
        changes: dict[str, Any] = {field_name: self.levels(part).without(seeds)}
        return replace(self, **changes)

    @classmethod
    def levels_split(
        cls,
        num_train_levels: int,
        *,
        train_start: int = 0,
        num_validation_levels: int = 0,
        test_start: int | None = None,
        num_test_levels: int | None = None,
        name: str | None = None,
    ) -> Split:
        """The usual protocol: train on ``[train_start, +num_train_levels)``, validate on
        the next ``num_validation_levels``, test on ``num_test_levels`` (None: unbounded)
        from ``test_start`` (default: right after validation)."""
        checks.positive_int("num_train_levels", num_train_levels, numpy=True)
        checks.non_negative_int("num_validation_levels", num_validation_levels, numpy=True)
        train = LevelSet.range(train_start, num_train_levels)
        validation = (
            LevelSet.range(train.upper, num_validation_levels) if num_validation_levels else None
        )
        start = test_start if test_start is not None else train.upper + num_validation_levels
        return cls(
            train=train,
            validation=validation,
            test=LevelSet.range(start, num_test_levels),
            name=name or f"levels-{num_train_levels}",
        )

    # -- serialization ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name}
        for part in self.parts:
            data[part] = self.levels(part).to_dict()
        if self.combinations is not None:
            data["combinations"] = self.combinations.to_dict()
        if self.contexts is not None:
            data["contexts"] = self.contexts.to_dict()
        return data

    @classmethod
    def coerce(cls, value: Split | Mapping[str, Any] | None, default: Split | None = None) -> Split:
        """``value`` as a Split: a Split as is, a mapping through :meth:`from_dict`, ``None``
        as ``default``. Env constructors take all three (specs carry splits as dicts).

        Raises:
            TypeError: For any other type, or ``None`` without a default.
        """
        if value is None and default is not None:
            return default
        if isinstance(value, Split):
            return value
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        raise InputTypeError(f"split must be a Split, a dict or None, got {type(value).__name__}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Split:
        if isinstance(data, Split):
            return data
        if not isinstance(data, Mapping):
            raise InputTypeError(f"split must be a Split or a mapping, got {type(data).__name__}")
        allowed = ("name", *LEVEL_PARTS, "combinations", "contexts")
        check_keys(data, "a split", allowed, required=("train", "test"))
        return cls(
            train=LevelSet.from_dict(data["train"]),
            test=LevelSet.from_dict(data["test"]),
            validation=LevelSet.from_dict(data["validation"]) if data.get("validation") else None,
            name=str(data.get("name", "custom")),
            combinations=_combinations_from_dict(data.get("combinations")),
            contexts=_contexts_from_dict(data.get("contexts")),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Split:
        return cls.from_dict(parse_json(text, "split JSON"))

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_toml(cls, text: str) -> Split:
        return cls.from_dict(parse_toml(text, "split TOML"))

    def save(self, path: str | Path) -> None:
        """Write the split as JSON or TOML (by suffix), atomically."""
        path = Path(path)
        atomic_write_text(path, self.to_toml() if path.suffix == ".toml" else self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Split:
        path = Path(path)
        read = read_toml if path.suffix == ".toml" else read_json
        return cls.from_dict(read(path, "split file"))

    def describe(self) -> str:
        text = "; ".join(f"{p}: {self.levels(p).describe()}" for p in self.parts)
        if self.combinations is not None:
            text += f"; combinations: {self.combinations.describe()}"
        if self.contexts is not None:
            text += f"; contexts: {self.contexts.describe()}"
        return text


def _combinations_from_dict(data: Any) -> CombinationAxis | None:
    if data is None:
        return None
    return CombinationAxis.from_dict(data)


def _contexts_from_dict(data: Any) -> ContextAxis | None:
    if data is None:
        return None
    return ContextAxis.from_dict(data)


def level_for_reset(
    options: Mapping[str, Any] | None,
    levels: LevelSet,
    rng: np.random.Generator,
    *,
    part: str,
    split_name: str,
) -> int:
    """The level of a new episode: ``options["level"]`` when given, else a draw from ``levels``.

    Every gengap env resets through this, so ``reset(options={"level": n})`` means the same
    thing, and fails the same way, in every family.

    Raises:
        ValueError: For an unknown option, or a level outside ``levels``.
        TypeError: For a level that is not an integer.
    """
    options = dict(options or {})
    level = options.pop("level", None)
    if options:
        raise InputError(f"unknown reset option(s) {sorted(options)}; expected 'level'")
    if level is None:
        return levels.sample(rng)
    if not checks.is_int(level, numpy=True):
        raise InputTypeError(
            f"options['level'] must be an integer level seed, got {level!r} "
            f"({type(level).__name__})"
        )
    if level not in levels:
        raise InputError(
            f"level {int(level)} is not in the {part} levels of split {split_name!r} "
            f"({levels.describe()})"
        )
    return int(level)
