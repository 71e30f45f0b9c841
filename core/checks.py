"""One check per kind of value, for every layer and the command line.

Each check takes the argument's name (as the user knows it: ``"num_envs"``,
``"--episodes"``, ``"study file: seeds"``) and the value, returns the value when it is
acceptable, and otherwise raises one :class:`~gengap.core.errors.InputError` whose message
names the argument, what was expected and what was given::

    num_envs must be a positive integer, got 0
    --epsilon must be a number in [0, 1], got 1.5
    unknown action mode 'gredy'; did you mean 'greedy'? (expected one of: greedy, sampled)

A value of the wrong type raises :class:`~gengap.core.errors.InputTypeError` (also a
``TypeError``); a value of the right type out of range raises ``InputError`` (a
``ValueError``). ``True`` is never an integer or a number here, although Python's ``bool``
subclasses ``int``: ``num_envs=True`` is a mistake, not 1. The argparse types of
``gengap.scripts.argtypes`` are thin adapters over these functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeGuard, TypeVar

import numpy as np

from gengap.core.errors import InputError, InputTypeError, unknown_name_message

__all__ = [
    "MAX_SEED",
    "boolean",
    "finite_number",
    "fraction",
    "int_in",
    "is_int",
    "is_number",
    "mapping",
    "non_negative_int",
    "non_negative_number",
    "number",
    "number_in",
    "one_of",
    "optional",
    "positive_int",
    "positive_number",
    "seed",
    "string",
]

#: The largest seed numpy's legacy seeding and most envs take (2**32 - 1).
MAX_SEED = 2**32 - 1

T = TypeVar("T")


def is_int(value: Any, *, numpy: bool = False) -> TypeGuard[int]:
    """Whether ``value`` is an integer (numpy's too with ``numpy``), and not a bool: the
    test behind every integer check, for compound values (a pair, a list) to use."""
    if isinstance(value, bool | np.bool_):
        return False
    return isinstance(value, int | np.integer) if numpy else isinstance(value, int)


def is_number(value: Any) -> TypeGuard[float]:
    """Whether ``value`` is an int or a float (numpy's too), and not a bool."""
    return not isinstance(value, bool | np.bool_) and isinstance(
        value, int | float | np.integer | np.floating)


def optional(check: Callable[..., T], name: str, value: Any, *args: Any, **kwargs: Any
             ) -> T | None:
    """``None``, or ``value`` passed through ``check``; a refusal says "... or None"."""
    if value is None:
        return None
    try:
        return check(name, value, *args, **kwargs)
    except InputError as error:
        message = str(error).replace(", got ", " or None, got ", 1)
        raise type(error)(message) from None


def _show(bound: float) -> str:
    """A bound as a reader writes it: 0 and 1, not 0.0 and 1.0; 2**63 - 1, not 19 digits."""
    if isinstance(bound, int) and abs(bound) >= 2**31:
        power = (abs(bound) + (bound > 0)).bit_length() - 1
        if bound == 2**power - 1:
            return f"2**{power} - 1"
        if bound == -(2**power):
            return f"-2**{power}"
    if isinstance(bound, float) and bound.is_integer() and abs(bound) < 1e15:
        return str(int(bound))
    return str(bound)


def _integer(name: str, value: Any, expected: str, *, numpy: bool) -> int:
    if not is_int(value, numpy=numpy):
        raise InputTypeError(f"{name} must be {expected}, got {value!r}")
    return int(value)


def positive_int(name: str, value: Any, *, numpy: bool = False) -> int:
    """An integer >= 1 ("NAME must be a positive integer, got ...").

    Args:
        name: The argument, as the user knows it.
        value: What was given.
        numpy: Also take numpy integers (returned as ``int``).
    """
    number = _integer(name, value, "a positive integer", numpy=numpy)
    if number < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return number


def non_negative_int(name: str, value: Any, *, numpy: bool = False) -> int:
    """An integer >= 0 ("NAME must be a non-negative integer, got ...")."""
    number = _integer(name, value, "a non-negative integer", numpy=numpy)
    if number < 0:
        raise InputError(f"{name} must be a non-negative integer, got {value!r}")
    return number


def _interval(
    kind: str, low: float | None, high: float | None, *,
    low_open: bool = False, high_open: bool = False,
) -> str:
    """What a bounded check expects, the interval written the mathematical way:
    ``an integer in [0, 10]``, ``a number in (0, 1]``, ``a number > 0``, ``an integer``."""
    if low is not None and high is not None:
        return (f"{kind} in {'(' if low_open else '['}{_show(low)}, "
                f"{_show(high)}{')' if high_open else ']'}")
    if low is not None:
        return f"{kind} {'>' if low_open else '>='} {_show(low)}"
    if high is not None:
        return f"{kind} {'<' if high_open else '<='} {_show(high)}"
    return kind


def int_in(
    name: str, value: Any, low: int | None = None, high: int | None = None, *,
    numpy: bool = False,
) -> int:
    """An integer in ``[low, high]`` (either end may be open-ended: ``None``)."""
    expected = _interval("an integer", low, high)
    number = _integer(name, value, expected, numpy=numpy)
    if (low is not None and number < low) or (high is not None and number > high):
        raise InputError(f"{name} must be {expected}, got {value!r}")
    return number


def seed(name: str, value: Any) -> int:
    """A random seed: an integer (numpy's too) in ``[0, 2**32 - 1]``."""
    number = _integer(name, value, "an integer in [0, 2**32 - 1]", numpy=True)
    if not 0 <= number <= MAX_SEED:
        raise InputError(f"{name} must be an integer in [0, 2**32 - 1], got {value!r}")
    return number


def boolean(name: str, value: Any) -> bool:
    """``True`` or ``False`` (not 0 / 1, not "yes")."""
    if not isinstance(value, bool | np.bool_):
        raise InputTypeError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def number(name: str, value: Any) -> float:
    """Any int or float (numpy's too; NaN and infinities included), not a bool."""
    if not is_number(value):
        raise InputTypeError(f"{name} must be a number, got {value!r}")
    return value  # type: ignore[no-any-return]


def finite_number(name: str, value: Any) -> float:
    """A number that is neither NaN nor infinite."""
    if not is_number(value):
        raise InputTypeError(f"{name} must be a finite number, got {value!r}")
    if not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    return value  # type: ignore[no-any-return]


def number_in(
    name: str, value: Any, low: float | None = None, high: float | None = None, *,
    low_open: bool = False, high_open: bool = False,
) -> float:
    """A number in the interval from ``low`` to ``high`` (closed unless ``low_open`` /
    ``high_open``; ``None``: unbounded on that side). NaN is never in it.

    The message writes the interval the mathematical way: ``[0, 1]``, ``(0, 1]``, ``> 0``.
    """
    expected = _interval("a number", low, high, low_open=low_open, high_open=high_open)
    if not is_number(value):
        raise InputTypeError(f"{name} must be {expected}, got {value!r}")
    below = low is not None and not (value > low if low_open else value >= low)
    above = high is not None and not (value < high if high_open else value <= high)
    if below or above or math.isnan(value):
        raise InputError(f"{name} must be {expected}, got {value!r}")
    return value  # type: ignore[no-any-return]


def positive_number(name: str, value: Any) -> float:
    """A number > 0 ("NAME must be a number > 0, got ...")."""
    return number_in(name, value, 0, low_open=True)


def non_negative_number(name: str, value: Any) -> float:
    """A number >= 0."""
    return number_in(name, value, 0)


def fraction(name: str, value: Any, *, open_ends: bool = False) -> float:
    """A number in ``[0, 1]`` (``open_ends``: in ``(0, 1)``)."""
    return number_in(name, value, 0, 1, low_open=open_ends, high_open=open_ends)


def string(name: str, value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise InputTypeError(f"{name} must be a non-empty string, got {value!r}")
    return value


def mapping(name: str, value: Any) -> Mapping[str, Any]:
    """A mapping (a dict, a TOML table)."""
    if not isinstance(value, Mapping):
        raise InputTypeError(f"{name} must be a mapping, got {type(value).__name__}")
    return value


def one_of(kind: str, value: T, options: Collection[Any]) -> T:
    """``value`` if it is one of ``options``; else "unknown KIND 'x'; did you mean ...?
    (expected one of: ...)" (:func:`~gengap.core.errors.unknown_name_message`)."""
    try:
        known = value in options
    except TypeError:  # an unhashable value is not in a set
        known = False
    if not known:
        raise InputError(unknown_name_message(kind, value, [str(o) for o in options]))
    return value
