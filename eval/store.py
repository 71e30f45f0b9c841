"""The results store: one SQLite file holding runs, evaluation episodes and training curves.

Several processes (training runs, evaluation workers, sweeps) may write to the same file at
once. The store is built for that:

* WAL journal (readers never block the writer) and a busy timeout;
* every write is one ``BEGIN IMMEDIATE`` transaction: the write lock is taken up front, so a
  transaction never has to upgrade a read lock (in WAL mode such an upgrade fails with
  ``SQLITE_BUSY`` at once, without waiting), and a failure rolls the whole write back;
* ``database is locked`` errors that outlast the busy timeout are retried with backoff;
* one connection per process and thread, opened on first use (a store object can be passed
  to worker processes: it pickles as its path).

The schema version lives in ``PRAGMA user_version``; :data:`MIGRATIONS` upgrades older files
in place, and a file written by a newer gengap is refused.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from gengap.core import checks
from gengap.core.errors import InputError, InputFileExistsError
from gengap.envs.splits import PARTS as SPLIT_PARTS

__all__ = [
    "MIGRATIONS",
    "PARTS",
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "ResultsStore",
]

SCHEMA_VERSION = 1
# The parts a split can have (level parts and held-out combination parts): one list, in envs.
PARTS: tuple[str, ...] = SPLIT_PARTS
RUN_STATUSES: tuple[str, ...] = ("created", "running", "trained", "done", "failed", "interrupted")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_SQLITE_HEADER = b"SQLite format 3\x00"

_SCHEMA_V1 = (
    """
    CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY,
        created TEXT NOT NULL,
        updated TEXT NOT NULL,
        kind TEXT NOT NULL,
        env_id TEXT NOT NULL,
        algo TEXT NOT NULL,
        label TEXT NOT NULL DEFAULT '',
        seed INTEGER NOT NULL,
        status TEXT NOT NULL,
        config_json TEXT NOT NULL,
        split_json TEXT,
        versions_json TEXT,
        git_rev TEXT,
        run_dir TEXT
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS episodes (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
        part TEXT NOT NULL,
        level_seed INTEGER NOT NULL,
        episode_return REAL NOT NULL,
        normalized_return REAL,
        length INTEGER NOT NULL,
        success INTEGER,
        checkpoint_step INTEGER NOT NULL,
        eval_tag TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS curves (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
        step INTEGER NOT NULL,
        part TEXT NOT NULL,
        metric TEXT NOT NULL,
        value REAL NOT NULL,
        wall_time REAL NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS runs_by_group ON runs(env_id, algo, label)",
    "CREATE INDEX IF NOT EXISTS runs_by_dir ON runs(run_dir)",
    "CREATE INDEX IF NOT EXISTS episodes_by_run ON episodes(run_id, part, eval_tag, "
    "checkpoint_step)",
    "CREATE INDEX IF NOT EXISTS curves_by_run ON curves(run_id, metric, part, step)",
)

#: ``MIGRATIONS[v]`` upgrades a schema of version ``v`` to ``v + 1`` (inside one transaction).
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {}

_T = TypeVar("_T")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def _is_lock_error(error: sqlite3.OperationalError) -> bool:
    message = str(error).lower()
    return "locked" in message or "busy" in message


def _json_text(value: Any, name: str) -> str:
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{name} must be JSON-serializable, got {type(value).__name__}: {error}"
        ) from None


def _int64(name: str, value: Any, minimum: int = _INT64_MIN) -> int:
    """An integer SQLite stores (numpy's too), at least ``minimum``."""
    return checks.int_in(name, value, minimum, _INT64_MAX, numpy=True)


def _record_return(record: Mapping[str, Any], index: int) -> float:
    """The episode return: key ``return`` or, as ``EpisodeRecord`` names it, ``episode_return``."""
    if "return" in record and "episode_return" in record:
        if record["return"] != record["episode_return"]:
            raise ValueError(
                f"records[{index}] has both 'return' ({record['return']!r}) and "
                f"'episode_return' ({record['episode_return']!r}); give one"
            )
    key = "return" if "return" in record else "episode_return"
    if key not in record:
        raise ValueError(
            f"records[{index}] lacks 'return' (or 'episode_return') (keys: {sorted(record)})"
        )
    return float(checks.finite_number(f"records[{index}][{key!r}]", record[key]))


