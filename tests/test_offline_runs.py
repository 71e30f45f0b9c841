"""Offline runs through the run loop and the CLI: a dataset instead of an env budget.

A tiny real dataset (random policy on MiniGrid's training levels, collected with
``gengap.offline.collect``) trains BC through ``gengap train --dataset``: same run folder,
store rows of kind ``offline``, curves over updates, held-out evaluation. Bad input is
one line and exit status 2, and leaves no run folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gengap.core.errors import InputError
from gengap.drivers.train import run_experiment
from gengap.envs import LevelSet, Split
from gengap.eval.runs import ExperimentConfig
from gengap.eval.store import ResultsStore
from gengap.offline.collect import collect, make_policy
from gengap.scripts.cli import main

ENV_ID = "gengap/minigrid-doorkey-5x5-v0"
SPLIT = Split(train=LevelSet.range(0, 4), validation=LevelSet.range(4, 2),
              test=LevelSet.range(10_000, 10), name="tiny")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("offline-data")
    policy = make_policy("random")
    paths = {"train": root / "train", "validation": root / "validation",
             "held-out": root / "held-out", "other-env": root / "other-env"}
    collect(ENV_ID, policy, paths["train"], num_transitions=120, split=SPLIT, num_envs=2)
    validation = Split(train=SPLIT.validation, test=SPLIT.test, name="tiny-validation")
    collect(ENV_ID, policy, paths["validation"], num_transitions=60, split=validation,
            num_envs=2)
    # Played on test levels (of SPLIT, and of the env's default split that --train-levels
    # keeps): training on it would leak them.
    leaky = Split(train=LevelSet.range(10_000, 3), test=LevelSet.range(0, 4), name="leaky")
    collect(ENV_ID, policy, paths["held-out"], num_transitions=60, split=leaky, num_envs=2)
    collect("gengap/minigrid-empty-random-6x6-v0", policy, paths["other-env"],
            num_transitions=60, num_envs=2)
    return paths


def _config(tmp_path: Path, data: dict[str, Path], **overrides: object) -> ExperimentConfig:
    base: dict[str, object] = dict(
        env_id=ENV_ID, algo="bc", dataset=str(data["train"]), num_updates=6,
        split=SPLIT.to_dict(), agent={"batch_size": 16, "eval_interval": 2,
                                      "validation_samples": 32},
        eval_every=3, eval_episodes=2, final_eval_episodes=3, eval_num_envs=2,
        out_dir=str(tmp_path), seed=1)
    base.update(overrides)
    return ExperimentConfig.from_dict(base)


def test_offline_run_folder_store_curves_and_evaluation(tmp_path: Path,
                                                        data: dict[str, Path]) -> None:
    config = _config(tmp_path, data, validation_dataset=str(data["validation"]))
    run_dir = run_experiment(config, quiet=True)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "done" and info["kind"] == "offline"
    store = ResultsStore(tmp_path / "gengap.sqlite")
    row = store.get_run(info["run_id"])
    assert row["kind"] == "offline" and row["algo"] == "bc"
    steps = sorted({point["step"] for point in store.curves(info["run_id"])})
    assert steps == [3, 6]  # curves over updates
    parts = {e["part"] for e in store.episodes(run_id=info["run_id"], tag="final")}
    assert parts == {"train", "test"}
    assert {e["level_seed"] for e in store.episodes(run_id=info["run_id"], part="test")} <= set(
        range(10_000, 10_010))
    agent = json.loads((run_dir / "agent" / "agent.json").read_text())
    assert agent["num_updates"] == 6 and agent["state"]["validated"] is True
    # A finished run resumes to itself; an offline run is reported like any other.
    assert main(["train", "--resume", str(run_dir)]) == 0
    assert main(["report", str(run_dir), "--out", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "report.md").is_file()


def test_offline_run_through_the_cli(tmp_path: Path, data: dict[str, Path],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    # --env is taken from the dataset's card.
    code = main(["train", "--dataset", str(data["train"]), "--algo", "cql", "--updates", "2",
                 "--train-levels", "4", "--agent", "batch_size=8", "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "2/2 updates (100%)" in out and "updates/s" in out  # an offline run counts updates
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["env_id"], config["dataset"], config["num_updates"]) == (
        ENV_ID, str(data["train"]), 2)


TRAIN = ["train", "--algo", "bc", "--updates", "2", "--train-levels", "4"]


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "--dataset", "no/such/dataset", "--env", ENV_ID, "--algo", "bc",
      "--updates", "2"], "no gengap dataset at"),
    ([*TRAIN, "--env", ENV_ID, "--dataset", "{other-env}"],
     "was collected on gengap/minigrid-empty-random-6x6-v0"),
    ([*TRAIN, "--dataset", "{held-out}"], "holds out from train: "),
    ([*TRAIN, "--dataset", "{train}", "--algo", "iql"],
     "IQL needs a continuous (Box) action space"),
    ([*TRAIN, "--dataset", "{train}", "--algo", "ppo"], "algo 'ppo' learns online"),
    ([*TRAIN, "--dataset", "{train}", "--updates", "0"], "--updates"),
    (["train", "--algo", "bc", "--dataset", "{train}"],
     "num_updates (--updates) must be a positive integer"),
    ([*TRAIN, "--env", ENV_ID], "algo 'bc' learns from a dataset"),
])
def test_bad_offline_input_is_one_line_and_exit_2(
        tmp_path: Path, data: dict[str, Path], capsys: pytest.CaptureFixture[str],
        argv: list[str], message: str) -> None:
    paths = {k: str(v) for k, v in data.items()}
    argv = [a.format(**paths) for a in argv] + ["--out", str(tmp_path / "runs")]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_dataset_with_another_observation_space_is_refused(tmp_path: Path) -> None:
    from gengap.drivers.offline import open_datasets

    env_id = "gengap/shapes-objectgoal-v0"
    collect(env_id, make_policy("random"), tmp_path / "slots", num_transitions=20,
            num_envs=2, env_options={"obs_mode": "slots"})
    config = ExperimentConfig(env_id=env_id, algo="bc", dataset=str(tmp_path / "slots"),
                              num_updates=2, env_kwargs={"obs_mode": "pixels"},
                              out_dir=str(tmp_path))
    with pytest.raises(InputError, match=r"holds observations Dict\('goal'.* the env gives"):
        open_datasets(config, config.resolved_split())


def test_study_compares_online_and_offline_arms(tmp_path: Path, data: dict[str, Path]) -> None:
    from gengap.drivers.study import StudyConfig, load_study, run_study

    study = {
        "name": "online-vs-offline", "env_id": ENV_ID, "seeds": [0], "split": SPLIT.to_dict(),
        "total_timesteps": 128, "num_envs": 2, "eval_episodes": 4, "workers": 1,
        "reps": 100, "out_dir": str(tmp_path / "study"),
        "agent": {"n_steps": 64, "batch_size": 64, "n_epochs": 1},
        "arms": [
            {"name": "ppo"},
            {"name": "bc", "algo": "bc", "dataset": str(data["train"]), "num_updates": 3,
             "agent": {"batch_size": 16}},
        ],
        "evaluations": [{"name": "held-out", "part": "test"}],
    }
    with pytest.raises(ValueError, match="unknown key in bc config .n_steps."):
        StudyConfig.from_dict(study)  # the study's PPO overrides reach the BC arm
    study["agent"] = {}
    study["arms"][0]["agent"] = {"n_steps": 64, "batch_size": 64, "n_epochs": 1}
    result = run_study(StudyConfig.from_dict(study))
    assert [row.arm for row in result.rows] == ["ppo", "bc"]
    assert all(row.runs == 1 and row.episodes == 4 for row in result.rows)
    store = ResultsStore(tmp_path / "study" / "gengap.sqlite")
    kinds = {r["algo"]: r["kind"] for r in store.list_runs()}
    assert kinds == {"ppo": "online", "bc": "offline"}
    text = result.markdown()  # the report says what each arm trained, not the study's PPO budget
    assert "arms as listed below on" in text
    assert "- arm `ppo`: `ppo`, 128 steps" in text
    assert f"- arm `bc`: `bc`, 3 updates on `{data['train']}`" in text
    leaky = {**study, "out_dir": str(tmp_path / "leaky")}
    leaky["arms"] = [{**study["arms"][1], "dataset": str(data["held-out"])}]
    leaky["split"] = Split(train=LevelSet.range(0, 4), test=LevelSet.range(10_000, 10),
                           name="tiny").to_dict()
    path = tmp_path / "leaky.toml"
    import tomli_w

    path.write_text(tomli_w.dumps(leaky))
    with pytest.raises(InputError, match="holds out from train"):
        load_study(path)  # refused before any run
    assert not (tmp_path / "leaky").exists()



def test_offline_run_killed_with_kill_9_resumes_to_the_uninterrupted_result(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        kill_process_group: Callable[[subprocess.Popen[Any]], None]) -> None:
    """``gengap train --dataset`` in a real process, SIGKILLed once a checkpoint exists,
    then ``--resume``d: the final agent's bytes, the curves and the final evaluation equal
    those of the same run never interrupted."""
    dataset = tmp_path / "random"
    assert main(["collect", "--env", ENV_ID, "--policy", "random", "--transitions", "300",
                 "--train-levels", "4", "--num-envs", "2", "--out", str(dataset),
                 "--quiet"]) == 0, capsys.readouterr().err
    argv = ["train", "--dataset", str(dataset), "--algo", "bc", "--updates", "600",
            "--train-levels", "4", "--eval-every", "60", "--eval-episodes", "1",
            "--final-eval-episodes", "2", "--seed", "3", "--agent", "batch_size=16"]
    assert main([*argv, "--out", str(tmp_path / "whole")]) == 0, capsys.readouterr().err
    (whole,) = [p for p in (tmp_path / "whole").iterdir() if p.is_dir()]

    process = subprocess.Popen(
        [sys.executable, "-m", "gengap.scripts.cli", *argv, "--out", str(tmp_path / "killed")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)  # its own process group: kill -9 takes any child too
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            if list((tmp_path / "killed").glob("*/checkpoint/config.json")):
                break
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before it could be killed"
    finally:
        kill_process_group(process)
    killed_at = time.time()
    (killed,) = [p for p in (tmp_path / "killed").iterdir() if p.is_dir()]
    assert json.loads((killed / "run.json").read_text())["status"] != "done"
    checkpoint = json.loads((killed / "checkpoint" / "training_state.json").read_text())
    assert 0 < checkpoint["num_updates"] < 600
    assert not (killed / "agent").exists()

    assert main(["train", "--resume", str(killed)]) == 0, capsys.readouterr().err
    assert json.loads((killed / "run.json").read_text())["status"] == "done"
    assert (killed / "agent" / "model.safetensors").read_bytes() == \
        (whole / "agent" / "model.safetensors").read_bytes()
    results = []
    for folder in (whole, killed):
        store = ResultsStore(folder.parent / "gengap.sqlite")
        run_id = json.loads((folder / "run.json").read_text())["run_id"]
        curves = sorted((c["step"], c["part"], c["metric"], c["value"])
                        for c in store.curves(run_id))
        final = sorted((e["part"], e["level_seed"], e["return"], e["length"])
                       for e in store.episodes(run_id=run_id, tag="final"))
        results.append((curves, final))
    assert results[0] == results[1]
    assert [step for step, *_ in results[0][0]][-1] == 600
    # It continued from the checkpoint, not from scratch: the curve points up to the
    # checkpoint are those the killed process wrote, the later ones the resumed process's.
    run_id = json.loads((killed / "run.json").read_text())["run_id"]
    for point in ResultsStore(tmp_path / "killed" / "gengap.sqlite").curves(run_id):
        assert (point["wall_time"] < killed_at) == (point["step"] <= checkpoint["num_updates"])
