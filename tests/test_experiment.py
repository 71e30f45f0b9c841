"""Experiments end to end on a tiny budget: train, evaluate, store, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gengap.drivers.train import run_experiment
from gengap.envs import Split
from gengap.eval.evaluate import evaluate, evaluate_run, level_schedule
from gengap.eval.report import report_runs
from gengap.eval.runs import ExperimentConfig
from gengap.eval.store import ResultsStore

ENV_ID = "gengap/minigrid-doorkey-5x5-v0"


def _config(tmp_path: Path, **overrides) -> ExperimentConfig:
    base = dict(
        env_id=ENV_ID,
        total_timesteps=1024,
        num_envs=2,
        seed=0,
        num_train_levels=4,
        agent={"n_steps": 64, "batch_size": 64, "n_epochs": 1},
        eval_every=512,
        eval_episodes=2,
        final_eval_episodes=6,
        out_dir=str(tmp_path),
    )
    base.update(overrides)
    return ExperimentConfig(**base)


def test_level_schedule_spreads_episodes_evenly():
    split = Split.levels_split(4, num_test_levels=10)
    assert level_schedule(split, "train", 10) == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert level_schedule(split, "test", 5) == [4, 6, 8, 11, 13]
    unbounded = Split.levels_split(4)
    assert level_schedule(unbounded, "test", 3) == [4, 5, 6]


def test_run_saves_provenance_curves_and_final_episodes(tmp_path):
    run_dir = run_experiment(_config(tmp_path), quiet=True)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "done"
    assert {"numpy", "torch", "gymnasium"} <= set(info["versions"])
    split = Split.load(run_dir / "split.json")
    assert len(split.train) == 4
    store = ResultsStore(tmp_path / "gengap.sqlite")
    run = store.get_run(info["run_id"])
    assert run is not None and run["env_id"] == ENV_ID
    episodes = store.episodes(run_id=info["run_id"], tag="final")
    assert sorted({e["part"] for e in episodes}) == ["test", "train"]
    train_levels = {e["level_seed"] for e in episodes if e["part"] == "train"}
    test_levels = {e["level_seed"] for e in episodes if e["part"] == "test"}
    assert train_levels == {0, 1, 2, 3}
    assert test_levels and all(level in split.test for level in test_levels)
    curve_steps = {p["step"] for p in store.curves(info["run_id"])}
    assert curve_steps == {512, 1024}
    with pytest.raises(FileExistsError, match="already holds a run"):
        run_experiment(_config(tmp_path), quiet=True)


def test_evaluate_is_reproducible_and_workers_agree(tmp_path):
    run_dir = run_experiment(_config(tmp_path), quiet=True)
    split = Split.load(run_dir / "split.json")
    one = evaluate(run_dir / "agent", ENV_ID, split, "test", num_episodes=8, num_envs=3, seed=5)
    again = evaluate(run_dir / "agent", ENV_ID, split, "test", num_episodes=8, num_envs=3, seed=5)
    two = evaluate(
        run_dir / "agent", ENV_ID, split, "test", num_episodes=8, num_envs=3, num_workers=2, seed=5
    )
    assert one == again
    assert [r.level_seed for r in one] == [r.level_seed for r in two]
    assert [r.level_seed for r in one] == level_schedule(split, "test", 8)
    records = evaluate_run(run_dir, part="train", num_episodes=4)
    assert {r.level_seed for r in records} == {0, 1, 2, 3}


def test_report_over_runs(tmp_path):
    dirs = [run_experiment(_config(tmp_path, seed=s), quiet=True) for s in (0, 1)]
    report = report_runs(dirs, tmp_path / "report")
    text = Path(report).read_text()
    assert "gap" in text.lower()
    assert list((tmp_path / "report").glob("*.png"))


def test_resume_after_kill_continues_from_checkpoint(tmp_path, capsys):
    config = _config(
        tmp_path, total_timesteps=6000, eval_every=1000, checkpoint_every=500, eval_episodes=1
    )
    config_path = tmp_path / "exp.json"
    config_path.write_text(json.dumps(config.to_dict()))
    code = (
        "import json, sys\n"
        "from gengap.drivers.train import run_experiment\n"
        "from gengap.eval.runs import ExperimentConfig\n"
        f"config = ExperimentConfig.from_dict(json.load(open({str(config_path)!r})))\n"
        "run_experiment(config, quiet=True)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    run_dir = tmp_path / config.run_name()
    checkpoint = run_dir / "checkpoint" / "agent.json"
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if (
            checkpoint.exists()
            and json.loads(checkpoint.read_text()).get("num_timesteps", 0) >= 1000
        ):
            break
        time.sleep(0.2)
    assert process.poll() is None, "training finished before it could be killed; raise the budget"
    # While it trains, the folder is locked: a second writer is refused, naming the process.
    from gengap.drivers.train import resume_experiment
    from gengap.eval.runs import RunLockedError
    from gengap.scripts.cli import main

    assert (run_dir / ".lock").read_text().strip() == str(process.pid)
    with pytest.raises(RunLockedError, match=f"process {process.pid} is training in it"):
        resume_experiment(run_dir, quiet=True)
    assert main(["train", "--resume", str(run_dir)]) == 2
    assert f"process {process.pid}" in capsys.readouterr().err
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = json.loads(checkpoint.read_text())["num_timesteps"]
    assert 1000 <= killed_at < 6000
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"

    resume_experiment(run_dir, quiet=True)  # the killed process's lock died with it
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "done"
    final = json.loads((run_dir / "agent" / "agent.json").read_text())
    assert final["num_timesteps"] >= 6000
    store = ResultsStore(tmp_path / "gengap.sqlite")
    points = [(p["step"], p["part"], p["metric"]) for p in store.curves(info["run_id"])]
    assert len(points) == len(set(points)), "resume duplicated curve points"
    assert {step for step, _, _ in points} == {1000, 2000, 3000, 4000, 5000, 6000}


def test_native_procgen_evaluation_reports_levels_and_normalized_returns():
    from gengap.agents import default_agent_config
    from gengap.envs import make
    from gengap.envs.procgen import normalized_return

    env_id = "gengap/procgen-bigfish-v0"  # a random policy's episodes end fast here
    split = Split.levels_split(50, test_start=5000, num_test_levels=100)
    env = make(env_id)
    agent = default_agent_config("ppo", "procgen", seed=0).create(
        env.observation_space, env.action_space
    )
    records = evaluate(agent, env_id, split, "test", num_episodes=2, num_envs=2, seed=1)
    assert len(records) == 2
    for record in records:
        assert record.level_seed in split.test
        assert record.normalized_return == pytest.approx(
            normalized_return("bigfish", record.episode_return, "easy")
        )
        assert isinstance(record.success, bool)
    again = evaluate(agent, env_id, split, "test", num_episodes=2, num_envs=2, seed=1)
    assert again == records


def test_leaked_held_out_levels_are_excluded_and_recorded(tmp_path):
    # DoorKey-5x5 has few distinct layouts: many "held-out" seeds copy a training level.
    config = _config(
        tmp_path,
        total_timesteps=256,
        num_train_levels=50,
        exclude_leaked_levels=True,
        final_eval_parts=("test",),
        final_eval_episodes=20,
    )
    run_dir = run_experiment(config, quiet=True)
    leakage = json.loads((run_dir / "run.json").read_text())["leakage"]
    split = Split.load(run_dir / "split.json")
    assert leakage["duplicated"] == len(split.test.exclude) > 0
    from gengap.envs.leakage import check_leakage

    check = check_leakage(ENV_ID, config.resolved_split(), num_test_levels=1000)
    assert set(check.duplicated_levels) == set(split.test.exclude)
    store = ResultsStore(tmp_path / "gengap.sqlite")
    tested = [e["level_seed"] for e in store.episodes(part="test", tag="final")]
    assert len(tested) == 20 and not set(tested) & split.test.exclude


def test_run_or_resume_reuses_only_the_same_config(tmp_path):
    from gengap.drivers.train import run_or_resume

    config = _config(tmp_path, total_timesteps=256, eval_every=256)
    run_dir = run_or_resume(config)
    modified = (run_dir / "run.json").stat().st_mtime_ns
    assert run_or_resume(config) == run_dir  # finished: reused, not retrained
    assert (run_dir / "run.json").stat().st_mtime_ns == modified
    with pytest.raises(FileExistsError, match="differs in total_timesteps"):
        run_or_resume(_config(tmp_path, total_timesteps=512, eval_every=256))


def test_ctrl_c_keeps_a_checkpoint_and_the_cli_says_how_to_resume(tmp_path):
    config = _config(tmp_path, total_timesteps=20_000, eval_every=10_000, checkpoint_every=256)
    run_dir = tmp_path / config.run_name()
    code = (
        # Ctrl-C as from a terminal, even when the suite runs in the background (a shell
        # starts background jobs with SIGINT ignored, and Python then installs no handler).
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "import sys\n"
        "from gengap.scripts.cli import main\n"
        f"sys.exit(main(['train', '--env', {ENV_ID!r}, '--steps', '20000', '--num-envs', '2',"
        f" '--train-levels', '4', '--agent', 'n_steps=64', '--agent', 'batch_size=64',"
        f" '--agent', 'n_epochs=1', '--out', {str(tmp_path)!r}]))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    checkpoint = run_dir / "checkpoint" / "agent.json"
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None and not checkpoint.exists():
        time.sleep(0.2)
    assert process.poll() is None, "training ended before Ctrl-C; raise the budget"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert f"resume with `gengap train --resume {run_dir}`" in stderr
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "interrupted"
    assert json.loads(checkpoint.read_text())["num_timesteps"] > 0
