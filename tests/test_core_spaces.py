"""gengap.core.spaces: the one space <-> JSON codec writes one encoding and reads both of the
encodings gengap wrote before it (agent files: nested bounds; dataset cards: flat bounds).
tests/test_legacy_formats.py reads real files of both kinds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gymnasium import spaces

from gengap.core.errors import InputError, InputTypeError
from gengap.core.spaces import space_from_dict, space_to_dict

SPACES = [
    spaces.Box(0.0, 1.0, (3, 7, 7), np.float32),
    spaces.Box(0, 255, (8, 8, 3), np.uint8),
    spaces.Box(-np.inf, np.inf, (5,), np.float64),
    spaces.Box(np.array([[0.0, -1.0], [-3.0, -np.inf]]), np.array([[1.0, 2.0], [3.0, np.inf]])),
    spaces.Discrete(7, start=-1),
    spaces.MultiDiscrete([3, 4, 5]),
    spaces.MultiBinary([2, 3]),
    spaces.Dict({"direction": spaces.Discrete(4),
                 "entities": spaces.Box(np.zeros((2, 3)), np.array([[1, 2, 3], [4, 5, 6.0]]))}),
]


def _same(a: spaces.Space, b: spaces.Space) -> None:
    assert type(a) is type(b)
    if isinstance(a, spaces.Box):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(a.low, b.low)
        np.testing.assert_array_equal(a.high, b.high)
    elif isinstance(a, spaces.Dict):
        assert list(a.spaces) == list(b.spaces)
        for key in a.spaces:
            _same(a[key], b[key])
    else:
        assert a == b


@pytest.mark.parametrize("space", SPACES, ids=lambda s: type(s).__name__)
def test_round_trip_through_json_text(space: spaces.Space):
    _same(space_from_dict(json.loads(json.dumps(space_to_dict(space)))), space)


def test_the_encoding_is_the_agent_files_one():
    box = spaces.Box(np.array([0.0, -np.inf], np.float32), np.array([1.0, 1.0], np.float32))
    assert space_to_dict(box) == {"type": "Box", "shape": [2], "dtype": "float32",
                                  "low": [0.0, "-inf"], "high": 1.0}
    grid = spaces.Box(np.zeros((2, 2)), np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert space_to_dict(grid)["high"] == [[1.0, 2.0], [3.0, 4.0]]  # nested, as tolist()


def test_reads_the_flat_bounds_older_dataset_cards_hold():
    card = {"type": "Box", "shape": [2, 2], "dtype": "float32",
            "low": 0.0, "high": [1.0, 2.0, "inf", 4.0]}
    box = space_from_dict(card)
    np.testing.assert_array_equal(box.high, np.array([[1.0, 2.0], [np.inf, 4.0]], np.float32))
    with pytest.raises(InputError, match=r"has 3 entries, its shape \(2, 2\) needs 4"):
        space_from_dict({**card, "high": [1.0, 2.0, 3.0]})


def test_bad_saved_spaces_are_one_line():
    with pytest.raises(InputError, match=r"unknown saved space type 'Boxx'; did you mean 'Box'"):
        space_from_dict({"type": "Boxx"})
    with pytest.raises(InputError, match=r"a saved Discrete space lacks 'n'"):
        space_from_dict({"type": "Discrete"})
    with pytest.raises(InputTypeError, match=r"cannot save a space of type Tuple"):
        space_to_dict(spaces.Tuple([spaces.Discrete(2)]))
