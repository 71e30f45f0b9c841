"""Reports from a real results store: Markdown with the gap metrics computes, valid PNG plots."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from gengap.eval import metrics
from gengap.eval.report import write_report
from gengap.eval.store import ResultsStore

REPS = 200
TRAIN_LEVELS = list(range(10))
TEST_LEVELS = list(range(1000, 1030))


def _build_store(path: Path) -> tuple[ResultsStore, list[str]]:
    store = ResultsStore(path)
    rng = np.random.default_rng(0)
    run_ids = []
    for seed in (0, 1):
        run_id = f"ppo-doorkey-s{seed}"
        run_ids.append(run_id)
        store.add_run(
            run_id,
            kind="online",
            env_id="gengap/minigrid-doorkey-5x5-v0",
            algo="ppo",
            seed=seed,
            config={"label": "10-levels", "total_timesteps": 4000},
            split={"name": "doorkey-10", "train": {"start": 0, "stop": 10}},
            versions={"python": "3.11.7", "numpy": np.__version__},
            git_rev="0" * 40,
            run_dir=str(path.parent / run_id),
        )
        for part, levels, success_rate in (
            ("train", TRAIN_LEVELS, 0.9),
            ("test", TEST_LEVELS, 0.4),
        ):
            records = []
            for level in levels:
                for _ in range(2):
                    success = bool(rng.random() < success_rate)
                    records.append(
                        {
                            "level_seed": level,
                            "return": float(success) * 0.9,
                            "length": 20,
                            "success": success,
                        }
                    )
            store.add_episodes(run_id, records, part=part, step=4000, tag="final")
        points = [
            {
                "step": step,
                "part": part,
                "metric": metric,
                "value": value * (1.0 if part == "train" else 0.5),
            }
            for step, value in ((1000, 0.2), (2000, 0.5), (4000, 0.8 + 0.05 * seed))
            for part in ("train", "test")
            for metric in ("return", "success")
        ]
        store.add_curve_points(run_id, points)
        store.set_status(run_id, "done")
    return store, run_ids


def test_report_writes_markdown_with_the_gap_and_valid_pngs(tmp_path: Path) -> None:
    store, run_ids = _build_store(tmp_path / "gengap.sqlite")
    report = write_report(
        store, run_ids, tmp_path / "report", score="success", reps=REPS, seed=0, max_levels=15
    )
    assert report == tmp_path / "report" / "report.md"
    text = report.read_text()

    episodes = store.episodes()
    train = metrics.score_matrix([e for e in episodes if e["part"] == "train"], score="success")
    test = metrics.score_matrix([e for e in episodes if e["part"] == "test"], score="success")
    gap = metrics.generalization_gap(train, test, reps=REPS, seed=0)
    assert gap.point > 0.3  # 0.9 vs 0.4 success rate
    assert f"IQM **{gap.format()}**" in text
    mean_gap = metrics.generalization_gap(train, test, reps=REPS, seed=0, metric="mean")
    assert mean_gap.format() in text
    test_iqm = metrics.aggregate(test, metrics=("iqm",), reps=REPS, seed=0)["iqm"]
    assert test_iqm.format() in text

    assert "ppo on gengap/minigrid-doorkey-5x5-v0 [10-levels]" in text
    # The per-level table lists every held-out level (30 <= 2 * max_levels), no training level.
    table_levels = {int(m) for m in re.findall(r"^\| (\d+) \| \d\.\d{3} \|", text, re.M)}
    assert table_levels == set(TEST_LEVELS)
    assert "0" * 40 in text and '"total_timesteps": 4000' in text  # provenance

    pngs = sorted((tmp_path / "report").glob("*.png"))
    assert [p.name for p in pngs] == [
        "curves-0-ppo-on-gengap-minigrid-doorkey-5x5-v0-10-levels.png",
        "scores.png",
    ]
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = matplotlib.image.imread(png)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
        assert f"]({png.name})" in text
    assert (tmp_path / "report" / "summary.json").is_file()


def test_report_trims_long_level_tables_and_validates(tmp_path: Path) -> None:
    store, run_ids = _build_store(tmp_path / "gengap.sqlite")
    report = write_report(
        store, run_ids[:1], tmp_path / "one", score="return", reps=REPS, max_levels=3
    )
    text = report.read_text()
    assert "the 3 lowest and 3 highest scoring of 30" in text
    assert metrics.METHOD_TASKS in text  # one run: levels are resampled
    with pytest.raises(ValueError, match="score must be one of"):
        write_report(store, run_ids, tmp_path / "bad", score="reward")
    with pytest.raises(ValueError, match="run_ids must be a non-empty list"):
        write_report(store, [], tmp_path / "bad")
    with pytest.raises(KeyError, match="unknown run_id"):
        write_report(store, ["nope"], tmp_path / "bad")


def test_report_compares_groups_by_probability_of_improvement(tmp_path: Path) -> None:
    store, run_ids = _build_store(tmp_path / "gengap.sqlite")
    # a second configuration on the same held-out levels that always succeeds
    better = "ppo-doorkey-1000-s0"
    store.add_run(
        better,
        kind="online",
        env_id="gengap/minigrid-doorkey-5x5-v0",
        algo="ppo",
        seed=0,
        config={"label": "1000-levels"},
    )
    store.add_episodes(
        better,
        [{"level_seed": lv, "return": 0.9, "length": 20, "success": True} for lv in TEST_LEVELS],
        part="test",
        step=4000,
        tag="final",
    )
    text = write_report(
        store, [*run_ids, better], tmp_path / "report", score="success", reps=REPS, tag="final"
    ).read_text()
    assert "## Probability of improvement on held-out levels" in text
    worse_table = metrics.score_table(
        [e for r in run_ids for e in store.episodes(run_id=r, part="test")], score="success"
    )
    better_table = metrics.score_table(store.episodes(run_id=better), score="success")
    expected = metrics.probability_of_improvement(
        worse_table.matrix, better_table.matrix, reps=REPS, seed=0
    )
    assert expected.point < 0.5
    row = next(line for line in text.splitlines() if "[1000-levels]" in line and "| 30 |" in line)
    assert expected.format() in row
