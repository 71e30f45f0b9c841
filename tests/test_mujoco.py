"""MuJoCo context env: every parameter changes the simulation and is restored at reset."""

from __future__ import annotations

import numpy as np
import pytest

from gengap.core.errors import InputError
from gengap.envs import Split, make
from gengap.envs.contexts import ContextAxis, ContextBox, with_contexts
from gengap.envs.mujoco import default_split, nominal_context, rrls_split

HOPPER = "gengap/mujoco-hopper-v0"
PENDULUM = "gengap/mujoco-invertedpendulum-v0"


def _axis_split(param: str, changed: float, robot: str = "hopper") -> Split:
    nominal = nominal_context(robot, [param])[param]
    axis = ContextAxis(params=(param,), train_points=({param: nominal}, {param: changed}))
    return with_contexts(axis, name=f"one-{param}")


def _rollout(env, context, actions, level=7):
    obs, info = env.reset(seed=0, options={"level": level, "context": context})
    assert info["context"] == context
    frames = [obs]
    for action in actions:
        obs, _, terminated, truncated, info = env.step(action)
        assert info["context"] == context and info["level_seed"] == level
        frames.append(obs)
        if terminated or truncated:
            break
    return np.concatenate(frames)


def _model_arrays(env):
    model = env.unwrapped.model
    return {
        "body_mass": model.body_mass.copy(), "body_inertia": model.body_inertia.copy(),
        "geom_friction": model.geom_friction.copy(), "dof_damping": model.dof_damping.copy(),
        "actuator_gear": model.actuator_gear.copy(), "gravity": model.opt.gravity.copy(),
    }


@pytest.mark.parametrize(
    ("param", "changed"),
    [
        ("mass_scale", 1.6), ("mass.torso", 7.0), ("friction_scale", 0.05),
        ("world_friction", 0.05), ("friction.foot_geom", 4.0), ("damping_scale", 20.0),
        ("damping.thigh_joint", 5.0),
        ("gear_scale", 0.4), ("gear.thigh_joint", 20.0), ("gravity", -4.0),
        ("obs_noise", 0.05), ("action_noise", 0.5), ("action_delay", 2),
    ],
)
def test_each_parameter_changes_the_trajectory_and_is_restored(param, changed):
    env = make(HOPPER, split=_axis_split(param, changed))
    nominal = {param: nominal_context("hopper", [param])[param]}
    actions = np.random.default_rng(0).uniform(-1, 1, (60, 3))
    reference = _rollout(env, nominal, actions)
    base_arrays = _model_arrays(env)
    if param != "world_friction":  # it sets every geom alike, so its "nominal" is the floor's
        nominal_arrays = env.unwrapped.nominal_arrays()
        assert all(np.array_equal(a, nominal_arrays[k]) for k, a in base_arrays.items())
    shifted = _rollout(env, {param: float(changed)}, actions)
    assert shifted.shape != reference.shape or not np.allclose(shifted, reference)
    again = _rollout(env, nominal, actions)
    assert np.array_equal(again, reference)  # restored exactly: same actions, same trajectory
    for key, array in _model_arrays(env).items():
        assert np.array_equal(array, base_arrays[key]), key


def test_model_parameters_take_the_context_values():
    split = with_contexts(ContextAxis(
        params=("mass_scale", "mass.torso", "friction.floor", "gear.thigh_joint", "gravity"),
        train_points=({"mass_scale": 2.0, "mass.torso": 1.5, "friction.floor": 0.3,
                       "gear.thigh_joint": 50.0, "gravity": -3.0},),
    ))
    env = make(HOPPER, split=split)
    env.reset(seed=0)
    model, nominal = env.unwrapped.model, env.unwrapped.nominal_arrays()
    torso, thigh = model.body("torso").id, model.body("thigh").id
    assert model.body_mass[torso] == 1.5  # the named value wins over the scale
    assert model.body_mass[thigh] == pytest.approx(2 * nominal["body_mass"][thigh])
    assert np.allclose(model.body_inertia[thigh], 2 * nominal["body_inertia"][thigh])
    assert model.geom_friction[model.geom("floor").id, 0] == 0.3
    assert model.actuator_gear[0, 0] == 50.0 and model.opt.gravity[2] == -3.0


def test_no_drift_over_many_randomized_resets():
    split = default_split("box")
    env = make(PENDULUM, split=split)
    nominal = env.unwrapped.nominal_arrays()
    for seed in range(400):
        env.reset(seed=seed)
        env.step(env.action_space.sample())
    env.reset(seed=0, options={"context": {"mass_scale": 1.0, "friction_scale": 1.0,
                                           "action_delay": 0}})
    for key, array in _model_arrays(env).items():
        assert np.array_equal(array, nominal[key]), key


