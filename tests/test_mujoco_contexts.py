"""The context axis of Split: protocols, disjointness and bad input, round trips."""

from __future__ import annotations

import pytest

from gengap.core.errors import InputError
from gengap.envs import Split
from gengap.envs.contexts import ContextAxis, kirk_split, with_contexts
from gengap.envs.mujoco import default_split

RANGES = {"mass_scale": (0.5, 1.5), "friction_scale": (0.5, 1.5)}
OUTSIDE = {"mass_scale": (0.25, 2.0), "friction_scale": (0.25, 2.0)}


@pytest.mark.parametrize("train", ["box", "grid", "nominal"])
def test_kirk_protocol_parts_follow_their_definitions(train):
    split = kirk_split(RANGES, OUTSIDE, train=train, target={"mass_scale": 1.3,
                                                             "friction_scale": 0.4})
    axis = split.contexts
    assert split.context_parts == (
        "interpolation", "combinatorial_interpolation", "single_factor_extrapolation",
        "all_factor_extrapolation", "target")
    hole = axis.reference.holes[0]
    for point in axis.points("interpolation"):
        assert axis.reference.contains(point)
    for point in axis.points("combinatorial_interpolation"):
        assert all(hole[p][0] <= v <= hole[p][1] for p, v in point.items())
    for point in axis.points("single_factor_extrapolation"):
        assert sum(not 0.5 <= v <= 1.5 for v in point.values()) == 1
    for point in axis.points("all_factor_extrapolation"):
        assert all(not 0.5 <= v <= 1.5 for v in point.values())
    assert axis.points("target") == [{"mass_scale": 1.3, "friction_scale": 0.4}]
    assert split.levels("target") == split.test


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_round_trip(tmp_path, suffix):
    for split in (default_split("box"), default_split("nominal"), default_split("grid")):
        path = tmp_path / f"split{suffix}"
        split.save(path)
        loaded = Split.load(path)
        assert loaded == split and loaded.contexts.points("target") == split.contexts.points(
            "target")


def test_overlapping_train_and_held_out_contexts_are_refused_naming_them():
    with pytest.raises(InputError, match=r"train and target contexts overlap in 1 context\(s\)"
                       r", also training contexts: \{mass_scale: 1.2\}"):
        ContextAxis(params=("mass_scale",), train_points=({"mass_scale": 1.0},
                                                          {"mass_scale": 1.2}),
                    held_out={"target": [{"mass_scale": 1.2}]})
    with pytest.raises(InputError, match="train and single_factor_extrapolation contexts overlap"
                       r".*inside the training box: \{mass_scale: 1.1\}"):
        ContextAxis(params=("mass_scale",), train_box={"ranges": {"mass_scale": (0.5, 1.5)}},
                    held_out={"single_factor_extrapolation": [{"mass_scale": 1.1}]})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"params": ()}, "needs at least one parameter"),
        ({"params": ("mass_scale",)}, "empty training set"),
        ({"params": ("mass_scale",), "train_points": ({"mass_scale": 1.0},),
          "held_out": {"target": []}}, "held-out context part 'target' is empty"),
        ({"params": ("masss_scale",)}, "unknown context parameter 'masss_scale'; did you mean "
                                       "'mass_scale'"),
        ({"params": ("mass",)}, r"needs a name: mass.<name>"),
        ({"params": ("mass.torso",), "train_points": ({"mass.torso": -1.0},)},
         r"'mass.torso' \(mass in kg of one body, mass.<body>\) must be > 0, got -1.0"),
        ({"params": ("friction_scale",), "train_points": ({"friction_scale": -0.1},)},
         "must be >= 0, got -0.1"),
        ({"params": ("action_delay",), "train_points": ({"action_delay": 1.5},)},
         "must be a whole number"),
        ({"params": ("mass_scale",), "train_points": ({"mass_scale": 1.0, "gravity": -9},)},
         r"unknown \['gravity'\]"),
        ({"params": ("mass_scale",), "train_points": ({"mass_scale": 1.0},),
          "held_out": {"extrapolate": [{"mass_scale": 2.0}]}},
         "unknown held-out context part 'extrapolate'"),
        ({"params": ("mass_scale",), "train_points": ({"mass_scale": 1.0}, {"mass_scale": 1.2}),
          "held_out": {"single_factor_extrapolation": [{"mass_scale": 1.6}],
                       "all_factor_extrapolation": [{"mass_scale": 1.1}]}},
         "not all-factor-extrapolation"),
    ],
)
def test_bad_context_axes_are_refused(kwargs, message):
    with pytest.raises(InputError, match=message):
        ContextAxis(**kwargs)


def test_single_factor_definition_is_checked():
    with pytest.raises(InputError, match="not single-factor-extrapolation: "
                       r"\{mass_scale: 2, friction_scale: 2\}"):
        ContextAxis(params=("mass_scale", "friction_scale"),
                    train_box={"ranges": RANGES},
                    held_out={"single_factor_extrapolation": [
                        {"mass_scale": 2.0, "friction_scale": 2.0}]})


def test_kirk_split_holds_integer_parameters_fixed():
    with pytest.raises(InputError, match="kirk_split varies only continuous parameters"):
        kirk_split({"mass_scale": (0.5, 1.5), "action_delay": (0, 2)}, {})


def test_dotted_toml_keys_are_accepted():
    text = (
        'name = "x"\ntrain = {start = 0, stop = 10}\ntest = {start = 10}\n'
        "[contexts]\nparams = [\"mass.torso\"]\n"
        "train_points = [{mass.torso = 3.0}]\n"
    )
    split = Split.from_toml(text)
    assert split.contexts.points("train") == [{"mass.torso": 3.0}]


def test_existing_split_helpers_still_work_without_contexts():
    split = Split.levels_split(10)
    assert split.contexts is None and split.context_parts == ()
    assert Split.from_dict(split.to_dict()) == split
    with pytest.raises(InputError, match="already|without a context axis"):
        with_contexts(default_split().contexts, default_split())


def test_kirk_split_over_absolute_parameters_needs_nominal_only_where_used():
    ranges = {"mass.torso": (3.0, 4.5), "world_friction": (0.8, 1.2)}
    outside = {"mass.torso": (2.0, 6.0), "world_friction": (0.4, 2.0)}
    split = kirk_split(ranges, outside, train="box",
                       target={"mass.torso": 5.0, "world_friction": 0.5})
    assert split.contexts.points("target") == [{"mass.torso": 5.0, "world_friction": 0.5}]
    with pytest.raises(InputError, match="nominal needs a value for 'mass.torso'"):
        kirk_split(ranges, outside, train="nominal")
    with pytest.raises(InputError, match=r"target needs a value for \['world_friction'\]"):
        kirk_split(ranges, outside, target={"mass.torso": 5.0})
    nominal = kirk_split(ranges, outside, train="nominal",
                         nominal={"mass.torso": 3.67, "world_friction": 1.0})
    assert nominal.contexts.points("train") == [{"mass.torso": 3.67, "world_friction": 1.0}]
