"""Zero-shot evaluation of an agent on one part of a split.

Two paths, chosen from the registry:

* Families whose single env can be put on an exact level (MiniGrid, BabyAI,
  shapes) get an exact schedule: episodes are spread evenly over the part's
  levels (every level once before any level twice; evenly spaced levels when
  there are more levels than episodes), run on ``num_envs`` envs side by side
  with batched actions.
* Natively vectorized families (Procgen) run one native vector env on the
  part's level range and record the level seed of each episode. Each env
  contributes the same number of episodes, so short episodes are not
  over-represented (the usual bias of "first N episodes to finish"). Episodes
  on levels the split excludes (leakage duplicates) are dropped.

Episode seeds derive from ``seed``, so the same agent, split and seed give the
same records.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from gengap.agents import Agent, load_agent
from gengap.agents.history import EpisodeHistory, new_histories, record_step
from gengap.core import checks
from gengap.core.errors import InputError
from gengap.core.executor import Executor
from gengap.envs import env_info, make, resolve_split
from gengap.envs.splits import Split
from gengap.eval.runs import RunFolder


@dataclass(frozen=True)
class EpisodeRecord:
    """One evaluation episode."""

    part: str
    level_seed: int
    episode_return: float
    length: int
    success: bool | None = None
    normalized_return: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def level_schedule(split: Split, part: str, num_episodes: int) -> list[int]:
    """Level seeds for ``num_episodes`` episodes spread evenly over ``part``."""
    checks.positive_int("num_episodes", num_episodes)
    levels = split.levels(part)
    if not levels.bounded:
        return levels.first(num_episodes)
    pool = levels.first(len(levels))
    if len(pool) >= num_episodes:
        picks = np.linspace(0, len(pool) - 1, num_episodes).round().astype(int)
        return [pool[i] for i in picks]
    return [pool[i % len(pool)] for i in range(num_episodes)]


def _even_shares(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` shares that differ by at most one (larger ones first)."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _normalizer(env_id: str, env_kwargs: dict[str, Any]) -> Callable[[float], float] | None:
    """return -> normalized return, from the env's registry entry (``None`` if it has none)."""
    normalizer = env_info(env_id).normalizer
    if normalizer is None:
        return None
    import gymnasium

    kwargs = {**gymnasium.spec(env_id).kwargs, **env_kwargs}
    return lambda value: float(normalizer(value, kwargs))


def _stack(observations: Sequence[Any]) -> Any:
    first = observations[0]
    if isinstance(first, dict):
        return {key: np.stack([o[key] for o in observations]) for key in first}
    return np.stack(observations)


def _run_exact(
    agent: Agent,
    env_id: str,
    split: Split,
    part: str,
    schedule: list[int],
    *,
    num_envs: int,
    deterministic: bool,
    seed: int,
    env_kwargs: dict[str, Any],
) -> list[EpisodeRecord]:
    normalize = _normalizer(env_id, env_kwargs)
    envs = [
        make(env_id, split=split, part=part, **env_kwargs)
        for _ in range(min(num_envs, len(schedule)))
    ]
    records: list[EpisodeRecord | None] = [None] * len(schedule)
    next_episode = 0
    slot_episode: list[int] = []
    observations: list[Any] = []
    returns = np.zeros(len(envs))
    lengths = np.zeros(len(envs), dtype=np.int64)

    def start(slot: int) -> bool:
        nonlocal next_episode
        if next_episode >= len(schedule):
            return False
        episode = next_episode
        next_episode += 1
        obs, _ = envs[slot].reset(seed=seed + episode, options={"level": schedule[episode]})
        if slot < len(slot_episode):
            slot_episode[slot] = episode
            observations[slot] = obs
        else:
            slot_episode.append(episode)
            observations.append(obs)
        returns[slot] = 0.0
        lengths[slot] = 0
        return True

    histories = new_histories(agent.context_length, len(envs))
    active = [start(slot) for slot in range(len(envs))]
    while any(active):
        live = [i for i, a in enumerate(active) if a]
        actions = agent.act(
            _stack([observations[i] for i in live]),
            deterministic=deterministic,
            histories=None if histories is None else [histories[i] for i in live],
        )
        for action, slot in zip(actions, live, strict=True):
            taken_on = observations[slot]
            obs, reward, terminated, truncated, info = envs[slot].step(action)
            if histories is not None:
                histories[slot].record(taken_on, action, float(reward))
            returns[slot] += float(reward)
            lengths[slot] += 1
            observations[slot] = obs
            if terminated or truncated:
                value = float(returns[slot])
                success = info.get("success")
                records[slot_episode[slot]] = EpisodeRecord(
                    part=part,
                    level_seed=int(info.get("level_seed", schedule[slot_episode[slot]])),
                    episode_return=value,
                    length=int(lengths[slot]),
                    success=None if success is None else bool(success),
                    normalized_return=normalize(value) if normalize else None,
                )
                active[slot] = start(slot)
                if histories is not None:
                    histories[slot] = EpisodeHistory(agent.context_length)
    for env in envs:
        env.close()
    return [r for r in records if r is not None]


