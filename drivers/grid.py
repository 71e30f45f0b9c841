"""Study files with grids, and their expansion into trials (a pure function).

A study file is TOML. Its top-level keys are either study keys (below) or fields of
:class:`~gengap.eval.runs.ExperimentConfig`, which form the base config of every
trial. Three tables vary that base:

* ``[grid]``: field -> list of values; every list is crossed with every other.
  ``seeds = [0, 1, 2]`` at the top level is short for ``grid.seed``. Entries of dict fields
  are swept with dotted keys: ``"env_kwargs.obs_mode" = ["image", "rgb"]`` or
  ``agent.learning_rate = [3e-4, 1e-3]`` (TOML makes the latter a nested table; both
  forms mean the same).
* ``[[zip]]``: each table holds lists of one length, taken element by element (value i of
  every list together); each zip table is crossed with the grid and the other zip tables.
* ``[[arms]]``: named variants, each a table of field overrides (``env_kwargs`` and
  ``agent`` are merged over the base ones); arms are crossed with everything else.

Study keys: ``name``, ``out_dir``, ``seeds``, ``grid``, ``zip``, ``arms``, ``evaluations``
(extra evaluations of every trained agent: ``name``, ``part``, ``env_kwargs``),
``eval_episodes`` (episodes per evaluation, and the default of ``final_eval_episodes``),
``score``, ``workers``, ``retries``, ``reps``, ``confidence``, ``cpus_per_trial``,
``gpus_per_trial``. ``store``, ``label`` and an experiment ``name`` are set per trial.

Any init field of ``ExperimentConfig`` can be swept, so a field added there later (an
offline arm's ``dataset``) can be swept without changes here.

A trial is identified by a hash of its resolved config, leaving out where it is stored
(``out_dir``, ``store``, ``name``) and how reports label it (``label``), and hashed
before the default checkpoint interval (ten checkpoints a run) is filled in: running a
study again finds its finished trials by that hash, and editing the file adds only new
trials.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gengap.core import checks
from gengap.core.errors import InputError, InputTypeError, unknown_name_message
from gengap.core.files import read_toml
from gengap.envs.splits import PARTS as SPLIT_PARTS
from gengap.eval.runs import ExperimentConfig

__all__ = [
    "EvaluationSpec",
    "StudySpec",
    "Trial",
    "describe_axes",
    "expand",
    "load_study_spec",
    "study_spec_from_dict",
    "swept_numeric_fields",
    "trial_id",
]

#: ExperimentConfig fields the sweep sets itself for every trial.
LOCATION_FIELDS = ("out_dir", "store", "name", "label")
#: Fields whose entries can be swept one by one with dotted keys.
DICT_FIELDS = ("env_kwargs", "agent")
SCORES = ("success", "return", "normalized_return")
#: Evaluation parts: every part a split can have (levels, combinations, contexts).
PARTS = SPLIT_PARTS

_STUDY_DEFAULTS: dict[str, Any] = {
    "out_dir": None,
    "seeds": None,
    "grid": {},
    "zip": [],
    "arms": [],
    "evaluations": [],
    "eval_episodes": None,
    "score": "success",
    "workers": 2,
    "retries": 1,
    "reps": 2000,
    "confidence": 0.95,
    "cpus_per_trial": 1.0,
    "gpus_per_trial": 0.0,
}


def _experiment_fields() -> list[str]:
    return [f.name for f in dataclasses.fields(ExperimentConfig) if f.init]


def _sweepable_fields() -> list[str]:
    # ``eval_episodes`` is the study's (final and extra evaluations); the experiment's
    # periodic one is set from it.
    return [n for n in _experiment_fields() if n not in (*LOCATION_FIELDS, "eval_episodes")]


def _check_name(what: str, value: Any) -> str:
    if not isinstance(value, str) or not value or not all(c.isalnum() or c in "-_." for c in value):
        raise InputError(
            f"{what} must be a non-empty name of letters, digits, '-_.', got {value!r}"
        )
    return value


@dataclass(frozen=True)
class EvaluationSpec:
    """An extra evaluation of every trained agent (stored under tag ``study:<name>``).

    Args:
        name: Label (a table row), e.g. ``"test-5-7-objects"``.
        part: Split part: ``train``, ``validation``, ``test``, ``combinatorial`` or
            ``extrapolation``.
        env_kwargs: Env options for this evaluation only, over the trial's.
    """

    name: str
    part: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)


def _evaluation(index: int, data: Any) -> EvaluationSpec:
    what = f"evaluations[{index}]"
    if not isinstance(data, Mapping):
        raise InputTypeError(f"{what} must be a table, got {data!r}")
    unknown = [key for key in data if key not in ("name", "part", "env_kwargs")]
    if unknown:
        raise InputError(
            unknown_name_message(f"key in {what}", unknown[0], ("name", "part", "env_kwargs"))
        )
    name = _check_name(f"{what}.name", data.get("name"))
    part = data.get("part")
    if part not in PARTS:
        raise InputError(unknown_name_message(f"{what}.part", part, PARTS))
    env_kwargs = data.get("env_kwargs", {})
    if not isinstance(env_kwargs, Mapping):
        raise InputTypeError(f"{what}.env_kwargs must be a table, got {env_kwargs!r}")
    return EvaluationSpec(name, part, dict(env_kwargs))


@dataclass(frozen=True)
class StudySpec:
    """A parsed study file: the base config, what varies, and how the trials are run.

    Built by :func:`study_spec_from_dict` / :func:`load_study_spec`, which validate it;
    :func:`expand` turns it into trials.
    """

    name: str
    out_dir: str
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    zips: list[dict[str, list[Any]]]
    arms: list[dict[str, Any]]
    evaluations: list[EvaluationSpec]
    eval_episodes: int
    score: str
    workers: int
    retries: int
    reps: int
    confidence: float
    cpus_per_trial: float
    gpus_per_trial: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _flatten_axes(what: str, table: Any) -> dict[str, list[Any]]:
    """``{field: [values]}`` with nested tables of dict fields turned into dotted keys."""
    if not isinstance(table, Mapping):
        raise InputTypeError(f"{what} must be a table of field = [values], got {table!r}")
    axes: dict[str, list[Any]] = {}
    for key, values in table.items():
        if isinstance(values, Mapping) and key in DICT_FIELDS:
            for sub, sub_values in values.items():
                axes[f"{key}.{sub}"] = sub_values
        else:
            axes[key] = values
    for key, values in axes.items():
        _check_axis_key(what, key)
        if not isinstance(values, list):
            raise InputTypeError(
                f"{what}.{key} must be a list of values to sweep, got {values!r} "
                f"({type(values).__name__})"
            )
        if not values:
            raise InputError(f"{what}.{key} is an empty list: give at least one value")
    return axes


def _check_axis_key(what: str, key: str) -> None:
    head, dot, sub = key.partition(".")
    sweepable = _sweepable_fields()
    if head not in sweepable:
        if head in LOCATION_FIELDS:
            raise InputError(f"{what}.{key}: {head!r} is set by the sweep, it cannot be swept")
        raise InputError(unknown_name_message(f"field in {what}", head, sweepable))
    if dot and (head not in DICT_FIELDS or not sub):
        raise InputError(
            f"{what}.{key}: only entries of {', '.join(DICT_FIELDS)} can be swept with a "
            f"dotted key, got {key!r}"
        )


def study_spec_from_dict(data: Mapping[str, Any], *, source: str = "study") -> StudySpec:
    """Validate a study file's contents (see the module docstring for the keys).

    Raises:
        InputError: On an unknown key (with close matches), an empty grid or list, a bad
            name, or values no trial could use (the message names the key).
    """
    if not isinstance(data, Mapping):
        raise InputTypeError(f"{source} must be a table, got {type(data).__name__}")
    study_keys = ["name", *_STUDY_DEFAULTS]
    known = [*study_keys, *[f for f in _sweepable_fields() if f not in study_keys]]
    for key in data:
        if key in ("store", "label"):
            raise InputError(f"{source}: {key!r} is set by the sweep for every trial; remove it")
        if key not in known:
            raise InputError(unknown_name_message(f"key in {source}", key, known))
    settings = {**_STUDY_DEFAULTS, **{k: v for k, v in data.items() if k in _STUDY_DEFAULTS}}
    base = {k: v for k, v in data.items() if k not in study_keys}
    name = _check_name(f"{source}.name", data.get("name"))
    if "env_id" not in base:
        raise InputError(f"{source} needs env_id (the env every trial trains on)")

    grid = _flatten_axes("grid", settings["grid"])
    if settings["seeds"] is not None:
        if "seed" in grid:
            raise InputError(f"{source}: give seeds or grid.seed, not both")
        grid = {"seed": _flatten_axes("seeds", {"seed": settings["seeds"]})["seed"], **grid}
    zips_raw = settings["zip"]
    if not isinstance(zips_raw, list):
        raise InputTypeError(f"{source}.zip must be a list of tables ([[zip]]), got {zips_raw!r}")
    zips = []
    for index, table in enumerate(zips_raw):
        axes = _flatten_axes(f"zip[{index}]", table)
        if not axes:
            raise InputError(f"zip[{index}] is empty: give lists of equal length to zip")
        lengths = {key: len(values) for key, values in axes.items()}
        if len(set(lengths.values())) != 1:
            raise InputError(f"zip[{index}] lists must have one length, got {lengths}")
        zips.append(axes)
    swept = [*grid, *(key for axes in zips for key in axes)]
    repeated = sorted({key for key in swept if swept.count(key) > 1})
    if repeated:
        raise InputError(f"{source}: {repeated} swept more than once (grid and zip tables)")

    arms_raw = settings["arms"]
    if not isinstance(arms_raw, list):
        raise InputTypeError(f"{source}.arms must be a list of tables ([[arms]]), got {arms_raw!r}")
    arms = []
    for index, arm in enumerate(arms_raw):
        if not isinstance(arm, Mapping):
            raise InputTypeError(f"arms[{index}] must be a table, got {arm!r}")
        _check_name(f"arms[{index}].name", arm.get("name"))
        for key in arm:
            if key != "name" and key not in _sweepable_fields():
                raise InputError(
                    unknown_name_message(f"field in arms[{index}]", key, _sweepable_fields())
                )
        arms.append(dict(arm))
    arm_names = [arm["name"] for arm in arms]
    if len(set(arm_names)) != len(arm_names):
        raise InputError(f"{source}: arm names must be unique, got {arm_names}")

    evaluations = [
        _evaluation(i, e) for i, e in enumerate(_as_list(source, "evaluations", settings))
    ]
    evaluation_names = [e.name for e in evaluations]
    if len(set(evaluation_names)) != len(evaluation_names):
        raise InputError(f"{source}: evaluation names must be unique, got {evaluation_names}")
    if settings["score"] not in SCORES:
        raise InputError(unknown_name_message(f"{source}.score", settings["score"], SCORES))
    eval_episodes = settings["eval_episodes"]
    if eval_episodes is None:
        eval_episodes = base.get("final_eval_episodes", 200)
    return StudySpec(
        name=name,
        out_dir=str(settings["out_dir"] or Path("runs") / "studies" / name),
        base=base,
        grid=grid,
        zips=zips,
        arms=arms,
        evaluations=evaluations,
        eval_episodes=checks.int_in(f"{source}.eval_episodes", eval_episodes, 1),
        score=settings["score"],
        workers=checks.int_in(f"{source}.workers", settings["workers"], 1),
        retries=checks.int_in(f"{source}.retries", settings["retries"], 0),
        reps=checks.int_in(f"{source}.reps", settings["reps"], 100),
        confidence=float(checks.number_in(f"{source}.confidence", settings["confidence"],
                                          0.5, 0.999)),
        cpus_per_trial=float(checks.number_in(f"{source}.cpus_per_trial",
                                              settings["cpus_per_trial"], 0, 1024)),
        gpus_per_trial=float(checks.number_in(f"{source}.gpus_per_trial",
                                              settings["gpus_per_trial"], 0, 64)),
    )


def _as_list(source: str, key: str, settings: Mapping[str, Any]) -> list[Any]:
    value = settings[key]
    if not isinstance(value, list):
        raise InputTypeError(f"{source}.{key} must be a list of tables ([[{key}]]), got {value!r}")
    return value


def load_study_spec(path: str | Path) -> StudySpec:
    """Read and validate a study TOML file.

    Raises:
        InputFileNotFoundError: If the file does not exist.
        InputError: On bad contents (one line naming the key).
    """
    data = read_toml(path, "study file")
    return study_spec_from_dict(data, source=Path(path).name)


@dataclass(frozen=True)
class Trial:
    """One run of a sweep: a full experiment config and where it came from.

    Attributes:
        trial_id: Hash of the resolved config (:func:`trial_id`).
        arm: The arm's name, or ``None`` without arms.
        params: The swept values of this trial, dotted key -> value (``seed`` included).
        group: What reports pool seeds by: the arm and every swept value but the seed.
        config: The experiment config as a dict (location fields not yet set).
    """

    trial_id: str
    arm: str | None
    params: dict[str, Any]
    group: str
    config: dict[str, Any]

    @property
    def run_name(self) -> str:
        """The run folder's name: readable, and unique through the hash."""
        seed = self.params.get("seed", self.config.get("seed", 0))
        return f"{_slug(self.group)}-s{seed}-{self.trial_id[:8]}"


