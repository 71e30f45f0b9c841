"""The task-combination axis of Split: construction checks, protocols, round trips."""

from __future__ import annotations

import itertools
import json
import pickle

import pytest

from gengap.envs.combinations import (
    CombinationAxis,
    combinatorial_split,
    extrapolation_split,
    iid_split,
    random_combinatorial_split,
)
from gengap.envs.splits import LevelSet, Split

FACTORS = {"color": ("red", "green", "blue", "yellow"), "shape": ("square", "circle", "triangle")}
EVERY = set(itertools.product(*FACTORS.values()))


def _mixed() -> Split:
    return extrapolation_split(
        FACTORS,
        {"color": ("yellow",)},
        held_out=[("red", "square"), ("green", "circle")],
        levels=Split.levels_split(100, num_validation_levels=10, name="lv"),
        name="mixed",
    )


# -- construction errors --------------------------------------------------------------
def test_overlapping_combinations_are_named() -> None:
    with pytest.raises(ValueError, match=r"train and combinatorial combinations overlap in 1 .*"
                       r"\('red', 'square'\)"):
        CombinationAxis(
            FACTORS,
            train=[("red", "square"), ("green", "circle"), ("red", "circle"), ("green", "square")],
            combinatorial=[("red", "square")],
        )


def test_non_combinatorial_held_out_names_combos_and_missing_values() -> None:
    held_out = [("red", shape) for shape in FACTORS["shape"]]
    with pytest.raises(ValueError, match=r"not combinatorial: 3 held-out combination\(s\)") as err:
        combinatorial_split(FACTORS, held_out)
    message = str(err.value)
    assert "('red', 'square') needs color='red'" in message
    assert "('red', 'triangle') needs color='red'" in message


def test_extrapolation_must_use_an_unseen_value() -> None:
    train = [c for c in EVERY if c != ("red", "square")]
    with pytest.raises(ValueError, match=r"not extrapolation: 1 combination.*\('red', 'square'\)"):
        CombinationAxis(FACTORS, train=train, extrapolation=[("red", "square")])


def test_undeclared_values_and_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"uses color='pink', which is not a declared value"):
        CombinationAxis(FACTORS, train=[("pink", "square")])
    with pytest.raises(ValueError, match=r"has 1 value\(s\); expected one per factor"):
        CombinationAxis(FACTORS, train=[("red",)])
    with pytest.raises(ValueError, match="train must hold at least one combination"):
        CombinationAxis(FACTORS, train=[])
    with pytest.raises(ValueError, match=r"factors\['shape'\] repeats value\(s\) 'square'"):
        CombinationAxis({"shape": ("square", "square")}, train=[("square",)])
    with pytest.raises(TypeError, match="must be a string or an integer, got True"):
        CombinationAxis({"n": (1, True)}, train=[(1,)])
    with pytest.raises(ValueError, match=r"unknown factor 'colour'; did you mean 'color'"):
        extrapolation_split(FACTORS, {"colour": ("yellow",)})
    with pytest.raises(ValueError, match=r"undeclared value\(s\) 'pink'"):
        extrapolation_split(FACTORS, {"color": ("pink",)})
    with pytest.raises(ValueError, match="already extrapolation combinations"):
        extrapolation_split(FACTORS, {"color": ("yellow",)}, held_out=[("yellow", "square")])


def test_split_rejects_wrong_axis_type() -> None:
    with pytest.raises(TypeError, match="Split.combinations must be a CombinationAxis"):
        Split(LevelSet.range(0, 5), LevelSet.range(5, 5), combinations={"train": []})  # type: ignore[arg-type]


# -- protocols ------------------------------------------------------------------------
def test_protocol_helpers_build_the_expected_parts() -> None:
    iid = iid_split(FACTORS)
    assert iid.combinations is not None
    assert set(iid.combinations_for("train")) == EVERY
    assert iid.combination_parts == ()

    combo = combinatorial_split(FACTORS, [("red", "square"), ("blue", "circle")])
    assert combo.combinations_for("combinatorial") == {("red", "square"), ("blue", "circle")}
    assert set(combo.combinations_for("train")) == EVERY - {("red", "square"), ("blue", "circle")}
    assert combo.combinations_for("test") == combo.combinations_for("train")

    split = _mixed()
    assert split.all_parts == ("train", "validation", "test", "combinatorial", "extrapolation")
    assert split.combinations_for("extrapolation") == {
        ("yellow", s) for s in FACTORS["shape"]
    }
    train = split.combinations_for("train")
    assert not any(c[0] == "yellow" for c in train)
    assert split.combinations_for("validation") == train


