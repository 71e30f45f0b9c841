"""Argument types shared by the ``gengap`` subcommands (cli.py and the command modules
beside it): each parses one flag's text or refuses it in one line naming the flag."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable

# More worker processes than this per core only contend for the cores (and thousands
# would exhaust memory).
WORKERS_PER_CORE = 4


def _int_at_least(name: str, minimum: int, kind: str) -> Callable[[str], int]:
    """An integer >= ``minimum``; refused as "NAME must be a KIND integer, got ..."."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name} must be a {kind} integer, got {text!r}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be a {kind} integer, got {value}")
        return value

    return parse


def positive_int(name: str) -> Callable[[str], int]:
    return _int_at_least(name, 1, "positive")


def worker_count(name: str) -> Callable[[str], int]:
    """A positive number of worker processes, at most :data:`WORKERS_PER_CORE` per CPU core:
    each is a process of its own with a copy of the agent, so far more than the cores only
    contend for them (and thousands would exhaust memory)."""
    positive = positive_int(name)

    def parse(text: str) -> int:
        value = positive(text)
        limit = WORKERS_PER_CORE * (os.cpu_count() or 1)
        if value > limit:
            raise argparse.ArgumentTypeError(
                f"{name} must be at most {limit} ({WORKERS_PER_CORE} per CPU core here), got "
                f"{value}: each worker is a process with its own copy of the agent"
            )
        return value

    return parse


def non_negative_int(name: str) -> Callable[[str], int]:
    return _int_at_least(name, 0, "non-negative")


def key_value(name: str) -> Callable[[str], tuple[str, object]]:
    """``KEY=VALUE`` with VALUE read as JSON when it parses (numbers, true, lists), else text."""

    def parse(text: str) -> tuple[str, object]:
        key, sep, raw = text.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"{name} must look like KEY=VALUE, got {text!r}")
        try:
            value: object = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        return key, value

    return parse
