"""Aggregate scores with honest error bars: IQM, mean, optimality gap, generalization gap.

Score matrices follow rliable's layout, ``(num_runs, num_tasks)``:

* a **run** is one training seed (one trained agent);
* a **task** is one evaluation level (level seed). Every held-out level is its own task, so the
  stratified bootstrap resamples runs *within each level* (rliable's default): the interval
  says how much the aggregate would move with other training seeds on the same levels.

With a single run that interval has zero width (there is nothing to resample), so
:func:`aggregate` then bootstraps over levels instead (rliable's ``task_bootstrap``) and says
so in :attr:`Interval.method`. The generalization gap bootstraps runs *and* levels (see
:func:`generalization_gap`).

rliable draws its bootstrap indices from NumPy's *global* random state, so every bootstrap
here runs under a lock with the global state seeded from ``seed`` and restored afterwards:
the same ``seed`` gives identical intervals, and callers' global random streams are untouched.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from rliable import library as rly_library
from rliable import metrics as rly_metrics

from gengap.core import checks

__all__ = [
    "AGGREGATES",
    "Interval",
    "ScoreTable",
    "aggregate",
    "generalization_gap",
    "normalize",
    "probability_of_improvement",
    "score_matrix",
    "score_table",
]

ScoreName = Literal["return", "normalized_return", "success"]
_SCORE_NAMES: tuple[str, ...] = ("return", "normalized_return", "success")
_GROUPINGS: tuple[str, ...] = ("level_seed", "episode")

#: Aggregate functions by name; each maps a (num_runs, num_tasks) matrix to a float.
AGGREGATES: dict[str, Callable[[np.ndarray], float]] = {
    "iqm": lambda scores: float(rly_metrics.aggregate_iqm(scores)),
    "mean": lambda scores: float(rly_metrics.aggregate_mean(scores)),
    "median": lambda scores: float(rly_metrics.aggregate_median(scores)),
    "optimality_gap": lambda scores: float(rly_metrics.aggregate_optimality_gap(scores)),
}

METHOD_STRATIFIED = "stratified bootstrap over runs within each level"
METHOD_TASKS = "bootstrap over levels (single run: no seed variation to resample)"
METHOD_NONE = "no interval (a single score)"
METHOD_GAP_PAIRED = "bootstrap over runs (paired train/test) and over levels within each part"
METHOD_GAP_INDEPENDENT = "bootstrap over runs (independently per part) and over levels"
METHOD_POI = "stratified bootstrap over runs of each agent within each level"

_GLOBAL_RNG_LOCK = threading.Lock()


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval.

    Attributes:
        point: The estimate on the observed data.
        low: Lower bound of the interval.
        high: Upper bound of the interval.
        method: How the interval was obtained (what was resampled).
    """

    point: float
    low: float
    high: float
    method: str = METHOD_STRATIFIED

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int | float | np.floating | np.integer):
            return False
        return self.low <= float(value) <= self.high

    @property
    def half_width(self) -> float:
        """Half the interval's width."""
        return (self.high - self.low) / 2.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"point": self.point, "low": self.low, "high": self.high, "method": self.method}

    def format(self, digits: int = 3) -> str:
        """``point [low, high]`` rounded to ``digits`` decimals."""
        return f"{self.point:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


@dataclass(frozen=True)
class ScoreTable:
    """A score matrix with the labels of its rows and columns.

    Attributes:
        matrix: ``(num_runs, num_tasks)`` float array.
        run_ids: Row labels, sorted.
        columns: Column labels: level seeds (``column_kind == "level_seed"``) or episode
            indices within each run (``column_kind == "episode"``).
        column_kind: ``"level_seed"`` or ``"episode"``.
        episodes_per_cell: ``(num_runs, num_tasks)`` int array, how many episodes were averaged.
    """

    matrix: np.ndarray
    run_ids: tuple[str, ...]
    columns: tuple[int, ...]
    column_kind: str
    episodes_per_cell: np.ndarray


def _record_score(record: Mapping[str, Any], score: str, index: int) -> float:
    if score == "return" and "return" not in record:
        score = "episode_return"  # EpisodeRecord.to_dict() names the return this way
    if score not in record or record[score] is None:
        raise ValueError(
            f"records[{index}] has no {score!r} value (keys: {sorted(record)}); "
            f"pick a score= the episodes define"
        )
    value = float(record[score])
    if not math.isfinite(value):
        raise ValueError(f"records[{index}][{score!r}] must be finite, got {value}")
    return value


