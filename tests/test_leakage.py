"""The level leakage check: held-out levels that duplicate training levels.

A reported duplicate must be a true copy: every pair the check reports is replayed
with a shared random action sequence (not the check's own probe) and must show the
same observation, reward and episode end at every step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import gengap.envs as ge
from gengap.core.errors import InputError
from gengap.envs.leakage import (
    PROBE_STEPS,
    LeakageReport,
    check_leakage,
    format_report,
    probe_actions,
)
from gengap.envs.splits import LevelSet, Split
from gengap.scripts.cli import main

REPLAY_STEPS = 200
# Procgen first-frame collisions (200 training vs the first 1,000 test levels, easy):
# maze's are true copies (openai/procgen#100); coinrun's and ninja's show the same start
# area but differ a few steps in (ninja's after up to 62 probe steps).
MAZE_COPIES = (
    (10042, 117), (10088, 196), (10153, 103), (10272, 59), (10410, 103), (10449, 127),
    (10493, 68), (10525, 139), (10577, 133), (10602, 103), (10662, 197), (10681, 33),
    (10755, 72), (10769, 85), (10773, 103), (10780, 123), (10793, 43), (10828, 17),
    (10893, 159), (10924, 70), (10963, 134),
)  # fmt: skip
COINRUN_LOOKALIKES = (
    (10053, 2), (10078, 29), (10178, 167), (10295, 161), (10365, 68),
    (10369, 151), (10397, 64), (10473, 161), (10744, 163), (10794, 143),
)  # fmt: skip

# Empty-Random-6x6 has one room and a fixed goal; only the agent's start cell and
# direction vary, so there are about 60 distinct levels and seeds must collide.
FEW_LAYOUTS_ID = "gengap/minigrid-empty-random-6x6-v0"
SMALL_SPLIT = Split.levels_split(50, test_start=1_000, num_test_levels=100, name="small")


def _replay(env: Any, level: int, actions: list[Any]) -> list[tuple[Any, ...]]:
    """Observation, reward and episode end at every step of ``actions`` on ``level``
    (an ended episode restarts the same level)."""
    steps: list[tuple[Any, ...]] = [(env.reset(options={"level": level})[0],)]
    for action in actions:
        observation, reward, terminated, truncated, _ = env.step(action)
        steps.append((observation, reward, terminated, truncated))
        if terminated or truncated:
            steps.append((env.reset(options={"level": level})[0],))
    return steps


def _first_difference(report: LeakageReport, test_seed: int, train_seed: int) -> int | None:
    """The first step at which the pair differs under a shared random action sequence
    (not the check's probe), or None if it never does in :data:`REPLAY_STEPS` steps."""
    env_kwargs = {"split": report.split, **report.env_options}
    held_out = ge.make(report.env_id, part=report.part, **env_kwargs)
    train = ge.make(report.env_id, part="train", **env_kwargs)
    space = held_out.action_space
    space.seed(test_seed)
    actions = [space.sample() for _ in range(REPLAY_STEPS)]
    for step, (a, b) in enumerate(
        zip(_replay(held_out, test_seed, actions), _replay(train, train_seed, actions), strict=True)
    ):
        if len(a) != len(b) or not all(_equal(x, y) for x, y in zip(a, b, strict=True)):
            return step
    return None


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[key], b[key]) for key in a)
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def _assert_copies(report: LeakageReport) -> None:
    for test_seed, train_seed in report.duplicates:
        step = _first_difference(report, test_seed, train_seed)
        assert step is None, (
            f"false alarm: {report.part} {test_seed} != train {train_seed} at step {step}"
        )


def _pairs_split(
    pairs: tuple[tuple[int, int], ...], name: str, train: LevelSet | None = None
) -> Split:
    return Split(
        train=train or LevelSet.of(sorted({t for _, t in pairs})),
        test=LevelSet.of(sorted({s for s, _ in pairs})),
        name=name,
    )


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


def test_doorkey_copies_replay_identically() -> None:
    report = check_leakage("gengap/minigrid-doorkey-5x5-v0", SMALL_SPLIT, num_test_levels=20)
    assert report.probe_steps == 0  # the full initial state decides (see FAMILY_PROBE_STEPS)
    assert len(report.duplicates) >= 10  # most held-out DoorKey-5x5 levels are copies
    _assert_copies(report)
    probed = check_leakage(
        "gengap/minigrid-doorkey-5x5-v0", SMALL_SPLIT, num_test_levels=20, probe_steps=50
    )
    assert probed.duplicates == report.duplicates


@pytest.mark.parametrize("env_id", ["gengap/babyai-gotolocal-v0", "gengap/shapes-objectgoal-v0"])
def test_other_families_report_only_copies(env_id: str) -> None:
    split = Split.levels_split(30, test_start=5_000, num_test_levels=30, name="tiny")
    report = check_leakage(env_id, split, num_test_levels=30)
    assert (report.train_levels_checked, report.distinct_train_levels) == (30, 30)
    assert report.duplicates == ()


def test_procgen_maze_copies_are_found_and_replay_identically() -> None:
    # The 21 known copies among other held-out levels, against their training levels
    # among others.
    split = Split(
        train=LevelSet.of(sorted({t for _, t in MAZE_COPIES} | set(range(10)))),
        test=LevelSet.of(sorted({s for s, _ in MAZE_COPIES} | set(range(10_000, 10_010)))),
        name="maze-copies",
    )
    report = check_leakage("gengap/procgen-maze-v0", split, num_test_levels=len(split.test))
    assert report.probe_steps == PROBE_STEPS
    assert report.duplicates == tuple(sorted(MAZE_COPIES))
    _assert_copies(report)
    # Levels differ by option: hard mode builds other mazes from the same seeds.
    hard = check_leakage(
        "gengap/procgen-maze-v0", split, num_test_levels=len(split.test), distribution_mode="hard"
    )
    assert hard.env_options == {"distribution_mode": "hard"}
    assert len(hard.duplicates) < len(report.duplicates)
    _assert_copies(hard)


