"""Collecting datasets: training levels only, exact budgets, seeds, policies, the bot."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from gengap.core.errors import InputError, InputFileExistsError, InputFileNotFoundError
from gengap.drivers.collect import resolve_policy
from gengap.envs import Split
from gengap.envs.babyai import mixed_split
from gengap.offline.collect import bot_demonstrations, collect, make_policy
from gengap.offline.dataset import Dataset

CHASER = "gengap/procgen-chaser-v0"
GOTO = "gengap/babyai-gotolocal-compositional-v0"
PUTNEXT = "gengap/babyai-putnextlocal-compositional-v0"
HELD_OUT = {("yellow", "box"), ("red", "key"), ("green", "ball")}


def test_procgen_collection_is_exact_on_training_levels_and_reproducible(tmp_path):
    split = Split.levels_split(3, num_validation_levels=2)
    kwargs = dict(num_transitions=500, split=split, num_envs=4, seed=7)
    collect(CHASER, make_policy("random"), tmp_path / "a", **kwargs)
    collect(CHASER, make_policy("random"), tmp_path / "b", **kwargs)
    dataset = Dataset.open(tmp_path / "a", verify=True)
    card = dataset.card
    assert dataset.num_transitions == 500
    assert set(dataset.level_seeds().tolist()) <= {0, 1, 2}
    assert sum(card["episodes_per_level"].values()) == dataset.num_episodes
    assert card["env_id"] == CHASER and card["split"] == split.to_dict()
    assert card["policy"]["kind"] == "random" and card["seed"] == 7
    assert card["stop"] == {"transitions": 500} and card["max_episode_steps"] == 1000
    assert 1 <= card["cut_episodes"] <= 4
    assert card["gengap_version"] and "returns" in card
    # Episodes cut by the budget end as truncated; every episode ends with a flag.
    bounds = dataset.episode_bounds()
    ends = dataset.transitions(bounds[1:] - 1)
    assert np.all(ends["terminated"] | ends["truncated"])
    dataset.check_split(split)
    # The same seed twice gives byte-identical data.
    again = Dataset.open(tmp_path / "b").card["files"]
    assert {k: v["sha256"] for k, v in card["files"].items()} == {
        k: v["sha256"] for k, v in again.items()
    }


def test_collection_by_episodes_with_an_epsilon_bot_on_compositional_babyai(tmp_path):
    collect(GOTO, make_policy("bot", epsilon=0.2), tmp_path / "bot", num_episodes=12, num_envs=3)
    dataset = Dataset.open(tmp_path / "bot")
    card = dataset.card
    assert dataset.num_episodes == 12 and card["stop"] == {"episodes": 12}
    assert card["policy"] == {"kind": "bot", "name": "BabyAIBot", "epsilon": 0.2}
    assert card["skill_level"] == "expert"
    assert card["returns"]["success_rate"] >= 0.75
    combinations = dataset.episode_combinations()
    assert combinations is not None and all(combinations)
    named = {c for episode in combinations for c in episode if None not in c}
    assert named and not named & HELD_OUT
    dataset.check_split(mixed_split("BabyAI-GoToLocal-v0"))


def test_shapes_world_episodes_record_their_goal_combination(tmp_path):
    from gengap.envs import env_info
    from gengap.envs.combinations import combinatorial_split

    shapes = "gengap/shapes-objectgoal-v0"
    collect(shapes, make_policy("random"), tmp_path / "shapes", num_episodes=4, num_envs=2)
    dataset = Dataset.open(tmp_path / "shapes")
    combinations = dataset.episode_combinations()
    assert combinations is not None and all(len(goal) == 1 for goal in combinations)
    default = env_info(shapes).default_split
    dataset.check_split(default)  # training episodes never show a held-out goal
    axis = default.combinations
    assert axis is not None
    seen = combinations[0][0]
    levels = Split(train=default.train, test=default.test, validation=default.validation)
    other = combinatorial_split(axis.factors, [seen], levels=levels, name="holds-it-out")
    with pytest.raises(InputError, match=f"held-out combinations {'-'.join(seen)}"):
        dataset.check_split(other)


def test_collect_refuses_bad_input(tmp_path):
    with pytest.raises(InputError, match="unknown policy 'rnadom'; did you mean 'random'"):
        make_policy("rnadom")
    with pytest.raises(InputError, match="unknown policy 'rnadom'; did you mean 'random'"):
        resolve_policy("rnadom")
    with pytest.raises(InputFileNotFoundError, match="is not a gengap run folder"):
        resolve_policy(f"{tmp_path / 'nowhere'}@mixed")
    with pytest.raises(InputError, match="looks like a run folder: resolve it with"):
        make_policy(f"{tmp_path / 'nowhere'}@mixed")
    with pytest.raises(InputError, match="--epsilon must be a number in"):
        make_policy("random", epsilon=1.5)
    with pytest.raises(InputError, match="--transitions must be a positive integer, got 0"):
        collect(CHASER, make_policy("random"), tmp_path / "x", num_transitions=0)
    with pytest.raises(InputError, match="exactly one of --transitions and --episodes"):
        collect(CHASER, make_policy("random"), tmp_path / "x")
    with pytest.raises(InputError, match="needs a BabyAI env"):
        collect(CHASER, make_policy("bot"), tmp_path / "x", num_episodes=1, num_envs=1)
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.tmp-*"))
    collect(CHASER, make_policy("random"), tmp_path / "y", num_transitions=10, num_envs=2)
    with pytest.raises(InputFileExistsError, match="already exists"):
        collect(CHASER, make_policy("random"), tmp_path / "y", num_transitions=10)


@pytest.mark.parametrize("part", ["train", "combinatorial"])
def test_the_expert_bot_solves_most_episodes(part):
    demos = bot_demonstrations(GOTO, part=part, num_episodes=12, seed=5)
    assert len(demos) == 12
    assert sum(d.success for d in demos) >= 11
    for demo in demos:
        assert len(demo.observations) == len(demo.actions) + 1 == len(demo.rewards) + 1
        assert demo.actions.dtype == np.int64 and demo.mission.startswith("go to")
        if demo.success:
            assert demo.rewards[-1] > 0
    again = bot_demonstrations(GOTO, part=part, num_episodes=3, seed=5)
    assert [d.actions.tolist() for d in again] == [d.actions.tolist() for d in demos[:3]]


def test_bot_on_put_next_and_argument_checks():
    demos = bot_demonstrations(PUTNEXT, part="combinatorial", num_episodes=4, seed=0)
    assert sum(d.success for d in demos) >= 3
    with pytest.raises(InputError, match="num_episodes must be a positive integer, got 0"):
        bot_demonstrations(GOTO, num_episodes=0)
    with pytest.raises(InputError, match="is not a BabyAI level"):
        bot_demonstrations("gengap/minigrid-doorkey-5x5-v0", num_episodes=1)


DOORKEY = "gengap/minigrid-doorkey-5x5-v0"


@pytest.fixture(scope="module")
def run_with_snapshots(tmp_path_factory):
    """A tiny trained PPO run, plus snapshots in the drivers' layout (agent dir +
    snapshot.json) with made-up held-out scores, so skill selection can be checked."""

    from gengap.drivers.train import run_experiment
    from gengap.eval.runs import ExperimentConfig

    out = tmp_path_factory.mktemp("runs")
    config = ExperimentConfig(
        env_id=DOORKEY,
        total_timesteps=256,
        num_envs=2,
        seed=0,
        num_train_levels=4,
        eval_episodes=1,
        final_eval_episodes=1,
        final_eval_parts=("train",),
        out_dir=str(out),
        agent={"n_steps": 64, "batch_size": 64, "n_epochs": 1},
    )
    run_dir = run_experiment(config, quiet=True)
    for step, success in ((64, 0.1), (128, 0.45), (192, 0.7), (256, 0.8)):
        folder = run_dir / "snapshots" / f"step-{step}"
        shutil.copytree(run_dir / "agent", folder)
        (folder / "snapshot.json").write_text(
            json.dumps(
                {
                    "step": step,
                    "scores": {
                        "train": {"success": 0.9},
                        "test": {"return": success / 2, "success": success},
                    },
                }
            )
        )
    return run_dir


def test_run_folder_policies_pick_snapshots_by_held_out_score(tmp_path, run_with_snapshots):
    run_dir = run_with_snapshots
    mixed = resolve_policy(f"{run_dir}@mixed")
    # 75% of the final held-out success 0.8 is 0.6: step 192 (0.7) is closest. The run's env,
    # split and options come with the policy.
    assert [p.description["step"] for p in mixed.policies] == [192]
    assert mixed.env_id == DOORKEY and mixed.split is not None and len(mixed.split.train) == 4
    path = collect(DOORKEY, mixed, tmp_path / "mixed", num_transitions=200, num_envs=2)
    card = Dataset.open(path).card
    assert card["skill_level"] == "mixed" and card["policy"]["step"] == 192
    assert card["policy"]["target"] == {
        "metric": "success",
        "value": pytest.approx(0.6),
        "final": 0.8,
    }
    assert card["policy_score"]["test"]["success"] == 0.7
    assert set(Dataset.open(path).level_seeds().tolist()) <= {0, 1, 2, 3}

    sub = resolve_policy(f"{run_dir}@suboptimal", action_mode="greedy")
    path = collect(DOORKEY, sub, tmp_path / "sub", num_transitions=203, num_envs=2)
    card = Dataset.open(path).card
    assert Dataset.open(path).num_transitions == 203
    assert [m["step"] for m in card["policy"]["members"]] == [64, 128, 192, 256]
    assert all(m["action_mode"] == "greedy" for m in card["policy"]["members"])

    # @best: the highest training-level score, the latest of equals (steps 64-256 all have
    # 0.9 on training levels); held-out scores do not choose it.
    best = resolve_policy(f"{run_dir}@best")
    assert best.skill == "best" and [p.description["step"] for p in best.policies] == [256]
    assert best.policies[0].description["chosen_by"] == {
        "part": "train", "metric": "success", "value": 0.9}
    copy = tmp_path / "run-copy"  # the fixture is shared: change a copy
    shutil.copytree(run_dir, copy)
    data = json.loads((copy / "snapshots" / "step-128" / "snapshot.json").read_text())
    data["scores"]["train"]["success"] = 0.95  # best on training levels, not on held-out ones
    (copy / "snapshots" / "step-128" / "snapshot.json").write_text(json.dumps(data))
    best = resolve_policy(f"{copy}@best", action_mode="greedy")
    assert [p.description["step"] for p in best.policies] == [128]
    path = collect(DOORKEY, best, tmp_path / "best", num_transitions=50, num_envs=2)
    card = Dataset.open(path).card
    assert card["skill_level"] == "best" and card["policy"]["step"] == 128
    assert card["policy_score"]["test"]["success"] == 0.45

    expert = resolve_policy(str(run_dir), epsilon=0.1)
    assert expert.skill == "expert" and expert.policies[0].description["epsilon"] == 0.1
    assert expert.score is not None and expert.score["test"]["success"] == 0.8
    with pytest.raises(InputError, match="differs from the env the policy's run trained on"):
        collect(CHASER, expert, tmp_path / "wrong", num_transitions=10)
    with pytest.raises(InputError, match="unknown skill level 'expret'"):
        resolve_policy(f"{run_dir}@expret")


def test_cli_collect_info_verify_and_bad_input(tmp_path, capsys, run_with_snapshots):
    from gengap.scripts.cli import main

    out = tmp_path / "ds"
    code = main(
        [
            "collect",
            "--env",
            DOORKEY,
            "--policy",
            f"{run_with_snapshots}@expert",
            "--episodes",
            "3",
            "--num-envs",
            "2",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"wrote {out}" in captured.out and "3 episodes" in captured.out
    assert main(["dataset", "info", str(out)]) == 0
    info = capsys.readouterr().out
    assert DOORKEY in info and "skill expert" in info and "final agent" in info
    assert main(["dataset", "info", str(out), "--json"]) == 0

    assert json.loads(capsys.readouterr().out)["num_episodes"] == 3
    assert main(["dataset", "verify", str(out)]) == 0
    assert "every sha256 matches" in capsys.readouterr().out
    frames = out / "obs/obs.bin"
    frames.write_bytes(frames.read_bytes()[:-1])
    bad = [
        (["dataset", "verify", str(out)], "obs/obs.bin in"),
        (["dataset", "info", str(tmp_path / "none")], "no gengap dataset at"),
        (
            ["collect", "--env", CHASER, "--policy", "rnd", "--episodes", "1", "--out", "x"],
            "unknown policy 'rnd'",
        ),
        (
            ["collect", "--env", CHASER, "--transitions", "0", "--out", "x"],
            "--transitions must be a positive integer, got 0",
        ),
        (["collect", "--env", CHASER, "--out", "x"], "one of the arguments --transitions"),
        (["collect", "--env", CHASER, "--episodes", "1", "--out", str(out)], "already exists"),
    ]
    for argv, message in bad:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (argv, err)


def test_demonstration_source_serves_each_episode_s_transitions_in_order() -> None:
    from gengap.envs import make
    from gengap.offline.collect import DemonstrationSource

    env_id = "gengap/babyai-gotolocal-v0"
    env = make(env_id)
    episodes = bot_demonstrations(env_id, num_episodes=3)
    source = DemonstrationSource(episodes, env.observation_space, env.action_space)
    env.close()
    bounds = source.episode_bounds()
    assert list(np.diff(bounds)) == [len(e.actions) for e in episodes]
    for episode, start, stop in zip(episodes, bounds[:-1], bounds[1:], strict=True):
        batch = source.transitions(np.arange(start, stop))
        np.testing.assert_array_equal(batch["action"], episode.actions)
        np.testing.assert_array_equal(batch["reward"], episode.rewards)
        np.testing.assert_array_equal(batch["obs"][1:], batch["next_obs"][:-1])
        np.testing.assert_array_equal(batch["next_obs"][-1], episode.observations[-1])
        assert batch["terminated"][-1] == episode.success != batch["truncated"][-1]
        assert not batch["terminated"][:-1].any() and not batch["truncated"][:-1].any()
        assert set(batch["level_seed"]) == {episode.level_seed}
    with pytest.raises(InputError, match="at least one episode"):
        DemonstrationSource([], source.observation_space, source.action_space)
