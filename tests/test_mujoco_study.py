"""The sim-to-real study file: per-arm splits and the budget scale (config only, no training)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gengap.drivers.study import StudyConfig, load_study

STUDY = Path(__file__).resolve().parent.parent / "studies" / "sim_to_real.toml"


def test_arms_train_on_their_own_contexts_and_share_held_out_parts():
    study = load_study(STUDY)
    nominal, randomized = (study.experiments()[0].resolved_split(),
                           study.experiments()[-1].resolved_split())
    assert nominal.contexts.train_box is None and len(nominal.contexts.train_points) == 1
    assert randomized.contexts.train_box is not None
    assert nominal.contexts.held_out == randomized.contexts.held_out
    assert {e.part for e in study.evaluations} >= set(randomized.context_parts)


def test_budget_scale_multiplies_training_steps_only():
    data = load_study(STUDY).to_dict()
    scaled = StudyConfig.from_dict({**data, "budget_scale": 2.5})
    base = StudyConfig.from_dict(data)
    for small, big in zip(base.experiments(), scaled.experiments(), strict=True):
        assert big.total_timesteps == round(2.5 * small.total_timesteps)
        assert big.final_eval_episodes == small.final_eval_episodes
        assert big.split == small.split
    with pytest.raises(ValueError, match="budget_scale must be a number > 0, got 0"):
        StudyConfig.from_dict({**data, "budget_scale": 0})


def test_the_sweep_takes_context_parts_as_evaluations():
    # gengap study runs through the sweep's spec, which once knew only level and
    # combination parts, so this study failed before training anything
    from gengap.drivers.grid import study_spec_from_dict
    from gengap.envs.contexts import CONTEXT_PARTS

    evaluations = [{"name": part.replace("_", "-"), "part": part} for part in CONTEXT_PARTS]
    spec = study_spec_from_dict({"name": "contexts", "env_id": load_study(STUDY).env_id,
                                 "evaluations": evaluations})
    assert [e.part for e in spec.evaluations] == list(CONTEXT_PARTS)
    with pytest.raises(ValueError, match="evaluations\\[0\\].part 'targte'; did you mean 'target'"):
        study_spec_from_dict({"name": "contexts", "env_id": load_study(STUDY).env_id,
                              "evaluations": [{"name": "t", "part": "targte"}]})


def test_the_offline_arm_learns_from_nominal_data_and_is_scored_on_the_same_parts():
    # config only: the dataset is made by the commands in the file's header
    from gengap.core.files import read_toml

    offline = StudyConfig.from_dict(read_toml(STUDY.parent / "sim_to_real_offline.toml"))
    online = load_study(STUDY)
    nominal_arm = next(arm for arm in online.arms if arm.name == "nominal")
    assert {arm.algo for arm in offline.arms} == {"td3bc", "iql"}
    assert all(arm.dataset == "runs/data/sim-to-real-nominal-expert" for arm in offline.arms)
    assert offline.split == nominal_arm.split  # trained on the nominal split's training part
    assert [(e.name, e.part) for e in offline.evaluations] == [
        (e.name, e.part) for e in online.evaluations]
    assert offline.env_kwargs == online.env_kwargs and offline.seeds == online.seeds
    assert offline.experiments()[0].resolved_split().contexts.points("train") == [
        {"mass_scale": 1.0, "gear_scale": 1.0, "action_delay": 0.0}]
