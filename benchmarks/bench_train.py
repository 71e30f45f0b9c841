"""Training and evaluation throughput, as ratios measured in one run.

1. PPO training frames/s on Procgen coinrun (easy, 64x64): gengap's native vector
   env (one C++ ProcgenGym3Env, adapted to SB3) vs SB3's default ``make_vec_env``
   path (a DummyVecEnv over N single envs). Same N, same IMPALA network, same PPO
   settings. Target: >= 1.5x.
2. Evaluation episodes/s on held-out levels with 1 vs 2 worker processes.
   Target: >= 1.7x.

Run: ``gengap bench train`` or ``python benchmarks/bench_train.py``; ``--quick`` only
checks that it runs (a tiny budget whose numbers mean little).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import torch
from rich.console import Console
from rich.table import Table


def _collection_fps(model: Any, env: Any, steps: int) -> float:
    """Frames/s of acting alone (policy forward + env step), no gradient updates."""
    obs = env.reset()
    start = time.perf_counter()
    for _ in range(steps):
        actions, _ = model.predict(obs, deterministic=False)
        obs, _, _, _ = env.step(actions)
    return steps * env.num_envs / (time.perf_counter() - start)


def ppo_training_fps(num_envs: int, n_steps: int, rollouts: int) -> dict[str, tuple[float, float]]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from gengap.agents.networks import ImpalaCNN
    from gengap.envs import make
    from gengap.envs.sb3 import to_sb3

    env_id = "gengap/procgen-coinrun-v0"
    policy_kwargs = {"features_extractor_class": ImpalaCNN, "features_extractor_kwargs": {}}
    paths = {
        "gengap native vector env": lambda: to_sb3(make(env_id, num_envs=num_envs)),
        "SB3 make_vec_env (DummyVecEnv)": lambda: make_vec_env(
            lambda: make(env_id), n_envs=num_envs
        ),
    }
    results: dict[str, tuple[float, float]] = {}
    for label, build in paths.items():
        env = build()
        model = PPO(
            "CnnPolicy",
            env,
            n_steps=n_steps,
            batch_size=num_envs * n_steps // 8,
            n_epochs=3,
            learning_rate=5e-4,
            policy_kwargs=policy_kwargs,
            seed=0,
            device="cpu",
            verbose=0,
        )
        model.learn(num_envs * n_steps)  # warm-up rollout: first-call costs out of the timing
        start = time.perf_counter()
        model.learn(num_envs * n_steps * rollouts, reset_num_timesteps=False)
        training = num_envs * n_steps * rollouts / (time.perf_counter() - start)
        results[label] = (training, _collection_fps(model, model.get_env(), n_steps))
        env.close()
    return results


def eval_episodes_per_second(episodes: int) -> dict[int, float]:
    import tempfile

    from gengap.agents import default_agent_config
    from gengap.envs import env_info, make
    from gengap.eval.evaluate import evaluate

    env_id = "gengap/minigrid-doorkey-5x5-v0"
    env = make(env_id)
    agent = default_agent_config("ppo", env_info(env_id).family, seed=0).create(
        env.observation_space, env.action_space
    )
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        agent.save(f"{tmp}/agent")
        for workers in (1, 2):
            start = time.perf_counter()
            records = evaluate(
                f"{tmp}/agent",
                env_id,
                None,
                "test",
                num_episodes=episodes,
                num_envs=8,
                num_workers=workers,
            )
            results[workers] = len(records) / (time.perf_counter() - start)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny budget: a smoke run")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    console = Console()
    num_envs = 2 if args.quick else 8
    fps = ppo_training_fps(
        num_envs=num_envs, n_steps=16 if args.quick else 256, rollouts=1 if args.quick else 3
    )
    table = Table(
        title=f"PPO on procgen coinrun ({num_envs} envs, IMPALA CNN, CPU, 1 torch thread)"
    )
    table.add_column("path")
    table.add_column("training frames/s", justify="right")
    table.add_column("acting only frames/s", justify="right")
    for label, (training, acting) in fps.items():
        table.add_row(label, f"{training:,.0f}", f"{acting:,.0f}")
    console.print(table)
    (native, native_acting), (dummy, dummy_acting) = fps.values()
    console.print(
        f"ratio native / DummyVecEnv: training {native / dummy:.2f}x (target >= 1.5x), "
        f"acting only {native_acting / dummy_acting:.2f}x. Where gradient updates dominate "
        "(IMPALA on a CPU) the env path cannot move the training ratio much."
    )
    eps = eval_episodes_per_second(8 if args.quick else 1000)
    console.print(
        f"evaluation on held-out levels: 1 worker {eps[1]:.1f} episodes/s, 2 workers {eps[2]:.1f} "
        f"episodes/s: {eps[2] / eps[1]:.2f}x (target >= 1.7x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
