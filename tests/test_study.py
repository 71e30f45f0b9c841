"""Studies end to end on a tiny budget: two arms, held-out parts side by side, with CIs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gengap.drivers.study import StudyConfig, load_study, run_study
from gengap.eval.store import ResultsStore

ROOT = Path(__file__).resolve().parent.parent
EVALUATIONS = [
    {"name": "iid-test", "part": "test"},
    {"name": "combinatorial", "part": "combinatorial"},
    {"name": "extrapolation", "part": "extrapolation"},
    {"name": "test-5-7-objects", "part": "test", "env_kwargs": {"num_objects": [5, 7]}},
]


def _study(tmp_path: Path, **overrides) -> StudyConfig:
    data = {
        "name": "tiny",
        "env_id": "gengap/shapes-objectgoal-v0",
        "seeds": [0],
        "total_timesteps": 256,
        "num_envs": 2,
        "eval_episodes": 6,
        "agent": {"n_steps": 64, "batch_size": 64, "n_epochs": 1},
        "arms": [
            {"name": "slots", "env_kwargs": {"obs_mode": "slots"}},
            {"name": "pixels", "env_kwargs": {"obs_mode": "pixels"}},
        ],
        "evaluations": EVALUATIONS,
        "workers": 2,
        "reps": 200,
        "out_dir": str(tmp_path / "study"),
    }
    data.update(overrides)
    return StudyConfig.from_dict(data)


def test_two_arm_study_tabulates_every_part_for_both_obs_modes(tmp_path):
    result = run_study(_study(tmp_path))
    assert len(result.rows) == 2 * len(EVALUATIONS)
    for arm in ("slots", "pixels"):
        for evaluation in EVALUATIONS:
            row = result.row(arm, evaluation["name"])
            assert row.part == evaluation["part"] and row.runs == 1 and row.episodes == 6
            for interval in row.scores.values():
                assert 0.0 <= interval.low <= interval.point <= interval.high <= 1.0
            assert (row.gap_to_test is None) == (evaluation["name"] == "iid-test")
    table = result.table("iqm")
    assert "| evaluation (part) | slots | pixels |" in table
    for evaluation in EVALUATIONS:
        assert f"| {evaluation['name']} ({evaluation['part']}) |" in table
    folder = tmp_path / "study"
    store = ResultsStore(folder / "gengap.sqlite")
    episodes = [e for e in store.episodes() if e["eval_tag"].startswith("study:")]
    assert {e["eval_tag"] for e in episodes} == {f"study:{e['name']}" for e in EVALUATIONS}
    # the held-out count condition really played 5-7 objects on test levels; the
    # combinatorial part played the held-out levels of the split
    assert {e["part"] for e in episodes} == {"test", "combinatorial", "extrapolation"}
    saved = json.loads((folder / "results.json").read_text())
    assert len(saved["rows"]) == 8
    assert (folder / "results.md").read_text().startswith("# Study tiny")
    # Running again reuses the finished runs and gives the same table.
    again = run_study(_study(tmp_path), workers=1)
    assert again.table("iqm") == table


def test_study_file_and_errors(tmp_path):
    study = load_study(ROOT / "studies" / "shapes_pixels_vs_slots.toml")
    assert [a.env_kwargs["obs_mode"] for a in study.arms] == ["slots", "pixels"]
    parts = {e.part for e in study.evaluations}
    assert {"test", "combinatorial", "extrapolation"} <= parts
    assert any(e.env_kwargs.get("num_objects") == [5, 7] for e in study.evaluations)
    assert len(study.experiments()) == 2 * len(study.seeds)
    with pytest.raises(ValueError, match="unknown key in study 'seed'"):
        StudyConfig.from_dict({**_study(tmp_path).to_dict(), "seed": 1})
    with pytest.raises(ValueError, match="arms names must be unique"):
        _study(tmp_path, arms=[{"name": "a"}, {"name": "a"}])
    with pytest.raises(ValueError, match="evaluation 'x': split .* has no extrapolation part"):
        _study(
            tmp_path,
            env_id="gengap/minigrid-doorkey-5x5-v0",
            evaluations=[{"name": "x", "part": "extrapolation"}],
        )
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_study(tmp_path / "missing.toml")
