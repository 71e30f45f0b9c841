"""Files: atomic writes, atomic directories, and the one reader of JSON and TOML files.

A reader never sees a half-written file or folder: files are written to a temporary
sibling and renamed into place (:func:`atomic_write_bytes`), folders are filled in a
hidden sibling and renamed into place (:func:`atomic_directory`).

Every JSON or TOML file gengap reads (experiment, study and split files, run-folder and
agent files, dataset cards) goes through :func:`read_json` / :func:`read_toml`, and every
JSON or TOML text a user wrote through :func:`parse_json` / :func:`parse_toml`, so a
missing, unreadable or malformed file is one :class:`~gengap.core.errors.InputError`
naming the file, the line and the column.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gengap.core.errors import InputError, InputFileNotFoundError

__all__ = [
    "atomic_directory",
    "atomic_write_bytes",
    "atomic_write_text",
    "parse_json",
    "parse_toml",
    "read_json",
    "read_text",
    "read_toml",
]


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; on success it replaces ``path``.

    On an exception the temporary directory is removed and ``path`` is untouched.
    An existing ``path`` is first renamed aside, so the swap is two renames; a crash
    between them leaves the previous version under ``.<name>.old-*`` beside it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
        os.replace(target, old / target.name)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_text(path: str | Path, what: str) -> str:
    """The UTF-8 text of file ``path``.

    Args:
        path: The file.
        what: What the file is, for messages (``"experiment file"``, ``"dataset card"``).

    Raises:
        InputFileNotFoundError: If ``path`` does not exist or is not a file.
        InputError: If it is not UTF-8 text or cannot be read.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileNotFoundError(f"{what} {str(path)!r} does not exist")
    if not path.is_file():
        raise InputFileNotFoundError(f"{what} {str(path)!r} is not a file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InputError(
            f"{what} {str(path)!r} is not UTF-8 text (bad byte at offset {error.start})"
        ) from None
    except OSError as error:
        raise InputError(f"{what} {str(path)!r} cannot be read: {error.strerror}") from None


def parse_json(text: str, what: str) -> Any:
    """The value in JSON ``text``; malformed text is an InputError naming ``what``
    (e.g. ``"run folder config '/x/config.json'"``), the line and the column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(
            f"{what}: invalid JSON: {error.msg} (at line {error.lineno}, column {error.colno})"
        ) from None


# tomllib ends its messages with "(at line L, column C)" or "(at end of document)".
_TOML_AT_END = re.compile(r"\s*\(at end of document\)$")


def _end_position(text: str) -> tuple[int, int]:
    """Line and column (1-based) just past the last character of ``text``."""
    line = text.count("\n") + 1
    return line, len(text) - (text.rfind("\n") + 1) + 1


def parse_toml(text: str, what: str) -> dict[str, Any]:
    """The table in TOML ``text``; malformed text is an InputError naming ``what``, the
    line and the column (also for errors tomllib places "at end of document")."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        if _TOML_AT_END.search(message):
            line, column = _end_position(text)
            message = _TOML_AT_END.sub(f" (at line {line}, column {column}: end of document)",
                                       message)
        raise InputError(f"{what}: invalid TOML: {message}") from None


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """The value in JSON file ``path``; the one reader of JSON files.

    Raises:
        InputFileNotFoundError: If ``path`` does not exist or is not a file.
        InputError: If it is not UTF-8 text or not valid JSON (naming the line and column).
    """
    return parse_json(read_text(path, what), f"{what} {str(path)!r}")


def read_toml(path: str | Path, what: str = "TOML file") -> dict[str, Any]:
    """The table in TOML file ``path``; the one reader of TOML files.

    Raises:
        InputFileNotFoundError: If ``path`` does not exist or is not a file.
        InputError: If it is not UTF-8 text or not valid TOML (naming the line and column).
    """
    return parse_toml(read_text(path, what), f"{what} {str(path)!r}")
