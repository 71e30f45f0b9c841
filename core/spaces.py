"""The one Gymnasium space <-> JSON codec (agent files, checkpoints, dataset cards).

A Box is ``{"type": "Box", "shape", "dtype", "low", "high"}``; a bound is one number when
every entry is the same, else the nested lists of ``ndarray.tolist()``; JSON has no
infinity or NaN, so those are the strings ``"inf"``, ``"-inf"`` and ``"nan"`` (what
``float()`` reads back). Discrete, MultiDiscrete, MultiBinary and Dict spaces are their
parameters.

:func:`space_from_dict` also reads the encoding gengap datasets wrote before this module
(per-entry bounds as one flat list in row-major order), so cards of older datasets load.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from gengap.core.errors import InputError, InputTypeError, unknown_name_message

__all__ = ["SPACE_TYPES", "space_from_dict", "space_to_dict"]

#: The space types the codec writes and reads.
SPACE_TYPES = ("Box", "Discrete", "MultiDiscrete", "MultiBinary", "Dict")


def _json_number(value: Any) -> Any:
    if isinstance(value, list):
        return [_json_number(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "inf", "-inf" or "nan"
    return value


def _bound_to_json(values: np.ndarray) -> Any:
    flat = values.reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return _json_number(flat[0].item())
    return _json_number(values.tolist())


def _number_back(value: Any) -> Any:
    if isinstance(value, list):
        return [_number_back(item) for item in value]
    return float(value) if isinstance(value, str) else value


def _bound_from_json(data: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    values = np.asarray(_number_back(data))
    if values.ndim and values.shape != shape:
        if values.size != math.prod(shape):
            raise InputError(f"a saved Box bound has {values.size} entries, its shape "
                             f"{shape} needs {math.prod(shape)}")
        values = values.reshape(shape)  # the flat list older dataset cards hold
    return np.broadcast_to(values, shape).astype(dtype)


def space_to_dict(space: gymnasium.Space[Any]) -> dict[str, Any]:
    """A JSON-ready description of a Box, Discrete, MultiDiscrete, MultiBinary or Dict space.

    Raises:
        InputTypeError: For another kind of space (naming it).
    """
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": str(space.dtype),
            "low": _bound_to_json(space.low),
            "high": _bound_to_json(space.high),
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist()}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_dict(v) for k, v in space.spaces.items()}}
    raise InputTypeError(
        f"cannot save a space of type {type(space).__name__} ({space!r}); gengap saves "
        f"{', '.join(SPACE_TYPES[:-1])} or a {SPACE_TYPES[-1]} of them"
    )


def space_from_dict(data: Mapping[str, Any]) -> gymnasium.Space[Any]:
    """Rebuild a space written by :func:`space_to_dict` (or by an older dataset card).

    Raises:
        InputError: For an unknown space type (with close matches) or a malformed entry.
    """
    if not isinstance(data, Mapping):
        raise InputTypeError(f"a saved space must be a mapping, got {data!r}")
    kind = data.get("type")
    try:
        if kind == "Box":
            shape = tuple(int(size) for size in data["shape"])
            dtype = np.dtype(data["dtype"])
            low = _bound_from_json(data["low"], shape, dtype)
            high = _bound_from_json(data["high"], shape, dtype)
            return spaces.Box(low=low, high=high, shape=shape, dtype=dtype)  # type: ignore[arg-type]
        if kind == "Discrete":
            return spaces.Discrete(int(data["n"]), start=int(data.get("start", 0)))
        if kind == "MultiDiscrete":
            return spaces.MultiDiscrete(np.asarray(data["nvec"], dtype=np.int64))
        if kind == "MultiBinary":
            return spaces.MultiBinary(data["n"])
        if kind == "Dict":
            return spaces.Dict({k: space_from_dict(v) for k, v in data["spaces"].items()})
    except KeyError as error:
        raise InputError(f"a saved {kind} space lacks {error}: {dict(data)!r}") from None
    except (TypeError, ValueError) as error:
        if isinstance(error, InputError):
            raise
        raise InputError(f"a saved {kind} space is malformed ({error}): {dict(data)!r}") from None
    raise InputError(unknown_name_message("saved space type", kind, SPACE_TYPES))
