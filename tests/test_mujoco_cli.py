"""Bad physics contexts through the command line: one line, exit status 2."""

from __future__ import annotations

import pytest

from gengap.scripts.cli import main

LEVELS = 'name = "x"\ntrain = {start = 0, stop = 10}\ntest = {start = 10}\n'


def _train(capsys, tmp_path, env_id: str, contexts: str) -> tuple[int, str]:
    path = tmp_path / "exp.toml"
    path.write_text(
        f'env_id = "{env_id}"\nalgo = "ppo"\ntotal_timesteps = 64\nnum_envs = 1\n'
        f'out_dir = "{tmp_path / "runs"}"\n[split]\n{LEVELS}[split.contexts]\n{contexts}'
    )
    code = main(["train", str(path)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("contexts", "message"),
    [
        ('params = ["mass.torso"]\ntrain_points = [{"mass.torso" = -2.0}]\n',
         "context value of 'mass.torso' (mass in kg of one body, mass.<body>) must be > 0, "
         "got -2.0"),
        ('params = ["friction_scale"]\ntrain_points = [{friction_scale = -1}]\n',
         "must be >= 0, got -1"),
        ('params = ["masscale"]\ntrain_points = [{masscale = 1}]\n',
         "unknown context parameter 'masscale'; did you mean 'mass_scale'"),
        ('params = ["mass_scale"]\ntrain_points = []\n', "empty training set"),
        ('params = ["mass_scale"]\ntrain_points = [{mass_scale = 1.0}]\n'
         "held_out = {target = []}\n", "held-out context part 'target' is empty"),
        ('params = ["mass_scale"]\ntrain_points = [{mass_scale = 1.0}, {mass_scale = 1.5}]\n'
         "held_out = {target = [{mass_scale = 1.5}]}\n",
         "train and target contexts overlap in 1 context(s), also training contexts: "
         "{mass_scale: 1.5}"),
    ],
)
def test_bad_contexts_are_one_line_and_exit_2(capsys, tmp_path, contexts, message):
    code, err = _train(capsys, tmp_path, "gengap/mujoco-hopper-v0", contexts)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert message in err
    assert not (tmp_path / "runs").exists()  # refused before a run folder exists


def test_context_axis_on_an_env_without_one_exits_2(capsys, tmp_path):
    code, err = _train(capsys, tmp_path, "gengap/minigrid-doorkey-5x5-v0",
                       'params = ["mass_scale"]\ntrain_points = [{mass_scale = 1.0}]\n')
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "has a contexts axis, but gengap/minigrid-doorkey-5x5-v0 has no physics contexts" in err


def test_unknown_body_exits_2_with_close_matches(capsys, tmp_path):
    code, err = _train(capsys, tmp_path, "gengap/mujoco-hopper-v0",
                       'params = ["mass.torsoo"]\ntrain_points = [{"mass.torsoo" = 3.0}]\n')
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "context parameter 'mass.torsoo': unknown body 'torsoo'; did you mean 'torso'" in err