def test_domain_randomization_samples_stay_inside_the_box():
    box = ContextBox(ranges={"mass_scale": (0.5, 1.5), "gravity": (-12.0, -8.0),
                             "action_delay": (0, 2)})
    split = with_contexts(ContextAxis(params=box.params, train_box=box))
    env = make(PENDULUM, split=split)
    seen = []
    for seed in range(300):
        _, info = env.reset(seed=seed)
        seen.append(info["context"])
        assert box.contains(info["context"])
        assert info["context"]["action_delay"] in (0.0, 1.0, 2.0)
    masses = [c["mass_scale"] for c in seen]
    assert min(masses) < 0.6 and max(masses) > 1.4  # it randomizes over the whole box
    assert {c["action_delay"] for c in seen} == {0.0, 1.0, 2.0}
    assert env.unwrapped.model.opt.gravity[2] == seen[-1]["gravity"]


@pytest.mark.parametrize("train", ["box", "grid", "nominal"])
def test_held_out_contexts_never_appear_in_training_episodes(train):
    split = default_split(train)
    axis = split.contexts
    held = {tuple(sorted(p.items())) for part in axis.held_out_parts for p in axis.points(part)}
    env = make(PENDULUM, split=split, part="train")
    for seed in range(200):
        _, info = env.reset(seed=seed)
        assert tuple(sorted(info["context"].items())) not in held
        assert not axis.reference.in_hole(info["context"])
        assert all(low <= info["context"][p] <= high
                   for p, (low, high) in axis.reference.ranges.items())
    target = axis.points("target")[0]
    with pytest.raises(InputError, match="is not one of the train contexts|outside the training"):
        env.reset(options={"context": {**target, "mass_scale": 3.0}})


def test_held_out_parts_play_their_contexts_on_test_levels():
    split = default_split("box")
    for part in split.context_parts:
        env = make(PENDULUM, split=split, part=part)
        points = split.contexts.points(part)
        for seed in range(5):
            _, info = env.reset(seed=seed)
            assert info["context"] in points
            assert info["level_seed"] in split.test


def test_same_seed_same_noisy_episode():
    split = with_contexts(ContextAxis(
        params=("obs_noise", "action_noise"), train_points=({"obs_noise": 0.1,
                                                             "action_noise": 0.2},)))
    runs = []
    for _ in range(2):
        env = make(HOPPER, split=split)
        obs, _ = env.reset(seed=5)
        frames = [obs] + [env.step(np.zeros(3))[0] for _ in range(20)]
        runs.append(np.concatenate(frames))
    assert np.array_equal(runs[0], runs[1])


def test_rrls_uncertainty_sets_are_presets():
    split = rrls_split("hopper", "3d")
    assert split.contexts.train_box.ranges == {
        "world_friction": (0.1, 3.0), "mass.torso": (0.1, 3.0), "mass.thigh": (0.1, 4.0)}
    assert len(split.contexts.points("interpolation")) == 27
    env = make(HOPPER, split=split)
    _, info = env.reset(seed=0)
    assert env.unwrapped.model.body_mass[1] == info["context"]["mass.torso"]
    nominal = rrls_split("hopper", "2d", train="nominal").contexts.points("train")[0]
    assert nominal["world_friction"] == 1.0 and nominal["mass.torso"] == pytest.approx(3.6652, 1e-4)
    with pytest.raises(InputError, match="unknown RRLS robot 'hoper'; did you mean 'hopper'"):
        rrls_split("hoper")


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("mass.torsoo", "'mass.torsoo': unknown body 'torsoo'; did you mean 'torso'"),
        ("friction.flor", "'friction.flor': unknown geom 'flor'; did you mean 'floor'"),
        ("damping.thigh", "did you mean 'thigh_joint'"),
        ("gear.foot", "did you mean 'foot_joint'"),
    ],
)
def test_unknown_names_are_refused_with_close_matches(param, message):
    split = with_contexts(ContextAxis(params=(param,), train_points=({param: 1.0},)))
    with pytest.raises(InputError, match=message):
        make(HOPPER, split=split)


def test_context_axis_on_an_env_without_one_is_refused():
    with pytest.raises(InputError, match="has a contexts axis, but gengap/minigrid-doorkey-5x5-v0"):
        make("gengap/minigrid-doorkey-5x5-v0", split=default_split())


def test_levels_only_split_plays_the_nominal_robot():
    env = make(HOPPER, split=Split.levels_split(5))
    _, info = env.reset(seed=0)
    assert info["context"] == {} and info["level_seed"] < 5
    with pytest.raises(InputError, match="needs a split with a context axis"):
        env.reset(options={"context": {"mass_scale": 1.0}})


def test_render_gives_a_frame_or_a_clear_message():
    env = make(PENDULUM, render_mode="rgb_array")
    env.reset(seed=0)
    try:
        frame = env.render()
    except RuntimeError as error:
        assert "MUJOCO_GL" in str(error)
    else:
        assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8


def test_box_with_a_hole_never_samples_the_hole():
    box = ContextBox(ranges={"mass_scale": (0.5, 1.5)}, holes=({"mass_scale": (0.9, 1.1)},))
    rng = np.random.default_rng(0)
    draws = [box.sample(rng)["mass_scale"] for _ in range(2000)]
    assert not any(0.9 <= d <= 1.1 for d in draws)