def score_table(
    records: Iterable[Mapping[str, Any]],
    score: ScoreName | str = "return",
    by: str = "level_seed",
) -> ScoreTable:
    """Arrange per-episode records into a ``(num_runs, num_tasks)`` score table.

    Rows are runs (``run_id``, sorted), columns are levels. Several episodes of one run on one
    level are averaged into one cell. When the runs did not all play the same set of levels,
    per-level columns would have holes, so the table falls back to one column per episode index
    within each run (the i-th episode of every run, in record order); this needs the same number
    of episodes in every run. ``ScoreTable.column_kind`` says which layout was used; ask for it
    explicitly with ``by="episode"``.

    Args:
        records: Dicts with keys ``run_id``, ``level_seed``, ``return`` (or
            ``episode_return``), ``length`` and, optionally, ``success`` and
            ``normalized_return`` (:meth:`ResultsStore.episodes` rows).
        score: Which value to score: ``"return"``, ``"normalized_return"`` or ``"success"``
            (as 0/1).
        by: ``"level_seed"`` (one column per level) or ``"episode"``.

    Returns:
        The table.

    Raises:
        ValueError: On an unknown ``score``/``by``, no records, a record without the score, or
            runs with different episode counts when the episode layout is needed.
    """
    if score not in _SCORE_NAMES:
        raise ValueError(f"score must be one of {_SCORE_NAMES}, got {score!r}")
    if by not in _GROUPINGS:
        raise ValueError(f"by must be one of {_GROUPINGS}, got {by!r}")
    per_run: dict[str, list[tuple[int, float]]] = {}
    for index, record in enumerate(records):
        for key in ("run_id", "level_seed"):
            if key not in record:
                raise ValueError(f"records[{index}] has no {key!r} key (keys: {sorted(record)})")
        value = _record_score(record, score, index)
        per_run.setdefault(str(record["run_id"]), []).append((int(record["level_seed"]), value))
    if not per_run:
        raise ValueError("records must hold at least one episode, got none")
    run_ids = tuple(sorted(per_run))
    level_sets = {run_id: {level for level, _ in per_run[run_id]} for run_id in run_ids}
    same_levels = all(levels == level_sets[run_ids[0]] for levels in level_sets.values())

    if by == "level_seed" and same_levels:
        columns = tuple(sorted(level_sets[run_ids[0]]))
        column_of = {level: j for j, level in enumerate(columns)}
        totals = np.zeros((len(run_ids), len(columns)))
        counts = np.zeros((len(run_ids), len(columns)), dtype=np.int64)
        for i, run_id in enumerate(run_ids):
            for level, value in per_run[run_id]:
                totals[i, column_of[level]] += value
                counts[i, column_of[level]] += 1
        return ScoreTable(totals / counts, run_ids, columns, "level_seed", counts)

    lengths = {run_id: len(per_run[run_id]) for run_id in run_ids}
    if len(set(lengths.values())) != 1:
        raise ValueError(
            "runs played different levels and different numbers of episodes, so their scores "
            f"cannot be arranged in a runs x tasks matrix; episodes per run: {lengths}"
        )
    num_episodes = lengths[run_ids[0]]
    matrix = np.array([[value for _, value in per_run[run_id]] for run_id in run_ids])
    return ScoreTable(
        matrix,
        run_ids,
        tuple(range(num_episodes)),
        "episode",
        np.ones(matrix.shape, dtype=np.int64),
    )


def score_matrix(
    records: Iterable[Mapping[str, Any]],
    score: ScoreName | str = "return",
    by: str = "level_seed",
) -> np.ndarray:
    """The ``(num_runs, num_tasks)`` matrix of :func:`score_table` (see there)."""
    return score_table(records, score=score, by=by).matrix


def normalize(returns: Any, r_min: float, r_max: float) -> np.ndarray:
    """Min-max normalize returns: ``(R - r_min) / (r_max - r_min)`` (Procgen's convention).

    Args:
        returns: A number or array of returns.
        r_min: Return of a trivial policy (maps to 0).
        r_max: Maximal return (maps to 1).

    Returns:
        A float64 array of the same shape (values are not clipped).

    Raises:
        ValueError: If ``r_max <= r_min`` or a bound is not finite.
    """
    if not (math.isfinite(r_min) and math.isfinite(r_max)) or r_max <= r_min:
        raise ValueError(
            f"r_max must be finite and greater than r_min, got r_min={r_min}, r_max={r_max}"
        )
    return (np.asarray(returns, dtype=np.float64) - r_min) / (r_max - r_min)


