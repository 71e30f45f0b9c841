"""A TransitionSource over numpy arrays held in memory.

For small datasets, tests, and the benchmark's in-memory baseline; large datasets use the
memory-mapped store. Episodes are contiguous and in time order.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

KEYS = ("obs", "next_obs", "action", "reward", "terminated", "truncated", "level_seed")


def _take(values: Any, indices: np.ndarray) -> Any:
    if isinstance(values, dict):
        return {k: v[indices] for k, v in values.items()}
    return values[indices]


class InMemoryTransitions:
    """Transitions held in numpy arrays (dicts of arrays for Dict observations).

    Args:
        observation_space: Single-step observation space.
        action_space: Single-step action space.
        arrays: One array (or dict of arrays) per key of ``TransitionSource.transitions``.
        bounds: Episode offsets, shape ``(num_episodes + 1,)``, from 0 to the row count.

    Attributes:
        reads: Rows read so far (tests check that learners read batches, not everything).
    """

    def __init__(self, observation_space: gymnasium.Space[Any],
                 action_space: gymnasium.Space[Any], arrays: dict[str, Any],
                 bounds: np.ndarray) -> None:
        missing = [k for k in KEYS if k not in arrays]
        if missing:
            raise ValueError(f"arrays lack keys {missing}")
        self.observation_space = observation_space
        self.action_space = action_space
        self.arrays = arrays
        self.bounds = np.asarray(bounds, dtype=np.int64)
        if self.bounds[0] != 0 or np.any(np.diff(self.bounds) < 0):
            raise ValueError("bounds must start at 0 and not decrease")
        self.reads = 0

    @property
    def num_transitions(self) -> int:
        return int(self.bounds[-1])

    def transitions(self, indices: np.ndarray) -> dict[str, Any]:
        indices = np.asarray(indices, dtype=np.int64)
        self.reads += len(indices)
        return {k: _take(self.arrays[k], indices) for k in KEYS}

    def episode_bounds(self) -> np.ndarray:
        return self.bounds.copy()


__all__ = ["InMemoryTransitions"]
