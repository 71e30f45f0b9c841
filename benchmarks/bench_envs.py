"""Environment throughput with random actions, as ratios measured in one run.

Procgen (coinrun, easy, N copies):
  (a) raw ``ProcgenGym3Env(num=N)`` (act + observe),
  (b) gengap's :class:`ProcgenVecEnv` with the same N,
  (c) SB3 ``DummyVecEnv`` over N single gengap Procgen envs (the Python loop).
MiniGrid: raw ``gymnasium.make("MiniGrid-DoorKey-8x8-v0")`` vs gengap's wrapped
``gengap/minigrid-doorkey-8x8-v0``.

Targets: gengap Procgen >= 0.9x raw; >= 5x DummyVecEnv at N=16; MiniGrid
wrapped >= 0.9x raw. The raw and gengap Procgen paths play the same levels with
the same actions (same ``rand_seed``), so they do identical C++ work. The paths
run in short interleaved slices and each rate is total steps / total time, so
load from other processes falls on all paths alike.

Run: ``gengap bench envs`` or ``python benchmarks/bench_envs.py [--num-envs 16]``;
``--quick`` only checks that it runs (a tiny budget whose numbers mean little).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from gengap.core import checks

GAME = "coinrun"
PROCGEN_ID = f"gengap/procgen-{GAME}-v0"
MINIGRID_RAW_ID = "MiniGrid-DoorKey-8x8-v0"
MINIGRID_ID = "gengap/minigrid-doorkey-8x8-v0"
TARGETS = {
    "gengap / raw Procgen": 0.9,
    "gengap / DummyVecEnv Procgen": 5.0,
    "gengap / raw MiniGrid": 0.9,
}

# A stepper runs the env for about `seconds` and returns the number of env steps.
Stepper = Callable[[float], int]


def _procgen_steppers(num_envs: int) -> dict[str, Stepper]:
    from procgen import ProcgenGym3Env
    from stable_baselines3.common.vec_env import DummyVecEnv

    from gengap.envs import make
    from gengap.envs.procgen import DEFAULT_SPLIT

    train = DEFAULT_SPLIT.train
    actions = np.random.default_rng(0).integers(0, 15, (1024, num_envs))
    vec = make(PROCGEN_ID, num_envs=num_envs, num_threads=4)
    vec.reset(seed=0)
    raw = ProcgenGym3Env(
        num=num_envs,
        env_name=GAME,
        distribution_mode="easy",
        start_level=train.start,
        num_levels=len(train),
        rand_seed=vec.unwrapped.rand_seed,  # the levels gengap's env plays
        num_threads=4,
    )
    dummy = DummyVecEnv([lambda: make(PROCGEN_ID) for _ in range(num_envs)])
    dummy.seed(0)
    dummy.reset()

    def raw_step(batch: np.ndarray) -> None:
        raw.act(batch)
        raw.observe()

    # Every path pays the same one extra call per step, so the ratios stay fair.
    def timed(step: Callable[[np.ndarray], Any]) -> Callable[[float], int]:
        def run(seconds: float) -> int:
            calls, deadline = 0, time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                step(actions[calls % 1024])
                calls += 1
            return calls * num_envs

        return run

    return {
        f"raw ProcgenGym3Env(num={num_envs})": timed(raw_step),
        f"gengap ProcgenVecEnv(num_envs={num_envs})": timed(vec.step),
        f"SB3 DummyVecEnv of {num_envs} gengap ProcgenEnv": timed(dummy.step),
    }


def _single_env_stepper(env) -> Stepper:  # type: ignore[no-untyped-def]
    actions = np.random.default_rng(0).integers(0, env.action_space.n, 4096)
    env.reset(seed=0)

    def step(seconds: float) -> int:
        steps, deadline = 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            _, _, terminated, truncated, _ = env.step(int(actions[steps % 4096]))
            steps += 1
            if terminated or truncated:
                env.reset()
        return steps

    return step


def _minigrid_steppers(console: Console) -> dict[str, Stepper]:
    import gymnasium
    import minigrid  # noqa: F401  (registers the MiniGrid ids)

    from gengap.envs import make, registered_ids

    steppers = {f"raw {MINIGRID_RAW_ID}": _single_env_stepper(gymnasium.make(MINIGRID_RAW_ID))}
    if MINIGRID_ID in registered_ids():
        steppers[f"gengap {MINIGRID_ID}"] = _single_env_stepper(make(MINIGRID_ID))
    else:
        console.print(f"[yellow]skipping gengap MiniGrid: {MINIGRID_ID} is not registered[/]")
    return steppers


def run_env_benchmark(
    num_envs: int = 16,
    seconds: float = 3.0,
    slices: int = 10,
    console: Console | None = None,
) -> dict[str, float | None]:
    """Measure env steps/s of every path and the ratios against the targets.

    Args:
        num_envs: Number of Procgen copies N.
        seconds: Total timed seconds per path.
        slices: Number of interleaved slices the time of each path is cut into.
        console: Where to print the table (default: a new rich console).

    Returns:
        Steps/s per path label and each ratio in :data:`TARGETS` (None when a
        path was skipped).

    Raises:
        ValueError: For a non-positive ``num_envs``, ``seconds`` or ``slices``.
    """
    checks.positive_int("num_envs", num_envs)
    checks.positive_number("seconds", seconds)
    checks.positive_int("slices", slices)
    console = console or Console()
    procgen = _procgen_steppers(num_envs)
    minigrid = _minigrid_steppers(console)
    steppers = {**procgen, **minigrid}
    steps = dict.fromkeys(steppers, 0)
    elapsed = dict.fromkeys(steppers, 0.0)
    for _ in range(slices):
        for label, stepper in steppers.items():
            start = time.perf_counter()
            steps[label] += stepper(seconds / slices)
            elapsed[label] += time.perf_counter() - start
    rates = {label: steps[label] / elapsed[label] for label in steppers}

    raw, ours, dummy = (rates[label] for label in procgen)
    minigrid_rates = [rates[label] for label in minigrid]
    results: dict[str, float | None] = dict(rates)
    results["gengap / raw Procgen"] = ours / raw
    results["gengap / DummyVecEnv Procgen"] = ours / dummy
    results["gengap / raw MiniGrid"] = (
        minigrid_rates[1] / minigrid_rates[0] if len(minigrid_rates) == 2 else None
    )

    table = Table(title=f"Random-action steps/s ({seconds:g} s a path)")
    table.add_column("path")
    table.add_column("steps/s", justify="right")
    for label, rate in rates.items():
        table.add_row(label, f"{rate:,.0f}")
    console.print(table)
    ratios = Table(title="Ratios")
    for column in ("ratio", "measured", "target", "met"):
        ratios.add_column(column, justify="left" if column == "ratio" else "right")
    for label, target in TARGETS.items():
        value = results[label]
        if value is None:
            ratios.add_row(label, "skipped", f">= {target:g}x", "-")
        else:
            met = "[green]yes[/]" if value >= target else "[red]no[/]"
            ratios.add_row(label, f"{value:.2f}x", f">= {target:g}x", met)
    console.print(ratios)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: ``python benchmarks/bench_envs.py [--num-envs N] [--seconds S]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--num-envs", type=int, default=16, help="Procgen copies N")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per path")
    parser.add_argument("--slices", type=int, default=10, help="interleaved slices per path")
    parser.add_argument("--quick", action="store_true", help="tiny budget: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.num_envs, args.seconds, args.slices = 2, 0.2, 2
    run_env_benchmark(num_envs=args.num_envs, seconds=args.seconds, slices=args.slices)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
