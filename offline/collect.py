"""Collecting datasets: roll a policy out on a split's training levels and write a dataset.

:func:`collect` steps gengap's native vector envs (Procgen's C++ vector env, Gymnasium's
sync vector env for the others; both auto-reset in ``SAME_STEP`` mode), records every
episode with its level seed (and, where the env has a combination axis, the combinations
its mission named) and writes a :class:`~gengap.offline.dataset.Dataset`.

Policies (``gengap collect --policy``):

- ``random``: uniform actions;
- ``bot``: BabyAI's scripted expert (``minigrid.utils.baby_ai_bot.BabyAIBot``) on BabyAI
  levels, compositional ones included;
- ``RUN_DIR[@expert|@mixed|@suboptimal]``: agents of a gengap run, as
  :class:`AgentPolicy` members of a :class:`PolicyPlan`. Which agents (the final one, the
  snapshot at 75% of the final score, every snapshot) is decided by
  :func:`gengap.drivers.collect.resolve_policy`: the run-folder layout belongs to
  ``gengap.eval.runs``, a layer above this one;

each optionally mixed with uniform actions (``epsilon``, :func:`mix_policy`).
:func:`make_policy` resolves the built-in names.

Procgen drops each episode's true terminal frame (the env auto-resets natively), so the
final observation of a Procgen episode is a copy of its last frame, as
``gengap.envs.procgen.ProcgenEnv`` returns it.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from gengap.agents.history import EpisodeHistory, new_histories
from gengap.core import checks
from gengap.core.errors import InputError, unknown_name_message
from gengap.core.provenance import environment_versions, git_revision
from gengap.envs import LevelSet, Split, env_info, make, resolve_split
from gengap.offline.dataset import (
    DEFAULT_CHUNK_ROWS,
    DEFAULT_CODEC,
    DatasetWriter,
    check_new_dataset_path,
)

__all__ = [
    "ACTION_MODES",
    "BUILT_IN_POLICIES",
    "POLICY_NAMES",
    "SKILL_LEVELS",
    "AgentPolicy",
    "Demonstration",
    "DemonstrationSource",
    "Policy",
    "PolicyPlan",
    "bot_demonstrations",
    "check_policy_options",
    "collect",
    "make_policy",
    "mix_policy",
    "training_split",
]

SKILL_LEVELS = ("expert", "mixed", "suboptimal", "best")
ACTION_MODES = ("sampled", "greedy")
#: The policies :func:`make_policy` builds; ``--policy`` also takes ``RUN_DIR[@skill]``,
#: resolved by :mod:`gengap.drivers.collect`.
BUILT_IN_POLICIES = ("random", "bot")
POLICY_NAMES = (*BUILT_IN_POLICIES, "RUN_DIR[@skill]")


# -- policies ---------------------------------------------------------------------------------
class Policy:
    """Maps a batch of observations of a vector env to actions.

    Attributes:
        description: What the card records about the policy.
    """

    description: dict[str, Any]

    def start(self, env: gymnasium.vector.VectorEnv, rng: np.random.Generator) -> None:
        """Called once with the freshly reset env."""

    def episode_started(self, env: gymnasium.vector.VectorEnv, index: int) -> None:
        """Called when env ``index`` starts a new episode (after an auto-reset)."""

    def act(self, obs: Any, env: gymnasium.vector.VectorEnv) -> np.ndarray:
        raise NotImplementedError

    def taken(self, obs: Any, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Called after every step with the actions really taken on ``obs`` and their rewards
        (before :meth:`episode_started` for envs whose episode ended)."""


def _random_actions(
    space: gymnasium.Space[Any], count: int, rng: np.random.Generator
) -> np.ndarray:
    if isinstance(space, spaces.Discrete):
        return (space.start + rng.integers(0, space.n, size=count)).astype(np.int64)
    if isinstance(space, spaces.Box):
        return rng.uniform(space.low, space.high, size=(count, *space.shape)).astype(space.dtype)
    if isinstance(space, spaces.MultiDiscrete):
        return rng.integers(0, space.nvec, size=(count, *space.shape)).astype(np.int64)
    raise InputError(f"random actions need a Discrete, Box or MultiDiscrete space, got {space}")


