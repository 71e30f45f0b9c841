"""Steps per second of the shapes world, single-threaded, random actions.

Measures each task in slot and pixel mode through ``gengap.envs.make`` (so
with Gymnasium's checker and order wrappers, as users get it), resets
included, and prints the ratio to the 5,000 steps/s target for slot mode.

    python benchmarks/bench_shapes.py [--steps 20000]   (or: gengap bench shapes)

``--quick`` only checks that it runs (a tiny budget whose numbers mean little).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np

from gengap.envs import make

TARGET_STEPS_PER_SECOND = 5_000
ENV_IDS = (
    "gengap/shapes-objectgoal-v0",
    "gengap/shapes-objectgoal-continuous-v0",
    "gengap/shapes-interaction-v0",
    "gengap/shapes-oddoneout-v0",
)


def steps_per_second(env_id: str, obs_mode: str, steps: int, num_objects: tuple[int, int]) -> float:
    """Random-action steps per second (resets included) of one env."""
    env = make(env_id, obs_mode=obs_mode, num_objects=num_objects)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(steps)]
    env.reset(seed=0)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry; ``argv`` as ``gengap bench shapes`` passes it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=20_000, help="steps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    parser.add_argument("--quick", action="store_true", help="tiny budget: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 200, 1
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be positive")

    print(f"{'env':42s} {'objects':>7s} {'mode':>6s} {'steps/s':>9s} {'x target':>8s}")
    slot_rates = []
    for env_id in ENV_IDS:
        counts = (3, 4) if "oddoneout" in env_id else (2, 4)
        for num_objects in (counts, (5, 7)):
            for obs_mode in ("slots", "pixels"):
                rate = max(
                    steps_per_second(env_id, obs_mode, args.steps, num_objects)
                    for _ in range(args.repeats)
                )
                if obs_mode == "slots":
                    slot_rates.append(rate)
                ratio = rate / TARGET_STEPS_PER_SECOND
                objects = f"{num_objects[0]}-{num_objects[1]}"
                print(f"{env_id:42s} {objects:>7s} {obs_mode:>6s} {rate:9.0f} {ratio:7.2f}x")
    worst = float(np.min(slot_rates))
    print(
        f"slot mode, slowest case: {worst:.0f} steps/s = "
        f"{worst / TARGET_STEPS_PER_SECOND:.2f}x the {TARGET_STEPS_PER_SECOND} steps/s target"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
