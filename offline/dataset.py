"""gengap offline datasets: a compact, checksummed, memory-mapped episode store.

Format (one folder)::

    card.json                 the dataset card: env, split, policy, counts, layout, checksums
    episodes/bounds.bin       int64 (E + 1,): transition offsets of the E episodes
    episodes/level_seed.bin   int64 (E,): the level each episode was played on
    episodes/combinations.json  (envs with a combination axis) the (factor...) tuples each
                              episode's mission named
    actions.bin, rewards.bin (float32), terminations.bin, truncations.bin (bool): one row per
                              transition (N rows)
    obs/<key>.bin             observations, one row per step *including* each episode's final
                              observation (N + E rows; Minari's layout), either raw (memory-
                              mapped) or, for rows of ``MIN_COMPRESSED_ROW_BYTES`` or more,
                              zstd-compressed chunks of ``chunk_rows`` rows with
                              ``obs/<key>.offsets.bin`` (int64 byte offsets of the chunks)

A Box observation is the field ``obs``; a Dict observation one field per key
(``obs/<key>``; Box and Discrete subspaces).

Why this store and not native Minari (``benchmarks/bench_offline.py``, 1M transitions of
Procgen chaser under a random policy, one run): Minari 0.5.3 writes uint8 HxWx3 images as
lossy JPEG in both backends (hdf5: 2.5 GB per 1M frames, and the pixels are gone); its
lossless route (arrow, channel-first, so Minari does not see an image) stores raw pixels:
12.4 GB per 1M, six times the 2 GB ceiling, and ``d3rlpy.datasets.get_minari`` decodes
all of it into RAM. Zstd (level 3, from pyarrow, already a dependency of the offline extra)
over chunks of 64 consecutive frames exploits how little a frame changes from the last:
184 MB per 1M, 0.77x of gen_dgrl's one ``np.savez_compressed`` file per episode on the
same episodes (238 MB). The price is random access: a row costs its chunk's
decompression (~0.3 ms), so reads go through a bounded LRU cache of decompressed chunks
and :meth:`Dataset.sample_indices` draws training minibatches from a pool of resident
chunks (a shuffle buffer, a function of the seed and the update number) instead of one
chunk per sample. Small per-step fields stay raw
and memory-mapped; nothing ever needs every frame in RAM. Minari (arrow, CHW, lossless)
and d3rlpy are export/import targets: ``gengap.offline.interop``'s ``to_minari``,
``from_minari`` and ``to_d3rlpy``.

Integrity: the card lists every file with its size and sha256. Opening a dataset always
checks that every file is there with its recorded size (a truncated file is refused with
one :class:`~gengap.core.errors.InputError` naming it); :meth:`Dataset.verify` (and
``Dataset.open(path, verify=True)``) recomputes the checksums. A :class:`DatasetWriter`
writes into a hidden temporary folder beside the target and renames it into place only
when complete, so a collection killed at any point leaves either a whole dataset or none.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from gengap.core import checks
from gengap.core.errors import InputError, InputFileExistsError, InputFileNotFoundError
from gengap.core.files import atomic_write_text, read_json
from gengap.core.spaces import space_from_dict, space_to_dict
from gengap.envs.splits import LEVEL_PARTS, Split

__all__ = [
    "CARD_FILE",
    "FORMAT_VERSION",
    "Dataset",
    "DatasetWriter",
]

CARD_FILE = "card.json"
FORMAT = "gengap-dataset"
FORMAT_VERSION = 1
#: Observation rows at least this large are stored as compressed chunks; smaller ones raw.
MIN_COMPRESSED_ROW_BYTES = 1024
DEFAULT_CHUNK_ROWS = 64
DEFAULT_CODEC = "zstd"
CODECS = ("zstd", "none")
ZSTD_LEVEL = 3
DEFAULT_CACHE_BYTES = 256 * 2**20
_HASH_BLOCK = 2**22


def _leaf_spaces(space: gymnasium.Space[Any]) -> dict[str, gymnasium.Space[Any]]:
    """Observation fields: ``{"": space}`` for a Box, ``{key: subspace}`` for a Dict."""
    if isinstance(space, spaces.Dict):
        leaves: dict[str, gymnasium.Space[Any]] = {}
        for key, sub in space.spaces.items():
            if not isinstance(sub, spaces.Box | spaces.Discrete | spaces.MultiDiscrete):
                raise InputError(
                    f"Dict observation subspace {key!r} must be Box, Discrete or MultiDiscrete, "
                    f"got {type(sub).__name__}"
                )
            leaves[key] = sub
        return leaves
    if isinstance(space, spaces.Box | spaces.Discrete | spaces.MultiDiscrete):
        return {"": space}
    raise InputError(
        f"observation space must be a Box, Discrete, MultiDiscrete or a Dict of them, "
        f"got {type(space).__name__}"
    )


def _row_layout(space: gymnasium.Space[Any]) -> tuple[tuple[int, ...], np.dtype]:
    if isinstance(space, spaces.Box):
        return tuple(space.shape), np.dtype(space.dtype)
    if isinstance(space, spaces.MultiDiscrete):
        return tuple(space.shape), np.dtype(np.int64)
    return (), np.dtype(np.int64)  # Discrete


def _obs_file(key: str) -> str:
    return "obs/obs.bin" if key == "" else f"obs/{key}.bin"


def is_image_field(shape: Sequence[int], dtype: np.dtype) -> bool:
    """Whether a field is an HxWxC uint8 image (what Minari would JPEG-encode, and what
    d3rlpy needs channel-first)."""
    return dtype == np.uint8 and len(shape) == 3 and shape[-1] in (1, 3, 4) and shape[0] >= 8


# -- codecs -----------------------------------------------------------------------------------
def _zstd() -> Any:
    import pyarrow as pa

    return pa.Codec("zstd", compression_level=ZSTD_LEVEL)


class _HashingFile:
    """An append-only file that keeps its sha256 and size as it is written."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = path.open("wb")
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        self.handle.write(data)
        self.sha256.update(data)
        self.size += len(data)

    def close(self) -> dict[str, Any]:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        return {"bytes": self.size, "sha256": self.sha256.hexdigest()}


