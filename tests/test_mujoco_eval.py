"""Evaluation over physics contexts: grids, summaries with CIs, transfer ratio, heat maps."""

from __future__ import annotations

import numpy as np
import pytest

from gengap.agents import default_agent_config
from gengap.core.errors import InputError
from gengap.envs import make
from gengap.envs.mujoco import default_split
from gengap.eval.contexts import (
    ContextEvaluation,
    context_grid,
    evaluate_contexts,
    evaluate_split_contexts,
    plot_heatmap,
    summarize,
    transfer_ratio,
    write_context_report,
)

PENDULUM = "gengap/mujoco-invertedpendulum-v0"


@pytest.fixture(scope="module")
def agent():
    env = make(PENDULUM)
    config = default_agent_config("sac", "mujoco", device="cpu", seed=3)
    return config.create(env.observation_space, env.action_space)


def test_grid_evaluation_plays_every_context_on_the_same_levels(agent):
    grid = context_grid({"gravity": [-2.0, -30.0], "mass_scale": [0.5, 2.0]})
    assert len(grid) == 4 and grid[1] == {"gravity": -2.0, "mass_scale": 2.0}
    first = evaluate_contexts(agent, PENDULUM, grid, episodes_per_context=3, num_envs=3)
    second = evaluate_contexts(agent, PENDULUM, grid, episodes_per_context=3, num_envs=2)
    assert first.returns.shape == (4, 3)
    assert np.array_equal(first.returns, second.returns)  # deterministic, whatever the batching
    assert first.levels == tuple(default_split().test.first(3))
    # weak gravity keeps the pole up longer than strong gravity, for the same policy and levels
    assert first.returns[0].mean() > first.returns[2].mean()


def test_summary_worst_case_and_ratio():
    evaluation = ContextEvaluation(
        contexts=({"mass_scale": 1.0}, {"mass_scale": 2.0}),
        returns=np.array([[10.0, 12.0, 11.0], [2.0, 4.0, 3.0]]),
        successes=np.full((2, 3), np.nan), levels=(1, 2, 3))
    summary = summarize(evaluation)
    assert summary.mean.point == pytest.approx(7.0)
    assert summary.worst.point == pytest.approx(3.0)
    assert summary.worst_context == {"mass_scale": 2.0}
    assert summary.worst.low <= 3.0 <= summary.worst.high and summary.worst.high < 7.0
    train = ContextEvaluation(({"mass_scale": 1.0},), np.array([[14.0, 14.0, 14.0]]),
                              np.full((1, 3), np.nan), (1, 2, 3))
    ratio = transfer_ratio(evaluation, train)
    assert ratio.point == pytest.approx(0.5) and ratio.low <= 0.5 <= ratio.high
    with pytest.raises(InputError, match="no success"):
        summarize(evaluation, score="success")
    negative = ContextEvaluation(({"mass_scale": 1.0},), np.array([[-1.0]]),
                                 np.full((1, 1), np.nan), (1,))
    with pytest.raises(InputError, match="needs a positive training-context return"):
        transfer_ratio(evaluation, negative)
    assert ContextEvaluation.from_dict(evaluation.to_dict()).contexts == evaluation.contexts


def test_split_parts_report_and_heat_map(agent, tmp_path):
    split = default_split("box")
    evaluations = evaluate_split_contexts(
        agent, PENDULUM, split, ["train", "single_factor_extrapolation", "target"],
        episodes_per_context=2, train_samples=3)
    assert len(evaluations["train"].contexts) == 3
    for context in evaluations["train"].contexts:
        assert split.contexts.train_box.contains(context)
    assert list(evaluations["target"].contexts) == split.contexts.points("target")
    report = write_context_report(evaluations, tmp_path, heatmap=("mass_scale", "friction_scale"))
    text = report.read_text()
    assert "| target | 1 | 2 |" in text and "transfer ratio" in text
    assert (tmp_path / "heatmap-single_factor_extrapolation.png").stat().st_size > 1000
    assert (tmp_path / "contexts.json").exists()
    with pytest.raises(InputError, match="unknown context factor 'mass'"):
        plot_heatmap(evaluations["train"], "mass", "friction_scale", tmp_path / "x.png")


def test_bad_grids_are_refused(agent):
    with pytest.raises(InputError, match="grid factor 'gravity' has no values"):
        context_grid({"gravity": []})
    with pytest.raises(InputError, match="needs at least one context"):
        evaluate_contexts(agent, PENDULUM, [])
    with pytest.raises(InputError, match="must be > 0, got -1"):
        evaluate_contexts(agent, PENDULUM, [{"mass_scale": -1.0}])
