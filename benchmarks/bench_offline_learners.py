"""Offline learners on a large Procgen dataset: speed and memory, as ratios measured in one run.

1. BC training samples/s reading batches from the dataset store (memory-mapped,
   zstd chunks through a bounded cache) vs from the same frames held in memory, on a
   slice that fits. Same BC (IMPALA CNN, batch 256), same updates, timed in interleaved
   rounds. Target: >= 0.8x. The store on the whole dataset is shown too, with the batches
   learners draw (``Dataset.sample_indices``: a pool of resident chunks) and with uniform
   random indices (each batch then touches ~256 chunks; the learner reads the next batch
   in a thread while the current one trains).
2. BC peak resident memory training on the whole dataset (one child process per
   learner; ``ru_maxrss``). Target: <= 8 GB at 1M transitions (12 GB of raw frames).
3. The d3rlpy learners' (cql, bcq, dt) peak resident memory on the same dataset, fed
   from the same store. Target: < 16 GB.

The dataset is random-policy Procgen chaser (the collecting policy's skill does not
matter for these figures), collected with ``gengap.offline.collect`` unless ``--dataset``
names an existing one.

Run: ``python benchmarks/bench_offline_learners.py [--quick] [--transitions N]
[--dataset PATH]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ENV_ID = "gengap/procgen-chaser-v0"
GB = 1024**3


class SliceSource:
    """The first ``num_transitions`` transitions of a TransitionSource (whole episodes)."""

    def __init__(self, source: Any, num_transitions: int) -> None:
        bounds = source.episode_bounds()
        keep = bounds[bounds <= num_transitions]
        self.source = source
        self.bounds = keep
        self.observation_space = source.observation_space
        self.action_space = source.action_space

    @property
    def num_transitions(self) -> int:
        return int(self.bounds[-1])

    def transitions(self, indices: np.ndarray) -> dict[str, Any]:
        return self.source.transitions(indices)  # type: ignore[no-any-return]

    def episode_bounds(self) -> np.ndarray:
        return self.bounds.copy()


class UniformSource(SliceSource):
    """The whole of a dataset, hiding ``Dataset.sample_indices`` from learners: they draw
    uniform random indices instead (the baseline of the pool). Give it its own opened
    dataset: a shared chunk cache would let one evict the other's chunks."""

    def __init__(self, source: Any) -> None:
        super().__init__(source, source.num_transitions)


def in_memory_copy(source: Any, chunk: int = 4096) -> Any:
    """Every transition of ``source`` read into numpy arrays (the straightforward baseline)."""
    from gengap.offline.memory import KEYS, InMemoryTransitions

    parts: dict[str, list[Any]] = {k: [] for k in KEYS}
    for start in range(0, source.num_transitions, chunk):
        rows = source.transitions(np.arange(start, min(start + chunk, source.num_transitions)))
        for key in KEYS:
            parts[key].append(rows[key])
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    return InMemoryTransitions(source.observation_space, source.action_space, arrays,
                               source.episode_bounds())


def bc_samples_per_second(sources: dict[str, Any], updates: int, batch_size: int,
                          rounds: int) -> dict[str, float]:
    """BC samples/s per source, timed in interleaved rounds (A B C A B C ...) so that load
    from other processes on a shared machine falls on every source alike."""
    import gengap.offline  # noqa: F401
    from gengap.offline.bc import BCConfig

    agents = {}
    for label, source in sources.items():
        agent = BCConfig(batch_size=batch_size).create(source.observation_space,
                                                      source.action_space)
        agent.fit(source, 2)  # warm-up: allocator, chunk cache, kernels
        agents[label] = agent
    elapsed = dict.fromkeys(sources, 0.0)
    for _ in range(rounds):
        for label, source in sources.items():
            agent = agents[label]
            start = time.perf_counter()
            agent.fit(source, agent.num_updates + updates)
            elapsed[label] += time.perf_counter() - start
    return {label: rounds * updates * batch_size / seconds for label, seconds in elapsed.items()}


