"""Can a pixel extractor represent the shapes object-goal task? (studies/README.md, v3)

Behaviour cloning of a greedy oracle (move along the larger axis towards the goal object)
from pixels + goal, for each named extractor; prints held-out action accuracy.

    python studies/shapes_pixels_bc_check.py 3000 film combined
"""

from __future__ import annotations

import sys
import time
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor

import gengap.envs  # noqa: F401  (registers the ids)
from gengap.agents.networks import GoalFiLMCNN

ENV_ID = "gengap/shapes-objectgoal-v0"
SPACE = spaces.Dict({"pixels": spaces.Box(0, 255, (3, 64, 64), np.uint8),
                     "goal": spaces.Box(0.0, 1.0, (16,), np.float32)})
EXTRACTORS: dict[str, type[BaseFeaturesExtractor]] = {
    "film": GoalFiLMCNN, "combined": CombinedExtractor}


def oracle_action(scene: Any) -> int:
    """Discrete move (1 up, 2 down, 3 left, 4 right) along the larger axis to the goal."""
    delta = scene.object_positions[scene.goal_index] - scene.agent_position
    if abs(delta[0]) >= abs(delta[1]):
        return 4 if delta[0] > 0 else 3
    return 2 if delta[1] > 0 else 1


def collect(levels: range, rng: np.random.Generator, explore: float = 0.5) -> tuple[Any, ...]:
    """(frames, goals, oracle actions) along trajectories that act randomly half the time."""
    env = gymnasium.make(ENV_ID, obs_mode="pixels", part="train")
    frames, goals, actions = [], [], []
    for level in levels:
        obs, _ = env.reset(options={"level": level})
        for _ in range(int(rng.integers(1, 12))):
            frames.append(obs["pixels"].transpose(2, 0, 1))
            goals.append(obs["goal"])
            actions.append(oracle_action(env.unwrapped))
            action = actions[-1] if rng.random() > explore else int(rng.integers(5))
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
    return torch.tensor(np.stack(frames)), torch.tensor(np.stack(goals)), torch.tensor(actions)


def main(steps: int, names: list[str]) -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    train, test = collect(range(0, 1000), rng), collect(range(5000, 5200), rng)
    majority = (test[2] == torch.mode(train[2]).values).float().mean().item()
    print(f"states {len(train[2])} train, {len(test[2])} held out; majority {majority:.3f}")
    for name in names:
        torch.manual_seed(0)
        extractor = EXTRACTORS[name](SPACE)
        head = torch.nn.Sequential(torch.nn.Linear(extractor.features_dim, 128),
                                   torch.nn.ReLU(), torch.nn.Linear(128, 5))
        optimizer = torch.optim.Adam([*extractor.parameters(), *head.parameters()], lr=1e-3)

        def logits(frames: torch.Tensor, goals: torch.Tensor) -> torch.Tensor:
            return head(extractor({"pixels": frames.float() / 255, "goal": goals}))  # noqa: B023

        start = time.process_time()
        for step in range(1, steps + 1):
            batch = torch.randint(len(train[2]), (64,))
            loss = torch.nn.functional.cross_entropy(logits(train[0][batch], train[1][batch]),
                                                     train[2][batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % max(steps // 4, 1) == 0:
                with torch.no_grad():
                    accuracy = (logits(test[0], test[1]).argmax(1) == test[2]).float().mean()
                print(f"{name} {step} held-out accuracy {accuracy.item():.3f} "
                      f"cpu {time.process_time() - start:.0f}s", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2:] or list(EXTRACTORS))
