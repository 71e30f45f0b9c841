"""Library validation raises the InputError family with one line naming the argument."""

from __future__ import annotations

import pytest

from gengap.core.errors import InputError, InputFileExistsError, InputFileNotFoundError
from gengap.core.files import read_json, read_toml
from gengap.envs import make
from gengap.envs.factory import MAX_NUM_ENVS, check_env_options, env_options
from gengap.eval.runs import ExperimentConfig
from gengap.eval.store import ResultsStore

DOORKEY = "gengap/minigrid-doorkey-5x5-v0"


def test_env_options_come_from_the_env_classes():
    options, complete = env_options(DOORKEY)
    assert complete and {"obs_mode", "max_steps"} <= set(options)
    assert "task" not in options and "split" not in options  # fixed by the id / the split
    # EntityMiniGridEnv takes **kwargs that go to MiniGridEnv: both signatures count.
    options, complete = env_options("gengap/minigrid-doorkey-5x5-entities-v0")
    assert complete and {"max_entities", "max_steps"} <= set(options)


def test_experiment_refuses_bad_env_options_before_any_run():
    with pytest.raises(InputError, match="env_kwargs: unknown .* option 'obs_mod'; did you mean"):
        ExperimentConfig(env_id=DOORKEY, env_kwargs={"obs_mod": "image"})
    with pytest.raises(InputError, match="env_kwargs: unknown obs_mode 'slots'"):
        ExperimentConfig(env_id=DOORKEY, env_kwargs={"obs_mode": "slots"})
    with pytest.raises(InputError, match="'distribution_mode' cannot be set|distribution_mode"):
        check_env_options("gengap/procgen-coinrun-v0", {"distribution_mode": "medium"})
    check_env_options("gengap/procgen-coinrun-v0", {"distribution_mode": "hard"})  # fine


def test_too_many_envs_is_refused_with_the_reason():
    with pytest.raises(InputError, match=f"num_envs must be at most {MAX_NUM_ENVS}, got 100000"):
        ExperimentConfig(env_id=DOORKEY, num_envs=100_000)
    with pytest.raises(InputError, match="building that many takes minutes"):
        make(DOORKEY, num_envs=MAX_NUM_ENVS + 1)


def test_bad_final_eval_part_is_refused_with_close_matches():
    with pytest.raises(InputError, match="unknown split part 'tset'; did you mean 'test'"):
        ExperimentConfig(env_id=DOORKEY, final_eval_parts=("train", "tset"))


def test_user_files_name_the_file_and_line(tmp_path):
    with pytest.raises(InputFileNotFoundError, match="study file '.*nope.toml' does not exist"):
        read_toml(tmp_path / "nope.toml", "study file")
    with pytest.raises(InputFileNotFoundError, match="is not a file"):
        read_toml(tmp_path, "study file")
    bad = tmp_path / "bad.toml"
    bad.write_text("a = 1\nb = \n")
    with pytest.raises(InputError, match=r"bad.toml': invalid TOML: .*line 2, column"):
        read_toml(bad, "experiment file")
    bad_json = tmp_path / "config.json"
    bad_json.write_text('{\n  "a": 1,\n  "b": \x01\n}')
    with pytest.raises(InputError, match=r"config.json': invalid JSON: .*\(at line 3, column 8\)"):
        read_json(bad_json, "run config")


def test_results_store_checks_the_file_on_open(tmp_path):
    not_sqlite = tmp_path / "gengap.sqlite"
    not_sqlite.write_bytes(b"PK\x03\x04 a zip file, not a database" * 10)
    with pytest.raises(InputError, match=r"results store '.*gengap.sqlite' is not an SQLite"):
        ResultsStore(not_sqlite)
    with pytest.raises(InputFileExistsError, match="is not a file"):
        ResultsStore(tmp_path)
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    assert ResultsStore(empty).schema_version == 1  # an empty file becomes a new store
    # A store whose header survived but whose pages did not is named on first use too.
    truncated = tmp_path / "truncated.sqlite"
    truncated.write_bytes(b"SQLite format 3\x00" + b"\x00" * 84 + b"junk" * 100)
    with pytest.raises(InputError, match="truncated.sqlite' is not a readable SQLite database"):
        ResultsStore(truncated).schema_version  # noqa: B018


def test_input_errors_keep_the_builtin_types():
    with pytest.raises(ValueError):
        ExperimentConfig(env_id=DOORKEY, seed=-1)
    with pytest.raises(TypeError):
        ExperimentConfig.from_dict({"env_id": DOORKEY, "seed": "zero"})
    with pytest.raises(FileNotFoundError):
        read_toml("no/such/file.toml")
