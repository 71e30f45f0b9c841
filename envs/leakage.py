"""Level leakage: held-out levels that are copies of training levels.

Procedural generators can map different seeds to the same level (Procgen's
maze repeats layouts across seeds: openai/procgen issue 100). A "held-out"
level identical to a training level measures memorization, not
generalization. :func:`check_leakage` finds them for any gengap env through
the family-independent convention: ``reset(options={"level": s})`` then
``env.unwrapped.level_fingerprint()``; equal fingerprints mean equal initial
states. :meth:`LeakageReport.excluded_split` gives the split without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gengap.envs.factory import make, resolve_split
from gengap.envs.splits import Split

# Bounded training sets up to this size are fingerprinted in full by default.
MAX_DEFAULT_TRAIN_LEVELS = 100_000
_HELD_OUT_PARTS = ("validation", "test")


@dataclass(frozen=True)
class LeakageReport:
    """Held-out levels whose initial state equals a training level's.

    Attributes:
        env_id: The environment checked.
        split: The split checked.
        part: The held-out part checked (``"test"`` or ``"validation"``).
        train_levels_checked: How many training levels were fingerprinted.
        test_levels_checked: How many held-out levels were compared (the first ones of the part).
        distinct_train_levels: Distinct fingerprints among the training levels.
        duplicates: ``(held_out_seed, train_seed)`` pairs, one per duplicated held-out
            level, naming the first training level with the same fingerprint.
    """

    env_id: str
    split: Split
    part: str
    train_levels_checked: int
    test_levels_checked: int
    distinct_train_levels: int
    duplicates: tuple[tuple[int, int], ...]

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


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_leakage(
    env_id: str,
    split: Split | dict[str, Any] | None = None,
    *,
    num_train_levels: int | None = None,
    num_test_levels: int = 1000,
    part: str = "test",
    **env_kwargs: Any,
) -> LeakageReport:
    """Find held-out levels of ``env_id`` whose initial state equals a training level's.

    Args:
        env_id: A registered gengap id, e.g. ``"gengap/procgen-maze-v0"``.
        split: The split to check (default: the env's registered default split).
        num_train_levels: How many training levels to fingerprint (the first ones).
            ``None`` takes all of them when the training set is bounded and holds
            at most 100,000 levels.
        num_test_levels: How many held-out levels to compare (the first ones of ``part``).
        part: The held-out part: ``"test"`` or ``"validation"``.
        **env_kwargs: Passed to :func:`gengap.envs.make` (e.g. ``distribution_mode``);
            levels differ by option, so check with the options you train with.

    Returns:
        The report; ``report.excluded_split()`` drops the duplicated levels.

    Raises:
        ValueError: For an unknown env id, a part that is not held out or missing,
            non-positive level counts, or ``num_train_levels=None`` with an unbounded
            or larger-than-100,000-level training set.
    """
    resolved = resolve_split(env_id, split)
    if part not in _HELD_OUT_PARTS:
        raise ValueError(f"part must be 'test' or 'validation', got {part!r}")
    held_out_levels = resolved.levels(part)
    train_levels = resolved.levels("train")
    _count("num_test_levels", num_test_levels)
    if num_train_levels is None:
        if not train_levels.bounded or len(train_levels) > MAX_DEFAULT_TRAIN_LEVELS:
            raise ValueError(
                f"num_train_levels must be given: the training levels of split "
                f"{resolved.name!r} ({train_levels.describe()}) are unbounded or more than "
                f"{MAX_DEFAULT_TRAIN_LEVELS}"
            )
        num_train_levels = len(train_levels)
    _count("num_train_levels", num_train_levels)

    first_train_level: dict[bytes, int] = {}
    train_seeds = train_levels.first(num_train_levels)
    for seed, fingerprint in _fingerprints(env_id, resolved, "train", train_seeds, env_kwargs):
        first_train_level.setdefault(fingerprint, seed)

    duplicates = []
    test_seeds = held_out_levels.first(num_test_levels)
    for seed, fingerprint in _fingerprints(env_id, resolved, part, test_seeds, env_kwargs):
        train_seed = first_train_level.get(fingerprint)
        if train_seed is not None:
            duplicates.append((seed, train_seed))
    return LeakageReport(
        env_id=env_id,
        split=resolved,
        part=part,
        train_levels_checked=len(train_seeds),
        test_levels_checked=len(test_seeds),
        distinct_train_levels=len(first_train_level),
        duplicates=tuple(duplicates),
    )


def _fingerprints(
    env_id: str, split: Split, part: str, seeds: list[int], env_kwargs: dict[str, Any]
) -> list[tuple[int, bytes]]:
    env = make(env_id, split=split, part=part, **env_kwargs)
    try:
        fingerprint = getattr(env.unwrapped, "level_fingerprint", None)
        if fingerprint is None:
            raise ValueError(f"{env_id} has no level_fingerprint(); the leakage check needs one")
        out = []
        for seed in seeds:
            env.reset(options={"level": seed})
            out.append((seed, fingerprint()))
        return out
    finally:
        env.close()


def format_report(report: LeakageReport, max_examples: int = 5) -> str:
    """One paragraph summing up ``report`` (what ``gengap envs --check-leakage`` prints)."""
    split = report.split
    head = (
        f"{report.env_id}, split {split.name!r}: {len(report.duplicates)} of the first "
        f"{report.test_levels_checked} {report.part} levels ({report.fraction:.1%}) start "
        f"identical to one of {report.train_levels_checked} training levels "
        f"({report.distinct_train_levels} distinct training layouts)."
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
