"""Run folders own their results: the store beside the folder, a lock against a second
writer, files that name themselves when corrupt, snapshots, progress lines in logs."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from gengap.agents import load_agent
from gengap.core.errors import InputError
from gengap.drivers.train import Progress, TrainingInterrupted, run_experiment
from gengap.envs import env_info
from gengap.eval.evaluate import evaluate_run
from gengap.eval.runs import ExperimentConfig, RunFolder, load_run
from gengap.eval.store import ResultsStore
from gengap.scripts.cli import _interrupted_message, main

ENV_ID = "gengap/minigrid-doorkey-5x5-v0"


def _config(out_dir: str | Path, **overrides) -> ExperimentConfig:
    base = dict(
        env_id=ENV_ID,
        total_timesteps=256,
        num_envs=2,
        seed=0,
        num_train_levels=4,
        agent={"n_steps": 64, "batch_size": 64, "n_epochs": 1},
        eval_every=128,
        eval_episodes=2,
        final_eval_episodes=4,
        eval_num_envs=4,
        out_dir=str(out_dir),
    )
    base.update(overrides)
    return ExperimentConfig(**base)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One finished tiny run, with snapshots; tests copy it rather than change it."""
    out = tmp_path_factory.mktemp("runs")
    return run_experiment(_config(out, keep_snapshots=True), quiet=True)


def _episode_count(store_path: Path) -> int:
    with sqlite3.connect(store_path) as connection:
        return int(connection.execute("SELECT COUNT(*) FROM episodes").fetchone()[0])


def test_run_json_records_the_store_relative_to_the_folder_and_the_device(trained):
    info = json.loads((trained / "run.json").read_text())
    assert info["store"] == "../gengap.sqlite"
    assert info["device"] == "cpu"  # "auto" resolved on this CPU-only machine
    assert info["kind"] == "online"
    assert RunFolder(trained).store_path() == trained.parent / "gengap.sqlite"


def test_a_copied_folder_writes_to_the_store_beside_it(trained, tmp_path, capsys):
    original_store = trained.parent / "gengap.sqlite"
    before = _episode_count(original_store)
    copy = tmp_path / "elsewhere" / trained.name
    shutil.copytree(trained, copy)
    assert main(["eval", str(copy), "--episodes", "3", "--split", "train"]) == 0
    assert "3 episodes" in capsys.readouterr().out
    assert _episode_count(original_store) == before  # the original store is unchanged
    copied = ResultsStore(tmp_path / "elsewhere" / "gengap.sqlite")
    run_id = RunFolder(copy).run_id()
    assert copied.get_run(run_id)["env_id"] == ENV_ID  # registered from the folder's files
    assert len(copied.episodes(run_id=run_id, tag="eval-greedy")) == 3


def test_a_relative_out_dir_keeps_its_store_from_another_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = run_experiment(_config("rel", eval_every=256), quiet=True)
    assert not run_dir.is_absolute()
    absolute = tmp_path / run_dir
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    before = _episode_count(tmp_path / "rel" / "gengap.sqlite")
    evaluate_run(absolute, part="train", num_episodes=2)
    assert _episode_count(tmp_path / "rel" / "gengap.sqlite") == before + 2
    assert not (other / "rel").exists() and not list(other.iterdir())


def test_snapshots_are_saved_at_each_periodic_evaluation(trained):
    snapshots = RunFolder(trained).snapshots()
    assert [s.step for s in snapshots] == [128, 256]
    for snapshot in snapshots:
        saved = json.loads((snapshot.path / "snapshot.json").read_text())
        assert saved == {"step": snapshot.step, "scores": snapshot.scores}
        assert set(snapshot.scores) == {"train", "test"}
        for scores in snapshot.scores.values():
            assert set(scores) == {"return", "success"}
            assert 0.0 <= scores["success"] <= 1.0
        assert load_agent(snapshot.path).num_timesteps == snapshot.step  # type: ignore[attr-defined]
    # the scores are those of the stored curve point at that step
    store = RunFolder(trained).store()
    curve = {
        (p["step"], p["part"], p["metric"]): p["value"]
        for p in store.curves(RunFolder(trained).run_id())
    }
    for snapshot in snapshots:
        for part, scores in snapshot.scores.items():
            for metric, value in scores.items():
                assert curve[(snapshot.step, part, metric)] == pytest.approx(value)


def test_no_snapshots_unless_asked(tmp_path):
    run_dir = run_experiment(_config(tmp_path, eval_every=256), quiet=True)
    assert RunFolder(run_dir).snapshots() == []
    assert not (run_dir / "snapshots").exists()


