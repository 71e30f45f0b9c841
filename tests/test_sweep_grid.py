"""Study grids expand into trials: cross, zip, arms; bad grids are one-line input errors."""

from __future__ import annotations

import pytest

from gengap.core.errors import InputError, InputFileNotFoundError, InputTypeError
from gengap.drivers.grid import (
    describe_axes,
    expand,
    load_study_spec,
    study_spec_from_dict,
    swept_numeric_fields,
    trial_id,
)

ENV = "gengap/minigrid-multiroom-n2-s4-v0"


def _spec(**overrides):
    data = {"name": "t", "env_id": ENV, "total_timesteps": 1000, "num_envs": 2}
    data.update(overrides)
    return study_spec_from_dict(data)


def test_grid_lists_are_crossed_with_seeds_and_nested_entries():
    spec = _spec(
        seeds=[0, 1],
        grid={"num_train_levels": [5, 25, 200], "env_kwargs": {"obs_mode": ["image", "rgb"]}},
    )
    trials = expand(spec)
    assert len(trials) == 2 * 3 * 2
    combos = {(t.params["seed"], t.params["num_train_levels"], t.config["env_kwargs"]["obs_mode"])
              for t in trials}  # fmt: skip
    assert len(combos) == 12
    first = trials[0]
    assert first.config["seed"] == 0 and first.config["num_train_levels"] == 5
    assert first.params == {"seed": 0, "num_train_levels": 5, "env_kwargs.obs_mode": "image"}
    # Seeds of one setting share a group (what reports pool); settings do not.
    groups = {t.group for t in trials}
    assert len(groups) == 6 and "t/num_train_levels=5/env_kwargs.obs_mode=image" in groups
    assert describe_axes(spec) == "seed (2) x num_train_levels (3) x env_kwargs.obs_mode (2)"
    assert swept_numeric_fields(trials) == ["seed", "num_train_levels"]


def test_zip_takes_lists_element_by_element_and_arms_cross_everything():
    spec = _spec(
        seeds=[0],
        zip=[{"agent.learning_rate": [1e-3, 3e-4], "agent.n_steps": [64, 128]}],
        arms=[
            {"name": "image", "env_kwargs": {"obs_mode": "image"}},
            {"name": "short", "total_timesteps": 500, "agent": {"n_epochs": 2}},
        ],
        agent={"batch_size": 64},
    )
    trials = expand(spec)
    assert len(trials) == 2 * 2
    pairs = [(t.arm, t.config["agent"]["learning_rate"], t.config["agent"]["n_steps"])
             for t in trials]  # fmt: skip
    assert pairs == [("image", 1e-3, 64), ("image", 3e-4, 128),
                     ("short", 1e-3, 64), ("short", 3e-4, 128)]  # fmt: skip
    short = trials[2].config
    assert short["total_timesteps"] == 500
    assert short["agent"] == {"batch_size": 64, "n_epochs": 2, "learning_rate": 1e-3,
                              "n_steps": 64}  # fmt: skip
    assert trials[0].config["env_kwargs"] == {"obs_mode": "image"}


def test_trial_ids_hash_the_config_not_its_location_and_scale_changes_them():
    spec = _spec(seeds=[0, 1])
    first, again = expand(spec), expand(_spec(seeds=[1, 0, 2], out_dir="elsewhere"))
    assert {t.trial_id for t in first} < {t.trial_id for t in again}  # only seed 2 is new
    assert len({t.run_name for t in first}) == 2
    scaled = expand(spec, scale=2.0)
    assert scaled[0].config["total_timesteps"] == 2000
    assert scaled[0].config["eval_every"] == 2000  # one curve point, at the end
    assert scaled[0].config["checkpoint_every"] == 200  # ten checkpoints a run
    assert scaled[0].trial_id != first[0].trial_id
    config = first[0].config
    assert config["checkpoint_every"] == 100  # filled in after hashing
    same = {**config, "out_dir": "x", "store": "y", "name": "z", "checkpoint_every": 0}
    assert trial_id(same) == first[0].trial_id
    assert trial_id({**config, "seed": 9}) != first[0].trial_id


def test_offline_trials_checkpoint_ten_times_over_their_updates():
    # an offline arm has no env steps: ten checkpoints over num_updates, not over the
    # (unused) total_timesteps, or an interrupted trial would restart from update 0
    spec = _spec(arms=[{"name": "bc", "algo": "bc", "dataset": "data/d", "num_updates": 500},
                       {"name": "ppo"}])  # fmt: skip
    offline, online = expand(spec)
    assert offline.config["checkpoint_every"] == 50
    assert online.config["checkpoint_every"] == 100


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"grid": {"num_train_level": [5]}}, InputError,
         "unknown field in grid 'num_train_level'; did you mean 'num_train_levels'"),
        ({"grid": {"seed": []}}, InputError, "grid.seed is an empty list"),
        ({"grid": {"seed": 3}}, InputTypeError, "grid.seed must be a list of values to sweep"),
        ({"grid": {"num_train_levels": ["five"]}}, InputTypeError,
         "trial num_train_levels=five: experiment.num_train_levels must be int | None"),
        ({"grid": {"agent.learning_rat": [0.1]}}, InputError,
         "unknown key in ppo config 'learning_rat'; did you mean 'learning_rate'"),
        ({"grid": {"out_dir": ["a"]}}, InputError, "'out_dir' is set by the sweep"),
        ({"zip": [{"seed": [0, 1], "num_train_levels": [5]}]}, InputError,
         "zip[0] lists must have one length"),
        ({"seeds": [0], "grid": {"seed": [1]}}, InputError, "give seeds or grid.seed, not both"),
        ({"sedes": [0]}, InputError, "unknown key in study 'sedes'; did you mean 'seeds'"),
        ({"arms": [{"name": "a", "env_kwarg": {}}]}, InputError,
         "unknown field in arms[0] 'env_kwarg'; did you mean 'env_kwargs'"),
        ({"grid": {"num_envs": [2, 2]}}, InputError, "have the same config"),
        ({"label": "x"}, InputError, "'label' is set by the sweep"),
    ],
)  # fmt: skip
def test_bad_grids_are_one_line_input_errors(overrides, error, message):
    with pytest.raises(error) as raised:
        expand(_spec(**overrides))
    text = str(raised.value)
    assert message in text and "\n" not in text


def test_study_files_load_and_missing_ones_are_named(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        f'name = "s"\nenv_id = "{ENV}"\nseeds = [0, 1]\n'
        "[grid]\nnum_train_levels = [5, 25]\nagent.learning_rate = [1e-3]\n"
    )
    spec = load_study_spec(path)
    assert spec.grid == {"seed": [0, 1], "num_train_levels": [5, 25], "agent.learning_rate": [1e-3]}
    assert spec.out_dir == "runs/studies/s"
    with pytest.raises(InputFileNotFoundError, match="does not exist"):
        load_study_spec(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("name = \n")
    with pytest.raises(InputError, match="invalid TOML: .*at line 1"):
        load_study_spec(tmp_path / "bad.toml")