def test_combination_parts_use_the_test_levels() -> None:
    split = _mixed()
    assert split.levels("combinatorial") == split.test
    assert split.levels("extrapolation") == split.test
    excluded = split.with_excluded("combinatorial", [200])
    assert 200 not in excluded.levels("test") and 200 not in excluded.levels("combinatorial")
    level_only = Split.levels_split(10)
    with pytest.raises(ValueError, match=r"has no combinatorial part; it has \['train', 'test'\]"):
        level_only.levels("combinatorial")
    with pytest.raises(ValueError, match="has no combination axis"):
        level_only.combinations_for("train")
    with pytest.raises(ValueError, match=r"unknown split part 'combinatoral'; did you mean"):
        split.combinations_for("combinatoral")
    with pytest.raises(ValueError, match="has no combinatorial part"):
        iid_split(FACTORS).combinations_for("combinatorial")


def test_random_combinatorial_split_keeps_every_value_in_training() -> None:
    factors = {"color": tuple(f"c{i}" for i in range(6)), "shape": tuple(range(5))}
    for seed in range(20):
        split = random_combinatorial_split(factors, 0.4, seed)
        axis = split.combinations
        assert axis is not None
        assert len(axis.combinatorial) == 12
        seen = axis.training_values()
        assert all(seen[name] == set(values) for name, values in factors.items())
    different = {random_combinatorial_split(factors, 0.4, s).combinations for s in range(5)}
    assert len(different) > 1
    same = random_combinatorial_split(factors, 0.4, 3) == random_combinatorial_split(
        factors, 0.4, 3
    )
    assert same
    with pytest.raises(ValueError, match=r"asks for 29 of 30 combinations held out, but only"):
        random_combinatorial_split(factors, 0.97, 0)
    with pytest.raises(ValueError, match=r"fraction must be a number in \(0, 1\), got 1.5"):
        random_combinatorial_split(factors, 1.5, 0)


# -- round trips ----------------------------------------------------------------------
def test_round_trips_keep_factor_order_and_parts(tmp_path) -> None:
    split = _mixed()
    assert Split.from_json(split.to_json()) == split
    assert Split.from_toml(split.to_toml()) == split
    assert pickle.loads(pickle.dumps(split)) == split
    assert hash(Split.from_json(split.to_json())) == hash(split)
    for suffix in (".json", ".toml"):
        path = tmp_path / f"split{suffix}"
        split.save(path)
        assert Split.load(path) == split
    # Factor order survives sort_keys: "shape" first must stay first.
    reordered = combinatorial_split(
        {"shape": FACTORS["shape"], "color": FACTORS["color"]}, [("square", "red")]
    )
    loaded = Split.from_json(reordered.to_json())
    assert loaded.combinations is not None
    assert loaded.combinations.factor_names == ("shape", "color")
    assert loaded.combinations_for("combinatorial") == {("square", "red")}
    # Integer values survive TOML.
    ints = combinatorial_split({"verb": ("go", "pick"), "n": (1, 2)}, [("go", 1)])
    assert Split.from_toml(ints.to_toml()) == ints


def test_level_only_splits_serialize_as_before() -> None:
    split = Split.levels_split(200, num_validation_levels=50, test_start=10_000, name="p")
    assert split.to_dict() == {
        "name": "p",
        "train": {"start": 0, "stop": 200},
        "validation": {"start": 200, "stop": 250},
        "test": {"start": 10_000},
    }
    assert split.parts == ("train", "validation", "test") == split.all_parts
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['combos'\] in a split"):
        Split.from_dict({**split.to_dict(), "combos": {}})


def test_hand_written_axis_accepts_a_factor_mapping() -> None:
    data = json.loads(_mixed().to_json())
    data["combinations"]["factors"] = {"color": list(FACTORS["color"]), "shape": ["square",
                                       "circle", "triangle"]}
    assert Split.from_dict(data) == _mixed()
    data["combinations"]["held"] = []
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['held'\] in a combination axis"):
        Split.from_dict(data)
