"""LM-initialized policy throughput on BabyAI entity observations, measured in one run.

Behaviour-cloning training samples/s and acting steps/s (batch 1: one env; batch 16: a
vector env) of the ``lm`` policy (all-MiniLM-L6-v2 trunk) with the trunk frozen and
fine-tuned, beside the non-sequence BC baseline (``bc``, the online agents' encoder plus
an action head) when ``gengap.offline.bc`` is installed. A frozen trunk with language
tokens computes each transition's trunk features once (the first pass over the dataset:
"first pass samples/s") and then trains the head alone; "frozen, learned tokens" has to
run the trunk (and backpropagate through it) every update. The data are BabyAIBot
demonstrations on GoToLocal (compositional split, entity observations), held in memory.
On a CPU the trunk dominates: expect the LM policy to be one to two orders of magnitude
slower than BC per sample; ``device="auto"`` uses CUDA where present.

Run: ``gengap bench lm`` or ``python benchmarks/bench_lm.py``; ``--quick`` only checks that
it runs (a tiny budget whose numbers mean little).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

ENV_ID = "gengap/babyai-gotolocal-compositional-v0"


def demo_transitions(num_episodes: int) -> Any:
    """BabyAIBot episodes in memory, as a :class:`~gengap.agents.TransitionSource`."""
    from gengap.envs import make
    from gengap.offline.collect import DemonstrationSource, bot_demonstrations

    env = make(ENV_ID, obs_mode="entities")
    spaces = env.observation_space, env.action_space
    env.close()
    episodes = bot_demonstrations(ENV_ID, num_episodes=num_episodes,
                                  env_kwargs={"obs_mode": "entities"})
    return DemonstrationSource(episodes, *spaces)


def _configs(batch_size: int) -> dict[str, Any]:
    from gengap.agents import LMPolicyConfig

    configs: dict[str, Any] = {
        "lm, trunk frozen": LMPolicyConfig(trunk="frozen", batch_size=batch_size),
        "lm, frozen, learned tokens": LMPolicyConfig(trunk="frozen", entity_tokens="learned",
                                                     batch_size=batch_size),
        "lm, trunk fine-tuned": LMPolicyConfig(trunk="finetune", batch_size=batch_size),
    }
    try:
        from gengap.offline.bc import BCConfig  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return configs
    configs["bc baseline (MLP encoder)"] = BCConfig(batch_size=batch_size)
    return configs


def measure(data: Any, updates: int, act_steps: int,
            batch_size: int) -> dict[str, tuple[float, float, float, float]]:
    """Per policy: (first-pass samples/s, training samples/s, acting steps/s at batch 1,
    at batch 16). The first pass is one update, plus the frozen trunk's feature pass over
    the whole dataset where the policy caches features (reported per dataset transition)."""
    results = {}
    for label, config in _configs(batch_size).items():
        agent = config.create(data.observation_space, data.action_space)
        start = time.perf_counter()
        agent.fit(data, 1)  # warm-up: caches, allocator
        if getattr(config, "caches_features", False):  # the feature pass, every block
            agent._cached_features(agent._fit_data, np.arange(data.num_transitions))
            first = data.num_transitions / (time.perf_counter() - start)
        else:
            first = batch_size / (time.perf_counter() - start)
        done = agent.num_updates
        start = time.perf_counter()
        agent.fit(data, done + updates)
        train = updates * batch_size / (time.perf_counter() - start)
        acting = []
        for batch in (1, 16):
            obs = data.transitions(np.arange(batch) % data.num_transitions)["obs"]
            agent.act(obs)
            start = time.perf_counter()
            for _ in range(act_steps):
                agent.act(obs)
            acting.append(act_steps * batch / (time.perf_counter() - start))
        results[label] = (first, train, acting[0], acting[1])
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budget (default: off)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default: 1; on a shared machine more "
                             "threads spin against other processes)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    updates, act_steps, episodes = (2, 3, 4) if args.quick else (20, 50, 40)
    console = Console()
    data = demo_transitions(episodes)
    results = measure(data, updates, act_steps, batch_size=64)
    table = Table(title=f"BC on {data.num_transitions} BabyAIBot transitions, device "
                        f"{'cuda' if torch.cuda.is_available() else 'cpu'}, "
                        f"{torch.get_num_threads()} torch threads")
    for column in ("policy", "first pass samples/s", "train samples/s",
                   "act steps/s (batch 1)", "act steps/s (batch 16)", "train vs frozen"):
        table.add_column(column)
    frozen = results["lm, trunk frozen"][1]
    for label, (first, train, act_one, act_many) in results.items():
        table.add_row(label, f"{first:.0f}", f"{train:.0f}", f"{act_one:.0f}",
                      f"{act_many:.0f}", f"{train / frozen:.2f}x")
    console.print(table)
    if "bc baseline (MLP encoder)" not in results:
        console.print("bc baseline: gengap.offline.bc is not installed on this branch")


if __name__ == "__main__":
    main()
