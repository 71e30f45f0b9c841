"""The gengap command line: output on good input, one line and exit 2 on bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gengap.scripts.cli import main


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_envs_table_lists_every_registered_env(capsys):
    from gengap.envs import registered_ids

    code, out, _ = _run(capsys, "envs")
    assert code == 0
    for env_id in ("gengap/procgen-coinrun-v0", "gengap/minigrid-doorkey-5x5-v0"):
        assert env_id in out
    assert f"({len(registered_ids())})" in out
    assert "Discrete(15)" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["envs", "--check-leakage", "gengap/procgen-mze-v0"],
            "did you mean 'gengap/procgen-maze-v0'",
        ),
        (["envs", "--test-levels", "-5"], "--test-levels must be a positive integer, got -5"),
        (["envs", "--family", "procgn"], "unknown family 'procgn'; did you mean 'procgen'"),
        (
            ["train", "--env", "gengap/minigrid-doorkey-5x5-v0", "--seed", "abc"],
            "--seed must be a non-negative integer, got 'abc'",
        ),
        (
            ["train", "--env", "gengap/minigrid-doorkey-5x5-v0", "--train-levels", "0"],
            "--train-levels must be a positive integer, got 0",
        ),
        (
            ["train", "--env", "gengap/minigrd-doorkey-5x5-v0"],
            "did you mean 'gengap/minigrid-doorkey-5x5-v0'",
        ),
        (
            ["train", "--env", "gengap/minigrid-doorkey-5x5-v0", "--seed", "-1"],
            "--seed must be a non-negative integer, got -1",
        ),
        (
            ["train", "--env", "gengap/minigrid-doorkey-5x5-v0", "--num-envs", "100000"],
            "--num-envs must be at most 1024, got 100000: every env is a simulator",
        ),
        (
            ["train", "--env", "gengap/minigrid-doorkey-5x5-v0", "--algo", "sca"],
            "argument --algo: unknown algo 'sca'; did you mean 'sac'?",
        ),
        (
            ["train", "--env", "gengap/minigrid-doorkey-5x5-v0", "--algo", "sac"],
            "SAC needs a continuous (Box) action space; gengap/minigrid-doorkey-5x5-v0 has "
            "Discrete(7); algorithms that fit: dqn, ppo",
        ),
        # The observation space is checked against the agent's network when the config
        # is built: the auto choice, an explicit one, and a third-party extractor's assert.
        (
            ["train", "--env", "gengap/minigrid-doorkey-5x5-v0", "--env-option", "obs_mode=full"],
            "gengap/minigrid-doorkey-5x5-v0 observations do not fit features extractor "
            "'minigrid_cnn' (auto): MiniGridCNN needs H and W >= 6, got observation shape "
            "(3, 5, 5); the agent option features_extractor picks another",
        ),
        (
            ["train", "--env", "gengap/minigrid-doorkey-5x5-v0",
             "--agent", "features_extractor=slot_attention"],
            "observations do not fit features extractor 'slot_attention': "
            "SlotAttentionExtractor needs a Dict space with keys",
        ),
        (
            ["train", "--env", "gengap/minigrid-doorkey-5x5-v0",
             "--agent", "features_extractor=nature_cnn"],
            "observations do not fit features extractor 'nature_cnn': You should use NatureCNN "
            "only with images",
        ),
        (
            ["train", "--env", "gengap/minigrid-doorkey-5x5-v0", "--eval-every", "-5"],
            "--eval-every must be a non-negative integer, got -5",
        ),
        (
            ["train", "--env", "gengap/minigrid-doorkey-5x5-v0", "--env-option", "obs_mod=image"],
            "--env-option: unknown gengap/minigrid-doorkey-5x5-v0 option 'obs_mod'; "
            "did you mean 'obs_mode'?",
        ),
        (
            ["train", "--env", "gengap/minigrid-doorkey-5x5-v0", "--env-option", "obs_mode=imag"],
            "--env-option: unknown obs_mode 'imag'; did you mean 'image'?",
        ),
        (
            [
                "train",
                "--env",
                "gengap/procgen-coinrun-v0",
                "--env-option",
                "distribution_mode=hrd",
            ],
            "--env-option: unknown distribution_mode 'hrd'; did you mean 'hard'?",
        ),
        (
            ["train", "--env", "gengap/minigrid-doorkey-5x5-v0", "--env-option", "task=x"],
            "--env-option 'task' cannot be set for gengap/minigrid-doorkey-5x5-v0",
        ),
        (
            ["train", "--env", "gengap/minigrid-doorkey-5x5-v0", "--name", "../../escape"],
            "name must be a folder name (no path separators",
        ),
        (
            ["train", "--env", "gengap/minigrid-doorkey-5x5-v0", "--env-option", "x"],
            "--env-option must look like KEY=VALUE, got 'x'",
        ),
        (["eval", "no/such/run", "--workers", "100000"], "--workers must be at most"),
        (
            ["train", "--env", "gengap/minigrid-doorkey-5x5-v0", "--agent", "seed=3"],
            "agent.seed (3) cannot be set apart from the run: give the experiment's seed (--seed)",
        ),
        (["bench", "shapez"], "unknown target 'shapez'; did you mean 'shapes'?"),
        (["train", "--steps", "100"], "train needs an environment"),
        (["train", "missing.toml"], "experiment file 'missing.toml' does not exist"),
        (["train", "--resume", "no/such/run"], "no config.json there"),
        (["eval", "no/such/run"], "is not a gengap run folder"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default --out (runs/) lands here, never in the checkout
    code, _, err = _run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert message in lines[0]
    assert not (tmp_path / "runs").exists()  # refused before any run folder was made


def test_unknown_key_in_experiment_file(capsys, tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text('env_id = "gengap/minigrid-doorkey-5x5-v0"\ntotal_timestep = 100\n')
    code, _, err = _run(capsys, "train", str(path))
    assert code == 2
    assert "unknown key in experiment 'total_timestep'; did you mean 'total_timesteps'" in err


def test_wrong_type_in_experiment_file(capsys, tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text('env_id = "gengap/minigrid-doorkey-5x5-v0"\ntotal_timesteps = "lots"\n')
    code, _, err = _run(capsys, "train", str(path))
    assert code == 2
    assert "experiment.total_timesteps must be int, got 'lots'" in err


def test_overlapping_split_in_experiment_file(capsys, tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text(
        'env_id = "gengap/minigrid-doorkey-5x5-v0"\n'
        "[split]\ntrain = {start = 0, stop = 100}\ntest = {start = 50}\n"
    )
    code, _, err = _run(capsys, "train", str(path))
    assert code == 2
    assert "train and test levels overlap in" in err


def test_console_script_exit_status():
    result = subprocess.run(
        [sys.executable, "-m", "gengap.scripts.cli", "envs", "--check-leakage", "nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "unknown env id 'nope'" in result.stderr


def test_agent_overrides_are_validated_before_any_run_folder_exists(capsys, tmp_path):
    code, _, err = _run(
        capsys,
        "train",
        "--env",
        "gengap/minigrid-doorkey-5x5-v0",
        "--agent",
        "learnin_rate=3e-4",
        "--out",
        str(tmp_path / "runs"),
    )
    assert code == 2
    assert "unknown key in ppo config 'learnin_rate'; did you mean 'learning_rate'" in err
    assert not (tmp_path / "runs").exists()
    code, _, err = _run(capsys, "train", "--env", "gengap/minigrid-doorkey-5x5-v0", "--agent", "x")
    assert code == 2 and "--agent must look like KEY=VALUE, got 'x'" in err


def test_study_file_errors(capsys, tmp_path):
    code, _, err = _run(capsys, "study", str(tmp_path / "none.toml"))
    assert code == 2 and "study file" in err and "does not exist" in err
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "s"\nenv_id = "gengap/shapes-objectgoal-v0"\nseeds = [0]\n'
        '[[arms]]\nname = "slots"\n[[evaluations]]\nname = "x"\npart = "combinatoral"\n'
    )
    code, _, err = _run(capsys, "study", str(bad))
    assert code == 2
    assert "evaluation 'x': unknown split part 'combinatoral'; did you mean 'combinatorial'" in err


def test_train_eval_report_through_the_cli(capsys, tmp_path):
    experiment = tmp_path / "exp.toml"
    experiment.write_text(
        'env_id = "gengap/minigrid-doorkey-5x5-v0"\n'
        "eval_every = 256\neval_episodes = 2\nfinal_eval_episodes = 4\n"
        "[agent]\nn_steps = 64\nbatch_size = 64\nn_epochs = 1\n"
    )
    out = tmp_path / "runs"
    code, printed, _ = _run(
        capsys, "train", str(experiment), "--steps", "256", "--train-levels", "3",
        "--num-envs", "2", "--seed", "1", "--out", str(out),
    )  # fmt: skip
    assert code == 0
    run_dir = out / "minigrid-doorkey-5x5-ppo-L3-s1"
    assert f"run minigrid-doorkey-5x5-ppo-L3-s1: done -> {run_dir}" in printed
    code, printed, _ = _run(capsys, "eval", str(run_dir), "--split", "train", "--episodes", "6")
    assert code == 0 and "train: 6 episodes, mean return" in printed and "success" in printed
    code, printed, _ = _run(capsys, "report", str(run_dir), "-o", str(tmp_path / "report"))
    assert code == 0 and (tmp_path / "report" / "report.md").is_file()
    code, _, err = _run(capsys, "eval", str(run_dir), "--split", "tset")
    assert code == 2 and "did you mean 'test'" in err
