"""The task-combination axis of a split: which factor combinations train, which are held out.

A task is a combination of factor values, e.g. ``("red", "square")`` over the
factors ``{"color": (...), "shape": (...)}``. A :class:`CombinationAxis` says
which combinations an agent may see in training and which it is tested on,
following the protocols of Kirk et al.'s survey of RL generalization:

- ``train``: the training combinations. The level parts ``train``,
  ``validation`` and ``test`` (IID test: training combinations on held-out
  levels) all use them.
- ``combinatorial``: held-out combinations whose every value occurs in some
  training combination (new pairings of known parts).
- ``extrapolation``: held-out combinations that use at least one value no
  training combination has.

The axis checks these definitions when it is built and names the offending
combinations. It rides on :class:`~gengap.envs.splits.Split` as its
``combinations`` field; the helpers here (:func:`iid_split`,
:func:`combinatorial_split`, :func:`extrapolation_split`,
:func:`random_combinatorial_split`) build whole splits.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from gengap.core import checks
from gengap.core.errors import InputError, InputTypeError, unknown_name_message
from gengap.envs.combination_axis import (
    HELD_OUT_PARTS,
    Combination,
    CombinationAxis,
    FactorValue,
    normalize_factors,
    shown_values,
)
from gengap.envs.splits import Split

# The axis type is defined in combination_axis (Split holds one) and re-exported here,
# beside the builders, where users have always imported it from.
__all__ = [
    "DEFAULT_LEVELS",
    "HELD_OUT_PARTS",
    "Combination",
    "CombinationAxis",
    "FactorValue",
    "combinatorial_split",
    "extrapolation_split",
    "iid_split",
    "random_combinatorial_split",
]

# -- protocols ------------------------------------------------------------------------
DEFAULT_LEVELS = Split.levels_split(10_000, name="levels-10000")


def _with_axis(axis: CombinationAxis, levels: Split | None, name: str) -> Split:
    base = DEFAULT_LEVELS if levels is None else levels
    if not isinstance(base, Split):
        raise InputTypeError(f"levels must be a Split or None, got {type(base).__name__}")
    if base.combinations is not None:
        raise InputError(
            f"levels must be a level-only split, got {base.name!r} which already has a "
            "combination axis"
        )
    return Split(
        train=base.train, test=base.test, validation=base.validation, name=name, combinations=axis
    )


def iid_split(
    factors: Mapping[str, Sequence[FactorValue]],
    *,
    levels: Split | None = None,
    name: str = "iid",
) -> Split:
    """Every combination trains; only levels are held out.

    Args:
        factors: ``{factor name: values}``.
        levels: The level axis (default: train levels 0..9999, test from 10000 on).
        name: The split's name.
    """
    normalized = normalize_factors(dict(factors))
    every = frozenset(itertools.product(*normalized.values()))
    return _with_axis(CombinationAxis(factors=normalized, train=every), levels, name)


def combinatorial_split(
    factors: Mapping[str, Sequence[FactorValue]],
    held_out: Iterable[Sequence[FactorValue]],
    *,
    levels: Split | None = None,
    name: str = "combinatorial",
) -> Split:
    """Train on every combination except ``held_out``; test on ``held_out``.

    Raises:
        ValueError: If a held-out combination uses a value that only occurs in
            held-out combinations ("not combinatorial"), or is not declared.
    """
    return extrapolation_split(factors, {}, held_out=held_out, levels=levels, name=name)


def extrapolation_split(
    factors: Mapping[str, Sequence[FactorValue]],
    held_out_values: Mapping[str, Sequence[FactorValue]],
    *,
    held_out: Iterable[Sequence[FactorValue]] = (),
    levels: Split | None = None,
    name: str = "extrapolation",
) -> Split:
    """Hold out whole values (e.g. ``{"color": ("yellow",)}``): every combination that
    uses one goes to ``extrapolation``. ``held_out`` combinations (using only
    training values) go to ``combinatorial``; the rest train.

    Raises:
        ValueError: For undeclared factors or values, or a non-combinatorial ``held_out``.
    """
    normalized = normalize_factors(dict(factors))
    if not isinstance(held_out_values, Mapping):
        raise InputTypeError(
            f"held_out_values must be a mapping of factor -> values, got {held_out_values!r}"
        )
    unseen: dict[str, set[FactorValue]] = {}
    for factor, values in held_out_values.items():
        if factor not in normalized:
            raise InputError(unknown_name_message("factor", factor, normalized))
        if isinstance(values, str) or not isinstance(values, Iterable):
            raise InputTypeError(f"held_out_values[{factor!r}] must be a sequence, got {values!r}")
        unseen[factor] = set(values)
        undeclared = sorted(repr(v) for v in unseen[factor] - set(normalized[factor]))
        if undeclared:
            raise InputError(
                f"held_out_values[{factor!r}] has undeclared value(s) {', '.join(undeclared)} "
                f"(declared: {shown_values(normalized[factor])})"
            )
    names = list(normalized)
    held = {tuple(c) for c in held_out}
    extrapolation, train = set(), set()
    for combo in itertools.product(*normalized.values()):
        if any(combo[names.index(f)] in vals for f, vals in unseen.items()):
            extrapolation.add(combo)
        elif combo not in held:
            train.add(combo)
    overlap = sorted(repr(c) for c in held & extrapolation)
    if overlap:
        raise InputError(
            f"held_out combination(s) {', '.join(overlap)} use a held-out value; they are "
            "already extrapolation combinations"
        )
    axis = CombinationAxis(
        factors=normalized,
        train=frozenset(train),
        combinatorial=frozenset(held),
        extrapolation=frozenset(extrapolation),
    )
    return _with_axis(axis, levels, name)


def random_combinatorial_split(
    factors: Mapping[str, Sequence[FactorValue]],
    fraction: float,
    seed: int,
    *,
    levels: Split | None = None,
    name: str | None = None,
) -> Split:
    """Hold out a random ``fraction`` of the combinations, keeping every value in training.

    Combinations are visited in an order shuffled by ``seed`` and held out while
    every value of every factor still occurs in some training combination, so
    the result is combinatorial by construction.

    Raises:
        ValueError: If ``fraction`` is not in (0, 1), or so large that coverage
            cannot be kept (the message gives the most that could be held out).
    """
    checks.fraction("fraction", fraction, open_ends=True)
    checks.non_negative_int("seed", seed, numpy=True)
    normalized = normalize_factors(dict(factors))
    combos = list(itertools.product(*normalized.values()))
    target = max(1, round(fraction * len(combos)))
    order = np.random.default_rng(int(seed)).permutation(len(combos))
    # How many training combinations show each (factor, value); a combination may
    # leave training only while each of its values is shown by another one.
    counts = {(i, v): 0 for i, values in enumerate(normalized.values()) for v in values}
    for combo in combos:
        for i, v in enumerate(combo):
            counts[i, v] += 1
    held: list[Combination] = []
    for index in order:
        if len(held) == target:
            break
        combo = combos[int(index)]
        if all(counts[i, v] > 1 for i, v in enumerate(combo)):
            held.append(combo)
            for i, v in enumerate(combo):
                counts[i, v] -= 1
    if len(held) < target:
        raise InputError(
            f"fraction={fraction} asks for {target} of {len(combos)} combinations held out, "
            f"but only {len(held)} could be while every value stays in training (seed={seed})"
        )
    return combinatorial_split(
        normalized,
        held,
        levels=levels,
        name=name or f"random-combinatorial-{fraction:g}-seed{int(seed)}",
    )
