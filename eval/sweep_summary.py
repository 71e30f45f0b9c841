"""Per-setting summaries of a sweep, read from its results store alone.

Every run a sweep stored carries its trial info in its config (``config["sweep"]``: the
study, the swept values, the group that pools seeds). From that this module builds, per
setting (group): train and held-out scores and the generalization gap with bootstrap CIs,
for each action mode the runs were evaluated with, and the markdown tables of them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gengap.core import checks
from gengap.core.errors import InputError, unknown_name_message
from gengap.envs.splits import LevelSet
from gengap.eval.metrics import (
    Interval,
    ScoreTable,
    aggregate,
    generalization_gap,
    score_table,
)
from gengap.eval.store import ResultsStore

__all__ = [
    "TRAIN_LEVELS_AXIS",
    "SettingSummary",
    "axis_text",
    "format_extra_table",
    "format_table",
    "series_key",
    "sorted_along",
    "summarize_sweep",
    "sweep_axes",
]

_METRICS = ("mean", "iqm")
#: A derived axis: the number of training levels of each run's split (unbounded: inf).
TRAIN_LEVELS_AXIS = "train_levels"


@dataclass
class SettingSummary:
    """One setting of a sweep (a group: every swept value but the seed), over its seeds.

    Attributes:
        group: The group label (``<study>/<arm>/<key>=<value>...``).
        arm: The arm, or ``None``.
        params: The swept values but the seed.
        run_ids: Finished runs (seeds), sorted.
        failed: Runs recorded as failed.
        train_levels: Training levels of the split (``inf`` when unbounded).
        modes: Action modes found: ``{mode: tag}``, e.g. ``{"sampled": "final"}``.
        tables: ``(mode, part) -> ScoreTable``.
        scores: ``(mode, part) -> {metric: Interval}``.
        gaps: ``mode -> {metric: Interval}``: train minus test.
        extra: The study's extra evaluations: ``name -> {metric: Interval}``.
    """

    group: str
    arm: str | None
    params: dict[str, Any]
    run_ids: list[str]
    failed: int
    train_levels: float
    modes: dict[str, str] = field(default_factory=dict)
    tables: dict[tuple[str, str], ScoreTable] = field(default_factory=dict)
    scores: dict[tuple[str, str], dict[str, Interval]] = field(default_factory=dict)
    gaps: dict[str, dict[str, Interval]] = field(default_factory=dict)
    extra: dict[str, dict[str, Interval]] = field(default_factory=dict)

    def axis_value(self, axis: str) -> float | None:
        """This setting's position on ``axis`` (a swept key, or ``train_levels``)."""
        if axis == TRAIN_LEVELS_AXIS:
            return self.train_levels
        value = self.params.get(axis)
        if not checks.is_number(value):
            return None
        return float(value)


def _train_levels(split: Mapping[str, Any] | None) -> float:
    if not split or "train" not in split:
        return math.nan
    levels = LevelSet.from_dict(split["train"])
    if levels.seeds is None and levels.stop is None:
        return math.inf
    return float(len(levels))


def _mode_tags(config: Mapping[str, Any]) -> dict[str, str]:
    own = "greedy" if config.get("deterministic_eval", True) else "sampled"
    tags = {own: "final"}
    if config.get("compare_action_modes"):
        other = "sampled" if own == "greedy" else "greedy"
        tags[other] = f"final-{other}"
    return tags


