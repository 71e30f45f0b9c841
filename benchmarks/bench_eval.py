"""Evaluation time of a training run's protocol vs the number of envs it batches.

Evaluation used to step as many envs as training (``--num-envs``): a run with
``--num-envs 1`` evaluated one env at a time. It now batches its own
``eval_num_envs`` (16 by default). This times the evaluation protocol of the README's
first example (``gengap train --env gengap/minigrid-doorkey-5x5-v0 --algo ppo
--train-levels 10 --steps 100000``: 10 periodic evaluations of 20 episodes on the train
and test parts, then 200 final episodes on each) with one agent, for 1, 8 (the
training default, what evaluation used before) and 16 envs, and reports the ratios.

Run: ``gengap bench eval`` or ``python benchmarks/bench_eval.py [--agent DIR] [--quick]``.
Without ``--agent`` a tiny agent is trained first (its episodes run to the time limit
more often than a trained agent's, so absolute times are an upper bound).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

ENV_ID = "gengap/minigrid-doorkey-5x5-v0"


def _agent(path: str | None, tmp: Path) -> tuple[Path, dict]:
    from gengap.drivers.train import run_experiment
    from gengap.eval.runs import ExperimentConfig, RunFolder

    if path is not None:
        folder = RunFolder(path)
        if folder.exists():
            return folder.agent_dir, folder.read_config().to_dict()
        return Path(path), {}
    config = ExperimentConfig(
        env_id=ENV_ID,
        num_train_levels=10,
        total_timesteps=2048,
        eval_every=2048,
        eval_episodes=1,
        final_eval_episodes=1,
        out_dir=str(tmp),
    )
    folder = RunFolder(run_experiment(config, quiet=True))
    return folder.agent_dir, config.to_dict()


def protocol_seconds(agent_dir: Path, num_envs: int, scale: float) -> float:
    """Seconds to play the README example's evaluations with ``num_envs`` envs."""
    from gengap.agents import load_agent
    from gengap.eval.evaluate import evaluate
    from gengap.eval.runs import ExperimentConfig

    config = ExperimentConfig(env_id=ENV_ID, num_train_levels=10)
    split = config.resolved_split()
    agent = load_agent(agent_dir, device="cpu")
    periodic = max(int(config.eval_episodes * scale), 1)
    final = max(int(config.final_eval_episodes * scale), 1)
    start = time.perf_counter()
    for evaluation in range(10):
        for part in ("train", "test"):
            evaluate(agent, ENV_ID, split, part, num_episodes=periodic, num_envs=num_envs,
                     seed=10_000_019 + evaluation)  # fmt: skip
    for part in ("train", "test"):
        evaluate(agent, ENV_ID, split, part, num_episodes=final, num_envs=num_envs, seed=0)
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", help="a run folder or agent folder (default: train one)")
    parser.add_argument("--quick", action="store_true", help="a tenth of the episodes")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        agent_dir, _ = _agent(args.agent, Path(tmp))
        scale = 0.1 if args.quick else 1.0
        seconds = {n: protocol_seconds(agent_dir, n, scale) for n in (1, 8, 16)}
    table = Table(title=f"evaluation protocol of the README example ({agent_dir})")
    for column in ("eval envs", "seconds", "speed-up vs 1 env", "speed-up vs 8 envs"):
        table.add_column(column)
    for num_envs, value in seconds.items():
        table.add_row(
            str(num_envs),
            f"{value:.1f}",
            f"{seconds[1] / value:.2f}x",
            f"{seconds[8] / value:.2f}x",
        )
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
