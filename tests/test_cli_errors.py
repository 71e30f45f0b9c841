"""The CLI tells the user's mistakes from gengap's bugs.

Bad input (files, folders, stores, flags) is one line naming the argument or the file
and exit 2; any other exception is a bug, shown with its traceback and exit 1.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gengap.eval.runs import RunFolder
from gengap.scripts.cli import main

DOORKEY = "gengap/minigrid-doorkey-5x5-v0"
# A tiny PPO run: 128 steps on 2 envs, evaluated twice on 2 episodes per part.
TINY_RUN = [
    "--env", DOORKEY, "--steps", "128", "--num-envs", "2", "--train-levels", "3",
    "--agent", "n_steps=64", "--agent", "batch_size=64", "--agent", "n_epochs=1",
]  # fmt: skip


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """One finished run, trained with the evaluation-protocol flags only (no TOML file)."""
    out = tmp_path_factory.mktemp("runs")
    code = main(
        [
            "train", *TINY_RUN, "--out", str(out),
            "--eval-every", "64", "--eval-episodes", "2", "--final-eval-episodes", "3",
            "--env-option", "max_steps=40",
        ]
    )  # fmt: skip
    assert code == 0
    return out / "minigrid-doorkey-5x5-ppo-L3-s0"


def test_evaluation_protocol_and_env_option_flags_reach_the_run(trained_run):
    from gengap.eval.store import ResultsStore

    config = json.loads((trained_run / "config.json").read_text())
    assert config["eval_every"] == 64
    assert config["eval_episodes"] == 2
    assert config["final_eval_episodes"] == 3
    assert config["env_kwargs"] == {"max_steps": 40}
    store = ResultsStore(trained_run.parent / "gengap.sqlite")
    run_id = trained_run.name
    steps = {p["step"] for p in store.curves(run_id=run_id, part="test", metric="return")}
    assert sorted(steps) == [64, 128]
    final = store.episodes(run_id=run_id, part="test", tag="final")
    assert len(final) == 3
    assert all(e["length"] <= 40 for e in final)  # the env option was in force


@pytest.mark.parametrize("kind", ["experiment", "study"])
def test_toml_syntax_error_names_the_file_and_line(capsys, tmp_path, kind):
    path = tmp_path / f"{kind}.toml"
    path.write_text('env_id = "gengap/minigrid-doorkey-5x5-v0"\nseeds = [0, 1\nname = "x"\n')
    argv = ["train", str(path)] if kind == "experiment" else ["study", str(path)]
    line = _one_line(*_run(capsys, *argv)[::2])
    assert f"{kind} file {str(path)!r}: invalid TOML" in line
    assert "line 3" in line


def test_binary_experiment_file_is_one_line(capsys, tmp_path):
    path = tmp_path / "exp.toml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    line = _one_line(*_run(capsys, "train", str(path))[::2])
    assert f"experiment file {str(path)!r} is not UTF-8 text" in line


def test_output_paths_that_are_files_name_their_flag(capsys, tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    line = _one_line(*_run(capsys, "train", "--env", DOORKEY, "--out", str(taken))[::2])
    assert line == f"gengap: error: --out {str(taken)!r} is a file, expected a folder"
    line = _one_line(*_run(capsys, "train", "--env", DOORKEY, "--out", str(taken / "sub"))[::2])
    assert f"--out {str(taken / 'sub')!r} cannot be created (Not a directory)" in line
    assert not any(p.name != "taken" for p in tmp_path.iterdir())  # no run folder was made


def test_report_out_that_is_a_file_names_the_flag(capsys, tmp_path, trained_run):
    taken = tmp_path / "report.md"
    taken.write_text("an earlier report")
    line = _one_line(*_run(capsys, "report", str(trained_run), "-o", str(taken))[::2])
    assert line == f"gengap: error: -o/--out {str(taken)!r} is a file, expected a folder"
    assert taken.read_text() == "an earlier report"


def test_report_refuses_a_run_twice_and_an_unknown_tag(capsys, tmp_path, trained_run):
    run = str(trained_run)
    line = _one_line(*_run(capsys, "report", run, run, "-o", str(tmp_path / "r"))[::2])
    assert "hold the same run 'minigrid-doorkey-5x5-ppo-L3-s0'; give each run once" in line
    line = _one_line(*_run(capsys, "report", run, "--tag", "fianl", "-o", str(tmp_path))[::2])
    assert "--tag: run" in line and "unknown tag 'fianl'; did you mean 'final'?" in line
    code, out, _ = _run(capsys, "report", run, "--tag", "latest", "-o", str(tmp_path / "r"))
    assert code == 0 and (tmp_path / "r" / "report.md").is_file()


def _not_sqlite(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"these bytes overwrote the results store" * 50)
    return path


def test_store_that_is_not_sqlite_is_named_by_train(capsys, tmp_path):
    store = _not_sqlite(tmp_path / "runs" / "gengap.sqlite")
    line = _one_line(*_run(capsys, "train", *TINY_RUN, "--out", str(tmp_path / "runs"))[::2])
    assert f"results store {str(store)!r} is not an SQLite database" in line
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["gengap.sqlite"]  # no run folder


def test_store_that_is_not_sqlite_is_named_by_eval_and_report(capsys, tmp_path, trained_run):

    copy = tmp_path / "copies" / trained_run.name
    shutil.copytree(trained_run, copy)
    # the store that belongs to the copied folder (run.json records it beside the folder)
    store = _not_sqlite(RunFolder(copy).store_path())
    for argv in (["eval", str(copy), "--episodes", "2"], ["report", str(copy), "-o", "r"]):
        line = _one_line(*_run(capsys, *argv)[::2])
        assert f"results store {str(store)!r} is not an SQLite database" in line


def test_corrupt_run_json_names_the_file(capsys, tmp_path, trained_run):
    copy = tmp_path / trained_run.name
    shutil.copytree(trained_run, copy)
    (copy / "config.json").write_text('{"env_id": "gengap/minigrid\x01-doorkey"}')
    line = _one_line(*_run(capsys, "eval", str(copy))[::2])
    assert f"{str(copy / 'config.json')!r}: invalid JSON: " in line
    assert "(at line 1, column " in line


def test_internal_error_is_a_traceback_and_exit_1(capsys, monkeypatch):
    import gengap.envs

    def broken() -> list[str]:
        raise ValueError("a bug deep inside the library")

    monkeypatch.setattr(gengap.envs, "registered_ids", broken)
    code, _, err = _run(capsys, "envs")
    assert code == 1
    assert "Traceback (most recent call last)" in err
    assert "ValueError: a bug deep inside the library" in err
    assert "internal error (ValueError): this is a bug in gengap" in err


def test_interrupt_mentions_resume_only_where_there_is_something_to_resume(
    capsys, monkeypatch, tmp_path
):
    import gengap.drivers.train
    import gengap.envs

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(gengap.envs, "registered_ids", interrupted)
    code, _, err = _run(capsys, "envs")
    assert code == 130 and err.strip() == "gengap envs: interrupted"
    # train interrupted before its first checkpoint: nothing to resume, so no hint
    monkeypatch.setattr(gengap.drivers.train, "run_experiment", interrupted)
    code, _, err = _run(capsys, "train", *TINY_RUN, "--out", str(tmp_path))
    assert code == 130 and err.strip() == "gengap train: interrupted"


def test_interrupted_train_with_a_checkpoint_says_how_to_resume(
    capsys, monkeypatch, tmp_path, trained_run
):
    import gengap.drivers.train

    copy = tmp_path / trained_run.name
    shutil.copytree(trained_run, copy)
    assert (copy / "checkpoint" / "config.json").is_file()

    def interrupted(*args, **kwargs):
        # what the run loop raises on Ctrl-C after a checkpoint was written
        raise gengap.drivers.train.TrainingInterrupted(copy, resumable=True)

    monkeypatch.setattr(gengap.drivers.train, "resume_experiment", interrupted)
    code, _, err = _run(capsys, "train", "--resume", str(copy))
    assert code == 130
    assert err.strip().splitlines() == [
        f"gengap train: interrupted; the last checkpoint is kept: resume with "
        f"`gengap train --resume {copy}`",
    ]


def test_a_reader_that_goes_away_is_not_a_bug(tmp_path):
    """``gengap dataset info DS | head -1``: stdout's reader closes the pipe; gengap stops
    quietly with a Unix tool's SIGPIPE status instead of printing a bug report. (Commands
    that print through rich get rich's own quiet exit.)"""
    import os
    import subprocess
    import sys

    from gengap.offline.collect import collect, make_policy
    from gengap.scripts.cli import CLOSED_PIPE

    dataset = collect(DOORKEY, make_policy("random"), tmp_path / "ds", num_transitions=8,
                      num_envs=1)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before gengap writes anything
    try:
        result = subprocess.run(
            [sys.executable, "-m", "gengap.scripts.cli", "dataset", "info", str(dataset)],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120, check=False)
    finally:
        os.close(write_end)
    assert result.returncode == CLOSED_PIPE, result.stderr
    assert result.stderr == ""
