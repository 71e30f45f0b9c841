"""Level leakage: held-out levels that are copies of training levels.

Procedural generators can map different seeds to the same level (Procgen's
maze repeats layouts across seeds: openai/procgen issue 100). A "held-out"
level identical to a training level measures memorization, not
generalization. :func:`check_leakage` finds them for any gengap env through
the family-independent convention ``reset(options={"level": s})`` then
``env.unwrapped.level_fingerprint()``, and :meth:`LeakageReport.excluded_split`
gives the split without them.

Two levels are reported identical when both of these agree:

1. the initial-state fingerprint (``level_fingerprint()``): MiniGrid/BabyAI hash
   the full grid, agent position and direction and the mission; the shapes world
   its whole scene; Procgen only its first frame, which can show no more than the
   start area (10 of coinrun's and 25 of ninja's first 1,000 test levels share a
   first frame with one of their 200 training levels, yet differ 1 to 62 steps in);
2. a probe rollout where the family needs one (:data:`FAMILY_PROBE_STEPS`): the
   same fixed action sequence (:func:`probe_actions`) played on both, with the same
   observations, rewards and episode ends at every step.

Equal initial states are necessary for identical levels, so the probe runs only on
levels whose initial fingerprint collides with a training level's (or with
another training level's); every other level is distinct at step 0. Building each
level's env, not stepping it, is what the check costs, so the probe adds a build per
probed level and per episode it ends (maze, 200 vs 1,000 levels: 1,606 builds
instead of 1,200), and batching the probe in one native vector env would save
little: stepping 256 coinrun levels 50 steps took 0.75 s one by one and 0.76 s
batched with ``set_state``.

Procgen's own ``get_state()`` bytes are no level identity: they include the
level seed, the RNG states derived from it and from ``rand_seed``, so even one
level built with two ``rand_seed`` values gives different bytes, and maze's
copies (test 10042 and train 117 replay identically for 1,000 steps) differ in
12,937 of about 21,400 bytes.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium
import numpy as np

from gengap.core import checks
from gengap.core.errors import InputError
from gengap.envs.factory import make, resolve_split
from gengap.envs.registry import env_info
from gengap.envs.splits import Split

# Bounded training sets up to this size are fingerprinted in full by default.
MAX_DEFAULT_TRAIN_LEVELS = 100_000
# Length of the probe rollout. Measured on the first-frame collisions of all 16
# Procgen games, easy and hard (200 training vs the first 1,000 test levels): 52
# pairs in coinrun and ninja are told apart after 1 to 62 probe steps, maze's 29
# stay identical for 1,000 steps, and no other game has a collision.
PROBE_STEPS = 100
# Probe length by family (others: PROBE_STEPS). MiniGrid/BabyAI and the shapes world
# fingerprint the complete initial state (grid or scene, agent, mission) and step
# deterministically from it, so equal fingerprints already mean identical levels. A
# probe there changes nothing and costs ~50x (DoorKey-5x5, 200 vs 1,000 levels: 983
# copies either way; 0.3 CPU s without, 14 with 100 steps). Procgen's fingerprint is
# its first frame alone.
FAMILY_PROBE_STEPS: dict[str, int] = {
    "procgen": PROBE_STEPS,
    "minigrid": 0,
    "babyai": 0,
    "shapes": 0,
}
# Seeds the action space that draws the probe's actions (the same for every level),
# and how many steps each drawn action is held.
PROBE_SEED = 20_240_611
PROBE_HOLD = 8
_HELD_OUT_PARTS = ("validation", "test")
# Names env options may not take: check_leakage's own arguments and make()'s.
_RESERVED_OPTIONS = frozenset(
    {"env_id", "split", "part", "num_envs", "num_train_levels", "num_test_levels", "probe_steps"}
)


@dataclass(frozen=True)
class LeakageReport:
    """Held-out levels identical to a training level.

    Attributes:
        env_id: The environment checked.
        split: The split checked.
        part: The held-out part checked (``"test"`` or ``"validation"``).
        train_levels_checked: How many training levels were fingerprinted.
        test_levels_checked: How many held-out levels were compared (the first ones of the part).
        distinct_train_levels: Distinct levels among the training levels.
        duplicates: ``(held_out_seed, train_seed)`` pairs, one per duplicated held-out
            level, naming the first training level identical to it.
        probe_steps: Length of the probe rollout that confirmed each identity.
        env_options: The env options the levels were built with (e.g.
            ``{"distribution_mode": "hard"}``; levels differ by option).
    """

    env_id: str
    split: Split
    part: str
    train_levels_checked: int
    test_levels_checked: int
    distinct_train_levels: int
    duplicates: tuple[tuple[int, int], ...]
    probe_steps: int
    env_options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        """Share of the checked held-out levels that duplicate a training level."""
        return len(self.duplicates) / self.test_levels_checked

    @property
    def duplicated_levels(self) -> tuple[int, ...]:
        """The held-out level seeds that duplicate a training level."""
        return tuple(test_seed for test_seed, _ in self.duplicates)

    def excluded_split(self) -> Split:
        """The split with the duplicated held-out levels excluded from :attr:`part`."""
        if not self.duplicates:
            return self.split
        return self.split.with_excluded(self.part, self.duplicated_levels)


def check_leakage(
    env_id: str,
    split: Split | dict[str, Any] | None = None,
    *,
    num_train_levels: int | None = None,
    num_test_levels: int = 1000,
    part: str = "test",
    probe_steps: int | None = None,
    **env_kwargs: Any,
) -> LeakageReport:
    """Find held-out levels of ``env_id`` identical to a training level.

    Identical means the same initial-state fingerprint and the same observations,
    rewards and episode ends over a fixed probe rollout (see the module docstring).

    Args:
        env_id: A registered gengap id, e.g. ``"gengap/procgen-maze-v0"``.
        split: The split to check (default: the env's registered default split).
        num_train_levels: How many training levels to fingerprint (the first ones).
            ``None`` takes all of them when the training set is bounded and holds
            at most 100,000 levels.
        num_test_levels: How many held-out levels to compare (the first ones of ``part``).
        part: The held-out part: ``"test"`` or ``"validation"``.
        probe_steps: Steps of the probe rollout (0: the initial state alone);
            ``None`` takes the family's :data:`FAMILY_PROBE_STEPS`.
        **env_kwargs: Passed to :func:`gengap.envs.make` (e.g. ``distribution_mode``);
            levels differ by option, so check with the options you train with.

    Returns:
        The report; ``report.excluded_split()`` drops the duplicated levels.

    Raises:
        InputError: For an unknown env id, a part that is not held out or missing,
            non-positive level counts, a negative ``probe_steps``, env options the
            env rejects, or ``num_train_levels=None`` with an unbounded or
            larger-than-100,000-level training set.
    """
    resolved = resolve_split(env_id, split)
    if part not in _HELD_OUT_PARTS:
        raise InputError(f"part must be 'test' or 'validation', got {part!r}")
    held_out_levels = resolved.levels(part)
    train_levels = resolved.levels("train")
    checks.positive_int("num_test_levels", num_test_levels)
    if probe_steps is None:
        probe_steps = FAMILY_PROBE_STEPS.get(env_info(env_id).family, PROBE_STEPS)
    checks.int_in("probe_steps", probe_steps, 0)
    if num_train_levels is None:
        if not train_levels.bounded or len(train_levels) > MAX_DEFAULT_TRAIN_LEVELS:
            raise InputError(
                f"num_train_levels must be given: the training levels of split "
                f"{resolved.name!r} ({train_levels.describe()}) are unbounded or more than "
                f"{MAX_DEFAULT_TRAIN_LEVELS}"
            )
        num_train_levels = len(train_levels)
    checks.positive_int("num_train_levels", num_train_levels)

    check_env_options(env_kwargs)
    train_seeds = train_levels.first(num_train_levels)
    test_seeds = held_out_levels.first(num_test_levels)
    with contextlib.ExitStack() as envs:
        train_env = envs.enter_context(_make_checked(env_id, resolved, "train", env_kwargs))
        held_out_env = envs.enter_context(_make_checked(env_id, resolved, part, env_kwargs))
        actions = probe_actions(train_env.action_space, probe_steps)
        train, held_out = _Levels(train_env, actions), _Levels(held_out_env, actions)
        distinct_train_levels, duplicates = _find_duplicates(
            train, held_out, train_seeds, test_seeds
        )
    return LeakageReport(
        env_id=env_id,
        split=resolved,
        part=part,
        train_levels_checked=len(train_seeds),
        test_levels_checked=len(test_seeds),
        distinct_train_levels=distinct_train_levels,
        duplicates=tuple(duplicates),
        probe_steps=probe_steps,
        env_options=dict(env_kwargs),
    )


class _Levels:
    """One part's env: initial fingerprints, and probe digests computed once per level."""

    def __init__(self, env: gymnasium.Env, actions: list[Any]) -> None:
        self.env = env
        self.actions = actions
        self._probes: dict[int, bytes] = {}

    def initial(self, seeds: Sequence[int]) -> list[bytes]:
        fingerprint = self.env.unwrapped.level_fingerprint  # type: ignore[attr-defined]
        out = []
        for seed in seeds:
            self.env.reset(options={"level": seed})
            out.append(fingerprint())
        return out

    def probe(self, seed: int) -> bytes:
        if not self.actions:
            return b""
        if seed not in self._probes:
            self._probes[seed] = probe_digest(self.env, seed, self.actions)
        return self._probes[seed]


def _find_duplicates(
    train: _Levels, held_out: _Levels, train_seeds: list[int], test_seeds: list[int]
) -> tuple[int, list[tuple[int, int]]]:
    """Distinct training levels, and ``(held_out_seed, train_seed)`` per duplicate."""
    train_by_initial: dict[bytes, list[int]] = {}
    for seed, initial in zip(train_seeds, train.initial(train_seeds), strict=True):
        train_by_initial.setdefault(initial, []).append(seed)
    # Identical levels have equal initial states: only those collisions are probed.
    distinct_train_levels = sum(
        len({train.probe(seed) for seed in seeds}) if len(seeds) > 1 else 1
        for seeds in train_by_initial.values()
    )
    duplicates = []
    for seed, initial in zip(test_seeds, held_out.initial(test_seeds), strict=True):
        candidates = train_by_initial.get(initial, [])
        if candidates:
            digest = held_out.probe(seed)
            train_seed = next((t for t in candidates if train.probe(t) == digest), None)
            if train_seed is not None:
                duplicates.append((seed, train_seed))
    return distinct_train_levels, duplicates


def check_env_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` as env options for :func:`check_leakage`.

    Raises:
        InputError: For a name the check sets itself (split, part, level counts...).
    """
    reserved = sorted(set(options) & _RESERVED_OPTIONS)
    if reserved:
        raise InputError(
            f"env options may not set {', '.join(reserved)}: the leakage check sets "
            f"{'it' if len(reserved) == 1 else 'them'} (see its own arguments)"
        )
    return dict(options)


def _make_checked(
    env_id: str, split: Split, part: str, env_kwargs: dict[str, Any]
) -> gymnasium.Env:
    """The env on ``part``; the env's own rejection of an option becomes an InputError
    (only this constructor call: the options are the user's input)."""
    try:
        env = make(env_id, split=split, part=part, **env_kwargs)
    except (ValueError, TypeError) as error:
        if not env_kwargs or isinstance(error, InputError):
            raise
        options = ", ".join(f"{key}={value!r}" for key, value in env_kwargs.items())
        raise InputError(f"env options {options} for {env_id}: {error}") from error
    if getattr(env.unwrapped, "level_fingerprint", None) is None:
        env.close()
        raise InputError(f"{env_id} has no level_fingerprint(); the leakage check needs one")
    return env


def probe_actions(action_space: gymnasium.Space[Any], steps: int) -> list[Any]:
    """The probe's fixed action sequence: draws from ``action_space`` seeded with
    :data:`PROBE_SEED`, each held for :data:`PROBE_HOLD` steps (the same sequence for
    every level of an env).

    Held actions carry the agent away from its start, where one-step random actions
    mostly jitter in place: in Procgen ninja, the longest first-frame collision took
    170 one-step random actions to tell apart, and 62 with actions held for 8 steps.

    Args:
        action_space: The env's action space (a copy is seeded, not the env's own).
        steps: How many actions.

    Returns:
        The actions, in order.
    """
    space = copy.deepcopy(action_space)
    space.seed(PROBE_SEED)
    actions: list[Any] = []
    while len(actions) < steps:
        actions.extend([space.sample()] * PROBE_HOLD)
    return actions[:steps]


def probe_digest(env: gymnasium.Env, seed: int, actions: Sequence[Any]) -> bytes:
    """SHA-1 of what level ``seed`` shows under ``actions``: every observation, reward
    and episode end; an episode that ends restarts the same level and the probe goes on.

    Args:
        env: A gengap env whose part holds ``seed``.
        seed: The level.
        actions: The probe (see :func:`probe_actions`).

    Returns:
        The digest (equal for identical levels).
    """
    digest = hashlib.sha1()
    _update(digest, env.reset(options={"level": seed})[0])
    for action in actions:
        observation, reward, terminated, truncated, _ = env.step(action)
        _update(digest, observation)
        digest.update(np.asarray([reward, terminated, truncated], np.float64).tobytes())
        if terminated or truncated:
            _update(digest, env.reset(options={"level": seed})[0])
    return digest.digest()


def _update(digest: Any, value: Any) -> None:
    """Feed an observation (array, number, text or a dict/tuple of them) to ``digest``."""
    if isinstance(value, dict):
        for key in sorted(value):
            digest.update(str(key).encode())
            _update(digest, value[key])
    elif isinstance(value, tuple | list):
        for item in value:
            _update(digest, item)
    elif isinstance(value, str):
        digest.update(value.encode())
    else:
        array = np.asarray(value)
        digest.update(str((array.dtype.str, array.shape)).encode())
        digest.update(np.ascontiguousarray(array).tobytes())


def format_report(report: LeakageReport, max_examples: int = 5) -> str:
    """One paragraph summing up ``report`` (what ``gengap envs --check-leakage`` prints)."""
    split = report.split
    options = "".join(f", {key}={value!r}" for key, value in report.env_options.items())
    head = (
        f"{report.env_id}{options}, split {split.name!r}: {len(report.duplicates)} of the first "
        f"{report.test_levels_checked} {report.part} levels ({report.fraction:.1%}) are "
        f"identical to one of {report.train_levels_checked} training levels "
        f"({report.distinct_train_levels} distinct; identical = same initial state and "
        f"the same {report.probe_steps}-step probe rollout)."
    )
    if not report.duplicates:
        return head + " No leakage found."
    examples = ", ".join(
        f"{report.part} {test_seed} = train {train_seed}"
        for test_seed, train_seed in report.duplicates[:max_examples]
    )
    more = ", ..." if len(report.duplicates) > max_examples else ""
    return (
        f"{head} E.g. {examples}{more}. These held-out levels measure memorization, not "
        f"generalization; LeakageReport.excluded_split() gives the split without them."
    )
