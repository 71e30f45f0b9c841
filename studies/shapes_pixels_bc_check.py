"""Can a pixel extractor represent the shapes object-goal task? (studies/README.md, v3-v4)

Behaviour cloning of a greedy oracle (move along the larger axis towards the goal object)
from pixels + goal, for each named extractor; prints held-out action accuracy. ``film`` and
``film_max`` are the library's GoalFiLMCNN (v3) and GoalFiLMPoolCNN (v4, the "auto" choice);
the other names are variants kept as the record of the v4 comparison.

    python studies/shapes_pixels_bc_check.py 3000 film film_max
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
from torch import nn

import gengap.envs  # noqa: F401  (registers the ids)
from gengap.agents.networks import GoalFiLMCNN, GoalFiLMPoolCNN

ENV_ID = "gengap/shapes-objectgoal-v0"
SPACE = spaces.Dict({"pixels": spaces.Box(0, 255, (3, 64, 64), np.uint8),
                     "goal": spaces.Box(0.0, 1.0, (16,), np.float32)})


class VariantCNN(BaseFeaturesExtractor):
    """A variant of GoalFiLMCNN: CoordConv + 3x3 convs (given channels and strides), each
    followed by FiLM from the goal (``film=False``: a goal-dependent bias only, which is
    what broadcasting the goal as extra input channels amounts to: early fusion), then a
    head: ``flatten``, ``keypoints`` (spatial softmax: the expected x, y of each of
    ``keypoints`` maps), ``maxpool`` (maximum of each channel over space) or
    ``max_keypoints`` (both)."""

    def __init__(self, space: Any, features_dim: int = 256,
                 channels: tuple[int, ...] = (16, 32, 32), strides: tuple[int, ...] = (2, 2, 2),
                 head: str = "flatten", keypoints: int = 16, film: bool = True) -> None:
        super().__init__(space, 1)
        goal_dim = 16
        convs, films = [], []
        c = 5
        for out, stride in zip(channels, strides, strict=True):
            convs.append(nn.Conv2d(c, out, 3, stride=stride, padding=1))
            films.append(nn.Linear(goal_dim, 2 * out) if film else nn.Linear(goal_dim, out))
            c = out
        self.convs, self.films, self.film, self.kind = (nn.ModuleList(convs),
                                                        nn.ModuleList(films), film, head)
        ys = torch.linspace(-1, 1, 64).view(1, 1, 64, 1).expand(1, 1, 64, 64)
        xs = torch.linspace(-1, 1, 64).view(1, 1, 1, 64).expand(1, 1, 64, 64)
        self.register_buffer("coords", torch.cat([xs, ys], 1).contiguous())
        with torch.no_grad():
            x = torch.zeros(1, 5, 64, 64)
            for conv in self.convs:
                x = conv(x)
        h, w = x.shape[2:]
        if head == "flatten":
            n = x[0].numel()
        elif head in ("keypoints", "max_keypoints"):
            self.key = nn.Conv2d(c, keypoints, 1)
            gy = torch.linspace(-1, 1, h).view(h, 1).expand(h, w).reshape(-1)
            gx = torch.linspace(-1, 1, w).view(1, w).expand(h, w).reshape(-1)
            self.register_buffer("grid", torch.stack([gx, gy], 1))
            n = 2 * keypoints + (c if head == "max_keypoints" else 0)
        else:  # maxpool
            n = c
        self.head = nn.Sequential(nn.Linear(n, features_dim), nn.ReLU())
        self.goal_mlp = nn.Sequential(nn.Linear(goal_dim, 64), nn.ReLU())
        self._features_dim = features_dim + 64

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        image, goal = obs["pixels"], obs["goal"]
        x = torch.cat([image, self.coords.expand(image.shape[0], -1, -1, -1)], 1)
        for conv, film in zip(self.convs, self.films, strict=True):
            x = conv(x)
            if self.film:
                scale, shift = film(goal).chunk(2, 1)
                x = torch.relu(x * (1 + scale[:, :, None, None]) + shift[:, :, None, None])
            else:  # early fusion: a goal-dependent bias (a broadcast goal channel)
                x = torch.relu(x + film(goal)[:, :, None, None])
        if self.kind == "flatten":
            z = x.flatten(1)
        elif self.kind == "keypoints":
            attention = torch.softmax(self.key(x).flatten(2), dim=2)  # (B, K, HW)
            z = (attention @ self.grid).flatten(1)  # (B, K*2) expected x, y
        elif self.kind == "max_keypoints":
            attention = torch.softmax(self.key(x).flatten(2), dim=2)
            z = torch.cat([(attention @ self.grid).flatten(1), x.amax(dim=(2, 3))], 1)
        else:
            z = x.amax(dim=(2, 3))
        return torch.cat([self.head(z), self.goal_mlp(goal)], 1)


def variant(**kw: Any) -> Any:
    return lambda space: VariantCNN(space, **kw)


EXTRACTORS: dict[str, Any] = {
    "film": GoalFiLMCNN, "film_max": GoalFiLMPoolCNN, "combined": CombinedExtractor,
    "early": variant(film=False),
    "film_s1": variant(channels=(8, 16, 32), strides=(1, 2, 2)),
    "film_kp": variant(channels=(16, 16, 32), strides=(2, 1, 2), head="keypoints"),
    "film_s1_kp": variant(channels=(8, 16, 32), strides=(1, 2, 2), head="keypoints"),
    "film_max4": variant(channels=(16, 16, 32, 32), strides=(2, 1, 2, 1), head="maxpool"),
    "film_max_kp": variant(channels=(16, 16, 32), strides=(2, 1, 2), head="max_keypoints"),
    "early_max": variant(channels=(16, 16, 32), strides=(2, 1, 2), head="maxpool", film=False),
}


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
