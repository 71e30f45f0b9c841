"""Robot env throughput with random actions, as ratios measured in one run.

MuJoCo (Hopper-v5, HalfCheetah-v5): raw ``gymnasium.make(robot)`` vs gengap's
``gengap/mujoco-<robot>-v0`` on its default split (nominal training context,
written into the model at every reset) and on domain randomization (a new
context sampled and written at every reset). Meta-World: ``gymnasium.make(
"Meta-World/MT1", env_name="reach-v3")`` vs ``gengap/metaworld-reach-v0``.

Targets: every gengap path >= 0.9x its raw env. Every path gets the same
actions; the paths run in short interleaved slices and each rate is total
steps / total time, so load from other processes falls on all paths alike.
Episodes end as the env says (random Hopper actions fall within ~20-40 steps),
so resets, and so context writes, are part of what is timed.

Run: ``python benchmarks/bench_robotics.py [--seconds 3]``.
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

ROBOTS = {"hopper": "Hopper-v5", "halfcheetah": "HalfCheetah-v5"}
TARGET = 0.9

Stepper = Callable[[float], int]


def _stepper(env: Any) -> Stepper:
    actions = np.random.default_rng(0).uniform(
        env.action_space.low, env.action_space.high, (4096, *env.action_space.shape)
    ).astype(env.action_space.dtype)
    env.reset(seed=0)

    def run(seconds: float) -> int:
        steps, deadline = 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            _, _, terminated, truncated, _ = env.step(actions[steps % 4096])
            steps += 1
            if terminated or truncated:
                env.reset()
        return steps

    return run


def _paths() -> tuple[dict[str, Stepper], dict[str, tuple[str, str]]]:
    """Steppers by label, and each ratio's (gengap label, raw label)."""
    import gymnasium
    import metaworld  # noqa: F401  (registers Meta-World/*)

    from gengap.envs import make
    from gengap.envs.mujoco import default_split

    steppers: dict[str, Stepper] = {}
    ratios: dict[str, tuple[str, str]] = {}
    for name, robot in ROBOTS.items():
        raw = f"raw {robot}"
        steppers[raw] = _stepper(gymnasium.make(robot))
        for mode in ("nominal", "box"):
            label = f"gengap mujoco-{name} ({mode})"
            steppers[label] = _stepper(make(f"gengap/mujoco-{name}-v0", split=default_split(mode)))
            ratios[f"{label} / raw"] = (label, raw)
    raw = "raw Meta-World/MT1 reach-v3"
    steppers[raw] = _stepper(gymnasium.make("Meta-World/MT1", env_name="reach-v3", seed=0))
    steppers["gengap metaworld-reach"] = _stepper(make("gengap/metaworld-reach-v0"))
    ratios["gengap metaworld-reach / raw"] = ("gengap metaworld-reach", raw)
    return steppers, ratios


def run_robotics_benchmark(
    seconds: float = 3.0, slices: int = 10, console: Console | None = None
) -> dict[str, float]:
    """Steps/s of every path and the gengap/raw ratios.

    Args:
        seconds: Total timed seconds per path.
        slices: Interleaved slices each path's time is cut into.
        console: Where to print the tables.

    Raises:
        ValueError: For non-positive ``seconds`` or ``slices``.
    """
    checks.positive_number("seconds", seconds)
    checks.positive_int("slices", slices)
    console = console or Console()
    steppers, ratios = _paths()
    steps = dict.fromkeys(steppers, 0)
    elapsed = dict.fromkeys(steppers, 0.0)
    for _ in range(slices):
        for label, stepper in steppers.items():
            start = time.perf_counter()
            steps[label] += stepper(seconds / slices)
            elapsed[label] += time.perf_counter() - start
    results = {label: steps[label] / elapsed[label] for label in steppers}
    table = Table(title=f"Random-action steps/s ({seconds:g} s a path)")
    table.add_column("path")
    table.add_column("steps/s", justify="right")
    for label, rate in results.items():
        table.add_row(label, f"{rate:,.0f}")
    console.print(table)
    ratio_table = Table(title="Ratios")
    for column in ("ratio", "measured", "target", "met"):
        ratio_table.add_column(column, justify="left" if column == "ratio" else "right")
    for name, (ours, raw) in ratios.items():
        value = results[ours] / results[raw]
        results[name] = value
        met = "[green]yes[/]" if value >= TARGET else "[red]no[/]"
        ratio_table.add_row(name, f"{value:.2f}x", f">= {TARGET:g}x", met)
    console.print(ratio_table)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: ``python benchmarks/bench_robotics.py [--seconds S] [--slices K]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds a path (3)")
    parser.add_argument("--slices", type=int, default=10, help="interleaved slices (10)")
    parser.add_argument(
        "--quick", action="store_true", help="a tiny budget: checks it runs, numbers mean little"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.slices = 0.2, 2
    run_robotics_benchmark(seconds=args.seconds, slices=args.slices)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
