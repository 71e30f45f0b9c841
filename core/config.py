"""Strict dataclass <-> dict conversion for configs.

Configs are validated on load: an unknown key or a value of the wrong type is
an error naming the key, never silently ignored. (The files they come from are read by
:mod:`gengap.core.files`.)
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from gengap.core.errors import InputError, InputTypeError, unknown_name_message

T = TypeVar("T")


def _matches(value: Any, annotation: Any) -> bool:
    if annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple):
        return isinstance(value, list | tuple)
    if origin is dict or annotation is dict:
        return isinstance(value, Mapping)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def check_keys(
    data: Any, what: str, allowed: Collection[str], required: Collection[str] = ()
) -> Mapping[str, Any]:
    """Check a hand-written mapping (a split, an axis, a level set) before it is read.

    Args:
        data: What the user gave.
        what: How an error names it, e.g. ``"a split"``.
        allowed: Every key it may have, in the order an error lists them.
        required: The keys it must have.

    Returns:
        ``data``, now known to be a mapping.

    Raises:
        InputTypeError: If ``data`` is not a mapping.
        InputError: For unknown keys (all listed, with the expected ones) or a missing one.
    """
    if not isinstance(data, Mapping):
        raise InputTypeError(f"{what} must be a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise InputError(f"unknown key(s) {unknown} in {what}; expected {', '.join(allowed)}")
    for key in required:
        if key not in data:
            raise InputError(f"{what} needs {key!r}; got keys {sorted(data)}")
    return data


def config_from_dict(cls: type[T], data: Mapping[str, Any], *, what: str | None = None) -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types.

    Raises:
        ValueError: For an unknown key (with close matches) or a missing required key.
        TypeError: For a value whose type does not match the field's annotation.
    """
    what = what or cls.__name__
    if not isinstance(data, Mapping):
        raise InputTypeError(f"{what} must be a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            raise InputError(unknown_name_message(f"key in {what}", key, fields))
    for key, value in data.items():
        expected = hints.get(key, Any)
        if not _matches(value, expected):
            raise InputTypeError(
                f"{what}.{key} must be {getattr(expected, '__name__', expected)}, "
                f"got {value!r} ({type(value).__name__})"
            )
        if typing.get_origin(expected) is tuple and isinstance(value, list):
            data = {**data, key: tuple(value)}
    missing = [
        name
        for name, f in fields.items()
        if name not in data
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise InputError(f"{what} is missing required key(s): {', '.join(missing)}")
    return cls(**data)