class _FieldWriter:
    """Appends rows of one field: raw, or zstd chunks of ``chunk_rows`` rows."""

    def __init__(
        self,
        root: Path,
        name: str,
        shape: tuple[int, ...],
        dtype: np.dtype,
        codec: str,
        chunk_rows: int,
    ) -> None:
        self.name, self.shape, self.dtype = name, shape, dtype
        row_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        self.compressed = codec == "zstd" and row_bytes >= MIN_COMPRESSED_ROW_BYTES
        self.chunk_rows = chunk_rows
        self.file = _HashingFile(root / name)
        self.rows = 0
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0
        self._offsets = [0]
        self._codec: Any = _zstd() if self.compressed else None

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.shape:
            raise InputError(
                f"field {self.name}: rows must have shape (n, {', '.join(map(str, self.shape))})"
                f", got {rows.shape}"
            )
        self.rows += len(rows)
        if not self.compressed:
            self.file.write(rows.data.cast("B"))
            return
        self._pending.append(rows)
        self._pending_rows += len(rows)
        if self._pending_rows >= self.chunk_rows:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        data = np.concatenate(self._pending) if self._pending else np.empty((0, *self.shape))
        start = 0
        while len(data) - start >= self.chunk_rows or (final and start < len(data)):
            chunk = data[start : start + self.chunk_rows]
            blob = self._codec.compress(np.ascontiguousarray(chunk), asbytes=True)
            self.file.write(blob)
            self._offsets.append(self.file.size)
            start += len(chunk)
        rest = data[start:]
        self._pending = [rest] if len(rest) else []
        self._pending_rows = len(rest)

    def close(self, root: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        files: dict[str, dict[str, Any]] = {}
        layout: dict[str, Any] = {
            "file": self.name,
            "shape": list(self.shape),
            "dtype": str(self.dtype),
            "rows": self.rows,
            "codec": "zstd" if self.compressed else "none",
        }
        if self.compressed:
            self._flush(final=True)
            offsets_name = self.name.removesuffix(".bin") + ".offsets.bin"
            offsets = _HashingFile(root / offsets_name)
            offsets.write(np.asarray(self._offsets, dtype=np.int64).tobytes())
            files[offsets_name] = offsets.close()
            layout |= {"chunk_rows": self.chunk_rows, "offsets": offsets_name}
        files[self.name] = self.file.close()
        return layout, files


# -- writing ----------------------------------------------------------------------------------
@dataclass
class EpisodeStats:
    """What the writer keeps per episode for the card."""

    length: int
    episode_return: float
    level_seed: int
    terminated: bool
    success: bool | None


def check_new_dataset_path(path: str | Path) -> Path:
    """``path`` as a Path, if no dataset (or anything else) is there yet.

    Raises:
        InputFileExistsError: If ``path`` exists.
    """
    path = Path(path)
    if path.exists():
        raise InputFileExistsError(
            f"dataset path {str(path)!r} already exists; choose another --out or remove it"
        )
    return path


class DatasetWriter:
    """Writes a dataset episode by episode into a temporary folder, then renames it into place.

    Use as a context manager: leaving the block normally finishes the dataset (checksums,
    card, rename); an exception, ``KeyboardInterrupt`` or a kill leaves no dataset at
    ``path`` (an exception removes the temporary folder; a kill leaves a hidden
    ``.<name>.tmp-*`` folder that never loads and that the next writer to ``path`` removes).

    Args:
        path: The dataset folder to create; must not exist.
        observation_space: The single-step observation space (Box, or a Dict of Box/Discrete).
        action_space: The single-step action space.
        card: Card entries (env id, env options, split, policy, seed, ...); the writer adds
            counts, statistics, layout, spaces and checksums.
        codec: ``"zstd"`` (large observation rows as compressed chunks) or ``"none"``.
        chunk_rows: Rows per compressed chunk (larger: smaller files, slower random reads).

    Raises:
        InputFileExistsError: If ``path`` already exists.
        InputError: For an unknown codec, a bad ``chunk_rows`` or an unsupported space.
    """

    def __init__(
        self,
        path: str | Path,
        observation_space: gymnasium.Space[Any],
        action_space: gymnasium.Space[Any],
        card: Mapping[str, Any] | None = None,
        *,
        codec: str = DEFAULT_CODEC,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> None:
        checks.one_of("codec", codec, CODECS)
        checks.positive_int("chunk_rows", chunk_rows)
        self.path = check_new_dataset_path(path)
        self.observation_space = observation_space
        self.action_space = action_space
        self.card = dict(card or {})
        self._leaves = _leaf_spaces(observation_space)
        if not isinstance(action_space, spaces.Box | spaces.Discrete | spaces.MultiDiscrete):
            raise InputError(f"action space must be Box, Discrete or MultiDiscrete, got "
                             f"{type(action_space).__name__}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(self.path)
        self.tmp = Path(
            tempfile.mkdtemp(dir=self.path.parent, prefix=f".{self.path.name}.tmp-{os.getpid()}-")
        )
        self._obs = {
            key: _FieldWriter(self.tmp, _obs_file(key), *_row_layout(sub), codec, chunk_rows)
            for key, sub in self._leaves.items()
        }
        action_shape, action_dtype = _row_layout(action_space)
        self._steps = {
            "actions": _FieldWriter(self.tmp, "actions.bin", action_shape, action_dtype, "none", 1),
            "rewards": _FieldWriter(self.tmp, "rewards.bin", (), np.dtype(np.float32), "none", 1),
            "terminations": _FieldWriter(
                self.tmp, "terminations.bin", (), np.dtype(bool), "none", 1
            ),
            "truncations": _FieldWriter(self.tmp, "truncations.bin", (), np.dtype(bool), "none", 1),
        }
        self.episodes: list[EpisodeStats] = []
        self.combinations: list[list[list[Any]]] = []
        self._has_combinations: bool | None = None
        self.num_transitions = 0
        self._closed = False

    def add_episode(
        self,
        observations: np.ndarray | Mapping[str, np.ndarray],
        actions: np.ndarray,
        rewards: np.ndarray,
        terminations: np.ndarray,
        truncations: np.ndarray,
        *,
        level_seed: int,
        combinations: Sequence[Sequence[Any]] | None = None,
        success: bool | None = None,
    ) -> None:
        """Append one episode of ``T`` transitions.

        Args:
            observations: ``T + 1`` observations (an array, or a dict of arrays for a Dict
                space): ``observations[t]`` preceded ``actions[t]``; the last followed the
                last action.
            actions: ``T`` actions.
            rewards: ``T`` rewards.
            terminations: ``T`` flags.
            truncations: ``T`` flags.
            level_seed: The level the episode was played on.
            combinations: The factor combinations the mission named (envs with a
                combination axis), e.g. ``[["red", "ball"]]``.
            success: Whether the episode succeeded, where the env says.

        Raises:
            InputError: For inconsistent lengths or shapes, or an empty episode.
        """
        length = len(actions)
        if length < 1:
            raise InputError("an episode needs at least one transition, got 0")
        for name, values in (
            ("rewards", rewards),
            ("terminations", terminations),
            ("truncations", truncations),
        ):
            if len(values) != length:
                raise InputError(f"{name} has {len(values)} rows, expected {length} (actions)")
        obs_fields = self._split_obs(observations)
        for key, rows in obs_fields.items():
            if len(rows) != length + 1:
                raise InputError(
                    f"observations{'[' + repr(key) + ']' if key else ''} has {len(rows)} rows, "
                    f"expected {length + 1} (one more than actions)"
                )
        has_combinations = combinations is not None
        if self._has_combinations is None:
            self._has_combinations = has_combinations
        elif self._has_combinations != has_combinations:
            raise InputError("either every episode records its combinations or none does")
        for key, rows in obs_fields.items():
            self._obs[key].append(rows)
        self._steps["actions"].append(np.asarray(actions))
        self._steps["rewards"].append(np.asarray(rewards, dtype=np.float32))
        terminations = np.asarray(terminations, dtype=bool)
        self._steps["terminations"].append(terminations)
        self._steps["truncations"].append(np.asarray(truncations, dtype=bool))
        if combinations is not None:
            self.combinations.append([list(c) for c in combinations])
        self.episodes.append(
            EpisodeStats(
                length=length,
                episode_return=float(np.sum(np.asarray(rewards, dtype=np.float64))),
                level_seed=int(level_seed),
                terminated=bool(terminations[-1]),
                success=None if success is None else bool(success),
            )
        )
        self.num_transitions += length

    def _split_obs(self, observations: Any) -> dict[str, np.ndarray]:
        if "" in self._leaves:
            if isinstance(observations, Mapping):
                raise InputError("observations must be an array for a Box observation space")
            return {"": np.asarray(observations)}
        if not isinstance(observations, Mapping) or set(observations) != set(self._leaves):
            got = sorted(observations) if isinstance(observations, Mapping) else "an array"
            raise InputError(
                f"observations must be a dict with keys {sorted(self._leaves)}, got {got}"
            )
        return {key: np.asarray(observations[key]) for key in self._leaves}

    def finish(self) -> Path:
        """Write the card and checksums and move the dataset into place.

        Raises:
            InputError: If no episode was added.
        """
        if self._closed:
            raise RuntimeError("the dataset writer is already closed")
        if not self.episodes:
            self.abort()
            raise InputError("a dataset needs at least one episode; none was collected")
        files: dict[str, dict[str, Any]] = {}
        obs_layout: dict[str, Any] = {}
        for key, writer in self._obs.items():
            obs_layout[key], written = writer.close(self.tmp)
            files |= written
        step_layout: dict[str, Any] = {}
        for name, writer in self._steps.items():
            step_layout[name], written = writer.close(self.tmp)
            files |= written
        lengths = np.asarray([e.length for e in self.episodes], dtype=np.int64)
        bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        seeds = np.asarray([e.level_seed for e in self.episodes], dtype=np.int64)
        success = np.asarray(
            [-1 if e.success is None else int(e.success) for e in self.episodes], dtype=np.int8
        )
        for name, array in (
            ("episodes/bounds.bin", bounds),
            ("episodes/level_seed.bin", seeds),
            ("episodes/success.bin", success),
        ):
            handle = _HashingFile(self.tmp / name)
            handle.write(array.tobytes())
            files[name] = handle.close()
        if self._has_combinations:
            text = json.dumps(self.combinations).encode("utf-8")
            handle = _HashingFile(self.tmp / "episodes/combinations.json")
            handle.write(text)
            files["episodes/combinations.json"] = handle.close()
        card = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **self.card,
            "num_episodes": len(self.episodes),
            "num_transitions": self.num_transitions,
            "episodes_per_level": _per_level(seeds),
            "returns": _return_stats(self.episodes),
            "observation_space": space_to_dict(self.observation_space),
            "action_space": space_to_dict(self.action_space),
            "layout": {"obs": obs_layout, **step_layout},
            "files": dict(sorted(files.items())),
        }
        if self._has_combinations:
            card["episodes_per_combination"] = _per_combination(self.combinations)
        atomic_write_text(self.tmp / CARD_FILE, json.dumps(card, indent=2))
        _fsync_dir(self.tmp)
        if self.path.exists():
            self.abort()
            raise InputFileExistsError(
                f"dataset path {str(self.path)!r} appeared while collecting; not replacing it"
            )
        os.replace(self.tmp, self.path)
        _fsync_dir(self.path.parent)
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Drop everything written so far."""
        for writer in [*self._obs.values(), *self._steps.values()]:
            if not writer.file.handle.closed:
                writer.file.handle.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self._closed = True

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._closed:
            return
        if exc_type is None:
            self.finish()
        else:
            self.abort()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale_temporaries(path: Path) -> None:
    """Remove temporary folders of writers to ``path`` whose process is gone (killed)."""
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        pid_text = stale.name.removeprefix(f".{path.name}.tmp-").split("-", 1)[0]
        if pid_text.isdigit() and not _process_alive(int(pid_text)):
            shutil.rmtree(stale, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _per_level(seeds: np.ndarray) -> dict[str, int]:
    levels, counts = np.unique(seeds, return_counts=True)
    return {str(int(level)): int(count) for level, count in zip(levels, counts, strict=True)}


def _per_combination(combinations: list[list[list[Any]]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for episode in combinations:
        for combo in {tuple(c) for c in episode}:
            key = "-".join("*" if v is None else str(v) for v in combo)
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def _return_stats(episodes: list[EpisodeStats]) -> dict[str, Any]:
    returns = np.asarray([e.episode_return for e in episodes], dtype=np.float64)
    lengths = np.asarray([e.length for e in episodes], dtype=np.float64)
    stats: dict[str, Any] = {
        "mean": float(returns.mean()),
        "std": float(returns.std()),
        "min": float(returns.min()),
        "median": float(np.median(returns)),
        "max": float(returns.max()),
        "mean_length": float(lengths.mean()),
        "terminated_fraction": float(np.mean([e.terminated for e in episodes])),
    }
    successes = [e.success for e in episodes if e.success is not None]
    if successes:
        stats["success_rate"] = float(np.mean(successes))
    return stats


# -- reading ----------------------------------------------------------------------------------
def _mix64(values: Any) -> np.ndarray:
    """SplitMix64's finalizer: a counter-based hash, so a pool slot's chunk is computed from
    (seed, refresh number) without replaying the refreshes before it."""
    with np.errstate(over="ignore"):
        z = np.asarray(values, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))  # type: ignore[no-any-return]


class _ChunkedField:
    """Random row access to a zstd-chunked field through an LRU cache of decompressed chunks.

    The cache is one preallocated array of chunk slots, so a minibatch is gathered with a
    single fancy index over ``(slot, row in chunk)`` whatever chunks it spans.
    """

    def __init__(self, root: Path, layout: Mapping[str, Any], cache_bytes: int) -> None:
        self.path = root / layout["file"]
        self.shape = tuple(layout["shape"])
        self.dtype = np.dtype(layout["dtype"])
        self.rows = int(layout["rows"])
        self.chunk_rows = int(layout["chunk_rows"])
        self.row_bytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self.offsets = np.fromfile(root / layout["offsets"], dtype=np.int64)
        num_chunks = -(-self.rows // self.chunk_rows)
        if len(self.offsets) != num_chunks + 1:
            raise InputError(
                f"dataset file {layout['offsets']} lists {len(self.offsets) - 1} chunks, the "
                f"card expects {num_chunks}; the dataset is corrupted"
            )
        self.data = np.memmap(self.path, dtype=np.uint8, mode="r")
        chunk_bytes = max(self.row_bytes * self.chunk_rows, 1)
        self.cache_chunks = max(2, min(num_chunks, cache_bytes // chunk_bytes))
        # np.empty reserves address space only; pages are used as slots fill
        self.slots = np.empty((self.cache_chunks, self.chunk_rows, *self.shape), self.dtype)
        self.lru: OrderedDict[int, int] = OrderedDict()  # chunk id -> slot, oldest first
        self._codec = _zstd()
        self.name = layout["file"]

    def _decompress(self, index: int) -> np.ndarray:
        rows = min(self.chunk_rows, self.rows - index * self.chunk_rows)
        blob = self.data[self.offsets[index] : self.offsets[index + 1]]
        try:
            raw = self._codec.decompress(
                blob.data, decompressed_size=rows * self.row_bytes, asbytes=False
            )
        except Exception as error:  # pyarrow raises OSError/ArrowException on bad data
            raise InputError(
                f"dataset file {self.name} is corrupted (chunk {index} does not decompress: "
                f"{str(error).splitlines()[0]}); run `gengap dataset verify`"
            ) from None
        return np.frombuffer(raw, dtype=self.dtype).reshape(rows, *self.shape)

    def _load(self, index: int, slot: int) -> None:
        chunk = self._decompress(index)
        self.slots[slot, : len(chunk)] = chunk

    def _slot(self, index: int, pinned: set[int]) -> int:
        slot = self.lru.get(index)
        if slot is not None:
            self.lru.move_to_end(index)
            return slot
        if len(self.lru) < self.cache_chunks:
            slot = len(self.lru)
        else:  # evict the least recently used chunk this call does not need
            victim = next(c for c in self.lru if c not in pinned)
            slot = self.lru.pop(victim)
        self._load(index, slot)
        self.lru[index] = slot
        return slot

    def take(self, rows: np.ndarray) -> np.ndarray:
        chunk_ids, within = np.divmod(rows, self.chunk_rows)
        unique, inverse = np.unique(chunk_ids, return_inverse=True)
        if len(unique) > self.cache_chunks:
            return self._stream(rows, chunk_ids)
        pinned = {int(c) for c in unique}
        slots = np.fromiter((self._slot(int(c), pinned) for c in unique), np.int64, len(unique))
        return self.slots[slots[inverse], within]

    def _stream(self, rows: np.ndarray, chunk_ids: np.ndarray) -> np.ndarray:
        """A read spanning more chunks than the cache holds (whole episodes, exports):
        chunk by chunk, straight into the output, leaving the cache alone."""
        out = np.empty((len(rows), *self.shape), dtype=self.dtype)
        order = np.argsort(chunk_ids, kind="stable")
        sorted_ids = chunk_ids[order]
        starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
        ends = np.r_[starts[1:], len(order)]
        for start, end in zip(starts, ends, strict=True):
            index = int(sorted_ids[start])
            picks = order[start:end]
            out[picks] = self._decompress(index)[rows[picks] - index * self.chunk_rows]
        return out

    def slice(self, start: int, stop: int) -> np.ndarray:
        return self.take(np.arange(start, stop))


class _RawField:
    def __init__(self, root: Path, layout: Mapping[str, Any]) -> None:
        self.shape = tuple(layout["shape"])
        self.dtype = np.dtype(layout["dtype"])
        self.rows = int(layout["rows"])
        self.name = layout["file"]
        self.array: np.ndarray = (
            np.memmap(
                root / layout["file"], dtype=self.dtype, mode="r", shape=(self.rows, *self.shape)
            )
            if self.rows
            else np.empty((0, *self.shape), self.dtype)
        )

    def take(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.array[rows])

    def slice(self, start: int, stop: int) -> np.ndarray:
        return np.array(self.array[start:stop])


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


class Dataset:
    """A gengap dataset opened for reading; implements ``gengap.agents.base.TransitionSource``.

    Observations are read on demand (raw fields memory-mapped, compressed fields chunk by
    chunk through a bounded LRU cache), so memory stays small whatever the dataset's size.

    Attributes:
        path: The dataset folder.
        card: The dataset card (a dict).
        observation_space: Single-step observation space.
        action_space: Single-step action space.
    """

    def __init__(self, path: Path, card: dict[str, Any], cache_bytes: int) -> None:
        self.path = path
        self.card = card
        self.observation_space = space_from_dict(card["observation_space"])
        self.action_space = space_from_dict(card["action_space"])
        layout = card["layout"]
        self._obs: dict[str, _ChunkedField | _RawField] = {}
        obs_layouts = layout["obs"]
        per_field = cache_bytes // max(len(obs_layouts), 1)
        for key, field_layout in obs_layouts.items():
            self._obs[key] = (
                _ChunkedField(path, field_layout, per_field)
                if field_layout["codec"] == "zstd"
                else _RawField(path, field_layout)
            )
        self._steps = {
            name: _RawField(path, layout[name])
            for name in ("actions", "rewards", "terminations", "truncations")
        }
        self._bounds = np.fromfile(path / "episodes/bounds.bin", dtype=np.int64)
        self._level_seeds = np.fromfile(path / "episodes/level_seed.bin", dtype=np.int64)
        self._success = np.fromfile(path / "episodes/success.bin", dtype=np.int8)
        num_episodes, num_transitions = int(card["num_episodes"]), int(card["num_transitions"])
        if (
            len(self._bounds) != num_episodes + 1
            or len(self._level_seeds) != num_episodes
            or len(self._success) != num_episodes
            or self._bounds[-1] != num_transitions
            or any(f.rows != num_transitions for f in self._steps.values())
            or any(f.rows != num_transitions + num_episodes for f in self._obs.values())
        ):
            raise InputError(
                f"dataset {str(path)!r} is inconsistent with its card (episode or row counts "
                "differ); it is corrupted"
            )
        # first observation row of every episode (rows hold T + 1 observations per episode)
        self._row_starts = self._bounds[:-1] + np.arange(num_episodes, dtype=np.int64)
        self._combinations: list[list[tuple[Any, ...]]] | None = None
        if (path / "episodes/combinations.json").is_file():
            raw = read_json(path / "episodes/combinations.json", "dataset file")
            self._combinations = [[tuple(c) for c in episode] for episode in raw]

    # -- opening ------------------------------------------------------------------------------
    @classmethod
    def open(
        cls, path: str | Path, *, verify: bool = False, cache_bytes: int = DEFAULT_CACHE_BYTES
    ) -> Dataset:
        """Open a dataset folder, checking that every file has its recorded size.

        Args:
            path: The dataset folder.
            verify: Also recompute every file's sha256 (reads the whole dataset once).
            cache_bytes: Bound on the decompressed chunks kept in memory.

        Raises:
            InputFileNotFoundError: If ``path`` is not a dataset (no card) or a file is missing.
            InputError: If a file is truncated or extended, a checksum differs, or the card
                is unreadable.
        """
        path = Path(path)
        card_path = path / CARD_FILE
        if not card_path.is_file():
            raise InputFileNotFoundError(
                f"no gengap dataset at {str(path)!r} ({CARD_FILE} is missing)"
            )
        card = read_json(card_path, "dataset card")
        if not isinstance(card, dict) or card.get("format") != FORMAT:
            raise InputError(f"{str(card_path)!r} is not a gengap dataset card")
        if card.get("format_version") != FORMAT_VERSION:
            raise InputError(
                f"dataset {str(path)!r} has format version {card.get('format_version')!r}; this "
                f"gengap reads version {FORMAT_VERSION}"
            )
        _check_files(path, card["files"], checksums=verify)
        return cls(path, card, cache_bytes)

    def verify(self) -> None:
        """Recompute every file's size and sha256 against the card.

        Raises:
            InputError: Naming the first file that differs.
        """
        _check_files(self.path, self.card["files"], checksums=True)

    # -- TransitionSource ---------------------------------------------------------------------
    @property
    def num_transitions(self) -> int:
        return int(self.card["num_transitions"])

    @property
    def num_episodes(self) -> int:
        return int(self.card["num_episodes"])

    def episode_bounds(self) -> np.ndarray:
        """Transition offsets of the episodes, shape ``(num_episodes + 1,)``."""
        return self._bounds.copy()

    def level_seeds(self) -> np.ndarray:
        """The level seed of every episode, shape ``(num_episodes,)``."""
        return self._level_seeds.copy()

    def episode_success(self) -> list[bool | None]:
        """Whether each episode succeeded, ``None`` where the env does not say."""
        return [None if value < 0 else bool(value) for value in self._success.tolist()]

    def episode_combinations(self) -> list[list[tuple[Any, ...]]] | None:
        """The combinations each episode's mission named, or None (no combination axis)."""
        return None if self._combinations is None else [list(c) for c in self._combinations]

    def sample_indices(self, batch_size: int, *, seed: int, update: int) -> np.ndarray:
        """Transition indices for training minibatch ``update``, drawn so that reading them
        is fast; a function of ``(seed, update)`` alone.

        Random rows of a compressed store each cost a whole chunk's decompression, so this
        samples like a shuffle buffer: uniformly from a pool of chunks kept decompressed
        (half the read cache), of which ``ceil(batch_size / chunk_rows)`` are replaced by
        uniformly drawn chunks at every update, round robin. Every transition is equally
        likely (each pool slot holds a uniform chunk at every update), and consecutive
        minibatches share most of their pool. The pool of update ``u`` is computed, not
        carried over, so minibatch ``u`` is the same whether the updates before it ran in
        this process, in a killed one before a resume, or not at all. Without compressed
        fields this is plain uniform sampling. Uniform random indices through
        :meth:`transitions` read ~20-50x slower on a dataset larger than the cache.

        Args:
            batch_size: Number of indices.
            seed: Seeds the draw (a learner passes its own seed).
            update: The minibatch's number (0-based).

        Returns:
            ``int64`` transition indices, shape ``(batch_size,)``.

        Raises:
            InputError: For a non-positive ``batch_size`` or a negative seed or update.
        """
        checks.positive_int("batch_size", batch_size)
        checks.non_negative_int("seed", seed, numpy=True)
        checks.non_negative_int("update", update, numpy=True)
        rng = np.random.default_rng([int(seed), int(update)])
        chunked = [f for f in self._obs.values() if isinstance(f, _ChunkedField)]
        if not chunked:
            return rng.integers(0, self.num_transitions, batch_size, dtype=np.int64)
        field = chunked[0]
        num_chunks = len(field.offsets) - 1
        pool_size = max(1, min(num_chunks, field.cache_chunks // 2))
        refresh = min(pool_size, -(-batch_size // field.chunk_rows))
        # Refresh number r (r = 0, 1, ...) fills slot r % pool_size at update r // refresh;
        # each slot holds the chunk of its latest refresh up to this update (the numbers
        # below 0 are the initial pool).
        slots = np.arange(pool_size, dtype=np.int64)
        latest = (update + 1) * refresh - 1
        refreshes = slots + pool_size * ((latest - slots) // pool_size)
        pool = (_mix64(_mix64(np.uint64(seed)) ^ (refreshes + pool_size).astype(np.uint64))
                % np.uint64(num_chunks)).astype(np.int64)
        picks = np.empty(0, dtype=np.int64)
        while len(picks) < batch_size:
            needed = 2 * (batch_size - len(picks)) + 8
            rows = pool[rng.integers(0, pool_size, needed)] * field.chunk_rows
            rows = rows + rng.integers(0, field.chunk_rows, needed)
            episodes = np.searchsorted(self._row_starts, rows, side="right") - 1
            transitions = rows - episodes
            # rows past the data, or an episode's final observation, start no transition
            valid = (rows < field.rows) & (transitions < self._bounds[episodes + 1])
            picks = np.concatenate([picks, transitions[valid]])
        return picks[:batch_size]

    def observations(self, indices: np.ndarray) -> Any:
        """The observations that start transitions ``indices`` (an array, or a dict of
        arrays for a Dict space), without reading the next observations."""
        indices = self._check_indices(indices)
        rows = indices + np.searchsorted(self._bounds, indices, side="right") - 1
        values = {key: field.take(rows) for key, field in self._obs.items()}
        return values[""] if "" in values else values

    def step_arrays(self) -> dict[str, np.ndarray]:
        """Every transition's ``actions``, ``rewards``, ``terminations`` and ``truncations``
        as read-only memory-mapped arrays (one row per transition)."""
        return {name: field.array for name, field in self._steps.items()}

    def _check_indices(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(indices) and (indices.min() < 0 or indices.max() >= self.num_transitions):
            raise InputError(
                f"transition indices must be in [0, {self.num_transitions}), got "
                f"{int(indices.min())}..{int(indices.max())}"
            )
        return indices

    def transitions(self, indices: np.ndarray) -> dict[str, Any]:
        """Transitions ``indices`` as batched arrays (see ``TransitionSource``).

        Raises:
            InputError: For indices outside ``[0, num_transitions)``.
        """
        indices = self._check_indices(indices)
        episodes = np.searchsorted(self._bounds, indices, side="right") - 1
        obs_rows = indices + episodes
        both = np.concatenate([obs_rows, obs_rows + 1])
        obs, next_obs = {}, {}
        for key, field in self._obs.items():
            values = field.take(both)
            obs[key], next_obs[key] = values[: len(indices)], values[len(indices) :]
        return {
            "obs": obs[""] if "" in obs else obs,
            "next_obs": next_obs[""] if "" in next_obs else next_obs,
            "action": self._steps["actions"].take(indices),
            "reward": self._steps["rewards"].take(indices),
            "terminated": self._steps["terminations"].take(indices),
            "truncated": self._steps["truncations"].take(indices),
            "level_seed": self._level_seeds[episodes],
        }

    # -- whole episodes -----------------------------------------------------------------------
    def episode(self, index: int) -> dict[str, Any]:
        """Episode ``index``: ``observations`` (T + 1 rows), ``actions``, ``rewards``,
        ``terminations``, ``truncations`` (T rows) and ``level_seed``."""
        if not 0 <= index < self.num_episodes:
            raise InputError(f"episode index must be in [0, {self.num_episodes}), got {index}")
        start, stop = int(self._bounds[index]), int(self._bounds[index + 1])
        observations = {
            key: field.slice(start + index, stop + index + 1) for key, field in self._obs.items()
        }
        return {
            "observations": observations[""] if "" in observations else observations,
            "actions": self._steps["actions"].slice(start, stop),
            "rewards": self._steps["rewards"].slice(start, stop),
            "terminations": self._steps["terminations"].slice(start, stop),
            "truncations": self._steps["truncations"].slice(start, stop),
            "level_seed": int(self._level_seeds[index]),
            "success": None if self._success[index] < 0 else bool(self._success[index]),
            "combinations": None if self._combinations is None else self._combinations[index],
        }

    def episodes(self) -> Iterator[dict[str, Any]]:
        """Every episode in order (see :meth:`episode`)."""
        for index in range(self.num_episodes):
            yield self.episode(index)

    # -- checks -------------------------------------------------------------------------------
    @property
    def env_id(self) -> str | None:
        value = self.card.get("env_id")
        return None if value is None else str(value)

    def check_env(self, env_id: str, observation_space: gymnasium.Space[Any] | None = None) -> None:
        """Refuse the dataset for an env or observation space it was not collected on.

        Raises:
            InputError: Naming both envs, or both observation spaces.
        """
        if self.env_id is not None and self.env_id != env_id:
            raise InputError(
                f"dataset {str(self.path)!r} was collected on {self.env_id}, not {env_id}"
            )
        if observation_space is not None and space_to_dict(observation_space) != space_to_dict(
            self.observation_space
        ):
            raise InputError(
                f"dataset {str(self.path)!r} holds observations {self.observation_space}, the "
                f"env gives {observation_space}"
            )

    def check_split(self, split: Split | Mapping[str, Any], part: str = "train") -> None:
        """Refuse a dataset holding episodes from levels (or combinations) that ``split``
        holds out from ``part``.

        Levels in any other level part of the split (validation, test for ``part="train"``)
        and, with a combination axis, missions naming a held-out combination count as held
        out. Levels in no part of the split are allowed.

        Raises:
            InputError: Naming the offending levels or combinations and their episode counts.
        """
        split = Split.coerce(split)
        split.levels(part)
        offending: dict[str, list[int]] = {}
        levels, counts = np.unique(self._level_seeds, return_counts=True)
        for other in split.parts:
            if other == part:
                continue
            held = split.levels(other)
            bad = [int(level) for level in levels if int(level) in held]
            if bad:
                offending[other] = bad
        problems = []
        for other, bad in offending.items():
            episodes = int(counts[np.isin(levels, bad)].sum())
            shown = ", ".join(map(str, bad[:10])) + (
                f", ... ({len(bad)} levels)" if len(bad) > 10 else ""
            )
            problems.append(f"{episodes} episode(s) on {other} levels {shown}")
        if (
            split.combinations is not None
            and self._combinations is not None
            and part in LEVEL_PARTS
        ):
            held_out: set[tuple[Any, ...]] = set()
            for combo_part in split.combination_parts:
                held_out |= {tuple(c) for c in split.combinations_for(combo_part)}
            bad_combos: dict[tuple[Any, ...], int] = {}
            for episode in self._combinations:
                for combo in set(episode):
                    if combo in held_out:
                        bad_combos[combo] = bad_combos.get(combo, 0) + 1
            if bad_combos:
                shown = ", ".join(
                    f"{'-'.join(map(str, c))} ({n})" for c, n in sorted(bad_combos.items())
                )
                problems.append(f"episodes naming held-out combinations {shown}")
        if problems:
            raise InputError(
                f"dataset {str(self.path)!r} holds data the split {split.name!r} holds out from "
                f"{part}: {'; '.join(problems)}"
            )

    def __repr__(self) -> str:
        return (
            f"Dataset({str(self.path)!r}, env={self.env_id}, episodes={self.num_episodes}, "
            f"transitions={self.num_transitions})"
        )

    # -- interop ------------------------------------------------------------------------------
    def image_fields(self) -> list[str]:
        """Observation fields that are HxWxC uint8 images."""
        return [key for key, field in self._obs.items() if is_image_field(field.shape, field.dtype)]



def _check_files(root: Path, files: Mapping[str, Mapping[str, Any]], *, checksums: bool) -> None:
    for name, entry in files.items():
        file_path = root / name
        if not file_path.is_file():
            raise InputFileNotFoundError(
                f"dataset file {name} is missing from {str(root)!r}; the dataset is incomplete"
            )
        size = file_path.stat().st_size
        if size != entry["bytes"]:
            state = "truncated" if size < entry["bytes"] else "longer than recorded"
            raise InputError(
                f"dataset file {name} in {str(root)!r} is {state}: {size} bytes, the card says "
                f"{entry['bytes']}"
            )
        if checksums and _sha256_file(file_path) != entry["sha256"]:
            raise InputError(
                f"dataset file {name} in {str(root)!r} is corrupted: its sha256 differs from "
                "the card's"
            )
