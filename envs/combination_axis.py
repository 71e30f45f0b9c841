"""The task-combination axis: which factor combinations train, which are held out.

A task is a combination of factor values, e.g. ``("red", "square")`` over the
factors ``{"color": (...), "shape": (...)}``. A :class:`CombinationAxis` says
which combinations an agent may see in training and which it is tested on
(see :mod:`gengap.envs.combinations` for the protocols and the split builders).
It rides on :class:`~gengap.envs.splits.Split` as its ``combinations`` field, so
it lives apart from the builders: ``splits`` imports this module, the builders
import ``splits``, and nothing imports in a circle.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gengap.core import checks
from gengap.core.config import check_keys
from gengap.core.errors import InputError, InputTypeError, unknown_name_message

FactorValue = str | int
Combination = tuple[FactorValue, ...]
# Axis parts that hold combinations of their own; every level part uses ``train``.
HELD_OUT_PARTS = ("combinatorial", "extrapolation")
_MAX_SHOWN = 8


def shown_values(items: Sequence[Any]) -> str:
    """At most ``_MAX_SHOWN`` items for an error message."""
    items = list(items)
    more = f", ... ({len(items)} in all)" if len(items) > _MAX_SHOWN else ""
    return ", ".join(repr(i) for i in items[:_MAX_SHOWN]) + more


def _check_value(name: str, value: Any) -> FactorValue:
    if not (isinstance(value, str) or checks.is_int(value, numpy=True)):
        raise InputTypeError(
            f"{name} must be a string or an integer, got {value!r} ({type(value).__name__})"
        )
    return value if isinstance(value, str) else int(value)


def normalize_factors(factors: Any) -> dict[str, tuple[FactorValue, ...]]:
    """Factors as an ordered ``{name: values}`` dict; accepts a mapping or ``[{name, values}]``."""
    if isinstance(factors, Mapping):
        items = list(factors.items())
    elif isinstance(factors, Sequence) and not isinstance(factors, str):
        items = []
        for entry in factors:
            if not isinstance(entry, Mapping) or set(entry) != {"name", "values"}:
                raise InputError(
                    "factors as a list must hold {'name': ..., 'values': [...]} entries, "
                    f"got {entry!r}"
                )
            items.append((entry["name"], entry["values"]))
    else:
        raise InputTypeError(
            f"factors must be a mapping of name -> values, got {type(factors).__name__}"
        )
    if not items:
        raise InputError("factors must name at least one factor, got none")
    out: dict[str, tuple[FactorValue, ...]] = {}
    for name, values in items:
        if not isinstance(name, str) or not name:
            raise InputTypeError(f"factor names must be non-empty strings, got {name!r}")
        if name in out:
            raise InputError(f"factor {name!r} is declared twice")
        if isinstance(values, str) or not isinstance(values, Iterable):
            raise InputTypeError(f"factors[{name!r}] must be a sequence of values, got {values!r}")
        checked = tuple(_check_value(f"factors[{name!r}][]", v) for v in values)
        if not checked:
            raise InputError(f"factors[{name!r}] must hold at least one value, got none")
        repeated = sorted({repr(v) for v in checked if checked.count(v) > 1})
        if repeated:
            raise InputError(f"factors[{name!r}] repeats value(s) {', '.join(repeated)}")
        out[name] = checked
    return out


@dataclass(frozen=True)
class CombinationAxis:
    """Training and held-out combinations of factor values.

    Args:
        factors: Ordered ``{factor name: declared values}``, e.g.
            ``{"color": ("red", "green"), "shape": ("square", "circle")}``. A
            combination is a tuple with one value per factor, in this order.
        train: The training combinations (also used by the IID ``test`` and the
            ``validation`` parts, on their own levels).
        combinatorial: Held-out combinations whose every value occurs in training.
        extrapolation: Held-out combinations with at least one value unseen in training.

    Raises:
        ValueError: If a combination has the wrong length or an undeclared value,
            ``train`` is empty, two parts share combinations (named), a
            combinatorial combination uses a value missing from training ("not
            combinatorial", naming the combinations and values), or an
            extrapolation combination uses only training values.
        TypeError: For values that are neither strings nor integers.
    """

    factors: dict[str, tuple[FactorValue, ...]]
    train: frozenset[Combination]
    combinatorial: frozenset[Combination] = field(default_factory=frozenset)
    extrapolation: frozenset[Combination] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        factors = normalize_factors(self.factors)
        object.__setattr__(self, "factors", factors)
        for part in ("train", *HELD_OUT_PARTS):
            object.__setattr__(self, part, self._normalize_combinations(part, getattr(self, part)))
        if not self.train:
            raise InputError("train must hold at least one combination, got none")
        parts = [("train", self.train), *((p, getattr(self, p)) for p in HELD_OUT_PARTS)]
        for i, (name_a, set_a) in enumerate(parts):
            for name_b, set_b in parts[i + 1 :]:
                common = self.sorted(set_a & set_b)
                if common:
                    raise InputError(
                        f"{name_a} and {name_b} combinations overlap in {len(common)} "
                        f"combination(s): {shown_values(common)}; held-out combinations must be "
                        "disjoint from training combinations"
                    )
        seen = self.training_values()
        missing = {
            combo: [f"{n}={v!r}" for n, v in zip(factors, combo, strict=True) if v not in seen[n]]
            for combo in self.sorted(self.combinatorial)
        }
        missing = {combo: values for combo, values in missing.items() if values}
        if missing:
            detail = "; ".join(f"{combo!r} needs {', '.join(v)}" for combo, v in missing.items())
            raise InputError(
                f"not combinatorial: {len(missing)} held-out combination(s) use values that no "
                f"training combination has ({detail}); put them in extrapolation or train on "
                "those values"
            )
        familiar = [
            combo
            for combo in self.sorted(self.extrapolation)
            if all(v in seen[n] for n, v in zip(factors, combo, strict=True))
        ]
        if familiar:
            raise InputError(
                f"not extrapolation: {len(familiar)} combination(s) use only values seen in "
                f"training: {shown_values(familiar)}; put them in combinatorial"
            )

    def _normalize_combinations(self, part: str, combos: Any) -> frozenset[Combination]:
        if isinstance(combos, str) or not isinstance(combos, Iterable):
            raise InputTypeError(f"{part} must be a collection of combinations, got {combos!r}")
        out = set()
        for combo in combos:
            if isinstance(combo, str) or not isinstance(combo, Sequence):
                raise InputTypeError(
                    f"a {part} combination must be a tuple of values, got {combo!r}"
                )
            combo = tuple(_check_value(f"{part} combination value", v) for v in combo)
            if len(combo) != len(self.factors):
                raise InputError(
                    f"{part} combination {combo!r} has {len(combo)} value(s); expected one per "
                    f"factor ({', '.join(self.factors)})"
                )
            for name, value in zip(self.factors, combo, strict=True):
                if value not in self.factors[name]:
                    raise InputError(
                        f"{part} combination {combo!r} uses {name}={value!r}, which is not a "
                        f"declared value of factor {name!r} ({shown_values(self.factors[name])})"
                    )
            out.add(combo)
        return frozenset(out)

    def __hash__(self) -> int:
        factors = tuple((name, values) for name, values in self.factors.items())
        return hash((factors, self.train, self.combinatorial, self.extrapolation))

    # -- queries ----------------------------------------------------------------------
    @property
    def factor_names(self) -> tuple[str, ...]:
        return tuple(self.factors)

    @property
    def held_out_parts(self) -> tuple[str, ...]:
        """The held-out parts that hold at least one combination."""
        return tuple(p for p in HELD_OUT_PARTS if getattr(self, p))

    def all_combinations(self) -> list[Combination]:
        """Every combination of the declared values, in declaration order."""
        return list(itertools.product(*self.factors.values()))

    def training_values(self) -> dict[str, frozenset[FactorValue]]:
        """Per factor, the values that occur in some training combination."""
        return {
            name: frozenset(combo[i] for combo in self.train) for i, name in enumerate(self.factors)
        }

    def sorted(self, combos: Iterable[Combination]) -> list[Combination]:
        """``combos`` in declaration order of their values (a stable, readable order)."""
        index = [{v: i for i, v in enumerate(values)} for values in self.factors.values()]
        return sorted(combos, key=lambda c: tuple(index[i][v] for i, v in enumerate(c)))

    def combinations_for(self, part: str) -> frozenset[Combination]:
        """The combinations of ``part``: ``train``, ``validation`` and ``test`` give the
        training ones; ``combinatorial`` and ``extrapolation`` the held-out ones.

        Raises:
            ValueError: For an unknown part or a held-out part with no combinations.
        """
        if part in ("train", "validation", "test"):
            return self.train
        if part in HELD_OUT_PARTS:
            combos: frozenset[Combination] = getattr(self, part)
            if not combos:
                raise InputError(
                    f"the combination axis has no {part} combinations; it has "
                    f"{list(self.held_out_parts) or 'no held-out parts'}"
                )
            return combos
        raise InputError(
            unknown_name_message(
                "split part", part, ("train", "validation", "test", *HELD_OUT_PARTS)
            )
        )

    def describe(self) -> str:
        total = len(self.all_combinations())
        text = f"{len(self.train)}/{total} train combinations"
        for part in self.held_out_parts:
            text += f", {len(getattr(self, part))} {part}"
        return text

    # -- serialization ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON/TOML-ready form; factors are a list so their order survives ``sort_keys``."""
        data: dict[str, Any] = {
            "factors": [{"name": n, "values": list(v)} for n, v in self.factors.items()],
            "train": [list(c) for c in self.sorted(self.train)],
        }
        for part in self.held_out_parts:
            data[part] = [list(c) for c in self.sorted(getattr(self, part))]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CombinationAxis:
        if isinstance(data, CombinationAxis):
            return data
        allowed = ("factors", "train", *HELD_OUT_PARTS)
        check_keys(data, "a combination axis", allowed, required=("factors", "train"))
        return cls(
            factors=data["factors"],
            train=data["train"],
            combinatorial=data.get("combinatorial", ()),
            extrapolation=data.get("extrapolation", ()),
        )