def _run_native(
    agent: Agent,
    env_id: str,
    split: Split,
    part: str,
    num_episodes: int,
    *,
    num_envs: int,
    deterministic: bool,
    seed: int,
    env_kwargs: dict[str, Any],
) -> list[EpisodeRecord]:
    normalize = _normalizer(env_id, env_kwargs)
    num_envs = max(1, min(num_envs, num_episodes))
    quota = _even_shares(num_episodes, num_envs)
    env = make(env_id, split=split, part=part, num_envs=num_envs, **env_kwargs)
    obs, _ = env.reset(seed=seed)
    records: list[EpisodeRecord] = []
    counts = [0] * num_envs
    histories = new_histories(agent.context_length, num_envs)
    while sum(counts) < num_episodes:
        actions = agent.act(obs, deterministic=deterministic, histories=histories)
        taken_on = obs
        obs, rewards, terminations, truncations, infos = env.step(actions)
        record_step(histories, taken_on, actions, rewards, terminations | truncations)
        if "episode" not in infos:
            continue
        ended = np.flatnonzero(infos["_episode"])
        for i in ended:
            if counts[i] >= quota[i]:
                continue
            if "excluded" in infos and bool(infos["excluded"][i]):
                continue  # a held-out level that duplicates a training level
            counts[i] += 1
            value = float(infos["episode"]["r"][i])
            success = infos.get("success")
            records.append(
                EpisodeRecord(
                    part=part,
                    level_seed=int(infos["episode_level_seed"][i]),
                    episode_return=value,
                    length=int(infos["episode"]["l"][i]),
                    success=None if success is None else bool(success[i]),
                    normalized_return=normalize(value) if normalize else None,
                )
            )
    env.close()
    return records


def _worker(
    agent_path: str, env_id: str, split_dict: dict[str, Any], part: str, task: dict[str, Any]
) -> list[dict[str, Any]]:
    agent = load_agent(agent_path, device="cpu")
    return [
        r.to_dict() for r in _dispatch(agent, env_id, Split.from_dict(split_dict), part, **task)
    ]


def _dispatch(
    agent: Agent, env_id: str, split: Split, part: str, **task: Any
) -> list[EpisodeRecord]:
    if "schedule" in task:
        schedule = task.pop("schedule")
        return _run_exact(agent, env_id, split, part, schedule, **task)
    num_episodes = task.pop("num_episodes")
    return _run_native(agent, env_id, split, part, num_episodes, **task)


