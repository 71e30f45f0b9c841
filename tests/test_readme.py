"""The README's examples work as written.

Every ``gengap ...`` line of the README's shell blocks must be accepted by the CLI's parser
(a renamed or removed flag fails here, not in a user's terminal), every file it names must
exist, and the Python blocks run as written, in order, in one scratch folder (the offline
block reads the dataset that the shell block before it collects).
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from gengap.scripts.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def _blocks(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(README.read_text()) if lang == language]


def _gengap_commands() -> list[str]:
    """Every ``gengap`` command of the shell blocks (and of untagged blocks), joined over
    backslash continuations, without trailing comments."""
    commands = []
    for body in _blocks("bash") + _blocks(""):
        for line in body.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("gengap "):
                commands.append(line)
    return commands


COMMANDS = _gengap_commands()


def test_the_readme_has_commands_and_python_examples() -> None:
    assert len(COMMANDS) >= 20
    assert len(_blocks("python")) >= 3


@pytest.mark.parametrize("command", COMMANDS)
def test_every_readme_command_parses(command: str) -> None:
    argv = shlex.split(command)[1:]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse rejected it (and printed why)
        pytest.fail(f"the CLI rejects the README's {command!r} (exit {exit_.code})")
    assert isinstance(args, argparse.Namespace)
    for word in argv:  # files the example ships with must be there
        if word.startswith(("studies/", "benchmarks/")):
            assert (ROOT / word).exists(), f"{command!r} names {word}, which is not in the repo"


def test_the_python_examples_run_as_written(tmp_path: Path) -> None:
    """The tour, the robotics and the offline-datasets examples, with the dataset the
    README's ``gengap collect`` line makes (the LM example is a fragment; its agent is
    exercised in tests/test_lm_policy.py)."""
    collect = next(c for c in COMMANDS if c.startswith("gengap collect") and "chaser" in c)
    subprocess.run(
        [sys.executable, "-m", "gengap.scripts.cli", *shlex.split(collect)[1:]],
        cwd=tmp_path, check=True, capture_output=True, text=True,
    )  # fmt: skip
    for block in _blocks("python"):
        if "LMPolicyConfig" in block:
            continue
        result = subprocess.run(
            [sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True
        )
        assert result.returncode == 0, f"README example failed:\n{block}\n{result.stderr}"
    assert (tmp_path / "split.toml").exists()  # the tour saves its split
