"""Sweep throughput, as ratios measured in one run.

The same 8 tiny trials (PPO on MiniGrid MultiRoom-N2-S4, seeds 0-7) run as a sweep:

1. on the local backend with 1 worker (in this process) and with 2 worker processes:
   the speed-up, target >= 1.7x on 2 cores;
2. on the Ray backend (a local Ray instance, 2 CPUs) against the 2-worker local pool:
   the overhead per trial (extra wall time x workers / trials), target <= 2 s, and the
   start-up cost of the Ray instance (``ray.init`` to ready, and shutdown).

Every sweep writes to a fresh temporary folder. Run: ``gengap bench sweep`` or
``python benchmarks/bench_sweep.py [--quick]``.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

TRIALS = 8


def _study(folder: Path, steps: int) -> Any:
    from gengap.drivers.grid import study_spec_from_dict

    return study_spec_from_dict(
        {
            "name": "bench",
            "env_id": "gengap/minigrid-multiroom-n2-s4-v0",
            "env_kwargs": {"obs_mode": "image"},
            "total_timesteps": steps,
            "num_envs": 4,
            "eval_episodes": 20,
            "agent": {"n_steps": 128, "batch_size": 128, "n_epochs": 2},
            "seeds": list(range(TRIALS)),
            "num_train_levels": 10,
            "reps": 200,
            "out_dir": str(folder),
        }
    )


def _timed_sweep(folder: Path, steps: int, **options: Any) -> float:
    from gengap.drivers.sweep import run_sweep

    start = time.perf_counter()
    outcome = run_sweep(_study(folder, steps), stream=io.StringIO(), **options)
    seconds = time.perf_counter() - start
    if len(outcome.completed) != TRIALS:
        raise RuntimeError(f"bench sweep finished {len(outcome.completed)} of {TRIALS} trials")
    return seconds


def _ray_startup() -> float:
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray.get(ray.remote(lambda: 1).remote())  # a worker is up and answering
    seconds = time.perf_counter() - start
    ray.shutdown()
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny budget: a smoke run")
    args = parser.parse_args(argv)
    steps = 1024 if args.quick else 8192
    console = Console()
    with tempfile.TemporaryDirectory(prefix="gengap-bench-sweep-") as tmp:
        root = Path(tmp)
        one = _timed_sweep(root / "local-1", steps, workers=1)
        two = _timed_sweep(root / "local-2", steps, workers=2)
        startup = _ray_startup()
        ray_two = _timed_sweep(root / "ray-2", steps, workers=2, backend="ray")
    per_trial = (ray_two - startup - two) * 2 / TRIALS
    console.print(
        f"{TRIALS} trials x {steps} PPO steps on MultiRoom-N2-S4:\n"
        f"  local, 1 worker:   {one:7.1f} s\n"
        f"  local, 2 workers:  {two:7.1f} s  -> {one / two:.2f}x (target >= 1.7x)\n"
        f"  ray, 2 CPUs:       {ray_two:7.1f} s  (local instance started by the sweep)\n"
        f"  Ray start-up (init to first task, and shutdown): {startup:.1f} s\n"
        f"  Ray overhead per trial vs the local pool, start-up excluded: {per_trial:+.2f} s "
        "(target <= 2 s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
