"""The level leakage check: held-out levels that duplicate training levels."""

from __future__ import annotations

import numpy as np
import pytest

import gengap.envs as ge
from gengap.envs.leakage import LeakageReport, check_leakage, format_report
from gengap.envs.splits import LevelSet, Split

# Empty-Random-6x6 has one room and a fixed goal; only the agent's start cell and
# direction vary, so there are about 60 distinct levels and seeds must collide.
FEW_LAYOUTS_ID = "gengap/minigrid-empty-random-6x6-v0"
SMALL_SPLIT = Split.levels_split(50, test_start=1_000, num_test_levels=100, name="small")


def _initial_full_grid(env_id: str, split: Split, part: str, level: int) -> np.ndarray:
    env = ge.make(env_id, split=split, part=part, obs_mode="full")
    return env.reset(options={"level": level})[0]


def test_duplicates_are_found_and_excluded() -> None:
    report = check_leakage(FEW_LAYOUTS_ID, SMALL_SPLIT, num_test_levels=100)
    assert (report.train_levels_checked, report.test_levels_checked) == (50, 100)
    assert report.distinct_train_levels < 50
    assert 0 < len(report.duplicates) < 100
    assert report.fraction == len(report.duplicates) / 100
    for test_seed, train_seed in report.duplicates[:10]:
        assert 1_000 <= test_seed < 1_100 and 0 <= train_seed < 50
        same = _initial_full_grid(FEW_LAYOUTS_ID, SMALL_SPLIT, "test", test_seed)
        assert np.array_equal(
            same, _initial_full_grid(FEW_LAYOUTS_ID, SMALL_SPLIT, "train", train_seed)
        )
    clean = report.excluded_split()
    assert isinstance(clean, Split) and clean.train == SMALL_SPLIT.train
    assert all(seed not in clean.test for seed in report.duplicated_levels)
    assert len(clean.test) == 100 - len(report.duplicates)
    recheck = check_leakage(FEW_LAYOUTS_ID, clean, num_test_levels=100)
    assert recheck.duplicates == () and recheck.test_levels_checked == len(clean.test)
    assert Split.from_json(clean.to_json()) == clean


def test_distinct_levels_give_no_duplicates() -> None:
    report = check_leakage("gengap/minigrid-fourrooms-v0", SMALL_SPLIT, num_test_levels=60)
    assert report.distinct_train_levels == 50
    assert report.duplicates == () and report.fraction == 0.0
    assert report.excluded_split() is SMALL_SPLIT
    assert format_report(report).endswith("No leakage found.")


def test_validation_part_and_report_text() -> None:
    split = Split.levels_split(20, num_validation_levels=30, test_start=500, name="val")
    report = check_leakage(FEW_LAYOUTS_ID, split, part="validation", num_test_levels=30)
    assert report.part == "validation" and report.test_levels_checked == 30
    assert all(20 <= test_seed < 50 for test_seed, _ in report.duplicates)
    assert report.duplicates, "20 training levels of ~60 layouts must cover some of 30 more"
    excluded = report.excluded_split()
    assert excluded.test == split.test
    assert all(seed not in excluded.levels("validation") for seed in report.duplicated_levels)
    text = format_report(report, max_examples=2)
    count = len(report.duplicates)
    assert f"{count} of the first 30 validation levels ({count / 30:.1%})" in text
    test_seed, train_seed = report.duplicates[0]
    assert f"validation {test_seed} = train {train_seed}" in text and "\n" not in text


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"part must be 'test' or 'validation', got 'train'"):
        check_leakage(FEW_LAYOUTS_ID, SMALL_SPLIT, part="train")
    with pytest.raises(ValueError, match=r"num_test_levels must be a positive integer, got 0"):
        check_leakage(FEW_LAYOUTS_ID, SMALL_SPLIT, num_test_levels=0)
    unbounded_train = Split(train=LevelSet(10, None), test=LevelSet.of([5]), name="open")
    with pytest.raises(ValueError, match=r"num_train_levels must be given: .* 'open'"):
        check_leakage(FEW_LAYOUTS_ID, unbounded_train)
    report = check_leakage(FEW_LAYOUTS_ID, unbounded_train, num_train_levels=3)
    assert report.train_levels_checked == 3 and report.test_levels_checked == 1
    with pytest.raises(ValueError, match=r"unknown env id 'gengap/minigrid-fourroom-v0'"):
        check_leakage("gengap/minigrid-fourroom-v0")


def test_report_is_frozen() -> None:
    report = LeakageReport("x", SMALL_SPLIT, "test", 1, 2, 1, ((1_000, 0),))
    assert report.fraction == 0.5 and report.duplicated_levels == (1_000,)
    with pytest.raises(AttributeError):
        report.part = "validation"  # type: ignore[misc]


@pytest.mark.skipif(
    "gengap/procgen-maze-v0" not in ge.registered_ids(), reason="Procgen maze not registered"
)
def test_procgen_maze_repeats_layouts() -> None:
    report = check_leakage("gengap/procgen-maze-v0", num_test_levels=300)
    assert report.train_levels_checked == 200 and report.test_levels_checked == 300
    assert report.duplicates, "maze repeats small layouts across seeds (openai/procgen#100)"
    assert report.fraction < 0.5
