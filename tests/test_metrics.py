"""Metrics against hand-computed values; bootstrap intervals are deterministic and sensible."""

from __future__ import annotations

import numpy as np
import pytest
from rliable import metrics as rly_metrics

from gengap.eval import metrics

REPS = 200


def test_iqm_mean_optimality_gap_match_hand_computed_values() -> None:
    scores = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 100.0]])
    # IQM drops the lowest and highest quarter of the 8 scores: mean(3, 4, 5, 6) = 4.5.
    # Mean: (1 + 2 + ... + 7 + 100) / 8 = 128 / 8 = 16.
    result = metrics.aggregate(scores, reps=REPS)
    assert result["iqm"].point == pytest.approx(4.5)
    assert result["mean"].point == pytest.approx(16.0)
    normalized = np.array([[0.2, 1.5], [0.6, 0.9]])
    # Optimality gap at 1: 1 - mean(min(x, 1)) = 1 - (0.2 + 1 + 0.6 + 0.9) / 4 = 0.325.
    gap = metrics.aggregate(normalized, metrics=("optimality_gap",), reps=REPS)
    assert gap["optimality_gap"].point == pytest.approx(0.325)
    # gamma moves the threshold: 2 - (0.2 + 1.5 + 0.6 + 0.9) / 4 = 1.2.
    gap2 = metrics.aggregate(normalized, metrics=("optimality_gap",), reps=REPS, gamma=2.0)
    assert gap2["optimality_gap"].point == pytest.approx(1.2)
    median = metrics.aggregate(scores, metrics=("median",), reps=REPS)
    # Per-level means 3, 4, 5, 52 -> median 4.5.
    assert median["median"].point == pytest.approx(4.5)


def test_intervals_contain_point_and_repeat_with_the_same_seed() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(5, 30))
    first = metrics.aggregate(scores, reps=REPS, seed=3)
    second = metrics.aggregate(scores, reps=REPS, seed=3)
    other = metrics.aggregate(scores, reps=REPS, seed=4)
    assert first == second
    assert first["iqm"] != other["iqm"]
    for interval in first.values():
        assert interval.low <= interval.point <= interval.high
        assert interval.high > interval.low
        assert interval.method == metrics.METHOD_STRATIFIED


def test_bootstrap_leaves_the_global_numpy_random_state_alone() -> None:
    np.random.seed(123)
    expected = np.random.rand(3)
    np.random.seed(123)
    metrics.aggregate(np.arange(12.0).reshape(3, 4), reps=REPS, seed=9)
    metrics.probability_of_improvement(np.ones((2, 3)), np.zeros((3, 3)), reps=REPS)
    np.testing.assert_array_equal(np.random.rand(3), expected)


def test_stratified_bootstrap_resamples_runs_within_levels_only() -> None:
    # Every run scored the same on each level: resampling runs cannot move the estimate,
    # however different the levels are.
    scores = np.tile(np.array([0.0, 1.0, 5.0, 9.0]), (3, 1))
    result = metrics.aggregate(scores, reps=REPS)
    assert result["mean"].low == result["mean"].high == pytest.approx(3.75)


def test_single_run_bootstraps_over_levels_and_says_so() -> None:
    scores = np.array([[0.0, 1.0, 5.0, 9.0, 2.0, 3.0]])
    result = metrics.aggregate(scores, reps=REPS)
    assert result["mean"].method == metrics.METHOD_TASKS
    assert result["mean"].point == pytest.approx(20.0 / 6.0)
    assert result["mean"].low < result["mean"].point < result["mean"].high
    single = metrics.aggregate(np.array([[0.7]]), reps=REPS)
    assert single["iqm"] == metrics.Interval(0.7, 0.7, 0.7, metrics.METHOD_NONE)


def test_generalization_gap_matches_hand_computed_values() -> None:
    train = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    test = np.array([[0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 2.0, 10.0]])
    # IQM train = mean(3, 4, 5, 6) = 4.5; IQM test = mean(1, 1, 1, 1) = 1 -> gap 3.5.
    iqm_gap = metrics.generalization_gap(train, test, reps=REPS, seed=0)
    assert iqm_gap.point == pytest.approx(3.5)
    assert iqm_gap.method == metrics.METHOD_GAP_PAIRED
    assert iqm_gap.low <= iqm_gap.point <= iqm_gap.high
    # Mean train = 36 / 8 = 4.5; mean test = 16 / 8 = 2 -> gap 2.5.
    mean_gap = metrics.generalization_gap(train, test, reps=REPS, seed=0, metric="mean")
    assert mean_gap.point == pytest.approx(2.5)
    assert metrics.generalization_gap(train, test, reps=REPS, seed=0) == iqm_gap
    unpaired = metrics.generalization_gap(train, test[:1], reps=REPS)
    assert unpaired.method == metrics.METHOD_GAP_INDEPENDENT
    with pytest.raises(ValueError, match="paired=True needs the same number of runs"):
        metrics.generalization_gap(train, test[:1], paired=True)


