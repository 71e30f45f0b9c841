"""Splits: construction, disjointness errors, sampling and round trips."""

from __future__ import annotations

import numpy as np
import pytest

from gengap.envs import LevelSet, Split
from gengap.envs.splits import MAX_LEVEL_SEED


def test_level_range_membership_and_length():
    levels = LevelSet.range(10, 5)
    assert len(levels) == 5
    assert [s for s in range(20) if s in levels] == [10, 11, 12, 13, 14]
    assert levels.first(3) == [10, 11, 12]
    assert levels.first(100) == [10, 11, 12, 13, 14]


def test_unbounded_range_reaches_max_seed():
    levels = LevelSet.range(10_000, None)
    assert not levels.bounded
    assert len(levels) == MAX_LEVEL_SEED - 10_000
    assert MAX_LEVEL_SEED - 1 in levels and MAX_LEVEL_SEED not in levels


def test_exclusions_are_honoured_everywhere():
    levels = LevelSet.range(0, 10).without([2, 3])
    assert len(levels) == 8
    assert 2 not in levels and 4 in levels
    assert levels.first(4) == [0, 1, 4, 5]
    rng = np.random.default_rng(0)
    drawn = {levels.sample(rng) for _ in range(500)}
    assert drawn == {0, 1, 4, 5, 6, 7, 8, 9}
    assert not levels.is_contiguous


def test_explicit_seeds():
    levels = LevelSet.of([5, 1, 9])
    assert len(levels) == 3 and 9 in levels and 2 not in levels
    assert levels.first(2) == [5, 1]
    with pytest.raises(ValueError, match="must not repeat"):
        LevelSet.of([1, 1])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"start": -1, "stop": 5}, ValueError, "start must be a non-negative integer, got -1"),
        ({"start": 5, "stop": 5}, ValueError, "stop must be greater than start"),
        ({"start": 1.5, "stop": 5}, TypeError, "start must be a non-negative integer, got 1.5"),
        ({"start": 0, "stop": MAX_LEVEL_SEED + 1}, ValueError, "stop must be <="),
    ],
)
def test_level_set_rejects_bad_bounds(kwargs, error, message):
    with pytest.raises(error, match=message):
        LevelSet(**kwargs)


def test_count_must_be_positive():
    with pytest.raises(ValueError, match="count must be a positive integer, got -3"):
        LevelSet.range(0, -3)


def test_overlapping_parts_are_rejected_with_the_shared_levels():
    with pytest.raises(
        ValueError,
        match=r"train and test levels overlap in 5 level seed\(s\), e\.g\. \[5, 6, 7, 8, 9\]",
    ):
        Split(train=LevelSet.range(0, 10), test=LevelSet.range(5, 100))


def test_overlap_with_unbounded_and_explicit_sets():
    with pytest.raises(ValueError, match="validation and test levels overlap in 1"):
        Split(
            train=LevelSet.range(0, 10),
            validation=LevelSet.of([12, 500]),
            test=LevelSet.range(100, None),
        )


def test_excluding_the_shared_levels_makes_a_valid_split():
    split = Split(train=LevelSet.range(0, 10), test=LevelSet.range(8, 10).without([8, 9]))
    assert split.test.first(2) == [10, 11]


def test_levels_split_protocol():
    split = Split.levels_split(
        200, num_validation_levels=50, test_start=10_000, num_test_levels=1000
    )
    assert split.train.first(1) == [0] and len(split.train) == 200
    assert split.levels("validation").first(1) == [200] and len(split.levels("validation")) == 50
    assert split.test.first(1) == [10_000] and len(split.test) == 1000
    assert split.parts == ("train", "validation", "test")


def test_unknown_part_names_close_match():
    split = Split.levels_split(10)
    with pytest.raises(ValueError, match="unknown split part 'tset'; did you mean 'test'"):
        split.levels("tset")
    with pytest.raises(ValueError, match="has no validation part"):
        split.levels("validation")


@pytest.mark.parametrize("fmt", ["json", "toml"])
def test_round_trip(tmp_path, fmt):
    split = Split(
        train=LevelSet.range(0, 200),
        validation=LevelSet.of([300, 301]),
        test=LevelSet.range(10_000, None).without([10_003]),
        name="rt",
    )
    path = tmp_path / f"split.{fmt}"
    split.save(path)
    assert Split.load(path) == split
    assert Split.from_dict(split.to_dict()) == split


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['tain'\]"):
        Split.from_dict(
            {"tain": {"start": 0}, "train": {"start": 0, "stop": 5}, "test": {"start": 5}}
        )
    with pytest.raises(ValueError, match="a split needs 'test'; got keys"):
        Split.from_dict({"train": {"start": 0, "stop": 5}})


def test_split_is_immutable():
    split = Split.levels_split(10)
    with pytest.raises(AttributeError):
        split.train = LevelSet.range(0, 3)  # type: ignore[misc]
