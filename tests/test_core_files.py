"""gengap.core.files: atomic writes and folders, and the one JSON / TOML reader whose errors
name the file, the line and the column."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gengap.core.errors import InputError, InputFileNotFoundError
from gengap.core.files import (
    atomic_directory,
    atomic_write_text,
    parse_toml,
    read_json,
    read_toml,
)


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("seeds = [0, 1\n", "line 2, column 1"),  # tomllib: "(at end of document)"
        ("a = 1\nseeds = [0,\n  1", "line 3, column 4"),  # no final newline
        ('name = "x"\nseeds = [0, 1\nother = 2\n', "line 3, column 1"),
    ],
)
def test_toml_syntax_errors_name_file_line_and_column(tmp_path: Path, text: str, position: str):
    path = tmp_path / "study.toml"
    path.write_text(text)
    with pytest.raises(InputError) as raised:
        read_toml(path, "study file")
    message = str(raised.value)
    assert message.startswith(f"study file {str(path)!r}: invalid TOML: ")
    assert f"(at line {position.split('line ')[1]}" in message
    assert "\n" not in message


def test_toml_text_error_names_its_source():
    with pytest.raises(InputError, match=r"^split TOML: invalid TOML: .*\(at line 1, column"):
        parse_toml("train = {", "split TOML")


def test_json_errors_name_file_line_and_column(tmp_path: Path):
    path = tmp_path / "run.json"
    path.write_text('{\n  "a": 1,\n  "b": \n}')
    with pytest.raises(InputError, match=r"^run info '.*run\.json': invalid JSON: Expecting "
                                         r"value \(at line 4, column 1\)$"):
        read_json(path, "run info")
    with pytest.raises(InputFileNotFoundError, match=r"^run info '.*nope\.json' does not exist$"):
        read_json(tmp_path / "nope.json", "run info")
    with pytest.raises(InputFileNotFoundError, match="is not a file"):
        read_json(tmp_path, "run info")
    path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(InputError, match=r"is not UTF-8 text \(bad byte at offset 7\)"):
        read_json(path, "run info")


def test_atomic_write_replaces_whole_files_and_leaves_no_temporaries(tmp_path: Path):
    path = tmp_path / "sub" / "file.txt"
    atomic_write_text(path, "first")
    atomic_write_text(path, "second")
    assert path.read_text() == "second"
    assert os.listdir(path.parent) == ["file.txt"]


def test_atomic_directory_keeps_the_old_folder_on_failure(tmp_path: Path):
    target = tmp_path / "agent"
    with atomic_directory(target) as staging:
        (staging / "a").write_text("1")
        assert not target.exists()  # filled beside the target, renamed into place at the end
    with pytest.raises(RuntimeError, match="killed"), atomic_directory(target) as staging:
        (staging / "a").write_text("2")
        raise RuntimeError("killed")
    assert (target / "a").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent"]