def test_generalization_gap_interval_covers_level_sampling() -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(loc=1.0, size=(1, 100))
    test = rng.normal(loc=0.0, size=(1, 100))
    gap = metrics.generalization_gap(train, test, reps=REPS, metric="mean")
    # One run: the width comes from the levels; with sd 1 and 100 levels per part the
    # standard error of the difference is ~0.14, so a 95% interval is ~0.55 wide.
    assert 0.3 < gap.high - gap.low < 0.9
    assert gap.low < 1.0 < gap.high


def test_probability_of_improvement() -> None:
    rng = np.random.default_rng(2)
    worse = rng.uniform(0.0, 1.0, size=(4, 10))
    better = worse + 10.0
    clearly = metrics.probability_of_improvement(better, worse, reps=REPS)
    assert clearly.point == pytest.approx(1.0)
    assert clearly.low == pytest.approx(1.0)
    reverse = metrics.probability_of_improvement(worse, better, reps=REPS)
    assert reverse.point == pytest.approx(0.0)
    same = metrics.probability_of_improvement(worse, worse, reps=REPS)
    assert same.point == pytest.approx(0.5)
    assert same.low <= 0.5 <= same.high
    with pytest.raises(ValueError, match="same tasks"):
        metrics.probability_of_improvement(worse, worse[:, :3])


def test_vectorized_improvement_probability_equals_rliable() -> None:
    rng = np.random.default_rng(5)
    x = rng.integers(0, 4, size=(3, 7)).astype(float)  # small integers: many ties
    y = rng.integers(0, 4, size=(5, 7)).astype(float)
    expected = rly_metrics.probability_of_improvement(x, y)
    assert metrics._improvement_probability(x, y) == pytest.approx(expected)
    assert metrics.probability_of_improvement(x, y, reps=REPS).point == pytest.approx(expected)


def test_score_table_averages_episodes_per_level_and_sorts_runs() -> None:
    records = [
        {"run_id": "b", "level_seed": 3, "return": 1.0, "length": 5},
        {"run_id": "a", "level_seed": 3, "return": 2.0, "length": 5},
        {"run_id": "a", "level_seed": 1, "return": 4.0, "length": 5},
        {"run_id": "a", "level_seed": 1, "return": 6.0, "length": 5},
        {"run_id": "b", "level_seed": 1, "episode_return": 0.0, "length": 5},
    ]
    table = metrics.score_table(records)
    assert table.run_ids == ("a", "b")
    assert table.columns == (1, 3)
    assert table.column_kind == "level_seed"
    np.testing.assert_allclose(table.matrix, [[5.0, 2.0], [0.0, 1.0]])
    np.testing.assert_array_equal(table.episodes_per_cell, [[2, 1], [1, 1]])
    np.testing.assert_allclose(metrics.score_matrix(records), table.matrix)


def test_score_table_falls_back_to_episode_columns_when_levels_differ() -> None:
    records = [
        {"run_id": "a", "level_seed": 1, "return": 1.0, "length": 1, "success": True},
        {"run_id": "a", "level_seed": 2, "return": 0.0, "length": 1, "success": False},
        {"run_id": "b", "level_seed": 7, "return": 1.0, "length": 1, "success": False},
        {"run_id": "b", "level_seed": 8, "return": 1.0, "length": 1, "success": True},
    ]
    table = metrics.score_table(records, score="success")
    assert table.column_kind == "episode"
    np.testing.assert_array_equal(table.matrix, [[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="different numbers of episodes"):
        metrics.score_table(records[:3])
    with pytest.raises(ValueError, match="no 'normalized_return' value"):
        metrics.score_table(records, score="normalized_return")
    with pytest.raises(ValueError, match="score must be one of"):
        metrics.score_table(records, score="reward")
    with pytest.raises(ValueError, match="at least one episode"):
        metrics.score_table([])


def test_normalize() -> None:
    # coinrun easy: R_min 5, R_max 10.
    np.testing.assert_allclose(metrics.normalize([5.0, 7.5, 10.0], 5.0, 10.0), [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="r_max must be finite and greater than r_min"):
        metrics.normalize([1.0], 10.0, 5.0)


def test_aggregate_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="non-empty \\(num_runs, num_tasks\\) matrix"):
        metrics.aggregate(np.ones(4))
    with pytest.raises(ValueError, match="finite scores"):
        metrics.aggregate(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="metrics must be names from"):
        metrics.aggregate(np.ones((2, 2)), metrics=("iqr",))
    with pytest.raises(ValueError, match="reps must be a positive int"):
        metrics.aggregate(np.ones((2, 2)), reps=0)