@pytest.mark.parametrize(
    ("game", "pairs"),
    [
        ("coinrun", COINRUN_LOOKALIKES),
        # ninja's first-frame collisions that took the longest probes to tell apart
        ("ninja", ((10627, 195), (10032, 184), (10427, 195), (10309, 156), (10665, 6))),
    ],
)
def test_procgen_lookalike_levels_are_not_reported(
    game: str, pairs: tuple[tuple[int, int], ...]
) -> None:
    env_id = f"gengap/procgen-{game}-v0"
    split = _pairs_split(pairs, f"{game}-lookalikes")
    # The old fingerprint (first frame alone) calls every pair a copy...
    first_frame = check_leakage(env_id, split, num_test_levels=len(pairs), probe_steps=0)
    assert set(first_frame.duplicates) >= set(pairs)
    # ...and the replay shows each is a false alarm, so the replay check can fail.
    assert all(_first_difference(first_frame, s, t) is not None for s, t in pairs)
    report = check_leakage(env_id, split, num_test_levels=len(pairs))
    assert report.duplicates == ()
    assert report.distinct_train_levels == len(split.train)


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
    _assert_copies(report)


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
    with pytest.raises(InputError, match=r"probe_steps must be an integer >= 0, got -1"):
        check_leakage(FEW_LAYOUTS_ID, SMALL_SPLIT, probe_steps=-1)
    with pytest.raises(InputError, match=r"env options may not set num_envs"):
        check_leakage(FEW_LAYOUTS_ID, SMALL_SPLIT, num_envs=2)
    with pytest.raises(InputError, match=r"unknown obs_mode 'x'"):
        check_leakage(FEW_LAYOUTS_ID, SMALL_SPLIT, obs_mode="x")


def test_probe_actions_are_fixed_and_held() -> None:
    space = ge.make("gengap/procgen-coinrun-v0").action_space
    actions = probe_actions(space, 20)
    assert actions == probe_actions(space, 20) and len(actions) == 20
    assert actions[:8] == [actions[0]] * 8 and len(set(actions)) > 1


def test_report_is_frozen() -> None:
    report = LeakageReport("x", SMALL_SPLIT, "test", 1, 2, 1, ((1_000, 0),), 0)
    assert report.fraction == 0.5 and report.duplicated_levels == (1_000,)
    with pytest.raises(AttributeError):
        report.part = "validation"  # type: ignore[misc]


@pytest.mark.skipif(
    "gengap/procgen-maze-v0" not in ge.registered_ids(), reason="Procgen maze not registered"
)
def test_procgen_maze_repeats_layouts() -> None:
    report = check_leakage("gengap/procgen-maze-v0", num_test_levels=300)
    assert report.train_levels_checked == 200 and report.test_levels_checked == 300
    assert report.duplicates == tuple(p for p in sorted(MAZE_COPIES) if p[0] < 10_300)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["envs", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--check-leakage", ""], "--check-leakage needs an env id (see `gengap envs`), got ''"),
        (["--check-leakage"], "argument --check-leakage: expected one argument"),
        (["--check-leakage", FEW_LAYOUTS_ID, "--part", "train"], "unknown part 'train'"),
        (["--check-leakage", FEW_LAYOUTS_ID, "--env-option", "obs_mode"], "KEY=VALUE"),
        (
            ["--check-leakage", "gengap/procgen-coinrun-v0", "--env-option", "part=train"],
            "--env-option: env options may not set part",
        ),
        (
            ["--check-leakage", FEW_LAYOUTS_ID, "--env-option", "a=1", "--env-option", "a=2"],
            "--env-option sets a more than once",
        ),
        (
            ["--check-leakage", "gengap/procgen-coinrun-v0", "--env-option", "distribution_mode=x"],
            "unknown distribution_mode 'x' (expected one of: easy, hard)",
        ),
        (["--family", ""], "--family: unknown family ''"),
        (
            ["--part", "validation", "--env-option", "a=1"],
            "--part, --env-option only apply with --check-leakage ENV_ID",
        ),
        (
            ["--check-leakage", FEW_LAYOUTS_ID, "--family", "minigrid"],
            "--family lists envs; it does not apply with --check-leakage",
        ),
    ],
)
def test_cli_bad_input_is_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = _cli(capsys, *argv)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1


def test_cli_checks_the_part_and_options_asked_for(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(
        capsys,
        "--check-leakage",
        FEW_LAYOUTS_ID,
        "--test-levels",
        "30",
        "--part",
        "validation",
        "--env-option",
        "obs_mode=full",
    )
    report = check_leakage(FEW_LAYOUTS_ID, part="validation", num_test_levels=30, obs_mode="full")
    assert code == 0 and out.strip() == format_report(report)
    assert "of the first 30 validation levels" in out and report.duplicates
    code, out, _ = _cli(
        capsys,
        "--check-leakage",
        "gengap/procgen-coinrun-v0",
        "--train-levels",
        "5",
        "--test-levels",
        "5",
        "--env-option",
        "distribution_mode=hard",
        "--probe-steps",
        "7",
    )
    assert code == 0 and "same 7-step probe rollout" in out and "of 5 training levels" in out
    assert out.startswith("gengap/procgen-coinrun-v0, distribution_mode='hard', split")