def _check_matrix(scores: Any, name: str) -> np.ndarray:
    matrix = np.asarray(scores, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] < 1 or matrix.shape[1] < 1:
        raise ValueError(
            f"{name} must be a non-empty (num_runs, num_tasks) matrix, got shape {matrix.shape}"
        )
    if not np.all(np.isfinite(matrix)):
        raise ValueError(
            f"{name} must hold finite scores, got {int(np.sum(~np.isfinite(matrix)))}"
            " non-finite values"
        )
    return matrix


def _check_bootstrap_args(reps: int, confidence: float, seed: int) -> None:
    checks.seed("seed", seed)
    checks.positive_int("reps", reps)
    checks.fraction("confidence", confidence, open_ends=True)


@contextlib.contextmanager
def _seeded_global_rng(seed: int) -> Iterator[None]:
    """Seed NumPy's global RNG (rliable samples from it) and restore it afterwards."""
    with _GLOBAL_RNG_LOCK:
        saved = np.random.get_state()
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(saved)


def aggregate(
    scores: Any,
    metrics: Sequence[str] = ("iqm", "mean", "optimality_gap"),
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    gamma: float = 1.0,
) -> dict[str, Interval]:
    """Aggregate a score matrix with percentile bootstrap confidence intervals.

    Args:
        scores: ``(num_runs, num_tasks)`` matrix (runs = training seeds, tasks = levels).
        metrics: Names from :data:`AGGREGATES` (``iqm``, ``mean``, ``median``,
            ``optimality_gap``).
        reps: Bootstrap replications.
        confidence: Interval coverage.
        seed: Bootstrap seed; the same seed gives identical intervals.
        gamma: Threshold of the optimality gap (1.0 for normalized scores).

    Returns:
        ``{metric: Interval}``. ``Interval.method`` says what was resampled: runs within each
        level, or levels when there is a single run.

    Raises:
        ValueError: On an unknown metric, a bad matrix or bad bootstrap arguments.
    """
    matrix = _check_matrix(scores, "scores")
    _check_bootstrap_args(reps, confidence, seed)
    unknown = [name for name in metrics if name not in AGGREGATES]
    if unknown or not metrics:
        raise ValueError(f"metrics must be names from {sorted(AGGREGATES)}, got {list(metrics)}")
    functions = [_aggregate_function(name, gamma) for name in metrics]
    num_runs, num_tasks = matrix.shape
    points = [function(matrix) for function in functions]
    if num_runs == 1 and num_tasks == 1:
        return {
            name: Interval(point, point, point, METHOD_NONE)
            for name, point in zip(metrics, points, strict=True)
        }
    task_bootstrap = num_runs == 1
    with _seeded_global_rng(seed):
        _, intervals = rly_library.get_interval_estimates(
            {"scores": matrix},
            lambda x: np.array([function(x) for function in functions]),
            task_bootstrap=task_bootstrap,
            reps=reps,
            confidence_interval_size=confidence,
        )
    bounds = np.asarray(intervals["scores"], dtype=np.float64).reshape(2, len(functions))
    method = METHOD_TASKS if task_bootstrap else METHOD_STRATIFIED
    return {
        name: Interval(points[k], float(bounds[0, k]), float(bounds[1, k]), method)
        for k, name in enumerate(metrics)
    }


def _aggregate_function(name: str, gamma: float) -> Callable[[np.ndarray], float]:
    if name == "optimality_gap":
        return lambda x: float(rly_metrics.aggregate_optimality_gap(x, gamma))
    return AGGREGATES[name]


def _percentile_interval(
    point: float, samples: np.ndarray, confidence: float, method: str
) -> Interval:
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return Interval(point, float(low), float(high), method)