def trial_id(config: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a config's canonical JSON, leaving out :data:`LOCATION_FIELDS`.

    Fields set to ``None`` are left out too, so that a new optional field of
    ``ExperimentConfig`` (default ``None``) keeps the ids of existing trials.
    """
    content = {k: v for k, v in config.items() if k not in LOCATION_FIELDS and v is not None}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _slug(text: str) -> str:
    out = "".join(c if c.isalnum() or c in "-_." else "-" for c in text)
    return "-".join(part for part in out.split("-") if part)[:80] or "trial"


def _value_text(value: Any) -> str:
    if isinstance(value, Mapping) and isinstance(value.get("name"), str):
        return value["name"]  # a named split (or other named table)
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:g}"
    if isinstance(value, str | int | float) or value is None:  # bool is an int
        return str(value)
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:6]


def _set(config: dict[str, Any], key: str, value: Any) -> None:
    head, dot, sub = key.partition(".")
    if dot:
        config[head] = {**config.get(head, {}), sub: value}
    else:
        config[head] = value


def _combinations(spec: StudySpec) -> list[dict[str, Any]]:
    """Every assignment of the grid crossed with every zip table, grid keys first."""
    blocks: list[list[dict[str, Any]]] = [
        [{key: value} for value in values] for key, values in spec.grid.items()
    ]
    for axes in spec.zips:
        length = len(next(iter(axes.values())))
        blocks.append([{key: values[i] for key, values in axes.items()} for i in range(length)])
    return [
        {k: v for part in combo for k, v in part.items()} for combo in itertools.product(*blocks)
    ]


def expand(spec: StudySpec, *, scale: float = 1.0) -> list[Trial]:
    """The trials of a study: arms x grid x zip tables, in file order (arms outermost).

    Args:
        spec: The study.
        scale: Multiplies ``total_timesteps`` (and an explicit ``eval_every`` and
            ``checkpoint_every``) of every trial: ``--scale 10`` for a GPU or cluster run.

    Returns:
        The trials, each with a config that :class:`ExperimentConfig` accepts.

    Raises:
        InputError: If a trial's config is invalid; the message names the trial's swept
            values. Two trials with the same config are an error too.
    """
    checks.positive_number("scale", scale)
    arms = spec.arms or [{"name": None}]
    trials = []
    seen: dict[str, str] = {}
    for arm in arms:
        for params in _combinations(spec):
            config = json.loads(json.dumps(spec.base))  # a deep copy that is plain JSON
            for key, value in arm.items():
                if key == "name":
                    continue
                if key in DICT_FIELDS and isinstance(value, Mapping):
                    config[key] = {**config.get(key, {}), **value}
                else:
                    config[key] = value
            for key, value in params.items():
                _set(config, key, value)
            config.setdefault("final_eval_episodes", spec.eval_episodes)
            config["eval_episodes"] = min(20, spec.eval_episodes)  # periodic evaluations
            _scale(config, scale)
            where = ", ".join(f"{k}={_value_text(v)}" for k, v in params.items())
            if arm["name"] is not None:
                where = f"arm {arm['name']}" + (f", {where}" if where else "")
            resolved = _resolve(config, where or "the base config")
            group_parts = [arm["name"]] if arm["name"] is not None else []
            group_parts += [f"{k}={_value_text(v)}" for k, v in params.items() if k != "seed"]
            group = "/".join([spec.name, *group_parts]) if group_parts else spec.name
            tid = trial_id(resolved)
            if not resolved["checkpoint_every"]:
                # Ten checkpoints a run, so an interrupted trial loses at most a tenth of
                # its steps (an offline trial: of its updates). Filled in after hashing: how
                # often a trial saves does not change what it computes, so it does not
                # change the trial's id.
                budget = resolved["num_updates"] if resolved.get("dataset") else None
                budget = budget or resolved["total_timesteps"]
                resolved["checkpoint_every"] = max(budget // 10, 1)
            if tid in seen:
                raise InputError(
                    f"trials {seen[tid]!r} and {where!r} have the same config: a swept value "
                    "changes nothing"
                )
            seen[tid] = where
            trials.append(Trial(tid, arm["name"], dict(params), group, resolved))
    return trials


def _scale(config: dict[str, Any], scale: float) -> None:
    if scale == 1.0:
        return
    for key in ("total_timesteps", "eval_every", "checkpoint_every"):
        if isinstance(config.get(key), int) and config[key] > 0:
            config[key] = max(1, round(config[key] * scale))


def _resolve(config: dict[str, Any], where: str) -> dict[str, Any]:
    """The config as ExperimentConfig writes it (defaults filled), or a one-line InputError."""
    try:
        experiment = ExperimentConfig.from_dict(config)
    except TypeError as error:
        raise InputTypeError(f"trial {where}: {_first_line(error)}") from None
    except (ValueError, KeyError) as error:
        raise InputError(f"trial {where}: {_first_line(error)}") from None
    if not config.get("eval_every"):
        # One curve point, at the end: a study's table is the final evaluation.
        experiment.eval_every = experiment.total_timesteps
    resolved = json.loads(json.dumps(experiment.to_dict()))
    for key in LOCATION_FIELDS:
        resolved.pop(key, None)
    return resolved


def _first_line(error: BaseException) -> str:
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def describe_axes(spec: StudySpec) -> str:
    """One line: what varies, e.g. ``arms (2) x seed (3) x num_train_levels (3)``."""
    parts = [f"arms ({len(spec.arms)})"] if spec.arms else []
    parts += [f"{key} ({len(values)})" for key, values in spec.grid.items()]
    parts += [
        "zip(" + ", ".join(axes) + f") ({len(next(iter(axes.values())))})" for axes in spec.zips
    ]
    return " x ".join(parts) or "one trial"


def swept_numeric_fields(trials: Sequence[Trial]) -> list[str]:
    """Swept keys whose values are all numbers and take more than one value (plot axes)."""
    keys: dict[str, set[Any]] = {}
    for trial in trials:
        for key, value in trial.params.items():
            keys.setdefault(key, set()).add(json.dumps(value))
    out = []
    for key, values in keys.items():
        decoded = [json.loads(v) for v in values]
        if len(decoded) > 1 and all(checks.is_number(v) for v in decoded):
            out.append(key)
    return out
