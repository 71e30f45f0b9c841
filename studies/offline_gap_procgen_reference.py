"""The data-collecting PPO agent's own scores, for studies/offline_gap_procgen.toml.

Evaluates snapshots of the PPO run (`gengap train studies/offline_gap_procgen_ppo.toml`) on
its training levels and on held-out levels with the same evaluation as the offline
learners (greedy actions, 16 envs side by side, seed 0, one torch thread) and, with
``--sampled``, with sampled actions (how the dataset was collected); prints mean return
[95% bootstrap CI over levels] and success.

    python studies/offline_gap_procgen_reference.py 200 step-192000
    python studies/offline_gap_procgen_reference.py 200 step-192000 --sampled
"""

from __future__ import annotations

import sys

import torch

import gengap.envs  # noqa: F401  (registers the ids)
from gengap.envs import Split
from gengap.eval.evaluate import evaluate
from gengap.eval.metrics import aggregate, score_table

RUN = "runs/offline_gap_procgen/ppo"
ENV_ID = "gengap/procgen-coinrun-v0"


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    episodes = int(argv[0])
    sampled = "--sampled" in argv
    split = Split.load(f"{RUN}/split.json")
    for name in [a for a in argv[1:] if not a.startswith("--")]:
        agent_dir = f"{RUN}/snapshots/{name}" if name.startswith("step-") else f"{RUN}/agent"
        for part in ("train", "test"):
            records = evaluate(agent_dir, ENV_ID, split, part, num_episodes=episodes,
                               num_envs=16, deterministic=not sampled, seed=0)
            rows = [{**r.to_dict(), "run_id": name} for r in records]
            mean = aggregate(score_table(rows, score="return").matrix, metrics=("mean",))["mean"]
            success = sum(bool(r.success) for r in records) / len(records)
            mode = "sampled" if sampled else "greedy"
            print(f"{name} {mode} {part}: return {mean.format()}, success {success:.3f}",
                  flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
