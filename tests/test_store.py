"""The SQLite results store: round trips, atomic writes, concurrent writers, schema versions."""

from __future__ import annotations

import pickle
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from gengap.core.provenance import environment_versions, git_revision
from gengap.eval import store as store_module
from gengap.eval.store import ResultsStore

ROWS_PER_TRANSACTION = 20
TRANSACTIONS_PER_WRITER = 50
WRITERS = 4


def _add_run(store: ResultsStore, run_id: str, seed: int = 0, **overrides: object) -> None:
    arguments: dict = {
        "kind": "online",
        "env_id": "gengap/minigrid-doorkey-5x5-v0",
        "algo": "ppo",
        "seed": seed,
        "config": {"label": "small", "steps": 1000},
        "split": {"train": {"start": 0, "stop": 10}},
    }
    arguments.update(overrides)
    store.add_run(run_id, **arguments)


def _episodes(count: int, offset: int = 0) -> list[dict]:
    return [
        {
            "level_seed": offset + i,
            "return": 0.5 * i,
            "length": 10 + i,
            "success": i % 2 == 0,
        }
        for i in range(count)
    ]


def test_round_trip(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "sub" / "gengap.sqlite")
    _add_run(
        store,
        "run-a",
        seed=3,
        versions={"numpy": "1.26.4"},
        git_rev="abc",
        run_dir=tmp_path / "run-a",
    )
    run = store.get_run("run-a")
    assert run["seed"] == 3 and run["label"] == "small" and run["status"] == "created"
    assert run["config"] == {"label": "small", "steps": 1000}
    assert run["split"] == {"train": {"start": 0, "stop": 10}}
    assert run["versions"] == {"numpy": "1.26.4"}
    assert run["run_dir"] == str(tmp_path / "run-a")

    records = [
        {
            "level_seed": np.int64(4),
            "return": np.float32(1.5),
            "length": 7,
            "success": True,
            "normalized_return": 0.25,
        },
        {"level_seed": 5, "episode_return": -1.0, "length": 3, "part": "test"},
    ]
    assert store.add_episodes("run-a", records, part="test", step=100, tag="final") == 2
    store.add_episodes("run-a", _episodes(3), part="train", step=100)
    episodes = store.episodes(run_id="run-a", part="test")
    assert episodes == [
        {
            "run_id": "run-a",
            "part": "test",
            "level_seed": 4,
            "return": 1.5,
            "normalized_return": 0.25,
            "length": 7,
            "success": True,
            "checkpoint_step": 100,
            "eval_tag": "final",
        },
        {
            "run_id": "run-a",
            "part": "test",
            "level_seed": 5,
            "return": -1.0,
            "normalized_return": None,
            "length": 3,
            "success": None,
            "checkpoint_step": 100,
            "eval_tag": "final",
        },
    ]
    assert len(store.episodes()) == 5
    assert len(store.episodes(tag="other")) == 0

    store.add_curve_points(
        "run-a",
        [
            {"step": 200, "part": "test", "metric": "return", "value": 2.0, "wall_time": 5.0},
            {"step": 100, "part": "test", "metric": "return", "value": 1.0},
            {"step": 100, "part": "train", "metric": "return", "value": 3.0},
        ],
    )
    curves = store.curves("run-a", part="test")
    assert [(c["step"], c["value"]) for c in curves] == [(100, 1.0), (200, 2.0)]
    assert curves[1]["wall_time"] == 5.0
    assert store.delete_curves_after("run-a", 100) == 1
    assert len(store.curves("run-a")) == 2

    # Upsert: same id updates the row but keeps its creation time.
    _add_run(store, "run-a", seed=4, status="running")
    again = store.get_run("run-a")
    assert again["seed"] == 4 and again["status"] == "running"
    assert again["created"] == run["created"]
    store.set_status("run-a", "done")
    _add_run(store, "run-b", algo="dqn")
    assert [r["run_id"] for r in store.list_runs(algo="ppo")] == ["run-a"]
    assert [r["run_id"] for r in store.list_runs(status="created")] == ["run-b"]
    assert [r["run_id"] for r in store.list_runs(run_dir=tmp_path / "run-a")] == ["run-a"]
    assert len(store.list_runs()) == 2
    assert store.schema_version == store_module.SCHEMA_VERSION

    # A pickled store (e.g. sent to a worker process) reopens the same file.
    clone = pickle.loads(pickle.dumps(store))
    assert clone.get_run("run-b")["algo"] == "dqn"
    store.close()
    clone.close()


def test_errors_name_the_problem(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "gengap.sqlite")
    _add_run(store, "ppo-seed0")
    with pytest.raises(KeyError, match="unknown run_id 'ppo-seed1'.*did you mean 'ppo-seed0'"):
        store.get_run("ppo-seed1")
    with pytest.raises(KeyError, match="unknown run_id"):
        store.add_episodes("ppo-seed1", _episodes(2), part="test", step=0)
    with pytest.raises(ValueError, match="unknown run status 'finshed'; did you mean"):
        store.set_status("ppo-seed0", "finshed")
    with pytest.raises(ValueError, match="unknown split part 'held-out'"):
        store.add_episodes("ppo-seed0", _episodes(2), part="held-out", step=0)
    with pytest.raises(TypeError, match="config must be JSON-serializable"):
        _add_run(store, "bad", config={"f": object()})
    with pytest.raises(ValueError, match=re.escape("records[1]['part'] is 'train'")):
        store.add_episodes(
            "ppo-seed0",
            [_episodes(1)[0], {**_episodes(1)[0], "part": "train"}],
            part="test",
            step=0,
        )