def evaluate(
    agent: Agent | str | Path,
    env_id: str,
    split: Split | dict[str, Any] | None = None,
    part: str = "test",
    *,
    num_episodes: int = 100,
    num_envs: int = 8,
    num_workers: int = 1,
    deterministic: bool = True,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
) -> list[EpisodeRecord]:
    """Run ``num_episodes`` episodes of ``agent`` on ``part`` of ``split``.

    Args:
        agent: An agent, or the folder an agent was saved to.
        env_id: A registered gengap env id.
        split: The split (default: the env's default split).
        part: ``train``, ``validation`` or ``test``.
        num_episodes: Episodes in all, spread evenly over the part's levels.
        num_envs: Envs stepped side by side (batched actions) per worker.
        num_workers: Worker processes; each loads the agent from disk.
        deterministic: Argmax/mean actions when True, sampled actions when False.
        seed: Seeds every episode (reproducible records).
        env_kwargs: Family options (``obs_mode``, ``distribution_mode``, ...).

    Returns:
        One record per episode, in schedule order for exact-level families.
    """
    checks.positive_int("num_workers", num_workers)
    checks.positive_int("num_envs", num_envs)
    resolved = resolve_split(env_id, split)
    env_kwargs = dict(env_kwargs or {})
    native = env_info(env_id).native_vector
    common = {"num_envs": num_envs, "deterministic": deterministic, "env_kwargs": env_kwargs}
    if native:
        shares = _even_shares(num_episodes, num_workers)
        tasks = [
            {**common, "num_episodes": share, "seed": seed + 7919 * i}
            for i, share in enumerate(shares)
            if share
        ]
    else:
        schedule = level_schedule(resolved, part, num_episodes)
        chunks = np.array_split(np.arange(len(schedule)), num_workers)
        tasks = [
            {**common, "schedule": [schedule[i] for i in chunk], "seed": seed + int(chunk[0])}
            for chunk in chunks
            if len(chunk)
        ]
    if len(tasks) == 1:
        loaded = agent if isinstance(agent, Agent) else load_agent(agent)
        return _dispatch(loaded, env_id, resolved, part, **tasks[0])
    with tempfile.TemporaryDirectory() as tmp:
        if isinstance(agent, Agent):
            agent_path = os.path.join(tmp, "agent")
            agent.save(agent_path)
        else:
            agent_path = str(agent)
        work = partial(_worker, agent_path, env_id, resolved.to_dict(), part)
        results = Executor("local", workers=len(tasks)).run(work, tasks)
    return [EpisodeRecord(**r) for chunk in results for r in chunk]


def mean_scores(records: Sequence[EpisodeRecord]) -> dict[str, float]:
    """Mean ``return``, and ``success`` / ``normalized_return`` where the episodes have them."""
    if not records:
        raise ValueError("mean_scores needs at least one episode record")
    out = {"return": sum(r.episode_return for r in records) / len(records)}
    successes = [r.success for r in records if r.success is not None]
    if successes:
        out["success"] = sum(successes) / len(successes)
    normalized = [r.normalized_return for r in records if r.normalized_return is not None]
    if normalized:
        out["normalized_return"] = sum(normalized) / len(normalized)
    return out


def evaluate_run(
    run_dir: str | Path,
    *,
    part: str = "test",
    num_episodes: int = 200,
    num_envs: int | None = None,
    num_workers: int = 1,
    deterministic: bool = True,
) -> list[EpisodeRecord]:
    """Evaluate a finished run's agent on ``part`` of its own split; store the episodes.

    The episodes go to the store that belongs to the folder (see
    :meth:`~gengap.eval.runs.RunFolder.store_path`), wherever the folder now is; a copied
    folder's run is registered there first.

    Args:
        run_dir: The run folder.
        part: The split part.
        num_episodes: Episodes in all.
        num_envs: Envs side by side per worker (default: the run's ``eval_num_envs``).
        num_workers: Worker processes.
        deterministic: Greedy actions when True, sampled when False.

    Raises:
        InputFileNotFoundError: If the folder is not a run folder (naming the file).
        InputError: If a file is corrupt (named), or the run has no trained agent yet.
    """
    folder = RunFolder(run_dir)
    folder.require_run()
    config, split, info = folder.read_config(), folder.read_split(), folder.read_info()
    if not folder.has_agent():
        raise InputError(
            f"run {info['run_id']!r} has no trained agent yet (status {info['status']!r}); "
            f"finish it with `gengap train --resume {folder.path}`"
        )
    records = evaluate(
        folder.agent_dir,
        config.env_id,
        split,
        part,
        num_episodes=num_episodes,
        num_envs=num_envs or config.eval_num_envs,
        num_workers=num_workers,
        deterministic=deterministic,
        seed=config.seed,
        env_kwargs=config.env_kwargs,
    )
    tag = f"eval-{'greedy' if deterministic else 'sampled'}"
    store = folder.store()
    folder.ensure_registered(store)
    rows = [record.to_dict() for record in records]
    store.add_episodes(info["run_id"], rows, part=part, step=folder.agent_step(), tag=tag)
    return records
