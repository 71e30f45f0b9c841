"""The physics-context axis of a split: which dynamics train, which are held out.

A *context* assigns a value to every parameter of the axis, e.g.
``{"mass_scale": 1.2, "friction.floor": 0.6, "action_delay": 1}``. A
:class:`ContextAxis` says which contexts training episodes may get (a set of
points such as the nominal one, or a domain-randomization box sampled per
episode) and which contexts each held-out part is tested on. The held-out
parts follow the protocols of Kirk et al.'s survey as used by CARL:

- ``interpolation``: every parameter inside the training range.
- ``combinatorial_interpolation``: every parameter inside the training range,
  but the combination is not trained on (a hole of the training box).
- ``single_factor_extrapolation``: exactly one parameter outside the range.
- ``all_factor_extrapolation``: every varied parameter outside the range.
- ``target``: the stand-in for the real robot (any context not trained on).

Ranges are those of ``reference`` (the protocol's box) when given, else of the
training set; so two arms that train differently (nominal vs randomized) can
share every held-out part. The axis checks these definitions when it is built
and names the offending contexts; a held-out context that training could
present is refused, naming it. Parameter *names* are checked by the env (they
depend on the robot); their values (no negative mass or friction) here.

:func:`kirk_split` builds a whole split; :class:`~gengap.envs.splits.Split`
carries the axis as its ``contexts`` field.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

from gengap.core import checks
from gengap.core.errors import InputError, InputTypeError, unknown_name_message
from gengap.envs.context_axis import (
    CONTEXT_PARTS,
    PARAM_KINDS,
    TRAIN_MODES,
    ContextAxis,
    ContextBox,
    ParamKind,
    _flatten,
    check_value,
    split_param,
)
from gengap.envs.splits import Split

__all__ = [
    "PARAM_KINDS",
    "TRAIN_MODES",
    "CONTEXT_PARTS",
    "ContextAxis",
    "ContextBox",
    "DEFAULT_LEVELS",
    "ParamKind",
    "check_value",
    "kirk_split",
    "split_param",
    "with_contexts",
]


def kirk_split(
    ranges: Mapping[str, Sequence[float]],
    extrapolation: Mapping[str, Sequence[float]],
    *,
    train: str = "box",
    nominal: Mapping[str, float] | None = None,
    target: Mapping[str, float] | None = None,
    points_per_factor: int = 3,
    hole_fraction: float = 0.25,
    levels: Split | None = None,
    name: str | None = None,
) -> Split:
    """A split with every Kirk/CARL protocol part over the box ``ranges``.

    The reference box is ``ranges`` minus one hole: the corner where every varied
    parameter is in the top ``hole_fraction`` of its range. Held-out parts:
    ``interpolation`` at the midpoints between a ``points_per_factor`` grid (outside
    the hole); ``combinatorial_interpolation`` inside the hole; one
    ``single_factor_extrapolation`` context per value in ``extrapolation[param]`` (the
    other parameters at mid-range); ``all_factor_extrapolation`` at every combination
    of those values; and ``target`` if given (missing parameters at nominal).

    Args:
        ranges: ``{param: (low, high)}``; ``low == high`` holds a parameter fixed.
        extrapolation: ``{param: values outside its range}`` for the varied parameters.
        train: ``"box"`` (randomize over the reference box), ``"nominal"`` (the
            ``nominal`` context only) or ``"grid"`` (the grid points outside the hole).
        nominal: The nominal context; parameters with a neutral value (scales, noises,
            delay) default to it.
        target: The stand-in for the real robot.
        points_per_factor: Grid size per varied parameter (>= 2).
        hole_fraction: Size of the combinatorial hole as a fraction of each range.
        levels: The level axis (default: levels 0..9999 train, 10000 on test).
        name: The split's name.

    Raises:
        InputError: For an unknown train mode, bad ranges or values, or parts that
            break their definitions.
    """
    if train not in TRAIN_MODES:
        raise InputError(unknown_name_message("context train mode", train, TRAIN_MODES))
    checks.int_in("points_per_factor", points_per_factor, 2)
    checks.fraction("hole_fraction", hole_fraction, open_ends=True)
    box = ContextBox(ranges={p: tuple(r) for p, r in _flatten(ranges).items()})  # type: ignore[misc]
    params = box.params
    varied = [p for p, (lo, hi) in box.ranges.items() if hi > lo]
    if not varied:
        raise InputError("ranges must vary at least one parameter (low < high)")
    whole = [p for p in varied if PARAM_KINDS[split_param(p)[0]].integer]
    if whole:
        raise InputError(
            f"kirk_split varies only continuous parameters; hold {whole} fixed (low == high) "
            "or randomize it with a ContextAxis and a ContextBox"
        )
    hole = {p: (hi - hole_fraction * (hi - lo), hi) for p, (lo, hi) in box.ranges.items()
            if p in varied}
    reference = ContextBox(ranges=box.ranges, holes=(hole,))
    middle = {p: (lo + hi) / 2 for p, (lo, hi) in box.ranges.items()}
    nominal_point = _nominal(params, nominal, required=train == "nominal")

    def grid(values: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
        columns = [values.get(p, (middle[p],)) for p in params]
        return [dict(zip(params, combo, strict=True)) for combo in itertools.product(*columns)]

    def linspace(p: str, count: int) -> list[float]:
        lo, hi = box.ranges[p]
        return [float(v) for v in np.linspace(lo, hi, count)]

    grid_values = {p: linspace(p, points_per_factor) for p in varied}
    mids = {p: [(a + b) / 2 for a, b in itertools.pairwise(v)] for p, v in grid_values.items()}
    hole_values = {p: [lo + (hi - lo) * f for f in (1 / 3, 2 / 3)] for p, (lo, hi) in hole.items()}
    outside = {p: [float(v) for v in values] for p, values in _flatten(extrapolation).items()}
    for param in outside:
        if param not in varied:
            raise InputError(unknown_name_message("extrapolated parameter", param, varied))
    held: dict[str, list[dict[str, float]]] = {
        "interpolation": [p for p in grid(mids) if not reference.in_hole(p)],
        "combinatorial_interpolation": grid(hole_values),
        "single_factor_extrapolation": [
            {**middle, param: value} for param, values in outside.items() for value in values
        ],
    }
    if set(outside) == set(varied):
        held["all_factor_extrapolation"] = grid(outside)
    if target is not None:
        given = _flatten(target)
        missing = [p for p in params if p not in given and p not in nominal_point]
        if missing:
            raise InputError(f"target needs a value for {missing} (no nominal value to use)")
        held["target"] = [{**nominal_point, **given}]
    if train == "nominal":  # nominal_point is then complete
        for part in held:
            held[part] = [p for p in held[part] if p != nominal_point]
    held = {k: v for k, v in held.items() if v}
    axis = ContextAxis(
        params=params,
        train_points=(
            (nominal_point,) if train == "nominal"
            else tuple(p for p in grid(grid_values) if not reference.in_hole(p))
            if train == "grid" else ()
        ),
        train_box=reference if train == "box" else None,
        held_out=held,
        reference=reference,
    )
    return with_contexts(axis, levels, name or f"contexts-{train}")


def _nominal(params: Sequence[str], nominal: Mapping[str, float] | None, *, required: bool
             ) -> dict[str, float]:
    """The nominal context: given values, else neutral ones; without ``required``,
    parameters with neither are left out."""
    given = _flatten(nominal or {})
    out: dict[str, float] = {}
    for param in params:
        if param in given:
            out[param] = check_value(param, given[param])
            continue
        neutral = PARAM_KINDS[split_param(param)[0]].neutral
        if neutral is not None:
            out[param] = neutral
        elif required:
            raise InputError(f"nominal needs a value for {param!r} (it has no neutral value)")
    extra = sorted(set(given) - set(params))
    if extra:
        raise InputError(f"nominal names parameter(s) {extra} that the ranges do not")
    return out


DEFAULT_LEVELS = Split.levels_split(10_000, name="levels-10000")


def with_contexts(axis: ContextAxis, levels: Split | None = None, name: str = "contexts") -> Split:
    """``levels`` (default: train 0..9999, test 10000 on) with the context axis ``axis``.

    Raises:
        InputError: If ``levels`` already has a context axis.
    """
    base = DEFAULT_LEVELS if levels is None else levels
    if not isinstance(base, Split):
        raise InputTypeError(f"levels must be a Split or None, got {type(base).__name__}")
    if base.contexts is not None:
        raise InputError(f"levels must be a split without a context axis, got {base.name!r}")
    return Split(train=base.train, test=base.test, validation=base.validation, name=name,
                 combinations=base.combinations, contexts=axis)
