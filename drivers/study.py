"""Studies: several experiment arms x seeds, run as a sweep, compared on held-out parts.

A study file (TOML) declares one env, the arms to compare (e.g. slot vs pixel observations),
the seeds and the budget, and the evaluations: a split part (``test`` for IID held-out levels,
``combinatorial``, ``extrapolation``) with optional env overrides (e.g. more objects than in
training). :func:`run_study` trains every (arm, seed) as an
:class:`~gengap.eval.runs.ExperimentConfig` run, evaluates each trained agent on every
evaluation, and writes a table of IQM and mean scores with 95% bootstrap CIs per arm and
evaluation (``results.md`` and ``results.json`` in the study folder; episodes in its
results store)::

    name = "shapes-pixels-vs-slots"
    env_id = "gengap/shapes-objectgoal-v0"
    seeds = [0, 1, 2]
    total_timesteps = 50000
    env_kwargs = { distance_shaping = 1.0 }

    [[arms]]
    name = "slots"
    env_kwargs = { obs_mode = "slots" }

    [[evaluations]]
    name = "combinatorial"
    part = "combinatorial"

Runs are folders under ``<out_dir>/runs``; a finished run is reused when the study is run
again and an interrupted one is resumed, so a study can be extended seed by seed.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gengap.core import checks
from gengap.core.config import config_from_dict
from gengap.core.errors import InputError
from gengap.core.files import atomic_write_text, read_toml
from gengap.envs import env_info
from gengap.eval.metrics import Interval, aggregate, generalization_gap, score_table
from gengap.eval.runs import ExperimentConfig

__all__ = [
    "ArmConfig",
    "EvaluationConfig",
    "StudyConfig",
    "StudyResult",
    "StudyRow",
    "load_study",
    "run_study",
]

_SCORES = ("return", "success", "normalized_return")
_METRICS = ("iqm", "mean")


def _name_ok(what: str, name: Any) -> str:
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_." for c in name):
        raise InputError(f"{what} must be a non-empty name of letters, digits, '-_.', got {name!r}")
    return name


@dataclass
class ArmConfig:
    """One arm of a study: what differs from the other arms.

    Args:
        name: Label of the arm (e.g. ``"pixels"``); names run folders and table columns.
        env_kwargs: Env options of this arm (e.g. ``{"obs_mode": "pixels"}``), over the
            study's ``env_kwargs``.
        agent: Agent overrides of this arm, over the study's ``agent``.
        algo: This arm's algorithm (default: the study's), e.g. ``"bc"`` beside ``"ppo"``.
        dataset: An offline arm: the dataset its learner trains on (``algo`` must then be
            an offline learner), so a study compares online and offline agents.
        num_updates: Gradient updates of an offline arm.
        validation_dataset: Validation-level transitions for an offline arm (``bc``).
        split: This arm's split instead of the study's (e.g. domain randomization vs
            nominal training contexts with the same held-out parts).
    """

    name: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    agent: dict[str, Any] = field(default_factory=dict)
    algo: str | None = None
    dataset: str | None = None
    num_updates: int | None = None
    validation_dataset: str | None = None
    split: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        _name_ok("arm name", self.name)


@dataclass
class EvaluationConfig:
    """One evaluation of every trained agent.

    Args:
        name: Label (a table row), e.g. ``"test-5-7-objects"``.
        part: Split part: ``train``, ``validation``, ``test`` (IID: held-out levels, training
            combinations), ``combinatorial`` or ``extrapolation``.
        env_kwargs: Env options for this evaluation only, over the arm's (e.g.
            ``{"num_objects": [5, 7]}`` for the larger-count condition).
    """

    name: str
    part: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _name_ok("evaluation name", self.name)


@dataclass
class StudyConfig:
    """A study: arms x seeds of one env and algorithm, and the evaluations to compare them on.

    Args:
        name: Study label.
        env_id: Registered gengap env id.
        arms: The arms (at least one; names unique).
        evaluations: The evaluations (at least one; names unique).
        algo: Agent algorithm.
        seeds: Training seeds of every arm.
        total_timesteps: Training steps per run.
        budget_scale: Multiplies ``total_timesteps`` (e.g. 20 on a GPU or a cluster) and
            changes nothing else; give a scaled study its own ``out_dir``.
        num_envs: Parallel training envs per run.
        env_kwargs: Env options shared by every arm.
        agent: Agent overrides shared by every arm.
        split: A split dict (default: the env's default split).
        eval_episodes: Episodes per evaluation and run.
        score: ``"success"``, ``"return"`` or ``"normalized_return"``.
        workers: Worker processes (each one training run at a time, one torch thread).
        reps: Bootstrap replications for the intervals.
        confidence: Interval coverage.
        out_dir: Study folder (relative paths: relative to the current directory).
    """

    name: str
    env_id: str
    arms: list[ArmConfig]
    evaluations: list[EvaluationConfig]
    algo: str = "ppo"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    total_timesteps: int = 50_000
    budget_scale: float = 1.0
    num_envs: int = 8
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    agent: dict[str, Any] = field(default_factory=dict)
    split: dict[str, Any] | None = None
    eval_episodes: int = 200
    score: str = "success"
    workers: int = 2
    reps: int = 2000
    confidence: float = 0.95
    out_dir: str = "runs/studies"

    def __post_init__(self) -> None:
        _name_ok("study name", self.name)
        env_info(self.env_id)
        self.arms = [a if isinstance(a, ArmConfig) else _arm(a) for a in self.arms]
        self.evaluations = [
            e if isinstance(e, EvaluationConfig) else _evaluation(e) for e in self.evaluations
        ]
        for what, items in (("arms", self.arms), ("evaluations", self.evaluations)):
            names = [item.name for item in items]
            if not names:
                raise InputError(f"a study needs at least one entry in {what}, got none")
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise InputError(f"{what} names must be unique, got {repeated} more than once")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise InputError(
                f"seeds must be a non-empty list of distinct integers, got {self.seeds}"
            )
        for key in ("workers", "eval_episodes"):
            checks.positive_int(key, getattr(self, key))
        if self.score not in _SCORES:
            raise InputError(f"score must be one of {_SCORES}, got {self.score!r}")
        checks.positive_number("budget_scale", self.budget_scale)
        # every arm's config is checked here, and each arm's split has every evaluated part
        for experiment in self.experiments()[:: len(self.seeds)]:
            split = experiment.resolved_split()
            for evaluation in self.evaluations:
                try:
                    split.levels(evaluation.part)
                except InputError as error:
                    raise InputError(f"evaluation {evaluation.name!r}: {error}") from None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudyConfig:
        return config_from_dict(cls, data, what="study")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def study_dir(self) -> Path:
        return Path(self.out_dir)

    def experiments(self) -> list[ExperimentConfig]:
        """One experiment per (arm, seed), arms outermost."""
        runs_dir = self.study_dir() / "runs"
        steps = max(1, round(self.total_timesteps * self.budget_scale))
        return [
            ExperimentConfig(
                env_id=self.env_id,
                algo=arm.algo or self.algo,
                total_timesteps=steps,
                dataset=arm.dataset,
                num_updates=arm.num_updates,
                validation_dataset=arm.validation_dataset,
                num_envs=self.num_envs,
                seed=seed,
                split=arm.split if arm.split is not None else self.split,
                env_kwargs={**self.env_kwargs, **arm.env_kwargs},
                agent={**self.agent, **arm.agent},
                # one curve point: the study's table is the end
                eval_every=arm.num_updates or steps,
                eval_episodes=min(20, self.eval_episodes),
                final_eval_episodes=self.eval_episodes,
                final_eval_parts=("train", "test"),
                out_dir=str(runs_dir),
                store=str(self.study_dir() / "gengap.sqlite"),
                name=f"{arm.name}-s{seed}",
                label=f"{self.name}/{arm.name}",
            )
            for arm in self.arms
            for seed in self.seeds
        ]


def _arm(data: Any) -> ArmConfig:
    return config_from_dict(ArmConfig, data, what="arm")


def _evaluation(data: Any) -> EvaluationConfig:
    return config_from_dict(EvaluationConfig, data, what="evaluation")


def load_study(path: str | Path) -> StudyConfig:
    """Read a study TOML file; a relative ``out_dir`` stays relative to the current directory.

    Raises:
        InputFileNotFoundError: If the file does not exist.
        InputError: For a TOML syntax error (file and line), unknown keys or bad values.
    """
    study = StudyConfig.from_dict(read_toml(path, "study file"))
    for experiment in study.experiments():  # offline arms' data, before any training
        if experiment.offline:
            from gengap.drivers.offline import open_datasets

            open_datasets(experiment, experiment.resolved_split())
    return study


@dataclass(frozen=True)
class StudyRow:
    """Scores of one arm on one evaluation, over seeds and levels."""

    arm: str
    evaluation: str
    part: str
    runs: int
    episodes: int
    scores: dict[str, Interval]
    gap_to_test: dict[str, Interval] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "arm": self.arm,
            "evaluation": self.evaluation,
            "part": self.part,
            "runs": self.runs,
            "episodes": self.episodes,
            "scores": {k: v.to_dict() for k, v in self.scores.items()},
            "gap_to_test": (
                None if self.gap_to_test is None
                else {k: v.to_dict() for k, v in self.gap_to_test.items()}
            ),
        }  # fmt: skip


@dataclass
class StudyResult:
    """The outcome of :func:`run_study`."""

    config: StudyConfig
    rows: list[StudyRow]
    run_dirs: list[Path]
    seconds: float

    def row(self, arm: str, evaluation: str) -> StudyRow:
        """The row of ``arm`` on ``evaluation``.

        Raises:
            KeyError: If the study has no such row.
        """
        for row in self.rows:
            if row.arm == arm and row.evaluation == evaluation:
                return row
        raise KeyError(f"no row for arm {arm!r} and evaluation {evaluation!r}")

    def table(self, metric: str = "iqm") -> str:
        """Markdown: one row per evaluation, one column per arm, ``metric [CI]`` cells."""
        if metric not in _METRICS:
            raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
        arms = [arm.name for arm in self.config.arms]
        level = f"{self.config.confidence:.0%}"
        lines = [
            f"| evaluation (part) | {' | '.join(arms)} |",
            "|---|" + "---|" * len(arms),
        ]
        for evaluation in self.config.evaluations:
            cells = []
            for arm in arms:
                row = self.row(arm, evaluation.name)
                cell = row.scores[metric].format()
                if row.gap_to_test is not None:
                    cell += f"; gap to test {row.gap_to_test[metric].format()}"
                cells.append(cell)
            lines.append(f"| {evaluation.name} ({evaluation.part}) | {' | '.join(cells)} |")
        lines += [
            "",
            f"{metric.upper() if metric == 'iqm' else metric} {self.config.score} with "
            f"{level} bootstrap CIs over {len(self.config.seeds)} seeds x the levels of each "
            "evaluation; gap: IID test minus that evaluation (paired over seeds).",
        ]
        return "\n".join(lines)

    def _arm_budget(self, arm: ArmConfig) -> str:
        """What an arm trains: ``ppo`` for N steps, or ``bc`` for N updates on a dataset."""
        algo = arm.algo or self.config.algo
        if arm.dataset is not None:
            return f"`{algo}`, {arm.num_updates} updates on `{arm.dataset}`"
        return f"`{algo}`, {self.config.total_timesteps} steps"

    def _budget_text(self) -> str:
        budgets = list(dict.fromkeys(self._arm_budget(arm) for arm in self.config.arms))
        return budgets[0] if len(budgets) == 1 else "arms as listed below"

    def markdown(self) -> str:
        config = self.config
        settings = {k: v for k, v in config.to_dict().items() if k not in ("arms", "evaluations")}
        return "\n".join(
            [
                f"# Study {config.name}",
                "",
                f"{self._budget_text()} on `{config.env_id}`, seeds {config.seeds}, "
                f"{config.eval_episodes} episodes per evaluation; {self.seconds / 60:.1f} min.",
                "",
                "## IQM",
                "",
                self.table("iqm"),
                "",
                "## Mean",
                "",
                self.table("mean"),
                "",
                "## Arms and evaluations",
                "",
                *[f"- arm `{a.name}`: {self._arm_budget(a)}, env {a.env_kwargs}, agent {a.agent}"
                  for a in config.arms],
                *[
                    f"- evaluation `{e.name}`: part `{e.part}`, env {e.env_kwargs}"
                    for e in config.evaluations
                ],
                "",
                "```json",
                json.dumps(settings, indent=2, sort_keys=True),
                "```",
                "",
            ]
        )


def _summarize(config: StudyConfig, episodes: list[dict[str, Any]]) -> list[StudyRow]:
    """Rows per arm and evaluation; ``episodes`` carry ``arm`` and ``evaluation`` keys."""
    rows = []
    test_names = [e.name for e in config.evaluations if e.part == "test" and not e.env_kwargs]
    for arm in config.arms:
        tables = {}
        for evaluation in config.evaluations:
            chosen = [
                e for e in episodes if e["arm"] == arm.name and e["evaluation"] == evaluation.name
            ]
            tables[evaluation.name] = score_table(chosen, score=config.score)
        for evaluation in config.evaluations:
            table = tables[evaluation.name]
            stats = aggregate(
                table.matrix, metrics=_METRICS, reps=config.reps, confidence=config.confidence
            )
            gap = None
            if test_names and evaluation.name != test_names[0]:
                test = tables[test_names[0]]
                gap = {
                    metric: generalization_gap(
                        test.matrix,
                        table.matrix,
                        reps=config.reps,
                        metric=metric,
                        confidence=config.confidence,
                        paired=test.run_ids == table.run_ids,
                    )
                    for metric in _METRICS
                }
            rows.append(
                StudyRow(
                    arm=arm.name,
                    evaluation=evaluation.name,
                    part=evaluation.part,
                    runs=len(table.run_ids),
                    episodes=int(table.episodes_per_cell.sum()),
                    scores=stats,
                    gap_to_test=gap,
                )
            )
    return rows


def run_study(
    study: str | Path | StudyConfig,
    *,
    workers: int | None = None,
    out_dir: str | Path | None = None,
) -> StudyResult:
    """Train every (arm, seed) of a study, evaluate, and tabulate: a sweep of arms x seeds.

    The trials run through :func:`gengap.drivers.sweep.run_sweep` (one executor, one
    results store written by this process only); this adds the arms x evaluations table.

    Args:
        study: A study TOML path or a :class:`StudyConfig`.
        workers: Trials at once (default: the study's ``workers``); ``workers=1`` trains
            in this process.
        out_dir: Study folder, overriding the study's ``out_dir``.

    Returns:
        The result; ``results.md`` and ``results.json`` are written to the study folder, and
        every episode to its results store (``gengap.sqlite`` there, tag ``study:<name>``).
    """
    from gengap.drivers.grid import study_spec_from_dict
    from gengap.drivers.sweep import run_sweep
    from gengap.eval.store import ResultsStore

    config = study if isinstance(study, StudyConfig) else load_study(study)
    if out_dir is not None:
        config = StudyConfig.from_dict({**config.to_dict(), "out_dir": str(out_dir)})
    workers = config.workers if workers is None else workers
    checks.positive_int("workers", workers)
    data = {k: v for k, v in config.to_dict().items() if v is not None}
    # an arm's unset fields (None: the study's value) are not overrides
    data["arms"] = [{k: v for k, v in arm.items() if v is not None} for arm in data["arms"]]
    scale = float(data.pop("budget_scale", 1.0))  # the sweep's --scale: steps only
    spec = study_spec_from_dict(data, source="study")
    start = time.perf_counter()
    outcome = run_sweep(spec, workers=workers, scale=scale, stream=io.StringIO())
    seconds = time.perf_counter() - start
    if outcome.failed:
        first = next(iter(outcome.failed.values()))
        raise RuntimeError(f"{len(outcome.failed)} study run(s) failed; the first: {first}")
    store = ResultsStore(outcome.store_path)
    names = {trial.run_name for trial in outcome.trials}
    runs = [run for run in store.list_runs() if run["run_id"] in names]
    episodes = []
    for run in runs:
        for evaluation in config.evaluations:
            arm = run["config"]["sweep"]["arm"]
            stored = store.episodes(run_id=run["run_id"], tag=f"study:{evaluation.name}")
            episodes += [{**e, "arm": arm, "evaluation": evaluation.name} for e in stored]
    store.close()
    folder = outcome.folder
    result = StudyResult(
        config=config,
        rows=_summarize(config, episodes),
        run_dirs=[Path(run["run_dir"]) for run in runs],
        seconds=seconds,
    )
    atomic_write_text(
        folder / "results.json",
        json.dumps(
            {
                "study": config.to_dict(),
                "seconds": seconds,
                "rows": [row.to_dict() for row in result.rows],
            },
            indent=2,
        ),
    )
    atomic_write_text(folder / "results.md", result.markdown())
    return result
