"""Offline datasets: collection speed, size on disk, load time and reads, in one run.

Sections (each a function ``section_<name>(ctx) -> list[Row]`` in :data:`SECTIONS`; the
learners add their own, e.g. BC and d3rlpy training, to the same file):

1. ``collection``: frames/s of ``gengap.offline.collect`` (random policy, Procgen chaser,
   writing the dataset) beside the raw native vector env stepped with random actions and
   nothing recorded.
2. ``size``: bytes per 1M frames of the gengap store vs the same episodes saved the way
   gen_dgrl saves them (one ``np.savez_compressed`` file per episode, frames uint8).
   Targets: <= the npz way, and <= 2 GB per 1M frames. On a slice: Minari's lossless route
   (arrow, channel-first) and Minari's default (hdf5, lossy JPEG), scaled to 1M.
3. ``load``: on the same slice, ``d3rlpy.datasets.get_minari`` (Minari arrow, lossless)
   vs opening the gengap store for training (sizes + every sha256 checked) and vs
   materializing the whole slice in RAM as a d3rlpy dataset (``gengap.offline.interop.to_d3rlpy``).
   Target: opening for training at least as fast as ``get_minari``.
4. ``read``: random minibatches (256 transitions, obs + next_obs) per second from the
   store, drawn by ``Dataset.sample_indices`` (a pool of decompressed chunks, like a
   shuffle buffer) and uniformly (one chunk decompressed per sample), vs fancy indexing
   into frames held in RAM (a slice that fits); and the peak resident memory (VmHWM) of a
   fresh process streaming minibatches from the full dataset.

Run: ``gengap bench offline`` or ``python benchmarks/bench_offline.py [--transitions N]
[--quick]``. The full figure uses 1M transitions (about 5-10 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ENV_ID = "gengap/procgen-chaser-v0"
NUM_ENVS = 16
BATCH = 256
MILLION = 1_000_000
TWO_GB = 2 * 10**9


@dataclass
class Row:
    """One measured figure, with what it is compared against and its target."""

    section: str
    what: str
    value: str
    baseline: str = ""
    target: str = ""
    verdict: str = ""


@dataclass
class Context:
    """Shared state of one benchmark run: the work folder and the collected dataset."""

    workdir: Path
    num_transitions: int
    slice_transitions: int
    dataset_path: Path = field(init=False)
    slice_path: Path = field(init=False)
    results: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.dataset_path = self.workdir / "chaser-random"
        self.slice_path = self.workdir / "chaser-slice"


def _bytes_in(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _per_million(num_bytes: float, frames: int) -> float:
    return num_bytes * MILLION / frames


def _speed(baseline_s: float, ours_s: float) -> str:
    ratio = baseline_s / ours_s
    return f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower: MISSED"


def _mb(num_bytes: float) -> str:
    return f"{num_bytes / 1e6:,.0f} MB"


# -- 1. collection ----------------------------------------------------------------------------
def section_collection(ctx: Context) -> list[Row]:
    from gengap.envs import make
    from gengap.offline.collect import collect, make_policy

    env = make(ENV_ID, num_envs=NUM_ENVS)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    steps = max(ctx.num_transitions // (NUM_ENVS * 10), 50)
    start = time.perf_counter()
    for _ in range(steps):
        env.step(rng.integers(0, 15, NUM_ENVS))
    raw_fps = steps * NUM_ENVS / (time.perf_counter() - start)
    env.close()

    start = time.perf_counter()
    collect(
        ENV_ID,
        make_policy("random"),
        ctx.dataset_path,
        num_transitions=ctx.num_transitions,
        num_envs=NUM_ENVS,
        seed=0,
        progress=True,
    )
    seconds = time.perf_counter() - start
    fps = ctx.num_transitions / seconds
    ctx.results["collection"] = {
        "frames_per_s": fps,
        "raw_env_frames_per_s": raw_fps,
        "seconds": seconds,
    }
    return [
        Row(
            "collection",
            f"collect {ctx.num_transitions:,} frames (random, {NUM_ENVS} envs,"
            " end to end incl. env build)",
            f"{fps:,.0f} frames/s",
            f"raw env, nothing recorded: {raw_fps:,.0f} frames/s",
            "~10-30k frames/s (idle machine)",
            f"{fps / raw_fps:.2f}x of raw env",
        )
    ]


# -- 2. size ----------------------------------------------------------------------------------
def _save_gen_dgrl_way(dataset: Any, folder: Path) -> int:
    """One np.savez_compressed file per episode, as gen_dgrl stores its Procgen data."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, episode in enumerate(dataset.episodes()):
        dones = episode["terminations"] | episode["truncations"]
        np.savez_compressed(
            folder / f"episode_{index:07d}.npz",
            observations=episode["observations"],
            actions=episode["actions"],
            rewards=episode["rewards"],
            dones=dones,
        )
    return _bytes_in(folder)