@pytest.mark.parametrize("algo", ["sac", "ppo"])
def test_default_agents_for_the_mujoco_family_train(algo):
    from gengap.agents import default_agent_config

    overrides = {"learning_starts": 64, "batch_size": 32} if algo == "sac" else {
        "n_steps": 64, "batch_size": 32, "n_epochs": 1}
    config = default_agent_config(algo, "mujoco", device="cpu", **overrides)
    envs = make(PENDULUM, num_envs=2)
    agent = config.create(envs.single_observation_space, envs.single_action_space)
    obs, _ = envs.reset(seed=0)
    before = agent.act(obs)
    agent.learn(envs, 256)
    after = agent.act(obs)
    assert agent.num_timesteps >= 256
    assert after.shape == (2, 1) and not np.allclose(before, after)  # the policy changed
    envs.close()


def test_a_neutral_scale_after_a_changed_one_restores_the_nominal_model():
    points = ({"mass_scale": 2.0, "friction_scale": 1.0}, {"mass_scale": 1.0,
                                                          "friction_scale": 0.5})
    env = make(HOPPER, split=with_contexts(ContextAxis(("mass_scale", "friction_scale"),
                                                       train_points=points)))
    nominal = env.unwrapped.nominal_arrays()
    env.reset(options={"context": points[0]})
    assert not np.array_equal(env.unwrapped.model.body_mass, nominal["body_mass"])
    env.reset(options={"context": points[1]})
    assert np.array_equal(env.unwrapped.model.body_mass, nominal["body_mass"])
    assert np.array_equal(env.unwrapped.model.body_inertia, nominal["body_inertia"])
    assert np.allclose(env.unwrapped.model.geom_friction[:, 0], nominal["geom_friction"][:, 0] / 2)


def _reference_arrays(nominal, model, context):
    """The model arrays ``context`` should give, computed plainly from the nominal ones."""
    arrays = {k: v.copy() for k, v in nominal.items()}
    ordered = sorted(context.items(), key=lambda item: "." in item[0])  # scales first
    for param, value in ordered:
        kind, _, name = param.partition(".")
        if kind == "mass_scale":
            arrays["body_mass"] *= value
            arrays["body_inertia"] *= value
        elif kind == "friction_scale":
            arrays["geom_friction"][:, 0] *= value
        elif kind == "world_friction":
            arrays["geom_friction"][:, 0] = value
        elif kind == "gear_scale":
            arrays["actuator_gear"] *= value
        elif kind == "damping_scale":
            arrays["dof_damping"] *= value
        elif kind == "gravity":
            arrays["gravity"][2] = value
        elif kind == "mass":
            body = model.body(name).id
            # the same shape at the named mass: nominal inertia x mass / nominal mass
            arrays["body_inertia"][body] = (nominal["body_inertia"][body] * value
                                            / nominal["body_mass"][body])
            arrays["body_mass"][body] = value
        elif kind == "damping":
            arrays["dof_damping"][model.jnt_dofadr[model.joint(name).id]] = value
    return arrays


def test_mixed_contexts_in_any_order_give_the_reference_model_every_reset():
    # whole-model scales write nominal * value directly, and scale in place what another
    # parameter (world_friction) wrote first; named values win; nothing lingers.
    params = ("world_friction", "friction_scale", "mass_scale", "mass.torso", "gear_scale",
              "damping.thigh_joint", "gravity")
    rng = np.random.default_rng(0)
    points = []
    for _ in range(12):
        chosen = [p for p in params if rng.random() < 0.5] or ["mass_scale"]
        values = {p: float(rng.choice([1.0, 0.5, 2.0])) for p in chosen}
        values.update({p: float(rng.uniform(1, 6)) for p in chosen if "." in p})
        if "gravity" in values:
            values["gravity"] = -float(rng.uniform(2, 12))
        points.append(values)
    env = make(HOPPER)
    physics, model = env.unwrapped._physics, env.unwrapped.model
    nominal = env.unwrapped.nominal_arrays()
    for index in rng.integers(0, len(points), 60):
        physics.apply(points[index])
        expected = _reference_arrays(nominal, model, points[index])
        for key, array in _model_arrays(env).items():
            assert np.allclose(array, expected[key], rtol=1e-12, atol=0), (points[index], key)
    physics.apply({})
    for key, array in _model_arrays(env).items():
        assert np.array_equal(array, nominal[key]), key


def test_a_level_gives_the_raw_robots_initial_state_of_that_seed_on_every_visit():
    import gymnasium

    env = make(HOPPER)
    raw = gymnasium.make("Hopper-v5")
    first, _ = env.reset(seed=0, options={"level": 7})
    for level in (3, 9, 7, 1):
        env.reset(options={"level": level})
    again, _ = env.reset(options={"level": 7})
    expected, _ = raw.reset(seed=7)
    assert np.array_equal(first, expected) and np.array_equal(again, expected)
