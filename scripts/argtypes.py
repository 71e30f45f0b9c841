"""Argument types shared by the ``gengap`` subcommands (cli.py and the command modules
beside it): each parses one flag's text or refuses it in one line naming the flag."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any, TypeVar

from gengap.core import checks
from gengap.core.errors import InputError

T = TypeVar("T")

# More worker processes than this per core only contend for the cores (and thousands
# would exhaust memory).
WORKERS_PER_CORE = 4


def _adapter(check: Callable[[str, Any], T], name: str, parse: Callable[[str], Any]
             ) -> Callable[[str], T]:
    """An argparse type over :mod:`gengap.core.checks`: ``parse`` reads the text (text it
    cannot read goes to ``check`` as it is, which refuses it showing the text), and an
    InputError becomes the ArgumentTypeError argparse reports as one line."""

    def convert(text: str) -> T:
        try:
            value = parse(text)
        except ValueError:
            value = text
        try:
            return check(name, value)
        except InputError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def positive_int(name: str) -> Callable[[str], int]:
    """An integer >= 1 (:func:`gengap.core.checks.positive_int`)."""
    return _adapter(checks.positive_int, name, int)


def non_negative_int(name: str) -> Callable[[str], int]:
    """An integer >= 0 (:func:`gengap.core.checks.non_negative_int`)."""
    return _adapter(checks.non_negative_int, name, int)


def positive_number(name: str) -> Callable[[str], float]:
    """A number > 0 (:func:`gengap.core.checks.positive_number`)."""
    return _adapter(checks.positive_number, name, _number)


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