def _write_slice(ctx: Context) -> Any:
    """The first episodes of the dataset holding about ``slice_transitions`` transitions."""
    from gengap.offline.dataset import Dataset, DatasetWriter

    if (ctx.slice_path / "card.json").is_file():
        return Dataset.open(ctx.slice_path)
    full = Dataset.open(ctx.dataset_path)
    with DatasetWriter(
        ctx.slice_path,
        full.observation_space,
        full.action_space,
        {k: full.card[k] for k in ("env_id", "env_options", "split")},
    ) as writer:
        for episode in full.episodes():
            writer.add_episode(
                episode["observations"],
                episode["actions"],
                episode["rewards"],
                episode["terminations"],
                episode["truncations"],
                level_seed=episode["level_seed"],
            )
            if writer.num_transitions >= ctx.slice_transitions:
                break
    return Dataset.open(ctx.slice_path)


def _minari_sizes(ctx: Context, sliced: Any) -> dict[str, int]:
    import warnings

    import minari
    from minari.data_collector import EpisodeBuffer

    os.environ["MINARI_DATASETS_PATH"] = str(ctx.workdir / "minari")
    lossless_id = "gengap/chaser/slice-arrow-v0"
    if lossless_id not in minari.list_local_datasets():
        from gengap.offline.interop import to_minari

        to_minari(sliced, lossless_id)
    sizes = {
        "arrow_chw": _bytes_in(ctx.workdir / "minari" / "gengap" / "chaser" / "slice-arrow-v0")
    }
    jpeg_id = "gengap/chaser/slice-hdf5-jpeg-v0"
    if jpeg_id not in minari.list_local_datasets():
        buffers = (
            EpisodeBuffer(
                observations=e["observations"],
                actions=list(e["actions"]),
                rewards=list(e["rewards"]),
                terminations=list(e["terminations"]),
                truncations=list(e["truncations"]),
            )
            for e in sliced.episodes()
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            minari.create_dataset_from_buffers(
                jpeg_id,
                buffers,  # type: ignore[arg-type]
                observation_space=sliced.observation_space,
                action_space=sliced.action_space,
                data_format="hdf5",
            )
    sizes["hdf5_jpeg"] = _bytes_in(
        ctx.workdir / "minari" / "gengap" / "chaser" / "slice-hdf5-jpeg-v0"
    )
    return sizes


def section_size(ctx: Context) -> list[Row]:
    from gengap.offline.dataset import Dataset

    dataset = Dataset.open(ctx.dataset_path)
    frames = dataset.num_transitions + dataset.num_episodes  # both stores keep T + 1 frames
    ours = _bytes_in(ctx.dataset_path)
    start = time.perf_counter()
    npz = _save_gen_dgrl_way(dataset, ctx.workdir / "gen_dgrl_npz")
    npz_seconds = time.perf_counter() - start
    shutil.rmtree(ctx.workdir / "gen_dgrl_npz")
    raw = frames * 64 * 64 * 3
    ours_1m = _per_million(ours, dataset.num_transitions)
    npz_1m = _per_million(npz, dataset.num_transitions)
    ctx.results["size"] = {
        "gengap_bytes": ours,
        "npz_bytes": npz,
        "raw_frame_bytes": raw,
        "transitions": dataset.num_transitions,
        "npz_write_s": npz_seconds,
    }
    rows = [
        Row(
            "size",
            f"gengap store ({dataset.num_transitions:,} transitions), per 1M",
            _mb(ours_1m),
            f"npz per episode (gen_dgrl): {_mb(npz_1m)}",
            "<= npz way and <= 2 GB",
            f"{ours / npz:.2f}x of npz; {'OK' if ours <= npz and ours_1m <= TWO_GB else 'MISSED'}",
        ),
        Row(
            "size",
            "raw uint8 frames, per 1M",
            _mb(_per_million(raw, dataset.num_transitions)),
            "",
            "",
            f"store compresses {raw / ours:.0f}x",
        ),
    ]
    sliced = _write_slice(ctx)
    minari_sizes = _minari_sizes(ctx, sliced)
    slice_ours = _bytes_in(ctx.slice_path)
    n = sliced.num_transitions
    ctx.results["size"]["slice"] = {"transitions": n, "gengap_bytes": slice_ours, **minari_sizes}
    rows.append(
        Row(
            "size",
            f"Minari arrow CHW (lossless), {n:,}-transition slice, per 1M",
            _mb(_per_million(minari_sizes["arrow_chw"], n)),
            f"gengap on the slice: {_mb(_per_million(slice_ours, n))}",
            "<= 2 GB",
            f"{minari_sizes['arrow_chw'] / slice_ours:.0f}x the gengap store",
        )
    )
    rows.append(
        Row(
            "size",
            f"Minari default hdf5 (JPEG: lossy), {n:,}-slice, per 1M",
            _mb(_per_million(minari_sizes["hdf5_jpeg"], n)),
            "",
            "lossless",
            "not an option: loses pixels",
        )
    )
    return rows


# -- 3. load ----------------------------------------------------------------------------------
def section_load(ctx: Context) -> list[Row]:
    from d3rlpy.datasets import get_minari

    from gengap.offline.dataset import Dataset

    sliced = _write_slice(ctx)
    if "size" not in ctx.results:
        _minari_sizes(ctx, sliced)
    os.environ["MINARI_DATASETS_PATH"] = str(ctx.workdir / "minari")

    def timed(action: Callable[[], Any]) -> float:
        start = time.perf_counter()
        action()
        return time.perf_counter() - start

    from gengap.offline.interop import to_d3rlpy

    # alternated and best of two: the machine is shared, so one timing can be an outlier
    times: dict[str, list[float]] = {"minari": [], "open": [], "d3rlpy": []}
    for _ in range(2):
        times["minari"].append(timed(lambda: get_minari("gengap/chaser/slice-arrow-v0")))
        times["open"].append(timed(lambda: Dataset.open(ctx.slice_path, verify=True)))
        times["d3rlpy"].append(timed(lambda: to_d3rlpy(Dataset.open(ctx.slice_path))))
    minari_s, open_s, d3_s = (min(times[k]) for k in ("minari", "open", "d3rlpy"))
    start = time.perf_counter()
    Dataset.open(ctx.dataset_path, verify=True)
    open_full_s = time.perf_counter() - start
    n = sliced.num_transitions
    ctx.results["load"] = {
        "slice_transitions": n,
        "get_minari_s": minari_s,
        "gengap_open_verified_s": open_s,
        "gengap_to_d3rlpy_s": d3_s,
        "gengap_open_full_verified_s": open_full_s,
    }
    return [
        Row(
            "load",
            f"open for training, {n:,}-transition slice (sizes + sha256)",
            f"{open_s:.2f} s",
            f"d3rlpy get_minari: {minari_s:.1f} s",
            "<= get_minari",
            _speed(minari_s, open_s),
        ),
        Row(
            "load",
            "materialize the slice as a d3rlpy MDPDataset (to_d3rlpy)",
            f"{d3_s:.1f} s",
            f"d3rlpy get_minari: {minari_s:.1f} s",
            "<= get_minari",
            _speed(minari_s, d3_s),
        ),
        Row(
            "load",
            f"open the full {ctx.num_transitions:,} for training (sha256 of every file)",
            f"{open_full_s:.2f} s",
            "get_minari: not measured (needs ~2x the frames in RAM)",
            "",
            "",
        ),
    ]


# -- 4. read ----------------------------------------------------------------------------------
_STREAM_RSS = """
import sys, time, numpy as np
from gengap.offline.dataset import Dataset
dataset = Dataset.open(sys.argv[1])
rng = np.random.default_rng(0)
batches, mode = int(sys.argv[2]), sys.argv[3]
drawn = iter(range(10**9))
def indices():
    if mode == "pool":
        return dataset.sample_indices(256, seed=0, update=next(drawn))
    return rng.integers(0, dataset.num_transitions, 256)
dataset.transitions(indices())
start = time.perf_counter()
for _ in range(batches):
    dataset.transitions(indices())
seconds = time.perf_counter() - start
# VmHWM, not ru_maxrss: ru_maxrss keeps the forking parent's peak across exec
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(batches * 256 / seconds, peak * 1024)
"""


def _stream(path: Path, batches: int, mode: str) -> tuple[float, float]:
    output = subprocess.run(
        [sys.executable, "-c", _STREAM_RSS, str(path), str(batches), mode],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ.copy(),
    )
    rate, peak = (float(v) for v in output.stdout.split()[-2:])
    return rate, peak


def section_read(ctx: Context) -> list[Row]:
    from gengap.offline.dataset import Dataset

    sliced = _write_slice(ctx)
    rng = np.random.default_rng(0)
    in_memory = sliced.transitions(np.arange(sliced.num_transitions))
    frames, next_frames = in_memory["obs"], in_memory["next_obs"]

    def from_ram() -> None:
        picks = rng.integers(0, sliced.num_transitions, BATCH)
        frames[picks], next_frames[picks]

    updates = iter(range(10**9))
    readers: dict[str, tuple[Callable[[], Any], int]] = {
        "pool": (lambda: sliced.transitions(
            sliced.sample_indices(BATCH, seed=0, update=next(updates))), 20),
        "uniform": (lambda: sliced.transitions(rng.integers(0, sliced.num_transitions, BATCH)), 4),
        "memory": (from_ram, 20),
    }
    for read, _ in readers.values():
        read()
    # rounds alternate the three readers; each keeps its best round (the machine is shared)
    rates = dict.fromkeys(readers, 0.0)
    for _ in range(5):
        for name, (read, batches) in readers.items():
            start = time.perf_counter()
            for _ in range(batches):
                read()
            rates[name] = max(rates[name], batches * BATCH / (time.perf_counter() - start))
    memory_rate = rates["memory"]
    full = Dataset.open(ctx.dataset_path)
    full_uniform, rss_uniform = _stream(ctx.dataset_path, 30, "uniform")
    full_pool, rss_pool = _stream(ctx.dataset_path, 300, "pool")
    raw = (full.num_transitions + full.num_episodes) * 64 * 64 * 3
    ctx.results["read"] = {
        "slice_uniform_samples_per_s": rates["uniform"],
        "slice_pool_samples_per_s": rates["pool"],
        "in_memory_samples_per_s": memory_rate,
        "full_uniform_samples_per_s": full_uniform,
        "full_pool_samples_per_s": full_pool,
        "full_uniform_peak_rss": rss_uniform,
        "full_pool_peak_rss": rss_pool,
    }
    n = f"{sliced.num_transitions:,}"
    return [
        Row(
            "read",
            f"minibatches of {BATCH} (obs + next_obs), {n}-slice, sample_indices",
            f"{rates['pool']:,.0f} samples/s",
            f"frames held in RAM: {memory_rate:,.0f}/s",
            "",
            f"{rates['pool'] / memory_rate:.2f}x of in-RAM",
        ),
        Row(
            "read",
            f"same, uniform random indices (a chunk per sample), {n}-slice",
            f"{rates['uniform']:,.0f} samples/s",
            f"frames held in RAM: {memory_rate:,.0f}/s",
            "",
            f"{rates['uniform'] / memory_rate:.2f}x of in-RAM",
        ),
        Row(
            "read",
            f"full {full.num_transitions:,}, fresh process, sample_indices",
            f"{full_pool:,.0f} samples/s",
            f"peak RSS {rss_pool / 2**30:.2f} GiB",
            "<= 8 GB while training",
            f"raw frames would be {raw / 2**30:.1f} GiB",
        ),
        Row(
            "read",
            f"full {full.num_transitions:,}, fresh process, uniform indices",
            f"{full_uniform:,.0f} samples/s",
            f"peak RSS {rss_uniform / 2**30:.2f} GiB",
            "<= 8 GB while training",
            "",
        ),
    ]


SECTIONS: dict[str, Callable[[Context], list[Row]]] = {
    "collection": section_collection,
    "size": section_size,
    "load": section_load,
    "read": section_read,
}


def _print(rows: list[Row]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"gengap offline datasets ({ENV_ID}, random policy)")
    for column in ("section", "measured", "value", "baseline (same run)", "target", "verdict"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.section, row.what, row.value, row.baseline, row.target, row.verdict)
    Console(width=200).print(table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--transitions", type=int, default=MILLION, help=f"dataset size (default {MILLION:,})"
    )
    parser.add_argument(
        "--slice",
        type=int,
        default=50_000,
        help="transitions compared against Minari/d3rlpy (default 50,000)",
    )
    parser.add_argument("--quick", action="store_true", help="20k transitions, 5k slice")
    parser.add_argument("--workdir", default=None, help="keep data here (default: a temp dir)")
    parser.add_argument("--sections", nargs="*", default=list(SECTIONS), choices=list(SECTIONS))
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.transitions, args.slice = 20_000, 5_000
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="gengap-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = Context(workdir, args.transitions, min(args.slice, args.transitions))
    rows: list[Row] = []
    try:
        if "collection" not in args.sections and not (ctx.dataset_path / "card.json").is_file():
            raise SystemExit(f"no dataset in {workdir}; run the collection section first")
        for name in args.sections:
            rows += SECTIONS[name](ctx)
            print(f"[{name} done]", file=sys.stderr, flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    _print(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(ctx.results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