def test_failed_writes_leave_nothing_behind(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "gengap.sqlite")
    _add_run(store, "run-a")
    records = _episodes(30)
    records[15] = {**records[15], "return": float("nan")}
    with pytest.raises(ValueError, match=re.escape("records[15]['return'] must be a finite")):
        store.add_episodes("run-a", records, part="test", step=0)
    assert store.episodes() == []

    # Several writes grouped in one transaction: an error in the middle undoes all of them.
    with pytest.raises(RuntimeError, match="crash"):
        with store.transaction():
            store.add_episodes("run-a", _episodes(20), part="test", step=0)
            store.add_curve_points(
                "run-a", [{"step": 1, "part": "train", "metric": "return", "value": 1.0}]
            )
            store.set_status("run-a", "failed")
            raise RuntimeError("crash")
    assert store.episodes() == []
    assert store.curves("run-a") == []
    assert store.get_run("run-a")["status"] == "created"

    # An SQL-level failure (unknown run) rolls back the run that was added before it.
    with pytest.raises(KeyError):
        with store.transaction():
            _add_run(store, "run-b")
            store.add_episodes("run-c", _episodes(2), part="test", step=0)
    assert [r["run_id"] for r in store.list_runs()] == ["run-a"]

    with store.transaction():
        store.add_episodes("run-a", _episodes(20), part="test", step=0)
        store.set_status("run-a", "done")
    assert len(store.episodes()) == 20


# Each writer process runs this program (a fresh interpreter, like multiprocessing's spawn).
# The writers start writing together (after imports and connecting), so they contend.
_WRITER_PROGRAM = """
import pathlib, sys, time
from gengap.eval.store import ResultsStore

path, writer, transactions, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
store = ResultsStore(path)
run_id = f"writer-{writer}"
store.add_run(run_id, kind="online", env_id="env", algo="ppo", seed=writer, config={})
folder = pathlib.Path(path).parent
(folder / f"ready-{writer}").touch()
while not (folder / "go").exists():
    time.sleep(0.005)
for transaction in range(transactions):
    records = [
        {"level_seed": transaction * rows + i, "return": float(i), "length": 1}
        for i in range(rows)
    ]
    store.add_episodes(run_id, records, part="test", step=transaction)
"""


def test_concurrent_process_writers_lose_no_rows(tmp_path: Path) -> None:
    path = str(tmp_path / "gengap.sqlite")
    arguments = [str(TRANSACTIONS_PER_WRITER), str(ROWS_PER_TRANSACTION)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER_PROGRAM, path, str(writer), *arguments],
            stderr=subprocess.PIPE,
            text=True,
        )
        for writer in range(WRITERS)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < WRITERS and time.monotonic() < deadline:
        if any(process.poll() not in (None, 0) for process in processes):
            break
        time.sleep(0.01)
    (tmp_path / "go").touch()
    failures = []
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        if process.returncode != 0:
            failures.append(stderr)
    assert failures == []
    store = ResultsStore(path)
    expected_levels = list(range(TRANSACTIONS_PER_WRITER * ROWS_PER_TRANSACTION))
    for writer in range(WRITERS):
        episodes = store.episodes(run_id=f"writer-{writer}")
        assert sorted(e["level_seed"] for e in episodes) == expected_levels
    assert len(store.episodes()) == WRITERS * len(expected_levels)
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_threads_share_a_store_object(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "gengap.sqlite")
    _add_run(store, "run-a")
    errors: list[BaseException] = []

    def write(thread: int) -> None:
        try:
            for transaction in range(10):
                offset = (thread * 10 + transaction) * 5
                store.add_episodes("run-a", _episodes(5, offset), part="train", step=0)
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(e["level_seed"] for e in store.episodes()) == list(range(200))


def test_schema_version_and_migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "gengap.sqlite"
    store = ResultsStore(path)
    _add_run(store, "run-a")
    store.close()

    def add_note_column(connection: sqlite3.Connection) -> None:
        connection.execute("ALTER TABLE runs ADD COLUMN note TEXT DEFAULT 'migrated'")

    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(store_module.MIGRATIONS, 1, add_note_column)
    upgraded = ResultsStore(path)
    assert upgraded.get_run("run-a")["note"] == "migrated"
    assert upgraded.schema_version == 2
    upgraded.close()

    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 1)
    with pytest.raises(RuntimeError, match="schema version 2, newer than this gengap's 1"):
        ResultsStore(path).list_runs()


def test_provenance(tmp_path: Path) -> None:
    versions = environment_versions()
    assert versions["numpy"] == np.__version__
    assert re.fullmatch(r"3\.11\.\d+", versions["python"])
    assert "not-a-real-distribution" not in environment_versions(("not-a-real-distribution",))
    assert git_revision(tmp_path) is None
    revision = git_revision(Path(__file__).resolve().parent.parent)
    assert revision is None or re.fullmatch(r"[0-9a-f]{40}(-dirty)?", revision)


def test_writes_retry_while_another_process_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "gengap.sqlite"
    store = ResultsStore(path, timeout=0.05, max_retries=10)
    _add_run(store, "run-a")
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock, as a busy writer would
    release = threading.Timer(0.3, lambda: blocker.execute("COMMIT"))
    release.start()
    # The busy timeout (0.05 s) runs out several times before the lock is released; the
    # retries with backoff carry the write through.
    assert store.add_episodes("run-a", _episodes(5), part="test", step=0) == 5
    release.join()
    assert len(store.episodes()) == 5

    impatient = ResultsStore(path, timeout=0.05, max_retries=1)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            impatient.add_episodes("run-a", _episodes(5), part="test", step=0)
    finally:
        blocker.execute("ROLLBACK")
    assert len(store.episodes()) == 5
    blocker.close()