def child_peak_rss(algo: str, dataset: Path, updates: int) -> dict[str, float]:
    """Train ``algo`` for ``updates`` updates in a fresh process; its peak RSS and speed."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", algo, str(dataset), str(updates)],
        check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _child(algo: str, dataset: str, updates: int) -> None:
    import gengap.offline  # noqa: F401
    from gengap.agents import agent_config_class
    from gengap.offline.dataset import Dataset

    source = Dataset.open(dataset)
    overrides: dict[str, Any] = {"batch_size": 256} if algo == "bc" else {}
    agent = agent_config_class(algo).from_dict(overrides).create(
        source.observation_space, source.action_space)
    start = time.perf_counter()
    agent.fit(source, updates)  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(json.dumps({"peak_rss_gb": peak / GB, "updates_per_s": updates / elapsed,
                      "transitions": source.num_transitions}))


def collect_dataset(path: Path, num_transitions: int) -> float:
    from gengap.offline.collect import collect, make_policy

    start = time.perf_counter()
    collect(ENV_ID, make_policy("random"), path, num_transitions=num_transitions,
            num_envs=16, seed=0)
    return num_transitions / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="50k transitions, fewer updates (default: off)")
    parser.add_argument("--transitions", type=int, default=None,
                        help="dataset size to collect (default: 1,000,000; 50,000 with --quick)")
    parser.add_argument("--dataset", type=Path, default=None,
                        help="an existing Procgen dataset folder (default: collect one)")
    parser.add_argument("--slice", type=int, default=20_000,
                        help="transitions held in memory for the baseline (default: 20000)")
    parser.add_argument("--updates", type=int, default=None,
                        help="BC updates per source per round (default: 5; 2 with --quick)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="interleaved timing rounds (default: 4)")
    parser.add_argument("--memory-updates", type=int, default=None,
                        help="updates per learner in the memory runs (default: 20; 3 quick)")
    parser.add_argument("--algos", default="bc,cql,bcq,dt",
                        help="learners in the memory runs, comma-separated; empty skips them "
                        "(default: bc,cql,bcq,dt)")
    args = parser.parse_args(argv)
    transitions = args.transitions or (50_000 if args.quick else 1_000_000)
    updates = args.updates or (2 if args.quick else 5)
    memory_updates = args.memory_updates or (3 if args.quick else 20)

    import torch
    from rich.console import Console
    from rich.table import Table

    from gengap.offline.dataset import Dataset

    torch.set_num_threads(max(1, torch.get_num_threads()))
    console = Console()
    with tempfile.TemporaryDirectory(prefix="bench-offline-") as tmp:
        path = args.dataset
        collect_fps = None
        if path is None:
            path = Path(tmp) / "chaser-random"
            console.print(f"collecting {transitions:,} transitions of {ENV_ID} ...")
            collect_fps = collect_dataset(path, transitions)
        store = Dataset.open(path)
        size = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
        console.print(f"dataset: {store.num_transitions:,} transitions, "
                      f"{size / GB:.2f} GB on disk"
                      + (f", collected at {collect_fps:,.0f} frames/s" if collect_fps else ""))

        sliced = SliceSource(store, min(args.slice, store.num_transitions))
        memory = in_memory_copy(sliced)
        speeds = bc_samples_per_second(
            {"memory (slice)": memory, "store (same slice)": sliced,
             "store (whole dataset)": store,
             "store (whole, uniform indices)": UniformSource(Dataset.open(path))},
            updates, 256, args.rounds)
        del memory
        table = Table(title=f"BC samples/s (IMPALA, batch 256, {args.rounds} x {updates} "
                            f"updates, slice {sliced.num_transitions:,})")
        for column in ("source", "samples/s", "vs memory", "target"):
            table.add_column(column)
        base = speeds["memory (slice)"]
        for label, value in speeds.items():
            target = "" if label.startswith("memory") else ">= 0.8x"
            table.add_row(label, f"{value:,.0f}", f"{value / base:.2f}x", target)
        console.print(table)

        algos = [algo for algo in args.algos.split(",") if algo]
        if not algos:
            return
        table = Table(title=f"peak resident memory, {store.num_transitions:,} transitions "
                            f"({store.num_transitions * 64 * 64 * 3 / GB:.1f} GB raw frames)")
        for column in ("learner", "peak RSS (GB)", "updates/s", "target"):
            table.add_column(column)
        for algo in algos:
            result = child_peak_rss(algo, Path(path), memory_updates)
            target = "<= 8 GB" if algo == "bc" else "< 16 GB"
            table.add_row(algo, f"{result['peak_rss_gb']:.2f}", f"{result['updates_per_s']:.2f}",
                          target)
        console.print(table)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
