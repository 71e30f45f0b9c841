"""The physics-context axis type: which dynamics train, which are held out.

Kept apart from the helpers that build whole splits (:mod:`gengap.envs.contexts`, which
documents the protocols), so :class:`~gengap.envs.splits.Split` can hold a
:class:`ContextAxis` without the two modules importing each other.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gengap.core import checks
from gengap.core.config import check_keys
from gengap.core.errors import InputError, InputTypeError, unknown_name_message

# Held-out physics-context parts; like the combination parts they use the test levels.
CONTEXT_PARTS = (
    "interpolation",
    "combinatorial_interpolation",
    "single_factor_extrapolation",
    "all_factor_extrapolation",
    "target",
)

# Held-out parts that may lie inside a training box: a box is sampled continuously, so
# no training episode ever gets one of these exact points (measure zero), and the
# stand-in for the real robot is usually meant to be covered by randomization.
_INSIDE_BOX_PARTS = ("interpolation", "target")
_MAX_SHOWN = 6

Point = tuple[float, ...]


@dataclass(frozen=True)
class ParamKind:
    """What values a context parameter takes.

    Attributes:
        what: One line for error messages and docs.
        minimum: Lower bound (``None``: unbounded).
        strict: Whether the bound itself is excluded.
        integer: Whether values are whole numbers.
        neutral: The value that leaves the simulation unchanged, if there is one.
        named: Whether the parameter needs a target name (``mass.<body>``).
    """

    what: str
    minimum: float | None = None
    strict: bool = False
    integer: bool = False
    neutral: float | None = None
    named: bool = False


PARAM_KINDS: dict[str, ParamKind] = {
    "mass_scale": ParamKind("scale of every body's mass and inertia", 0.0, True, neutral=1.0),
    "mass": ParamKind("mass in kg of one body, mass.<body>", 0.0, True, named=True),
    "friction_scale": ParamKind("scale of every geom's sliding friction", 0.0, neutral=1.0),
    "friction": ParamKind("sliding friction of one geom, friction.<geom> (a contact uses the "
                          "larger of its two geoms')", 0.0, named=True),
    "world_friction": ParamKind("sliding friction of every geom (RRLS's worldfriction)", 0.0),
    "damping_scale": ParamKind("scale of every joint's damping", 0.0, neutral=1.0),
    "damping": ParamKind("damping of one joint, damping.<joint>", 0.0, named=True),
    "gear_scale": ParamKind("scale of every actuator's gear", 0.0, True, neutral=1.0),
    "gear": ParamKind("gear of one actuator, gear.<actuator or its joint>", named=True),
    "gravity": ParamKind("vertical gravity in m/s^2 (nominal -9.81)"),
    "obs_noise": ParamKind("std of Gaussian observation noise", 0.0, neutral=0.0),
    "action_noise": ParamKind("std of Gaussian action noise", 0.0, neutral=0.0),
    "action_delay": ParamKind("steps an action waits before it acts", 0.0, integer=True,
                              neutral=0.0),
}
_PARAM_FORMS = [f"{k}.<name>" if v.named else k for k, v in PARAM_KINDS.items()]


def split_param(name: Any) -> tuple[str, str | None]:
    """``"mass.torso"`` -> ``("mass", "torso")``; ``"gravity"`` -> ``("gravity", None)``.

    Raises:
        InputError: For an unknown parameter (with close matches) or a missing/extra name.
    """
    if not isinstance(name, str) or not name:
        raise InputTypeError(f"a context parameter must be a non-empty string, got {name!r}")
    kind, dot, target = name.partition(".")
    if kind not in PARAM_KINDS:
        raise InputError(unknown_name_message("context parameter", name, _PARAM_FORMS))
    if PARAM_KINDS[kind].named and not target:
        raise InputError(f"context parameter {name!r} needs a name: {kind}.<name>")
    if not PARAM_KINDS[kind].named and dot:
        raise InputError(f"context parameter {name!r} takes no name; use {kind!r}")
    return kind, target or None


def check_value(param: str, value: Any) -> float:
    """``value`` as a valid value of ``param`` (a float; whole for integer kinds).

    Raises:
        InputTypeError: For a value that is not a number.
        InputError: For a non-finite value, one below the parameter's minimum (a
            negative mass or friction), or a fraction where a whole number is needed.
    """
    kind = PARAM_KINDS[split_param(param)[0]]
    if not checks.is_number(value):
        raise InputTypeError(f"context value of {param!r} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InputError(f"context value of {param!r} must be finite, got {value!r}")
    if kind.minimum is not None and (
        number < kind.minimum or (kind.strict and number == kind.minimum)
    ):
        bound = ">" if kind.strict else ">="
        raise InputError(
            f"context value of {param!r} ({kind.what}) must be {bound} {kind.minimum:g}, "
            f"got {value!r}"
        )
    if kind.integer and not number.is_integer():
        raise InputError(f"context value of {param!r} must be a whole number, got {value!r}")
    return number


def _shown(points: Sequence[Mapping[str, float]]) -> str:
    more = f", ... ({len(points)} in all)" if len(points) > _MAX_SHOWN else ""
    return ", ".join(_format(p) for p in points[:_MAX_SHOWN]) + more


def _format(point: Mapping[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in point.items()) + "}"


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"mass": {"torso": 3}}`` -> ``{"mass.torso": 3}`` (TOML turns dotted keys into tables)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


@dataclass(frozen=True)
class ContextBox:
    """A box of contexts ``{param: (low, high)}``, minus optional holes (sub-boxes).

    A domain-randomization box samples a context uniformly per episode (whole numbers
    for integer parameters), redrawing when it lands in a hole.
    """

    ranges: dict[str, tuple[float, float]]
    holes: tuple[dict[str, tuple[float, float]], ...] = ()

    def __post_init__(self) -> None:
        ranges = self._check_ranges("box", self.ranges, allow_partial=False)
        object.__setattr__(self, "ranges", ranges)
        holes = tuple(self._check_ranges("hole", h, allow_partial=True) for h in self.holes)
        object.__setattr__(self, "holes", holes)
        # The sampling plan, precomputed (a reset draws a context every episode): the
        # continuous parameters in one draw, whole numbers one by one, fixed ones not at all.
        integer = {p: PARAM_KINDS[split_param(p)[0]].integer for p in ranges}
        object.__setattr__(self, "_template", {p: low for p, (low, _) in ranges.items()})
        object.__setattr__(self, "_uniform", tuple(
            (p, low, high - low) for p, (low, high) in ranges.items()
            if high > low and not integer[p]))
        object.__setattr__(self, "_integers", tuple(
            (p, int(low), int(high) + 1) for p, (low, high) in ranges.items()
            if high > low and integer[p]))
        for hole in holes:
            for param, (low, high) in hole.items():
                box_low, box_high = ranges[param]
                if low < box_low or high > box_high:
                    raise InputError(
                        f"hole range of {param!r} [{low:g}, {high:g}] leaves the box "
                        f"[{box_low:g}, {box_high:g}]"
                    )

    def _check_ranges(
        self, what: str, ranges: Any, *, allow_partial: bool
    ) -> dict[str, tuple[float, float]]:
        if not isinstance(ranges, Mapping):
            raise InputTypeError(f"a {what} must be a mapping of param -> [low, high], "
                                 f"got {ranges!r}")
        ranges = _flatten(ranges)
        if not ranges:
            raise InputError(f"a {what} must give a range for at least one parameter, got none")
        out: dict[str, tuple[float, float]] = {}
        for param, bounds in ranges.items():
            if allow_partial and param not in self.ranges:
                raise InputError(unknown_name_message("hole parameter", param, self.ranges))
            if isinstance(bounds, str) or not isinstance(bounds, Sequence) or len(bounds) != 2:
                raise InputTypeError(
                    f"{what} range of {param!r} must be [low, high], got {bounds!r}"
                )
            low, high = check_value(param, bounds[0]), check_value(param, bounds[1])
            if low > high:
                raise InputError(f"{what} range of {param!r} has low > high: [{low:g}, {high:g}]")
            out[param] = (low, high)
        return out

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(self.ranges)

    def in_ranges(self, point: Mapping[str, float]) -> bool:
        return all(low <= point[p] <= high for p, (low, high) in self.ranges.items())

    def in_hole(self, point: Mapping[str, float]) -> bool:
        return any(all(lo <= point[p] <= hi for p, (lo, hi) in h.items()) for h in self.holes)

    def contains(self, point: Mapping[str, float]) -> bool:
        """Whether a randomized episode could get ``point``: in the box, not in a hole."""
        return self.in_ranges(point) and not self.in_hole(point)

    def sample(self, rng: np.random.Generator) -> dict[str, float]:
        """One context drawn uniformly from the box minus its holes.

        The continuous parameters take one ``rng.random`` draw each, in the box's order
        (``low + (high - low) * u``, the same numbers ``rng.uniform(low, high)`` would give),
        then whole-number parameters one ``rng.integers`` each; a fixed range draws nothing.
        """
        template: dict[str, float] = self._template  # type: ignore[attr-defined]
        uniform: tuple[tuple[str, float, float], ...] = self._uniform  # type: ignore[attr-defined]
        integers: tuple[tuple[str, int, int], ...] = self._integers  # type: ignore[attr-defined]
        for _ in range(10_000):
            point = dict(template)
            if uniform:
                for (param, low, span), draw in zip(uniform, rng.random(len(uniform)).tolist(),
                                                    strict=True):
                    point[param] = low + span * draw
            for param, low, stop in integers:
                point[param] = float(rng.integers(low, stop))
            if not self.holes or not self.in_hole(point):
                return point
        raise InputError("the context box is (almost) all holes: no sample outside them")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"ranges": {p: list(r) for p, r in self.ranges.items()}}
        if self.holes:
            data["holes"] = [{p: list(r) for p, r in h.items()} for h in self.holes]
        return data

    @classmethod
    def from_dict(cls, data: Any) -> ContextBox:
        if isinstance(data, ContextBox):
            return data
        if not isinstance(data, Mapping) or "ranges" not in data or set(data) - {"ranges",
                                                                                  "holes"}:
            raise InputError(f"a context box needs 'ranges' (and optional 'holes'), got {data!r}")
        return cls(ranges=dict(data["ranges"]), holes=tuple(data.get("holes", ())))


@dataclass(frozen=True)
class ContextAxis:
    """Training and held-out physics contexts.

    Args:
        params: The parameters every context assigns, in order (e.g.
            ``("mass_scale", "friction.floor")``).
        train_points: Training contexts (each a mapping with a value per parameter), e.g.
            just the nominal one. Give this or ``train_box``.
        train_box: A domain-randomization box sampled once per training episode.
        held_out: ``{part: contexts}`` for parts of :data:`CONTEXT_PARTS`.
        reference: The box the held-out parts' definitions refer to (default: the
            training box, or the range of the training points).

    Raises:
        InputError: For an empty axis, training set or held-out part; a context missing
            a parameter or naming an extra one; an invalid value; a held-out context that
            training could present (named); or one that breaks its part's definition.
    """

    params: tuple[str, ...]
    # Given as mappings (or tuples in ``params`` order); stored as tuples of floats.
    train_points: Sequence[Any] = ()
    train_box: ContextBox | None = None
    held_out: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    reference: ContextBox | None = None

    def __post_init__(self) -> None:
        if isinstance(self.params, str) or not isinstance(self.params, Iterable):
            raise InputTypeError(f"params must be a list of parameter names, got {self.params!r}")
        params = tuple(self.params)
        if not params:
            raise InputError("a context axis needs at least one parameter, got none")
        for param in params:
            split_param(param)
        if len(set(params)) != len(params):
            raise InputError(f"context parameters repeat: {list(params)}")
        object.__setattr__(self, "params", params)
        for box_name in ("train_box", "reference"):
            box = getattr(self, box_name)
            if box is not None:
                box = ContextBox.from_dict(box)
                object.__setattr__(self, box_name, box)
                if set(box.params) != set(params):
                    raise InputError(
                        f"{box_name} ranges cover {sorted(box.params)}; expected one per "
                        f"context parameter {sorted(params)}"
                    )
        if (self.train_box is None) == (not self.train_points):
            raise InputError(
                "a context axis needs training contexts: train_points (e.g. the nominal "
                "context) or train_box (domain randomization), exactly one of them; got "
                + ("both" if self.train_box is not None else "neither (empty training set)")
            )
        object.__setattr__(self, "train_points", self._points("train", self.train_points))
        if not isinstance(self.held_out, Mapping):
            raise InputTypeError(f"held_out must map part -> contexts, got {self.held_out!r}")
        held: dict[str, tuple[Point, ...]] = {}
        for part, points in self.held_out.items():
            if part not in CONTEXT_PARTS:
                raise InputError(unknown_name_message("held-out context part", part,
                                                      CONTEXT_PARTS))
            held[part] = self._points(part, points)
            if not held[part]:
                raise InputError(f"held-out context part {part!r} is empty; give at least one "
                                 "context or leave the part out")
        object.__setattr__(self, "held_out", {p: held[p] for p in CONTEXT_PARTS if p in held})
        self._check_disjoint()
        self._check_definitions()

    def _points(self, part: str, points: Any) -> tuple[Point, ...]:
        if isinstance(points, str | Mapping) or not isinstance(points, Iterable):
            raise InputTypeError(f"{part} contexts must be a list of contexts, got {points!r}")
        out: list[Point] = []
        for point in points:
            if isinstance(point, tuple) and len(point) == len(self.params) and not isinstance(
                point, Mapping
            ):
                values = dict(zip(self.params, point, strict=True))
            elif isinstance(point, Mapping):
                values = _flatten(point)
            else:
                raise InputTypeError(f"a {part} context must be a mapping, got {point!r}")
            missing = [p for p in self.params if p not in values]
            extra = [p for p in values if p not in self.params]
            if missing or extra:
                raise InputError(
                    f"{part} context {values!r} must give exactly the axis parameters "
                    f"{list(self.params)}" + (f"; missing {missing}" if missing else "")
                    + (f"; unknown {extra}" if extra else "")
                )
            checked = tuple(check_value(p, values[p]) for p in self.params)
            if checked not in out:
                out.append(checked)
        return tuple(out)

    def _check_disjoint(self) -> None:
        train = set(self.train_points)
        for part, points in self.held_out.items():
            if self.train_box is not None:
                if part in _INSIDE_BOX_PARTS:
                    continue
                common = [p for p in points if self.train_box.contains(self.as_dict(p))]
                where = "inside the training box"
            else:
                common = [p for p in points if p in train]
                where = "also training contexts"
            if common:
                raise InputError(
                    f"train and {part} contexts overlap in {len(common)} context(s), "
                    f"{where}: {_shown([self.as_dict(p) for p in common])}; held-out "
                    "contexts must be disjoint from training contexts"
                )

    def ranges(self) -> dict[str, tuple[float, float]]:
        """Per parameter, the training range the held-out definitions refer to."""
        box = self.reference or self.train_box
        if box is not None:
            return dict(box.ranges)
        return {
            p: (min(pt[i] for pt in self.train_points), max(pt[i] for pt in self.train_points))
            for i, p in enumerate(self.params)
        }

    def _check_definitions(self) -> None:
        ranges = self.ranges()
        varied = [p for p, (low, high) in ranges.items() if high > low] or list(self.params)
        region = self.reference or self.train_box
        for part, points in self.held_out.items():
            bad = []
            for point in points:
                values = self.as_dict(point)
                outside = [p for p in self.params
                           if not ranges[p][0] <= values[p] <= ranges[p][1]]
                if part == "interpolation":
                    ok = not outside and (region is None or not region.in_hole(values))
                elif part == "combinatorial_interpolation":
                    ok = not outside and (
                        region.in_hole(values) if region is not None
                        else point not in self.train_points
                    )
                elif part == "single_factor_extrapolation":
                    ok = len(outside) == 1
                elif part == "all_factor_extrapolation":
                    ok = bool(outside) and all(p in outside for p in varied)
                else:
                    ok = True
                if not ok:
                    bad.append(values)
            if bad:
                shown = ", ".join(f"{p} [{lo:g}, {hi:g}]" for p, (lo, hi) in ranges.items())
                raise InputError(
                    f"not {part.replace('_', '-')}: {_shown(bad)} against the training "
                    f"ranges {shown}" + (" and the box's holes" if region and region.holes
                                         else "")
                )

    # -- queries ----------------------------------------------------------------------
    def __hash__(self) -> int:
        return hash((self.params, self.train_points, self.train_box is not None,
                     tuple((k, v) for k, v in self.held_out.items())))

    @property
    def held_out_parts(self) -> tuple[str, ...]:
        return tuple(self.held_out)

    def as_dict(self, point: Point) -> dict[str, float]:
        return dict(zip(self.params, point, strict=True))

    def points(self, part: str) -> list[dict[str, float]]:
        """The contexts of ``part`` (the training points for level parts; empty for a box)."""
        if part in ("train", "validation", "test"):
            return [self.as_dict(p) for p in self.train_points]
        self._check_part(part)
        return [self.as_dict(p) for p in self.held_out[part]]

    def _check_part(self, part: str) -> None:
        if part in ("train", "validation", "test"):
            return
        if part not in CONTEXT_PARTS:
            raise InputError(unknown_name_message(
                "split part", part, ("train", "validation", "test", *CONTEXT_PARTS)))
        if part not in self.held_out:
            raise InputError(f"the context axis has no {part} contexts; it has "
                             f"{list(self.held_out) or 'no held-out parts'}")

    def sample(self, part: str, rng: np.random.Generator) -> dict[str, float]:
        """A context for a new episode of ``part``, drawn with ``rng``."""
        self._check_part(part)
        if part in ("train", "validation", "test") and self.train_box is not None:
            return self.train_box.sample(rng)
        pool = self.train_points if part in ("train", "validation", "test") else (
            self.held_out[part])
        return self.as_dict(pool[int(rng.integers(len(pool)))])

    def allows(self, part: str, context: Mapping[str, Any]) -> dict[str, float]:
        """``context`` checked as one ``part`` may present (for ``reset(options=...)``).

        Raises:
            InputError: For a bad context or one that is not in ``part``.
        """
        self._check_part(part)
        point = self._points(part, [context])[0]
        values = self.as_dict(point)
        if part in ("train", "validation", "test") and self.train_box is not None:
            if not self.train_box.contains(values):
                raise InputError(f"context {_format(values)} is outside the training box "
                                 f"of the {part} part")
            return values
        pool = self.train_points if part in ("train", "validation", "test") else (
            self.held_out[part])
        if point not in pool:
            raise InputError(f"context {_format(values)} is not one of the {part} contexts "
                             f"({_shown([self.as_dict(p) for p in pool])})")
        return values

    def describe(self) -> str:
        train = (f"box over {', '.join(self.params)}" if self.train_box is not None
                 else f"{len(self.train_points)} train contexts")
        return train + "".join(f", {len(v)} {k}" for k, v in self.held_out.items())

    # -- serialization ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"params": list(self.params)}
        if self.train_box is not None:
            data["train_box"] = self.train_box.to_dict()
        else:
            data["train_points"] = [self.as_dict(p) for p in self.train_points]
        if self.held_out:
            data["held_out"] = {k: [self.as_dict(p) for p in v] for k, v in self.held_out.items()}
        if self.reference is not None:
            data["reference"] = self.reference.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Any) -> ContextAxis:
        if isinstance(data, ContextAxis):
            return data
        allowed = ("params", "train_points", "train_box", "held_out", "reference")
        check_keys(data, "a context axis", allowed, required=("params",))
        return cls(
            params=tuple(data["params"]),
            train_points=tuple(data.get("train_points", ())),
            train_box=data.get("train_box"),
            held_out=dict(data.get("held_out", {})),
            reference=data.get("reference"),
        )


# -- protocols ------------------------------------------------------------------------
TRAIN_MODES = ("nominal", "box", "grid")
