"""Sweeps end to end on tiny MiniGrid trials: retries and failures, kill -9 and resume,
Ray equals the local pool, and bad input through the CLI."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from gengap.drivers.grid import expand, study_spec_from_dict
from gengap.drivers.sweep import run_sweep
from gengap.eval.store import ResultsStore
from gengap.eval.sweep_report import format_table, summarize_sweep, write_sweep_report

ENV = "gengap/minigrid-multiroom-n2-s4-v0"
EPISODES = 4  # per final evaluation and part


def _study(tmp_path: Path, name: str = "tiny", **overrides) -> dict:
    data = {
        "name": name,
        "env_id": ENV,
        "env_kwargs": {"obs_mode": "image"},
        "total_timesteps": 128,
        "num_envs": 2,
        "eval_episodes": EPISODES,
        "agent": {"n_steps": 64, "batch_size": 64, "n_epochs": 1},
        "seeds": [0],
        "grid": {"num_train_levels": [2, 20]},
        "reps": 200,
        "workers": 2,
        "out_dir": str(tmp_path / name),
    }
    data.update(overrides)
    return data


def _toml(data: dict) -> str:
    import json

    lines = []
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    for key, value in data.items():
        if key not in tables:
            lines.append(f"{key} = {json.dumps(value)}")
    for key, table in tables.items():
        lines.append(f"[{key}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _episode_counts(store: ResultsStore) -> Counter:
    return Counter((e["run_id"], e["part"], e["eval_tag"]) for e in store.episodes())


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """Two tiny trials on the local pool, two workers."""
    folder = tmp_path_factory.mktemp("local")
    outcome = run_sweep(study_spec_from_dict(_study(folder)), stream=sys.stderr)
    return outcome


def test_local_sweep_stores_every_trial_once_and_reports(local_sweep):
    outcome = local_sweep
    assert len(outcome.completed) == 2 and not outcome.failed and not outcome.skipped
    store = ResultsStore(outcome.store_path)
    runs = store.list_runs()
    assert sorted(r["run_id"] for r in runs) == sorted(t.run_name for t in outcome.trials)
    assert all(r["status"] == "done" for r in runs)
    assert set(_episode_counts(store).values()) == {EPISODES}
    for run in runs:  # run folders came back to the driver's folder
        assert Path(run["run_dir"]).parent == outcome.folder / "runs"
        assert (Path(run["run_dir"]) / "agent").is_dir()
        assert run["config"]["sweep"]["params"]["num_train_levels"] in (2, 20)
    # Running it again does nothing: both trials are found by their config hash.
    again = run_sweep(outcome.spec, stream=sys.stderr)
    assert sorted(again.skipped) == sorted(outcome.completed) and not again.completed
    summaries = summarize_sweep(store, reps=200)
    table = format_table(summaries, axis="num_train_levels")
    assert "| 2 | tiny/num_train_levels=2 | greedy |" in table
    assert "| 20 | tiny/num_train_levels=20 | greedy |" in table
    report = write_sweep_report(outcome.folder)
    text = report.read_text()
    assert "![gap](gap-vs-num_train_levels-greedy.png)" in text
    assert (report.parent / "gap-vs-num_train_levels-greedy.png").stat().st_size > 10_000
    assert (report.parent / "profiles-greedy.png").is_file()
    assert "## Probability of improvement" in text


def test_failing_trial_is_retried_then_recorded_failed_while_others_complete(tmp_path):
    # Bad values are refused when the grid is expanded, so make a trial fail while it runs:
    # a file stands where its run folder must go.
    spec = study_spec_from_dict(_study(tmp_path))
    doomed = next(t for t in expand(spec) if t.config["num_train_levels"] == 20)
    (tmp_path / "tiny" / "runs").mkdir(parents=True)
    (tmp_path / "tiny" / "runs" / doomed.run_name).write_text("not a run folder")
    outcome = run_sweep(spec, retries=1, stream=sys.stderr)
    assert len(outcome.completed) == 1 and len(outcome.failed) == 1
    (error,) = outcome.failed.values()
    assert doomed.run_name in error
    store = ResultsStore(outcome.store_path)
    runs = {r["config"]["sweep"]["params"]["num_train_levels"]: r for r in store.list_runs()}
    assert runs[2]["status"] == "done"
    assert runs[20]["status"] == "failed"
    assert runs[20]["config"]["sweep"]["attempts"] == 2  # one retry
    assert runs[20]["config"]["sweep"]["error"] == error
    assert not store.episodes(run_id=runs[20]["run_id"])
    assert "## Failed trials" in write_sweep_report(outcome.folder).read_text()



def test_sweep_killed_with_kill_9_completes_only_the_missing_trials(tmp_path, kill_process_group):
    data = _study(tmp_path, name="killed", seeds=[0, 1, 2], grid={"num_train_levels": [2]})
    path = tmp_path / "killed.toml"
    path.write_text(_toml(data))
    store_path = tmp_path / "killed" / "gengap.sqlite"
    process = subprocess.Popen(
        [sys.executable, "-m", "gengap.scripts.cli", "sweep", str(path), "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: kill -9 takes its workers too
    )
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and process.poll() is None:
            if store_path.is_file() and ResultsStore(store_path).list_runs(status="done"):
                break
            time.sleep(0.5)
        assert process.poll() is None, "the sweep ended before it could be killed"
    finally:
        kill_process_group(process)
    before = {r["run_id"] for r in ResultsStore(store_path).list_runs(status="done")}
    assert 1 <= len(before) < 3
    outcome = run_sweep(path, stream=sys.stderr)
    names = {t.trial_id: t.run_name for t in outcome.trials}
    assert {names[t] for t in outcome.skipped} == before
    assert {names[t] for t in outcome.completed} == set(names.values()) - before
    store = ResultsStore(store_path)
    runs = store.list_runs()
    assert sorted(r["run_id"] for r in runs) == sorted(names.values())
    assert all(r["status"] == "done" for r in runs)
    counts = _episode_counts(store)
    assert len(counts) == 3 * 2 and set(counts.values()) == {EPISODES}


def test_ray_backend_gives_the_local_results_table(local_sweep, tmp_path):
    pytest.importorskip("ray")
    outcome = run_sweep(
        study_spec_from_dict(_study(tmp_path)), backend="ray", workers=2, stream=sys.stderr
    )
    assert len(outcome.completed) == 2 and not outcome.failed
    for run in ResultsStore(outcome.store_path).list_runs():
        # The run folder came back as an archive, unpacked in the driver's folder.
        assert Path(run["run_dir"]).parent == outcome.folder / "runs"
        assert (Path(run["run_dir"]) / "agent").is_dir()

    def table(folder: Path) -> str:
        store = ResultsStore(folder / "gengap.sqlite")
        return format_table(summarize_sweep(store, reps=200), axis="num_train_levels")

    assert table(outcome.folder) == table(local_sweep.folder)
    local = ResultsStore(local_sweep.store_path)
    ray = ResultsStore(outcome.store_path)
    for run in local.list_runs():
        key = lambda e: (e["part"], e["eval_tag"], e["level_seed"])  # noqa: E731
        assert sorted(map(key, ray.episodes(run["run_id"]))) == sorted(
            map(key, local.episodes(run["run_id"]))
        )
        assert [e["return"] for e in ray.episodes(run["run_id"])] == [
            e["return"] for e in local.episodes(run["run_id"])
        ]


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gengap.scripts.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("grid", "extra", "message"),
    [
        ("num_train_level = [5]", [], "unknown field in grid 'num_train_level'; did you mean"),
        ("num_train_levels = []", [], "grid.num_train_levels is an empty list"),
        ("num_train_levels = 5", [], "grid.num_train_levels must be a list of values"),
        ("num_train_levels = [5]", ["--scale", "0"], "--scale must be a number > 0"),
        ("num_train_levels = [5]", ["--backend", "rya"], "backend"),
    ],
)
def test_bad_sweep_input_is_one_line_and_exit_2(tmp_path, grid, extra, message):
    path = tmp_path / "bad.toml"
    path.write_text(f'name = "bad"\nenv_id = "{ENV}"\nout_dir = "{tmp_path}/o"\n[grid]\n{grid}\n')
    result = _cli("sweep", str(path), *extra)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "o" / "runs").exists() or not any((tmp_path / "o" / "runs").iterdir())


def test_ray_address_that_does_not_answer_is_one_line_within_seconds(tmp_path):
    pytest.importorskip("ray")
    path = tmp_path / "s.toml"
    path.write_text(_toml(_study(tmp_path)))
    start = time.monotonic()
    result = _cli("sweep", str(path), "--backend", "ray", "--address", "127.0.0.1:9")
    elapsed = time.monotonic() - start
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Ray address '127.0.0.1:9' does not answer" in lines[0]
    assert elapsed < 60  # interpreter and imports included; the probe itself takes ~3 s
    assert not ResultsStore(tmp_path / "tiny" / "gengap.sqlite").list_runs()
