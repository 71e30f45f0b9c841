"""gengap.core.checks: one check per kind of value; each refusal names the argument, what
was expected and what was given, with InputTypeError for a wrong type and InputError for
a value out of range."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest

from gengap.core import checks
from gengap.core.errors import InputError, InputTypeError
from gengap.scripts import argtypes


@pytest.mark.parametrize(
    ("check", "value", "error", "message"),
    [
        (checks.positive_int, 0, InputError, "n must be a positive integer, got 0"),
        (checks.positive_int, True, InputTypeError, "n must be a positive integer, got True"),
        (checks.positive_int, 2.0, InputTypeError, "n must be a positive integer, got 2.0"),
        (checks.positive_int, np.int64(3), InputTypeError, "n must be a positive integer, got"),
        (checks.non_negative_int, -1, InputError, "n must be a non-negative integer, got -1"),
        (checks.non_negative_int, "3", InputTypeError,
         "n must be a non-negative integer, got '3'"),
        (checks.seed, 2**32, InputError, r"n must be an integer in \[0, 2\*\*32 - 1\], got"),
        (checks.seed, -1, InputError, r"n must be an integer in \[0, 2\*\*32 - 1\], got -1"),
        (checks.boolean, 1, InputTypeError, "n must be true or false, got 1"),
        (checks.number, "1", InputTypeError, "n must be a number, got '1'"),
        (checks.finite_number, math.inf, InputError, "n must be a finite number, got inf"),
        (checks.positive_number, 0, InputError, "n must be a number > 0, got 0"),
        (checks.positive_number, math.nan, InputError, "n must be a number > 0, got nan"),
        (checks.non_negative_number, -0.5, InputError, "n must be a number >= 0, got -0.5"),
        (checks.fraction, 1.5, InputError, r"n must be a number in \[0, 1\], got 1.5"),
        (checks.fraction, False, InputTypeError, r"n must be a number in \[0, 1\], got False"),
        (checks.string, "", InputTypeError, "n must be a non-empty string, got ''"),
        (checks.mapping, [1], InputTypeError, "n must be a mapping, got list"),
    ],
)
def test_refusals_name_argument_expectation_and_value(check, value, error, message):
    with pytest.raises(error, match=f"^{message}"):
        check("n", value)
    assert issubclass(error, InputError)


def test_accepted_values_come_back():
    assert checks.positive_int("n", 3) == 3
    assert checks.positive_int("n", np.int64(3), numpy=True) == 3
    assert type(checks.positive_int("n", np.int64(3), numpy=True)) is int
    assert checks.non_negative_int("n", 0) == 0
    assert checks.seed("n", np.uint32(2**32 - 1)) == 2**32 - 1
    assert checks.boolean("n", np.bool_(True)) is True
    assert checks.fraction("n", 1) == 1
    assert checks.number_in("n", 0.5, 0, 1, low_open=True, high_open=True) == 0.5
    assert checks.optional(checks.positive_int, "n", None) is None
    assert checks.one_of("mode", "greedy", ("greedy", "sampled")) == "greedy"


def test_intervals_read_the_mathematical_way():
    with pytest.raises(InputError, match=r"^gamma must be a number in \(0, 1\], got 0$"):
        checks.number_in("gamma", 0, 0, 1, low_open=True)
    with pytest.raises(InputError, match=r"^x must be a number in \(0, 1\), got 1$"):
        checks.fraction("x", 1, open_ends=True)
    with pytest.raises(InputError, match=r"^k must be an integer in \[1, 500\], got 501$"):
        checks.int_in("k", 501, 1, 500)
    with pytest.raises(InputError, match=r"^k must be an integer >= 2, got 1$"):
        checks.int_in("k", 1, 2)
    with pytest.raises(InputError, match=r"^k must be a positive integer or None, got 0$"):
        checks.optional(checks.positive_int, "k", 0)


def test_one_of_suggests_close_matches():
    with pytest.raises(InputError, match=r"^unknown action mode 'gredy'; did you mean 'greedy'\? "
                                         r"\(expected one of: greedy, sampled\)$"):
        checks.one_of("action mode", "gredy", ("sampled", "greedy"))
    with pytest.raises(InputError, match="unknown action mode \\['x'\\]"):
        checks.one_of("action mode", ["x"], {"sampled", "greedy"})  # unhashable: not in a set


def test_argparse_types_are_adapters_over_the_checks():
    assert argtypes.positive_int("--seeds")("3") == 3
    for parse, text, message in [
        (argtypes.positive_int("--seeds"), "0", "--seeds must be a positive integer, got 0"),
        (argtypes.positive_int("--seeds"), "x", "--seeds must be a positive integer, got 'x'"),
        (argtypes.non_negative_int("--seed"), "-1",
         "--seed must be a non-negative integer, got -1"),
        (argtypes.positive_number("--scale"), "0", "--scale must be a number > 0, got 0"),
        (argtypes.positive_number("--scale"), "lots",
         "--scale must be a number > 0, got 'lots'"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError) as raised:
            parse(text)
        assert str(raised.value) == message
