"""Safe, atomic agent files: spaces as JSON (:mod:`gengap.core.spaces`), weights as
safetensors, no pickle.

A saved directory is written into a temporary sibling and renamed into place, so a
reader (or a resumed run after a kill) sees either the old directory or the new one.
Nothing is pickled: nested states (optimizers) are split into their tensors
(safetensors) and the plain data around them (JSON), see :func:`save_tensor_state`.

Files are byte-identical for identical states (safetensors files carry at most one
metadata entry, as a sorted JSON string: the format stores metadata as a hash map whose
order changes from process to process), so a checksum can verify a reproduction. A
truncated or corrupt file raises :class:`~gengap.core.errors.InputError` naming it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file as load_torch
from safetensors.torch import save_file as save_torch
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer

from gengap.core.errors import InputError, InputFileNotFoundError
from gengap.core.files import atomic_write_text, read_json

# The one metadata key gengap writes into a safetensors file (a sorted JSON string).
_METADATA_KEY = "gengap"


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def _missing(path: Path) -> InputFileNotFoundError:
    return InputFileNotFoundError(f"missing {path.name} in {str(path.parent)!r}")


def _unreadable(path: Path, error: BaseException) -> InputError:
    return InputError(f"{path} is truncated or corrupt and cannot be read ({error})")


def _shared_names_removed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with one name per shared tensor (the first in sorted order), contiguous."""
    kept: dict[tuple[Any, ...], str] = {}
    for name in sorted(state):
        tensor = state[name]
        identity = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(),
                    tuple(tensor.shape), tuple(tensor.stride()), tensor.dtype)
        kept.setdefault(identity, name)
    return {name: state[name].detach().contiguous() for name in sorted(kept.values())}


def _write_safetensors(tensors: dict[str, torch.Tensor], path: Path,
                       metadata: dict[str, Any] | None = None) -> None:
    packed = None if metadata is None else {_METADATA_KEY: json.dumps(metadata, sort_keys=True)}
    save_torch(tensors, str(path), metadata=packed)