@pytest.mark.parametrize("name", ["config.json", "run.json", "split.json"])
def test_a_corrupt_file_is_named_in_one_line(trained, tmp_path, capsys, name):
    copy = tmp_path / trained.name
    shutil.copytree(trained, copy)
    (copy / name).write_text('{"env_id": "x\x01"')
    with pytest.raises(InputError, match=rf"{name}': invalid JSON: .*\(at line 1, column \d+\)"):
        load_run(copy)
    assert main(["eval", str(copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and name in err and "invalid JSON" in err
    if name == "config.json":
        assert main(["train", "--resume", str(copy)]) == 2
        assert name in capsys.readouterr().err


def test_a_missing_file_is_named(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(InputError, match="split.json is missing"):
        load_run(tmp_path)


@pytest.mark.parametrize("kind", ["file", "proc"])
def test_train_out_that_is_not_a_writable_folder_names_out(tmp_path, capsys, kind):
    if kind == "file":
        out = tmp_path / "taken"
        out.write_text("not a folder")
    else:
        out = Path("/proc/gengap")
    argv = ["train", "--env", ENV_ID, "--steps", "64", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--out" in err and str(out) in err


@pytest.mark.parametrize("command", ["study", "quickstart"])
def test_study_and_quickstart_out_that_is_a_file_names_out(tmp_path, capsys, command):
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    root = Path(__file__).resolve().parent.parent
    first = [str(root / "studies" / "shapes_pixels_vs_slots.toml")] if command == "study" else []
    assert main([command, *first, "--out", str(taken)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--out" in err and "is a file" in err


def test_run_json_records_the_device_really_used(tmp_path):
    import torch

    # an explicit device the machine lacks is refused up front (agents/base.resolve_device),
    # so "auto" is the one to resolve: CUDA when present, else the CPU
    run_dir = run_experiment(
        _config(tmp_path, total_timesteps=64, eval_every=64, agent={"n_steps": 32,
                "batch_size": 64, "n_epochs": 1, "device": "auto"}),
        quiet=True,
    )  # fmt: skip
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert json.loads((run_dir / "run.json").read_text())["device"] == expected


def test_eval_num_envs_is_a_positive_count():
    assert _config("runs").eval_num_envs == 4
    assert ExperimentConfig(env_id=ENV_ID).eval_num_envs == 16
    with pytest.raises(InputError, match="eval_num_envs must be a positive integer, got 0"):
        _config("runs", eval_num_envs=0)


def test_progress_in_a_log_is_full_lines_every_tenth():
    stream = io.StringIO()
    progress = Progress(100_000, 0, "doorkey-run-with-a-long-name-s0", stream=stream,
                        line_every_s=3600)  # fmt: skip
    for step in range(0, 100_001, 1000):
        progress.update(step, "train success 0.50 | test success 0.25" if step == 50_000 else None)
    progress.close()
    lines = stream.getvalue().splitlines()
    steps = [int(line.split(": ", 1)[1].split("/", 1)[0]) for line in lines]
    assert steps == list(range(10_000, 100_001, 10_000))  # each tenth, never cut short
    assert all(line.startswith("doorkey-run-with-a-long-name-s0: ") for line in lines)
    assert lines[-1].startswith("doorkey-run-with-a-long-name-s0: 100000/100000 steps (100%)")
    assert "eta" in lines[-1] and "steps/s" in lines[-1]
    assert lines[-1].endswith("test success 0.25") and len(lines[-1]) > 80


def test_progress_in_a_log_also_writes_after_the_time_interval():
    stream = io.StringIO()
    progress = Progress(1000, 0, "run", stream=stream, line_every_s=0.0)
    for step in (1, 2, 3):
        progress.update(step)
    assert len(stream.getvalue().splitlines()) == 3


def test_quiet_progress_writes_nothing():
    stream = io.StringIO()
    progress = Progress(10, 0, "run", quiet=True, stream=stream)
    progress.update(10)
    progress.close()
    assert stream.getvalue() == ""


def test_the_ctrl_c_message_offers_resume_only_with_a_checkpoint(tmp_path):
    resumable = _interrupted_message(TrainingInterrupted(tmp_path, resumable=True), "train")
    assert f"--resume {tmp_path}" in resumable
    assert "--resume" not in _interrupted_message(
        TrainingInterrupted(tmp_path, resumable=False), "train"
    )
    assert "--resume" not in _interrupted_message(KeyboardInterrupt(), "train")


def test_every_registered_algo_has_a_trainer():
    from gengap.agents import OfflineAgent, agent_config_class, registered_algos
    from gengap.drivers.offline import OfflineTrainer
    from gengap.drivers.train import OnlineTrainer, trainer_class

    assert registered_algos()
    for algo in registered_algos():
        config = agent_config_class(algo)()
        offline = issubclass(config.agent_class(), OfflineAgent)
        assert trainer_class(config) is (OfflineTrainer if offline else OnlineTrainer), algo


def test_num_train_levels_keeps_the_default_splits_other_axes():
    # --train-levels changes the training levels only: a mujoco id keeps its held-out
    # context parts and a compositional id its held-out combinations
    config = ExperimentConfig(env_id="gengap/mujoco-invertedpendulum-v0", num_train_levels=5)
    default = env_info(config.env_id).default_split
    split = config.resolved_split()
    assert len(split.train) == 5
    assert default.contexts is not None and split.contexts == default.contexts
    assert split.context_parts == default.context_parts