class RandomPolicy(Policy):
    """Uniform random actions."""

    def __init__(self) -> None:
        self.description = {"kind": "random", "name": "random"}
        self._rng = np.random.default_rng()

    def start(self, env: gymnasium.vector.VectorEnv, rng: np.random.Generator) -> None:
        self._rng = rng

    def act(self, obs: Any, env: gymnasium.vector.VectorEnv) -> np.ndarray:
        return _random_actions(env.single_action_space, env.num_envs, self._rng)


class AgentPolicy(Policy):
    """A saved gengap agent (any kind), greedy or sampled."""

    def __init__(self, agent_dir: Path, deterministic: bool, description: dict[str, Any]) -> None:
        from gengap.agents import load_agent

        self.agent = load_agent(agent_dir)
        self.deterministic = deterministic
        self.description = description
        self._histories: list[EpisodeHistory] | None = None
        self._acted_on: list[Any] = []

    def start(self, env: gymnasium.vector.VectorEnv, rng: np.random.Generator) -> None:
        self._histories = new_histories(self.agent.context_length, env.num_envs)

    def episode_started(self, env: gymnasium.vector.VectorEnv, index: int) -> None:
        if self._histories is not None:
            self._histories[index] = EpisodeHistory(self.agent.context_length)

    def act(self, obs: Any, env: gymnasium.vector.VectorEnv) -> np.ndarray:
        if self._histories is not None:  # a copy: vector envs may reuse their output buffers
            self._acted_on = [_take(obs, index) for index in range(env.num_envs)]
        return np.asarray(
            self.agent.act(obs, deterministic=self.deterministic, histories=self._histories)
        )

    def taken(self, obs: Any, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Record the step just taken (the actions may differ from the agent's under an
        epsilon mixture); episodes that ended are restarted by :meth:`episode_started`."""
        if self._histories is None:
            return
        for index, history in enumerate(self._histories):
            history.record(self._acted_on[index], actions[index], float(rewards[index]))


class BotPolicy(Policy):
    """BabyAI's scripted expert, one bot per env, rebuilt at every episode."""

    def __init__(self) -> None:
        self.description = {"kind": "bot", "name": "BabyAIBot"}
        self._bots: list[Any] = []
        self._last: list[int | None] = []

    def start(self, env: gymnasium.vector.VectorEnv, rng: np.random.Generator) -> None:
        tasks = _babyai_tasks(env)
        self._bots = [None] * len(tasks)
        self._last = [None] * len(tasks)
        for index in range(len(tasks)):
            self.episode_started(env, index)

    def episode_started(self, env: gymnasium.vector.VectorEnv, index: int) -> None:
        from minigrid.utils.baby_ai_bot import BabyAIBot

        self._bots[index] = BabyAIBot(_babyai_tasks(env)[index])
        self._last[index] = None

    def act(self, obs: Any, env: gymnasium.vector.VectorEnv) -> np.ndarray:
        actions = np.empty(len(self._bots), dtype=np.int64)
        for index, bot in enumerate(self._bots):
            with contextlib.redirect_stdout(io.StringIO()):  # BabyAI prints while planning
                actions[index] = int(bot.replan(self._last[index]))
        return actions

    def note_actions(self, actions: np.ndarray) -> None:
        """The actions really taken (they differ from the bot's under an epsilon mixture)."""
        self._last = [int(a) for a in actions]


def _babyai_tasks(env: gymnasium.vector.VectorEnv) -> list[Any]:
    from minigrid.envs.babyai.core.roomgrid_level import RoomGridLevel

    from gengap.envs.minigrid import MiniGridEnv

    envs = getattr(env, "envs", None)
    tasks = []
    for single in envs or []:
        base = single.unwrapped
        if isinstance(base, MiniGridEnv) and isinstance(base.unwrapped_task, RoomGridLevel):
            tasks.append(base.unwrapped_task)
    if envs is None or len(tasks) != len(envs):
        raise InputError("--policy bot needs a BabyAI env (the bot plays BabyAI levels only)")
    return tasks


class EpsilonPolicy(Policy):
    """With probability ``epsilon`` per step and env, a uniform action instead of ``inner``'s."""

    def __init__(self, inner: Policy, epsilon: float) -> None:
        self.inner = inner
        self.epsilon = epsilon
        self.description = {**inner.description, "epsilon": epsilon}
        self._rng = np.random.default_rng()

    def start(self, env: gymnasium.vector.VectorEnv, rng: np.random.Generator) -> None:
        self._rng = np.random.default_rng(rng.integers(2**63))
        self.inner.start(env, rng)

    def episode_started(self, env: gymnasium.vector.VectorEnv, index: int) -> None:
        self.inner.episode_started(env, index)

    def taken(self, obs: Any, actions: np.ndarray, rewards: np.ndarray) -> None:
        self.inner.taken(obs, actions, rewards)

    def act(self, obs: Any, env: gymnasium.vector.VectorEnv) -> np.ndarray:
        actions = self.inner.act(obs, env)
        explore = self._rng.random(env.num_envs) < self.epsilon
        if explore.any():
            random = _random_actions(env.single_action_space, env.num_envs, self._rng)
            actions = np.where(explore.reshape(-1, *([1] * (actions.ndim - 1))), random, actions)
        if isinstance(self.inner, BotPolicy):
            self.inner.note_actions(actions)
        return actions


@dataclass
class PolicyPlan:
    """What :func:`make_policy` resolves: policies with their share of the data, and the
    env, split and options a run-folder policy was trained with."""

    policies: list[Policy]
    skill: str | None
    score: dict[str, Any] | None = None
    env_id: str | None = None
    split: Split | None = None
    env_options: dict[str, Any] = field(default_factory=dict)


def make_policy(text: str, *, epsilon: float = 0.0, action_mode: str = "sampled") -> PolicyPlan:
    """Resolve a built-in ``--policy``: ``random`` or ``bot``, optionally epsilon-mixed.

    Run-folder policies (``RUN_DIR[@skill]``) are resolved by
    :func:`gengap.drivers.collect.resolve_policy`, which knows the run-folder layout, and
    handed to :func:`collect` as a :class:`PolicyPlan` of :class:`AgentPolicy` members.

    Raises:
        InputError: For an unknown policy, or a bad ``epsilon``/``action_mode``.
    """
    if text == "random":
        plan = PolicyPlan([RandomPolicy()], skill=None)
    elif text == "bot":
        plan = PolicyPlan([BotPolicy()], skill="expert")
    elif "@" in text or os.sep in text:
        raise InputError(
            f"policy {text!r} looks like a run folder: resolve it with "
            "gengap.drivers.collect.resolve_policy (make_policy builds random and bot)")
    else:
        raise InputError(unknown_name_message("policy", text, POLICY_NAMES))
    return mix_policy(plan, epsilon=epsilon, action_mode=action_mode)


def mix_policy(plan: PolicyPlan, *, epsilon: float = 0.0, action_mode: str = "sampled"
               ) -> PolicyPlan:
    """``plan`` with every member epsilon-mixed with uniform actions (``epsilon > 0``) and
    its agents' action mode recorded in their descriptions.

    Raises:
        InputError: For a bad ``epsilon`` or ``action_mode``.
    """
    check_policy_options(epsilon, action_mode)
    if epsilon > 0:
        plan.policies = [EpsilonPolicy(p, float(epsilon)) for p in plan.policies]
    for policy in plan.policies:
        inner = policy.inner if isinstance(policy, EpsilonPolicy) else policy
        if isinstance(inner, AgentPolicy):
            policy.description.setdefault("action_mode", action_mode)
    return plan


def check_policy_options(epsilon: float, action_mode: str) -> None:
    """Raise InputError for an ``epsilon`` outside [0, 1] or an unknown ``action_mode``."""
    checks.fraction("--epsilon", epsilon)
    checks.one_of("action mode", action_mode, ACTION_MODES)


# -- splits -----------------------------------------------------------------------------------
def training_split(env_id: str, split: Split | None, num_train_levels: int | None) -> Split:
    """The split to collect on: ``split`` (default: the env's), with its training part cut
    to levels ``0..num_train_levels-1`` when given (validation dropped where it overlaps).

    Raises:
        InputError: For a non-positive ``num_train_levels`` or one that overlaps held-out levels.
    """
    resolved = resolve_split(env_id, split)
    if num_train_levels is None:
        return resolved
    checks.positive_int("--train-levels", num_train_levels)
    train = LevelSet.range(
        resolved.train.start if resolved.train.seeds is None else 0, num_train_levels
    )
    validation = resolved.validation
    if validation is not None and validation.overlap(train)[0]:
        validation = None
    try:
        return Split(
            train=train,
            validation=validation,
            test=resolved.test,
            name=f"{resolved.name.rsplit('-', 1)[0]}-{num_train_levels}",
            combinations=resolved.combinations,
        )
    except ValueError as error:
        raise InputError(f"--train-levels {num_train_levels}: {error}") from None


# -- progress ---------------------------------------------------------------------------------
class _Progress:
    """frames/s as a rich bar on a terminal, as a full line every few seconds otherwise."""

    def __init__(self, total: int, unit: str, enabled: bool) -> None:
        self.total, self.unit, self.enabled = total, unit, enabled
        self.start = time.perf_counter()
        self.last_line = self.start
        self.frames_before: int | None = None
        self.bar: Any = None
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.bar = Progress(
                TextColumn("[bold]collect"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(unit),
                TextColumn("{task.fields[fps]:>7.0f} frames/s"),
                console=Console(stderr=True),
            )
            self.task = self.bar.add_task("collect", total=total, fps=0.0)
            self.bar.start()

    def begin(self) -> None:
        """Start the clock (after the env is built: frames/s measures collection only)."""
        if self.frames_before is None:
            self.start = self.last_line = time.perf_counter()
            self.frames_before = 0

    def update(self, done: int, frames: int, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        fps = frames / max(now - self.start, 1e-9)
        if self.bar is not None:
            self.bar.update(self.task, completed=done, fps=fps)
        elif final or now - self.last_line >= 5.0:
            self.last_line = now
            print(
                f"collect: {done}/{self.total} {self.unit}, {frames} frames, {fps:.0f} frames/s",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


# -- the collection loop ----------------------------------------------------------------------
def _take(obs: Any, index: int) -> Any:
    if isinstance(obs, dict):
        return {key: np.array(value[index]) for key, value in obs.items()}
    return np.array(obs[index])


def _stack(observations: list[Any]) -> Any:
    if isinstance(observations[0], dict):
        return {key: np.stack([o[key] for o in observations]) for key in observations[0]}
    return np.stack(observations)


class _EpisodeBuffer:
    def __init__(self, first_obs: Any, level_seed: int, combinations: Any) -> None:
        self.observations = [first_obs]
        self.actions: list[Any] = []
        self.rewards: list[float] = []
        self.terminations: list[bool] = []
        self.truncations: list[bool] = []
        self.level_seed = level_seed
        self.combinations = combinations


def _info_at(infos: dict[str, Any], key: str, index: int) -> Any:
    values = infos.get(key)
    mask = infos.get(f"_{key}")
    if values is None or (mask is not None and not mask[index]):
        return None
    return values[index]


# Reset-info keys naming the factor combinations an episode presents, and how to read them
# as a list of combinations (the first key an env reports is used).
COMBINATION_INFO: dict[str, Callable[[Any], list[Any]]] = {
    "mission_combinations": list,  # BabyAI: the (colour, type) of each mission description
    "goal_combination": lambda value: [value],  # shapes world: the goal object's
}


def _combinations(infos: dict[str, Any], index: int) -> list[list[Any]] | None:
    for key, read in COMBINATION_INFO.items():
        value = _info_at(infos, key, index)
        if value is not None:
            return [[None if v is None else str(v) for v in combo] for combo in read(value)]
    return None


def _max_episode_steps(env: gymnasium.vector.VectorEnv) -> int | None:
    limit = getattr(env, "episode_limit", None)
    if limit is None and getattr(env, "envs", None):
        task = getattr(env.envs[0].unwrapped, "unwrapped_task", None)  # type: ignore[attr-defined]
        limit = getattr(task, "max_steps", None)
    return None if limit is None else int(limit)


def collect(
    env_id: str,
    policy: PolicyPlan | Policy,
    out: str | Path,
    *,
    num_transitions: int | None = None,
    num_episodes: int | None = None,
    split: Split | None = None,
    env_options: dict[str, Any] | None = None,
    num_envs: int = 8,
    seed: int = 0,
    progress: bool = False,
    codec: str = DEFAULT_CODEC,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    card: dict[str, Any] | None = None,
) -> Path:
    """Roll ``policy`` out on the training levels of ``split`` and write a dataset at ``out``.

    Exactly one of ``num_transitions`` (the dataset then holds exactly that many: episodes
    still running when it is reached are ended as truncated, and counted in the card as
    ``cut_episodes``) and ``num_episodes`` (completed episodes; episodes still running
    are dropped) is given. With several policies (``@suboptimal``) each collects an equal
    share, in order.

    Args:
        env_id: A registered gengap env id.
        policy: A resolved :class:`PolicyPlan` (:func:`make_policy`, or
            :func:`gengap.drivers.collect.resolve_policy` for a run folder), or one
            :class:`Policy`.
        out: The dataset folder to create.
        num_transitions: Stop after this many transitions.
        num_episodes: Stop after this many completed episodes.
        split: The split (default: the plan's run split, else the env's); only its
            ``train`` part is played.
        env_options: Family options (default: the plan's run options).
        num_envs: Parallel envs.
        seed: Seeds the envs, the policy's randomness and torch.
        progress: Show a progress bar with frames/s (full lines when not a terminal).
        codec: Dataset codec (``"zstd"`` or ``"none"``).
        chunk_rows: Rows per compressed chunk.
        card: Extra card entries.

    Returns:
        The dataset folder.

    Raises:
        InputError: For bad counts, an env that differs from the run's, or a bad policy.
        InputFileExistsError: If ``out`` exists.
    """
    plan = policy if isinstance(policy, PolicyPlan) else PolicyPlan([policy], skill=None)
    env_info(env_id)
    if plan.env_id is not None and plan.env_id != env_id:
        raise InputError(
            f"--env {env_id} differs from the env the policy's run trained on ({plan.env_id})"
        )
    if (num_transitions is None) == (num_episodes is None):
        raise InputError("give exactly one of --transitions and --episodes")
    budget = num_transitions if num_transitions is not None else num_episodes
    budget = checks.positive_int(
        "--transitions" if num_transitions is not None else "--episodes", budget)
    checks.positive_int("num_envs", num_envs)
    check_new_dataset_path(out)  # before building envs, which can take seconds
    split = split if split is not None else (plan.split or resolve_split(env_id, None))
    options = dict(plan.env_options if env_options is None else env_options)
    shares = _shares(budget, len(plan.policies))
    rng = np.random.default_rng(seed)
    if any(isinstance(p, AgentPolicy | EpsilonPolicy) for p in plan.policies):
        import torch

        torch.manual_seed(seed)

    env = make(env_id, split=split, part="train", num_envs=num_envs, **options)
    base_card = {
        "env_id": env_id,
        "env_options": options,
        "part": "train",
        "split": split.to_dict(),
        "policy": plan.policies[0].description
        if len(plan.policies) == 1
        else {
            "kind": "run",
            "skill": plan.skill,
            "name": "snapshots " + ", ".join(str(p.description.get("step")) for p in plan.policies),
            "members": [p.description for p in plan.policies],
        },
        "policy_score": plan.score,
        "skill_level": plan.skill,
        "seed": seed,
        "num_envs": num_envs,
        "stop": {"transitions": num_transitions}
        if num_transitions is not None
        else {"episodes": num_episodes},
        "max_episode_steps": _max_episode_steps(env),
        "gengap_version": environment_versions().get("gengap"),
        "git_revision": git_revision(),
        **(card or {}),
    }
    unit = "transitions" if num_transitions is not None else "episodes"
    bar = _Progress(budget, unit, progress)
    counters = {"done": 0, "frames": 0, "cut": 0}
    try:
        with DatasetWriter(
            out,
            env.single_observation_space,
            env.single_action_space,
            base_card,
            codec=codec,
            chunk_rows=chunk_rows,
        ) as writer:
            for index, (member, share) in enumerate(zip(plan.policies, shares, strict=True)):
                _roll_out(
                    env,
                    member,
                    writer,
                    share,
                    by_transitions=num_transitions is not None,
                    seed=seed + 7919 * index,
                    rng=rng,
                    bar=bar,
                    counters=counters,
                )
            writer.card["cut_episodes"] = counters["cut"]
            bar.update(counters["done"], counters["frames"], final=True)
    finally:
        bar.close()
        env.close()
    return Path(out)


def _shares(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _roll_out(
    env: gymnasium.vector.VectorEnv,
    policy: Policy,
    writer: DatasetWriter,
    budget: int,
    *,
    by_transitions: bool,
    seed: int,
    rng: np.random.Generator,
    bar: _Progress,
    counters: dict[str, int],
) -> None:
    if budget < 1:
        return
    obs, infos = env.reset(seed=seed)
    num_envs = env.num_envs
    policy.start(env, rng)
    bar.begin()
    buffers = [
        _EpisodeBuffer(
            _take(obs, i),
            int(infos["level_seed"][i]),
            _combinations(infos, i),
        )
        for i in range(num_envs)
    ]
    done = 0

    def write(buffer: _EpisodeBuffer, success: bool | None) -> None:
        writer.add_episode(
            _stack(buffer.observations),
            np.asarray(buffer.actions),
            np.asarray(buffer.rewards, dtype=np.float32),
            np.asarray(buffer.terminations),
            np.asarray(buffer.truncations),
            level_seed=buffer.level_seed,
            combinations=buffer.combinations,
            success=success,
        )

    while done < budget:
        actions = policy.act(obs, env)
        taken_on = obs
        obs, rewards, terminations, truncations, infos = env.step(actions)
        policy.taken(taken_on, actions, rewards)
        # The last step may be partial: only as many envs as transitions are still wanted.
        active = min(num_envs, budget - done) if by_transitions else num_envs
        final_obs = infos.get("final_obs")
        final_info = infos.get("final_info") or {}
        for i in range(active):
            buffer = buffers[i]
            buffer.actions.append(actions[i])
            buffer.rewards.append(float(rewards[i]))
            buffer.terminations.append(bool(terminations[i]))
            buffer.truncations.append(bool(truncations[i]))
            if not (terminations[i] or truncations[i]):
                buffer.observations.append(_take(obs, i))
                continue
            if final_obs is not None and infos.get("_final_obs", np.ones(num_envs, bool))[i]:
                last = final_obs[i]
                buffer.observations.append(
                    {k: np.array(v) for k, v in last.items()}
                    if isinstance(last, dict)
                    else np.array(last)
                )
            else:  # Procgen: the terminal frame is gone; repeat the last one
                buffer.observations.append(_copy(buffer.observations[-1]))
            success = _info_at(infos, "success", i)
            if success is None:
                success = _info_at(final_info, "success", i)
            level = _info_at(infos, "episode_level_seed", i)
            if level is not None:
                buffer.level_seed = int(level)
            write(buffer, None if success is None else bool(success))
            counters["frames"] += len(buffer.actions)
            if not by_transitions:
                done += 1
                counters["done"] += 1
            buffers[i] = _EpisodeBuffer(
                _take(obs, i),
                int(infos["level_seed"][i]),
                _combinations(infos, i),
            )
            policy.episode_started(env, i)
            if not by_transitions and done >= budget:
                break
        if by_transitions:
            done += active
            counters["done"] += active
        bar.update(counters["done"], counters["frames"] + sum(len(b.actions) for b in buffers))
    if by_transitions:  # end the episodes still running as truncated (the budget cut them)
        for buffer in buffers:
            if not buffer.actions:
                continue
            buffer.truncations[-1] = True  # observations already hold the one after it
            write(buffer, None)
            counters["frames"] += len(buffer.actions)
            counters["cut"] += 1


def _copy(observation: Any) -> Any:
    if isinstance(observation, dict):
        return {key: value.copy() for key, value in observation.items()}
    return observation.copy()


# -- expert demonstrations (a list in memory, for small studies and tests) --------------------
@dataclass
class Demonstration:
    """One episode of BabyAI's expert bot.

    Attributes:
        observations: ``len(actions) + 1`` observations; ``observations[t]`` preceded
            ``actions[t]``, the last one followed the final action.
        actions: Actions taken, ``int64``.
        rewards: Rewards received, ``float32``.
        mission: The mission string.
        level_seed: The level played.
        success: Whether the episode ended in success.
    """

    observations: list[Any]
    actions: np.ndarray
    rewards: np.ndarray
    mission: str
    level_seed: int
    success: bool


class DemonstrationSource:
    """Bot demonstrations held in memory as a :class:`~gengap.agents.TransitionSource`.

    For a quick behaviour-cloning run, a test or a benchmark on a handful of episodes;
    ``gengap collect --policy bot`` writes the same episodes to a dataset instead. An episode
    ends terminated when the bot succeeded, else truncated.

    Args:
        demonstrations: Episodes from :func:`bot_demonstrations`.
        observation_space: The env's single observation space.
        action_space: The env's single action space.
    """

    def __init__(
        self,
        demonstrations: list[Demonstration],
        observation_space: gymnasium.Space[Any],
        action_space: gymnasium.Space[Any],
    ) -> None:
        if not demonstrations:
            raise InputError("a demonstration source needs at least one episode, got none")
        self.observation_space = observation_space
        self.action_space = action_space
        self.obs = _stack([o for demo in demonstrations for o in demo.observations[:-1]])
        self.next_obs = _stack([o for demo in demonstrations for o in demo.observations[1:]])
        self.action = np.concatenate([demo.actions for demo in demonstrations])
        self.reward = np.concatenate([demo.rewards for demo in demonstrations])
        lengths = [len(demo.actions) for demo in demonstrations]
        self.bounds = np.cumsum([0, *lengths])
        last = np.zeros(len(self.action), bool)
        last[self.bounds[1:] - 1] = True
        succeeded = np.repeat([demo.success for demo in demonstrations], lengths)
        self.terminated = last & succeeded
        self.truncated = last & ~succeeded
        self.level_seed = np.repeat([demo.level_seed for demo in demonstrations], lengths)

    @property
    def num_transitions(self) -> int:
        """Transitions over all episodes."""
        return len(self.action)

    def transitions(self, indices: np.ndarray) -> dict[str, Any]:
        """The transitions at ``indices`` (obs, next_obs, action, reward, terminated,
        truncated, level_seed)."""

        def take(values: Any) -> Any:
            if isinstance(values, dict):
                return {key: value[indices] for key, value in values.items()}
            return values[indices]

        return {
            "obs": take(self.obs),
            "next_obs": take(self.next_obs),
            "action": self.action[indices],
            "reward": self.reward[indices],
            "terminated": self.terminated[indices],
            "truncated": self.truncated[indices],
            "level_seed": self.level_seed[indices].astype(np.int64),
        }

    def episode_bounds(self) -> np.ndarray:
        """``num_episodes + 1`` offsets: episode ``i`` is transitions ``[b[i], b[i+1])``."""
        return self.bounds


def bot_demonstrations(
    env_id: str,
    split: Split | dict[str, Any] | None = None,
    part: str = "train",
    num_episodes: int = 100,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
) -> list[Demonstration]:
    """Episodes of ``minigrid``'s ``BabyAIBot`` on ``part`` of a gengap BabyAI env.

    Args:
        env_id: A gengap BabyAI id (compositional, entity or plain MiniGridEnv ids).
        split: The split (default: the env's).
        part: The part to draw levels from.
        num_episodes: Episodes to record.
        seed: Episode ``i`` resets with ``seed + i`` (level draw and everything after).
        env_kwargs: Env options, e.g. ``{"obs_mode": "entities"}``.

    Returns:
        One :class:`Demonstration` per episode, failures included (``success`` False).

    Raises:
        InputError: For a non-positive ``num_episodes`` or an env that is not BabyAI.
    """
    from minigrid.envs.babyai.core.roomgrid_level import RoomGridLevel
    from minigrid.utils.baby_ai_bot import BabyAIBot

    from gengap.envs.minigrid import MiniGridEnv

    checks.positive_int("num_episodes", num_episodes)
    env = make(env_id, split=split, part=part, **(env_kwargs or {}))
    base = env.unwrapped
    if not isinstance(base, MiniGridEnv) or not isinstance(base.unwrapped_task, RoomGridLevel):
        env.close()
        raise InputError(f"env {env_id!r} is not a BabyAI level; the bot needs one")
    episodes = []
    for index in range(num_episodes):
        obs, info = env.reset(seed=seed + index)
        task = base.unwrapped_task
        bot = BabyAIBot(task)
        observations, actions, rewards = [obs], [], []
        done, success = False, False
        while not done:
            with contextlib.redirect_stdout(io.StringIO()):
                action = int(bot.replan())
            obs, reward, terminated, truncated, step_info = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(float(reward))
            done = terminated or truncated
            success = bool(step_info.get("success", False))
        episodes.append(
            Demonstration(
                observations=observations,
                actions=np.asarray(actions, np.int64),
                rewards=np.asarray(rewards, np.float32),
                mission=str(task.mission),
                level_seed=int(info["level_seed"]),
                success=success,
            )
        )
    env.close()
    return episodes