class ResultsStore:
    """Runs, evaluation episodes and training curves in one SQLite file.

    Args:
        path: The database file (created with its folder if missing), e.g.
            ``runs/gengap.sqlite``.
        timeout: Seconds SQLite waits for a lock before reporting ``database is locked``.
        max_retries: How many times a write that still found the database locked is retried
            (with randomized exponential backoff).

    Example:
        >>> store = ResultsStore("runs/gengap.sqlite")
        >>> store.add_run("ppo-s0", kind="online", env_id="gengap/minigrid-doorkey-5x5-v0",
        ...               algo="ppo", seed=0, config={"steps": 1000})
        >>> store.add_episodes("ppo-s0", [{"level_seed": 7, "return": 0.9, "length": 12}],
        ...                    part="test", step=1000)
    """

    def __init__(self, path: str | Path, *, timeout: float = 30.0, max_retries: int = 10) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive seconds, got {timeout!r}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries!r}")
        self.path = Path(path)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self._local = threading.local()
        self._check_file()

    def _check_file(self) -> None:
        """Refuse, on open, a path that is not an SQLite file (a folder, or a file that was
        overwritten with other bytes), naming it: found later, deep in a run, it would be
        "sqlite3.DatabaseError: file is not a database" and a half-made run folder."""
        if self.path.exists() and not self.path.is_file():
            raise InputFileExistsError(
                f"results store {str(self.path)!r} is not a file; give the path of an SQLite file"
            )
        if not self.path.is_file():
            return  # created on first use
        try:
            with self.path.open("rb") as handle:
                header = handle.read(len(_SQLITE_HEADER))
        except OSError as error:
            raise InputError(
                f"results store {str(self.path)!r} cannot be read ({error.strerror})"
            ) from None
        if header and header != _SQLITE_HEADER:  # an empty file is a new, empty database
            raise InputError(
                f"results store {str(self.path)!r} is not an SQLite database (it starts with "
                f"{header[:8]!r}); move the file away or point the run at another store"
            )

    # -- pickling: a store travels to worker processes as its settings, never a connection --
    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "timeout": self.timeout, "max_retries": self.max_retries}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = state["path"]
        self.timeout = state["timeout"]
        self.max_retries = state["max_retries"]
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"ResultsStore({str(self.path)!r})"

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close this thread's connection (others close when their thread/process ends)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None and self._local.pid == os.getpid():
            connection.close()
        self._local.connection = None

    # -- connection and schema ------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is not None and self._local.pid == os.getpid():
            return connection
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InputError(
                f"results store {str(self.path)!r}: cannot create its folder ({error.strerror})"
            ) from None
        try:
            # isolation_level=None: transactions are opened explicitly (BEGIN IMMEDIATE) below.
            connection = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        except sqlite3.OperationalError as error:
            raise InputError(
                f"results store {str(self.path)!r}: cannot open it ({error})"
            ) from None
        try:
            connection.row_factory = sqlite3.Row
            connection.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            connection.execute("PRAGMA foreign_keys = ON")
            mode = self._retry(lambda: connection.execute("PRAGMA journal_mode = WAL").fetchone())
            if str(mode[0]).lower() != "wal":
                raise InputError(
                    f"results store {str(self.path)!r} cannot use SQLite's WAL journal (got "
                    f"{mode[0]!r}); put the results store on a local file system"
                )
            self._ensure_schema(connection)
        except sqlite3.DatabaseError as error:
            connection.close()
            if isinstance(error, sqlite3.OperationalError) and _is_lock_error(error):
                raise
            # Checked on open: a file that is not a results store (overwritten, truncated,
            # another program's) is the user's to fix, named here, not a bug deep in a run.
            raise InputError(
                f"results store {str(self.path)!r} is not a readable SQLite database ({error}); "
                "move the file away or point the run at another store"
            ) from None
        except BaseException:
            connection.close()
            raise
        self._local.connection = connection
        self._local.pid = os.getpid()
        self._local.depth = 0
        return connection

    def _ensure_schema(self, connection: sqlite3.Connection) -> None:
        def current_version() -> int:
            return int(connection.execute("PRAGMA user_version").fetchone()[0])

        if self._retry(current_version) == SCHEMA_VERSION:
            return

        def upgrade() -> None:
            connection.execute("BEGIN IMMEDIATE")
            try:
                version = current_version()  # re-read: another process may have upgraded
                if version == 0:
                    for statement in _SCHEMA_V1:
                        connection.execute(statement)
                    version = 1
                if version > SCHEMA_VERSION:
                    raise RuntimeError(
                        f"{self.path} has results-store schema version {version}, newer than "
                        f"this gengap's {SCHEMA_VERSION}; upgrade gengap to read it"
                    )
                while version < SCHEMA_VERSION:
                    if version not in MIGRATIONS:
                        raise RuntimeError(f"no migration from results-store schema {version}")
                    MIGRATIONS[version](connection)
                    version += 1
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

        self._retry(upgrade)

    def _retry(self, operation: Callable[[], _T]) -> _T:
        for attempt in range(self.max_retries + 1):
            try:
                return operation()
            except sqlite3.OperationalError as error:
                if not _is_lock_error(error) or attempt == self.max_retries:
                    raise
                time.sleep(min(0.02 * 2**attempt, 1.0) * (0.5 + random.random()))
        raise AssertionError("unreachable")  # the loop returns or raises

    def _write(self, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        connection = self._connection()
        if self._local.depth > 0:  # inside transaction(): part of the caller's transaction
            return operation(connection)

        def attempt() -> _T:
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = operation(connection)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            return result

        return self._retry(attempt)

    def _read(
        self, sql: str, parameters: Mapping[str, Any] | tuple[Any, ...] = ()
    ) -> list[sqlite3.Row]:
        connection = self._connection()
        return self._retry(lambda: connection.execute(sql, parameters).fetchall())

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several writes into one transaction: all of them persist, or none.

        Example:
            >>> with store.transaction():
            ...     store.add_episodes(run_id, records, part="test", step=step)
            ...     store.set_status(run_id, "finished")
        """
        connection = self._connection()
        if self._local.depth > 0:
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        self._retry(lambda: connection.execute("BEGIN IMMEDIATE"))
        self._local.depth = 1
        try:
            yield
        except BaseException:
            self._local.depth = 0
            connection.execute("ROLLBACK")
            raise
        self._local.depth = 0
        try:
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    @property
    def schema_version(self) -> int:
        """The file's schema version (``PRAGMA user_version``)."""
        return int(self._read("PRAGMA user_version")[0][0])

    # -- runs ------------------------------------------------------------------------------
    def add_run(
        self,
        run_id: str,
        *,
        kind: str,
        env_id: str,
        algo: str,
        seed: int,
        config: Mapping[str, Any],
        split: Mapping[str, Any] | None = None,
        versions: Mapping[str, str] | None = None,
        git_rev: str | None = None,
        run_dir: str | Path | None = None,
        status: str = "created",
        label: str | None = None,
    ) -> None:
        """Insert a run, or update it when ``run_id`` exists.

        An update keeps the run's ``created`` time and, where the new value is ``None``, its
        stored ``split``, ``versions``, ``git_rev`` and ``run_dir``.

        Args:
            run_id: Unique id of the run.
            kind: What produced it, e.g. ``"online"``, ``"offline"``, ``"bc"``.
            env_id: Environment id it trained on.
            algo: Algorithm name.
            seed: Training seed.
            config: The full experiment config (JSON-serializable).
            split: The split as a dict (``Split.to_dict()``).
            versions: Library versions (:func:`gengap.core.provenance.environment_versions`).
            git_rev: Code revision (:func:`gengap.core.provenance.git_revision`).
            run_dir: Folder holding checkpoints and logs.
            status: One of :data:`RUN_STATUSES`.
            label: Name of the configuration, used to group seeds of the same experiment in
                reports; defaults to ``config["label"]`` or ``config["name"]`` or ``""``.

        Raises:
            ValueError: On an empty name, unknown status or out-of-range seed.
            TypeError: On a config/split/versions that is not JSON-serializable.
        """
        for value, name in ((run_id, "run_id"), (kind, "kind"), (env_id, "env_id"), (algo, "algo")):
            checks.string(name, value)
        seed = _int64("seed", seed)
        checks.one_of("run status", status, RUN_STATUSES)
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a mapping, got {type(config).__name__}")
        if label is None:
            label = str(config.get("label") or config.get("name") or "")
        row = {
            "run_id": run_id,
            "now": _now(),
            "kind": kind,
            "env_id": env_id,
            "algo": algo,
            "label": label,
            "seed": seed,
            "status": status,
            "config_json": _json_text(dict(config), "config"),
            "split_json": None if split is None else _json_text(dict(split), "split"),
            "versions_json": None if versions is None else _json_text(dict(versions), "versions"),
            "git_rev": git_rev,
            "run_dir": None if run_dir is None else str(run_dir),
        }
        self._write(
            lambda connection: connection.execute(
                """
                INSERT INTO runs (run_id, created, updated, kind, env_id, algo, label, seed,
                    status, config_json, split_json, versions_json, git_rev, run_dir)
                VALUES (:run_id, :now, :now, :kind, :env_id, :algo, :label, :seed, :status,
                    :config_json, :split_json, :versions_json, :git_rev, :run_dir)
                ON CONFLICT(run_id) DO UPDATE SET
                    updated = excluded.updated, kind = excluded.kind, env_id = excluded.env_id,
                    algo = excluded.algo, label = excluded.label, seed = excluded.seed,
                    status = excluded.status, config_json = excluded.config_json,
                    split_json = COALESCE(excluded.split_json, runs.split_json),
                    versions_json = COALESCE(excluded.versions_json, runs.versions_json),
                    git_rev = COALESCE(excluded.git_rev, runs.git_rev),
                    run_dir = COALESCE(excluded.run_dir, runs.run_dir)
                """,
                row,
            )
        )

    def _require_run(self, connection: sqlite3.Connection, run_id: str) -> None:
        if connection.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
            return
        known = [row[0] for row in connection.execute("SELECT run_id FROM runs")]
        close = difflib.get_close_matches(run_id, known, n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise KeyError(f"unknown run_id {run_id!r} in {self.path} ({len(known)} runs){hint}")

    def set_status(self, run_id: str, status: str) -> None:
        """Set a run's status (one of :data:`RUN_STATUSES`).

        Raises:
            KeyError: If the run does not exist.
            ValueError: On an unknown status.
        """
        checks.one_of("run status", status, RUN_STATUSES)

        def update(connection: sqlite3.Connection) -> None:
            self._require_run(connection, run_id)
            connection.execute(
                "UPDATE runs SET status = ?, updated = ? WHERE run_id = ?",
                (status, _now(), run_id),
            )

        self._write(update)

    @staticmethod
    def _run_dict(row: sqlite3.Row) -> dict[str, Any]:
        run = dict(row)
        for column, key in (
            ("config_json", "config"),
            ("split_json", "split"),
            ("versions_json", "versions"),
        ):
            text = run.pop(column)
            run[key] = None if text is None else json.loads(text)
        return run

    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run as a dict (``config``, ``split`` and ``versions`` decoded from JSON).

        Raises:
            KeyError: If the run does not exist (naming close matches).
        """
        rows = self._read("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            self._require_run(self._connection(), run_id)
        return self._run_dict(rows[0])

    def list_runs(
        self,
        *,
        env_id: str | None = None,
        algo: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        label: str | None = None,
        run_dir: str | Path | None = None,
    ) -> list[dict[str, Any]]:
        """Runs matching every given filter, oldest first (as :meth:`get_run` dicts)."""
        filters = {
            "env_id": env_id,
            "algo": algo,
            "kind": kind,
            "status": status,
            "label": label,
            "run_dir": None if run_dir is None else str(run_dir),
        }
        given = {key: value for key, value in filters.items() if value is not None}
        where = " AND ".join(f"{key} = :{key}" for key in given) or "1"
        rows = self._read(f"SELECT * FROM runs WHERE {where} ORDER BY created, run_id", given)
        return [self._run_dict(row) for row in rows]

    # -- episodes --------------------------------------------------------------------------
    def add_episodes(
        self,
        run_id: str,
        records: Iterable[Mapping[str, Any]],
        *,
        part: str,
        step: int,
        tag: str = "final",
    ) -> int:
        """Append evaluation episodes of one run, all in one transaction.

        Args:
            run_id: An existing run.
            records: Dicts with ``level_seed``, ``return``, ``length`` and optionally
                ``success`` (bool) and ``normalized_return``.
            part: Which split part the levels came from (:data:`PARTS`).
            step: Training step of the evaluated checkpoint.
            tag: Name of the evaluation (e.g. ``"final"``, ``"periodic"``).

        Returns:
            How many episodes were written.

        Raises:
            KeyError: If the run does not exist (nothing is written).
            ValueError, TypeError: On a malformed record (nothing is written).
        """
        part = checks.one_of("split part", part, PARTS)
        step = _int64("step", step, 0)
        checks.string("tag", tag)
        rows = []
        for index, record in enumerate(records):
            missing = [key for key in ("level_seed", "length") if key not in record]
            episode_return = _record_return(record, index)
            if missing:
                raise ValueError(f"records[{index}] lacks {missing} (keys: {sorted(record)})")
            if record.get("part", part) != part:
                raise ValueError(
                    f"records[{index}]['part'] is {record['part']!r} but part={part!r} was given"
                )
            success = record.get("success")
            if success is not None and success not in (0, 1):
                raise TypeError(
                    f"records[{index}]['success'] must be a bool or None, got {success!r}"
                )
            rows.append(
                (
                    run_id,
                    part,
                    _int64(f"records[{index}]['level_seed']", record["level_seed"]),
                    episode_return,
                    None
                    if record.get("normalized_return") is None
                    else float(checks.finite_number(f"records[{index}]['normalized_return']",
                                                    record["normalized_return"])),
                    _int64(f"records[{index}]['length']", record["length"], 0),
                    None if success is None else int(bool(success)),
                    step,
                    tag,
                )
            )

        def insert(connection: sqlite3.Connection) -> int:
            self._require_run(connection, run_id)
            connection.executemany(
                """
                INSERT INTO episodes (run_id, part, level_seed, episode_return, normalized_return,
                    length, success, checkpoint_step, eval_tag)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                rows,
            )
            return len(rows)

        return self._write(insert)

    def episodes(
        self,
        run_id: str | None = None,
        part: str | None = None,
        tag: str | None = None,
        step: int | None = None,
    ) -> list[dict[str, Any]]:
        """Evaluation episodes matching every given filter, in insertion order.

        Returns:
            Dicts with ``run_id``, ``part``, ``level_seed``, ``return``, ``normalized_return``,
            ``length``, ``success`` (bool or None), ``checkpoint_step``, ``eval_tag``: the
            record layout :func:`gengap.eval.metrics.score_table` reads.
        """
        if part is not None:
            checks.one_of("split part", part, PARTS)
        filters = {"run_id": run_id, "part": part, "eval_tag": tag, "checkpoint_step": step}
        given = {key: value for key, value in filters.items() if value is not None}
        where = " AND ".join(f"{key} = :{key}" for key in given) or "1"
        rows = self._read(
            "SELECT run_id, part, level_seed, episode_return, normalized_return, length, "
            f"success, checkpoint_step, eval_tag FROM episodes WHERE {where} ORDER BY id",
            given,
        )
        episodes = []
        for row in rows:
            episode = dict(row)
            episode["return"] = episode.pop("episode_return")
            if episode["success"] is not None:
                episode["success"] = bool(episode["success"])
            episodes.append(episode)
        return episodes

    # -- curves ----------------------------------------------------------------------------
    def add_curve_points(self, run_id: str, points: Iterable[Mapping[str, Any]]) -> int:
        """Append learning-curve points of one run, all in one transaction.

        Args:
            run_id: An existing run.
            points: Dicts with ``step``, ``part`` (:data:`PARTS`), ``metric`` (e.g.
                ``"return"``, ``"success"``), ``value`` and optionally ``wall_time`` (Unix
                seconds; defaults to now).

        Returns:
            How many points were written.

        Raises:
            KeyError: If the run does not exist (nothing is written).
            ValueError, TypeError: On a malformed point (nothing is written).
        """
        now = time.time()
        rows = []
        for index, point in enumerate(points):
            missing = [key for key in ("step", "part", "metric", "value") if key not in point]
            if missing:
                raise ValueError(f"points[{index}] lacks {missing} (keys: {sorted(point)})")
            wall_time = point.get("wall_time")
            rows.append(
                (
                    run_id,
                    _int64(f"points[{index}]['step']", point["step"], 0),
                    checks.one_of("split part", point["part"], PARTS),
                    checks.string(f"points[{index}]['metric']", point["metric"]),
                    float(checks.finite_number(f"points[{index}]['value']", point["value"])),
                    now
                    if wall_time is None
                    else float(checks.finite_number(f"points[{index}]['wall_time']",
                                                    wall_time)),
                )
            )

        def insert(connection: sqlite3.Connection) -> int:
            self._require_run(connection, run_id)
            connection.executemany(
                "INSERT INTO curves (run_id, step, part, metric, value, wall_time) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            return len(rows)

        return self._write(insert)

    def delete_curves_after(self, run_id: str, step: int) -> int:
        """Delete a run's curve points logged after ``step`` (a resumed run redoes them).

        Returns:
            How many points were deleted.

        Raises:
            KeyError: If the run does not exist.
        """
        step = _int64("step", step, 0)

        def delete(connection: sqlite3.Connection) -> int:
            self._require_run(connection, run_id)
            cursor = connection.execute(
                "DELETE FROM curves WHERE run_id = ? AND step > ?", (run_id, step)
            )
            return int(cursor.rowcount)

        return self._write(delete)

    def curves(
        self, run_id: str, part: str | None = None, metric: str | None = None
    ) -> list[dict[str, Any]]:
        """Learning-curve points of a run (``step``, ``part``, ``metric``, ``value``,
        ``wall_time``), ordered by metric, part and step."""
        if part is not None:
            checks.one_of("split part", part, PARTS)
        filters = {"run_id": run_id, "part": part, "metric": metric}
        given = {key: value for key, value in filters.items() if value is not None}
        where = " AND ".join(f"{key} = :{key}" for key in given)
        rows = self._read(
            "SELECT run_id, step, part, metric, value, wall_time FROM curves "
            f"WHERE {where} ORDER BY metric, part, step, id",
            given,
        )
        return [dict(row) for row in rows]

    # -- whole runs ------------------------------------------------------------------------
    def import_run(
        self,
        run: Mapping[str, Any],
        episodes: Iterable[Mapping[str, Any]],
        curves: Iterable[Mapping[str, Any]],
        *,
        config_extra: Mapping[str, Any] | None = None,
        run_dir: str | Path | None = None,
        status: str | None = None,
    ) -> None:
        """Write a run with all its results, replacing what the store held of it, in one
        transaction: afterwards the store holds this run exactly once, or (on an error)
        exactly what it held before.

        This is how a sweep's driver takes in a trial a worker ran with a store of its own.

        Args:
            run: A run dict as :meth:`get_run` returns it (from another store).
            episodes: Its episodes as :meth:`episodes` returns them.
            curves: Its curve points as :meth:`curves` returns them.
            config_extra: Keys merged into the run's config (e.g. the sweep's trial info).
            run_dir: The run folder here (default: the one in ``run``).
            status: The status to record (default: the one in ``run``).
        """
        run_id = str(run["run_id"])
        by_evaluation: dict[tuple[str, int, str], list[Mapping[str, Any]]] = {}
        for episode in episodes:
            key = (episode["part"], episode["checkpoint_step"], episode["eval_tag"])
            by_evaluation.setdefault(key, []).append(episode)
        with self.transaction():
            self.add_run(
                run_id,
                kind=run["kind"],
                env_id=run["env_id"],
                algo=run["algo"],
                seed=run["seed"],
                config={**run["config"], **(config_extra or {})},
                split=run.get("split"),
                versions=run.get("versions"),
                git_rev=run.get("git_rev"),
                run_dir=run_dir if run_dir is not None else run.get("run_dir"),
                status=status or run["status"],
                label=run.get("label"),
            )
            self._write(
                lambda connection: [
                    connection.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
                    for table in ("episodes", "curves")
                ]
            )
            for (part, step, tag), records in by_evaluation.items():
                self.add_episodes(run_id, records, part=part, step=step, tag=tag)
            points = list(curves)
            if points:
                self.add_curve_points(run_id, points)