def summarize_sweep(
    store: ResultsStore,
    *,
    score: str = "success",
    study: str | None = None,
    run_ids: Collection[str] | None = None,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[SettingSummary]:
    """Per-setting scores and gaps of every sweep run in ``store`` (or of one study, or of
    the runs in ``run_ids``).

    Raises:
        InputError: If the store holds no sweep runs (of that study).
    """
    runs = [run for run in store.list_runs() if isinstance(run["config"].get("sweep"), dict)]
    studies = sorted({run["config"]["sweep"]["study"] for run in runs})
    if study is not None:
        if study not in studies:
            raise InputError(unknown_name_message(f"study in {store.path}", study, studies))
        runs = [run for run in runs if run["config"]["sweep"]["study"] == study]
    if run_ids is not None:
        wanted = set(run_ids)
        runs = [run for run in runs if run["run_id"] in wanted]
    if not runs:
        raise InputError(f"{store.path} holds no sweep runs: run `gengap sweep STUDY.toml` first")
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(run["config"]["sweep"]["group"], []).append(run)
    summaries = []
    for group, members in groups.items():
        info = members[0]["config"]["sweep"]
        done = sorted((r for r in members if r["status"] == "done"), key=lambda r: r["run_id"])
        summary = SettingSummary(
            group=group,
            arm=info.get("arm"),
            params={k: v for k, v in info["params"].items() if k != "seed"},
            run_ids=[r["run_id"] for r in done],
            failed=sum(r["status"] == "failed" for r in members),
            train_levels=_train_levels(done[0]["split"] if done else members[0].get("split")),
        )
        if done:
            summary.modes = _mode_tags(done[0]["config"])
        for mode, tag in summary.modes.items():
            for part in ("train", "test"):
                episodes = [e for r in done for e in store.episodes(r["run_id"], part, tag)]
                if not episodes:
                    continue
                table = score_table(episodes, score=score)
                summary.tables[mode, part] = table
                summary.scores[mode, part] = aggregate(
                    table.matrix, metrics=_METRICS, reps=reps, confidence=confidence, seed=seed
                )
            if (mode, "train") in summary.tables and (mode, "test") in summary.tables:
                train, test = summary.tables[mode, "train"], summary.tables[mode, "test"]
                summary.gaps[mode] = {
                    metric: generalization_gap(
                        train.matrix,
                        test.matrix,
                        reps=reps,
                        seed=seed,
                        metric=metric,
                        confidence=confidence,
                        paired=train.run_ids == test.run_ids,
                    )
                    for metric in _METRICS
                }
        extra: dict[str, list[dict[str, Any]]] = {}
        for run in done:
            for episode in store.episodes(run["run_id"]):
                if episode["eval_tag"].startswith("study:"):
                    extra.setdefault(episode["eval_tag"].split(":", 1)[1], []).append(episode)
        for name, episodes in extra.items():
            matrix = score_table(episodes, score=score).matrix
            summary.extra[name] = aggregate(
                matrix, metrics=_METRICS, reps=reps, confidence=confidence, seed=seed
            )
        summaries.append(summary)
    return summaries


def format_extra_table(summaries: Sequence[SettingSummary], *, metric: str = "mean") -> str:
    """Markdown: the study's extra evaluations, one row per setting ("" when there are none)."""
    names = list(dict.fromkeys(name for s in summaries for name in s.extra))
    if not names:
        return ""
    lines = [f"| setting | {' | '.join(names)} |", "|---|" + "---|" * len(names)]
    for summary in summaries:
        cells = [
            summary.extra[name][metric].format() if name in summary.extra else "-" for name in names
        ]
        lines.append(f"| {summary.group} | {' | '.join(cells)} |")
    return "\n".join(lines)


def sweep_axes(summaries: Sequence[SettingSummary]) -> list[str]:
    """Numeric swept keys with more than one value, plus ``train_levels`` when it varies."""
    axes = []
    keys = {key for s in summaries for key in s.params}
    for key in sorted(keys):
        values = {s.axis_value(key) for s in summaries}
        if None not in values and len(values) > 1:
            axes.append(key)
    levels = {s.train_levels for s in summaries}
    if len(levels) > 1 and not any(math.isnan(v) for v in levels):
        if not any(
            all(s.axis_value(a) == s.train_levels for s in summaries) for a in axes
        ):  # num_train_levels already is this axis
            axes.append(TRAIN_LEVELS_AXIS)
    return axes


def sorted_along(summaries: Sequence[SettingSummary], axis: str | None) -> list[SettingSummary]:
    """Settings grouped into lines (:func:`series_key`), each ordered by its ``axis`` value."""
    if axis is None:
        return list(summaries)
    return sorted(summaries, key=lambda s: (series_key(s, axis), s.axis_value(axis) or 0.0))


def series_key(summary: SettingSummary, axis: str) -> str:
    """What else varies: settings with the same key form one line along ``axis``."""
    rest = {k: v for k, v in summary.params.items() if k != axis}
    if axis == TRAIN_LEVELS_AXIS:
        rest = {k: v for k, v in rest.items() if k not in ("split", "num_train_levels")}
    return json.dumps([summary.arm, rest], sort_keys=True, default=str)


def axis_text(value: float | None) -> str:
    """An axis value as a table cell or tick label (``-``, ``unbounded``, ``2^30``, ``200``)."""
    if value is None or math.isnan(value):
        return "-"
    if math.isinf(value):
        return "unbounded"
    if value >= 2**20 and value == 2 ** round(math.log2(value)):
        return f"2^{round(math.log2(value))}"
    return f"{value:g}"


def format_table(
    summaries: Sequence[SettingSummary], *, axis: str | None = None, metric: str = "mean"
) -> str:
    """Markdown: one row per setting and action mode: train, held-out, gap with CIs."""
    ordered = sorted_along(summaries, axis)
    first = f"{axis} | " if axis else ""
    lines = [
        f"| {first}setting | actions | train | held-out | gap (train - held-out) | runs |",
        "|" + "---|" * (6 + bool(axis)),
    ]
    for summary in ordered:
        position = f"{axis_text(summary.axis_value(axis))} | " if axis else ""
        if not summary.modes:
            lines.append(
                f"| {position}{summary.group} | - | - | - | - | 0 ({summary.failed} failed) |"
            )
        for mode in summary.modes:
            cells = [
                summary.scores[mode, part][metric].format() if (mode, part) in summary.scores
                else "-"
                for part in ("train", "test")
            ]  # fmt: skip
            gap = summary.gaps[mode][metric].format() if mode in summary.gaps else "-"
            runs = f"{len(summary.run_ids)}" + (
                f" ({summary.failed} failed)" if summary.failed else ""
            )
            lines.append(
                f"| {position}{summary.group} | {mode} | {cells[0]} | {cells[1]} | {gap} | {runs} |"
            )
    return "\n".join(lines)