def generalization_gap(
    train_scores: Any,
    test_scores: Any,
    reps: int = 2000,
    seed: int = 0,
    metric: str = "iqm",
    confidence: float = 0.95,
    paired: bool | None = None,
) -> Interval:
    """Generalization gap, ``metric(train) - metric(test)``, with a bootstrap interval.

    Each replication resamples runs (rows) with replacement and, independently within each
    part, levels (columns) with replacement, then recomputes the difference. When the runs pair
    up (row ``i`` of both matrices is the same training seed), the same resampled runs are used
    for train and test, which keeps the per-seed correlation between the two scores; otherwise
    runs are resampled independently per part. Resampling levels too means the interval also
    covers which levels happened to be evaluated, and keeps it informative with one run.

    Args:
        train_scores: ``(num_runs, num_train_levels)`` scores on training levels.
        test_scores: ``(num_runs, num_test_levels)`` scores on held-out levels.
        reps: Bootstrap replications.
        seed: Bootstrap seed; the same seed gives the identical interval.
        metric: Aggregate from :data:`AGGREGATES` (IQM by default).
        confidence: Interval coverage.
        paired: Whether rows pair up across the two matrices. ``None``: paired when both have
            the same number of runs (:func:`score_table` sorts runs by ``run_id``, so tables of
            the same runs line up).

    Returns:
        The gap as an :class:`Interval` (positive: better on training levels).

    Raises:
        ValueError: On bad matrices, an unknown metric, or ``paired=True`` with different run
            counts.
    """
    train = _check_matrix(train_scores, "train_scores")
    test = _check_matrix(test_scores, "test_scores")
    _check_bootstrap_args(reps, confidence, seed)
    if metric not in AGGREGATES:
        raise ValueError(f"metric must be one of {sorted(AGGREGATES)}, got {metric!r}")
    same_runs = train.shape[0] == test.shape[0]
    if paired is None:
        paired = same_runs
    elif paired and not same_runs:
        raise ValueError(
            "paired=True needs the same number of runs in train_scores and test_scores, got "
            f"{train.shape[0]} and {test.shape[0]}"
        )
    function = AGGREGATES[metric]
    point = function(train) - function(test)
    rng = np.random.default_rng(seed)
    samples = np.empty(reps)
    for rep in range(reps):
        train_runs = rng.integers(train.shape[0], size=train.shape[0])
        test_runs = train_runs if paired else rng.integers(test.shape[0], size=test.shape[0])
        train_levels = rng.integers(train.shape[1], size=train.shape[1])
        test_levels = rng.integers(test.shape[1], size=test.shape[1])
        samples[rep] = function(train[np.ix_(train_runs, train_levels)]) - function(
            test[np.ix_(test_runs, test_levels)]
        )
    return _percentile_interval(
        point, samples, confidence, METHOD_GAP_PAIRED if paired else METHOD_GAP_INDEPENDENT
    )


def _improvement_probability(scores_x: np.ndarray, scores_y: np.ndarray) -> float:
    """P(X > Y) + P(X = Y) / 2 per level, averaged over levels.

    The same quantity as ``rliable.metrics.probability_of_improvement`` (the Mann-Whitney U
    statistic over ``num_runs_x * num_runs_y``), computed for all levels at once.
    """
    greater = np.mean(scores_x[:, None, :] > scores_y[None, :, :], axis=(0, 1))
    ties = np.mean(scores_x[:, None, :] == scores_y[None, :, :], axis=(0, 1))
    return float(np.mean(greater + 0.5 * ties))


def probability_of_improvement(
    scores_x: Any,
    scores_y: Any,
    reps: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Interval:
    """Probability that agent X beats agent Y on a level, averaged over levels (rliable).

    Both matrices must have the same levels as columns, in the same order; their run counts may
    differ. The interval comes from rliable's stratified bootstrap that resamples each agent's
    runs independently within each level. With a single run on both sides that would have zero
    width, so levels are resampled instead (jointly for X and Y, as they pair up).

    Args:
        scores_x: ``(num_runs_x, num_tasks)`` scores of agent X.
        scores_y: ``(num_runs_y, num_tasks)`` scores of agent Y.
        reps: Bootstrap replications.
        seed: Bootstrap seed.
        confidence: Interval coverage.

    Returns:
        ``P(X > Y)`` as an :class:`Interval` (0.5: no difference).

    Raises:
        ValueError: On bad matrices or different task counts.
    """
    x = _check_matrix(scores_x, "scores_x")
    y = _check_matrix(scores_y, "scores_y")
    _check_bootstrap_args(reps, confidence, seed)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            "scores_x and scores_y must have the same tasks (columns), got "
            f"{x.shape[1]} and {y.shape[1]}"
        )
    point = float(rly_metrics.probability_of_improvement(x, y))
    if x.shape[0] == 1 and y.shape[0] == 1:
        if x.shape[1] == 1:
            return Interval(point, point, point, METHOD_NONE)
        rng = np.random.default_rng(seed)
        samples = np.empty(reps)
        for rep in range(reps):
            levels = rng.integers(x.shape[1], size=x.shape[1])
            samples[rep] = _improvement_probability(x[:, levels], y[:, levels])
        return _percentile_interval(point, samples, confidence, METHOD_TASKS)
    with _seeded_global_rng(seed):
        _, intervals = rly_library.get_interval_estimates(
            {"poi": [x, y]},
            lambda a, b: np.array([_improvement_probability(a, b)]),
            reps=reps,
            confidence_interval_size=confidence,
        )
    low, high = (float(v) for v in np.asarray(intervals["poi"], dtype=np.float64).reshape(2))
    return Interval(point, low, high, METHOD_POI)