def _read_safetensors(path: Path, device: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and gengap metadata of a safetensors file, refusing a damaged file by name."""
    if not path.is_file():
        raise _missing(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
        tensors = load_torch(str(path), device=device)
        metadata = json.loads(header[_METADATA_KEY]) if _METADATA_KEY in header else {}
    except (SafetensorError, OSError, json.JSONDecodeError) as error:
        raise _unreadable(path, error) from None
    return tensors, metadata


def save_weights(module: torch.nn.Module, path: Path) -> None:
    """Save a module's parameters and buffers to safetensors (shared tensors stored once,
    under their first name in sorted order), byte-identical for identical weights."""
    _write_safetensors(_shared_names_removed(module.state_dict()), path)


def load_weights(module: torch.nn.Module, path: Path, device: str) -> None:
    """Load weights saved by :func:`save_weights` into ``module``; every key must match.

    Raises:
        InputFileNotFoundError: If the file is missing.
        InputError: If it is damaged, or holds weights of another network.
    """
    saved, _ = _read_safetensors(path, device)
    expected = _shared_names_removed(module.state_dict())
    if set(saved) != set(expected):
        missing, extra = sorted(set(expected) - set(saved)), sorted(set(saved) - set(expected))
        raise InputError(f"weights in {path} do not fit this agent's network: missing "
                         f"{missing[:5]}, unexpected {extra[:5]}")
    wrong = [k for k in saved if saved[k].shape != expected[k].shape]
    if wrong:
        raise InputError(f"weights in {path} do not fit this agent's network: {wrong[0]!r} has "
                         f"shape {tuple(saved[wrong[0]].shape)}, the network needs "
                         f"{tuple(expected[wrong[0]].shape)}")
    with torch.no_grad():
        for name, value in saved.items():
            expected[name].copy_(value)  # shared names share this storage


def _split_tensors(value: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """``value`` as JSON-ready data, its tensors moved to ``tensors`` under dotted names."""
    if isinstance(value, torch.Tensor):
        tensors[prefix] = value.detach().contiguous()
        return {"__tensor__": prefix}
    if isinstance(value, dict):
        return {"__items__": [[key, _split_tensors(item, tensors, f"{prefix}.{key}")]
                              for key, item in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [_split_tensors(item, tensors, f"{prefix}.{i}")
                              for i, item in enumerate(value)]}
    if isinstance(value, list):
        return [_split_tensors(item, tensors, f"{prefix}.{i}") for i, item in enumerate(value)]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot save {type(value).__name__} at {prefix!r} in a tensor state")


def _join_tensors(data: Any, tensors: dict[str, torch.Tensor], path: Path) -> Any:
    if isinstance(data, list):
        return [_join_tensors(item, tensors, path) for item in data]
    if isinstance(data, dict):
        if "__tensor__" in data:
            if data["__tensor__"] not in tensors:
                raise InputError(f"{path} lacks tensor {data['__tensor__']!r}; the checkpoint "
                                 "is incomplete")
            return tensors[data["__tensor__"]]
        if "__tuple__" in data:
            return tuple(_join_tensors(item, tensors, path) for item in data["__tuple__"])
        return {key: _join_tensors(item, tensors, path) for key, item in data["__items__"]}
    return data


def save_tensor_state(state: dict[str, Any], path: Path) -> None:
    """Save nested dicts of tensors and plain data (optimizer states) without pickle:
    the tensors to ``path`` (safetensors), the structure around them to ``path`` with the
    suffix ``.json`` (dict keys keep their types, e.g. an optimizer's integer ids)."""
    tensors: dict[str, torch.Tensor] = {}
    structure = _split_tensors(state, tensors, "state")
    _write_safetensors(tensors, path)
    write_json(path.with_suffix(".json"), structure)


def load_tensor_state(path: Path, device: str) -> dict[str, Any]:
    """Load :func:`save_tensor_state` output.

    Raises:
        InputFileNotFoundError: If either file is missing.
        InputError: If either is damaged.
    """
    tensors, _ = _read_safetensors(path, device)
    state = _join_tensors(read_json(path.with_suffix(".json"), "tensor state"), tensors, path)
    if not isinstance(state, dict):
        raise InputError(f"{path.with_suffix('.json')} does not hold a dict of states")
    return state


def capture_rng_state() -> dict[str, Any]:
    """Python, numpy and torch global RNG states, JSON-ready."""
    np_state = cast(tuple[Any, ...], np.random.get_state(legacy=True))
    py_state = random.getstate()
    state: dict[str, Any] = {
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "numpy": [np_state[0], np_state[1].tolist(), *[np.asarray(v).item() for v in np_state[2:]]],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore the states from :func:`capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = [torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def _buffer_arrays(buffer: ReplayBuffer | DictReplayBuffer) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for name in ("observations", "next_observations"):
        value = getattr(buffer, name, None)
        if isinstance(value, dict):
            arrays.update({f"{name}.{k}": v for k, v in value.items()})
        elif value is not None:
            arrays[name] = value
    for name in ("actions", "rewards", "dones", "timeouts"):
        arrays[name] = getattr(buffer, name)
    return arrays


def save_replay_buffer(buffer: ReplayBuffer | DictReplayBuffer | None, path: Path) -> None:
    """Save the filled part of an SB3 replay buffer (and its position) to safetensors."""
    if buffer is None:
        return
    size = buffer.buffer_size if buffer.full else buffer.pos
    arrays = {k: np.ascontiguousarray(v[:size]) for k, v in _buffer_arrays(buffer).items()}
    save_numpy(arrays, str(path), metadata={
        _METADATA_KEY: json.dumps({"full": bool(buffer.full), "pos": int(buffer.pos)},
                                  sort_keys=True)})


def load_replay_buffer(buffer: ReplayBuffer | DictReplayBuffer | None, path: Path) -> None:
    """Fill an SB3 replay buffer of the same layout from :func:`save_replay_buffer` output."""
    if buffer is None or not path.is_file():
        raise _missing(path)
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = json.loads((handle.metadata() or {})[_METADATA_KEY])
        saved = load_numpy(str(path))
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as error:
        raise _unreadable(path, error) from None
    targets = _buffer_arrays(buffer)
    if set(saved) != set(targets):
        raise InputError(f"replay buffer in {path} has arrays {sorted(saved)}, "
                         f"expected {sorted(targets)}")
    for name, array in saved.items():
        if array.shape[1:] != targets[name].shape[1:] or len(array) > len(targets[name]):
            raise InputError(f"replay buffer array {name!r} has shape {array.shape}, "
                             f"buffer holds {targets[name].shape}")
        targets[name][: len(array)] = array
    buffer.pos = int(metadata["pos"])
    buffer.full = bool(metadata["full"])
