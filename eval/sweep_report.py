"""Reports over a whole sweep, read from its results store alone.

Every run a sweep stored carries its trial info in its config (``config["sweep"]``: the
study, the swept values, the group that pools seeds). From that this module builds, per
setting (group): train and held-out scores and the generalization gap with bootstrap CIs,
for each action mode the runs were evaluated with; the gap-vs-axis plot for any swept
numeric field (train and held-out score and the gap against, e.g., the number of training
levels, with CI bands, log-scale x); rliable performance profiles of the held-out scores;
and the probability of improvement between settings next to each other on the axis.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gengap.envs.errors import InputError, InputFileNotFoundError
from gengap.envs.io import atomic_write_bytes, atomic_write_text
from gengap.envs.registry import unknown_name_message
from gengap.envs.splits import LevelSet
from gengap.eval.metrics import (
    Interval,
    ScoreTable,
    aggregate,
    generalization_gap,
    probability_of_improvement,
    score_table,
)
from gengap.eval.store import ResultsStore

__all__ = [
    "SettingSummary",
    "format_extra_table",
    "format_table",
    "summarize_sweep",
    "sweep_axes",
    "write_sweep_report",
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
        if isinstance(value, bool) or not isinstance(value, int | float):
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


def _sorted(summaries: Sequence[SettingSummary], axis: str | None) -> list[SettingSummary]:
    if axis is None:
        return list(summaries)
    return sorted(summaries, key=lambda s: (_series_key(s, axis), s.axis_value(axis) or 0.0))


def _series_key(summary: SettingSummary, axis: str) -> str:
    """What else varies: settings with the same key form one line along ``axis``."""
    rest = {k: v for k, v in summary.params.items() if k != axis}
    if axis == TRAIN_LEVELS_AXIS:
        rest = {k: v for k, v in rest.items() if k not in ("split", "num_train_levels")}
    return json.dumps([summary.arm, rest], sort_keys=True, default=str)


def _axis_text(value: float | None) -> str:
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
    ordered = _sorted(summaries, axis)
    first = f"{axis} | " if axis else ""
    lines = [
        f"| {first}setting | actions | train | held-out | gap (train - held-out) | runs |",
        "|" + "---|" * (6 + bool(axis)),
    ]
    for summary in ordered:
        position = f"{_axis_text(summary.axis_value(axis))} | " if axis else ""
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


# -- plots -----------------------------------------------------------------------------------
def _png(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _positions(values: list[float]) -> tuple[list[float], list[str]]:
    """Plot positions for axis values; unbounded goes one decade past the largest."""
    finite = [v for v in values if math.isfinite(v)]
    top = max(finite) if finite else 1.0
    placed = [v if math.isfinite(v) else top * 10 for v in values]
    labels = [_axis_text(v) for v in values]
    return placed, labels


def plot_gap_vs_axis(
    summaries: Sequence[SettingSummary],
    axis: str,
    mode: str,
    path: Path,
    *,
    score: str,
    confidence: float,
    metric: str = "mean",
) -> Path | None:
    """Train and held-out score (left) and the gap (right) against ``axis``, CI bands."""
    series: dict[str, list[SettingSummary]] = {}
    for summary in _sorted(summaries, axis):
        if summary.axis_value(axis) is not None and (mode, "test") in summary.scores:
            series.setdefault(_series_key(summary, axis), []).append(summary)
    if not series:
        return None
    figure = Figure(figsize=(11.0, 4.2))
    left, right = figure.subplots(1, 2, gridspec_kw={"wspace": 0.3})
    all_values = sorted({s.axis_value(axis) or 0.0 for ss in series.values() for s in ss})
    placed_all, labels_all = _positions(all_values)
    place = dict(zip(all_values, placed_all, strict=True))
    styles = ["-", "--", ":", "-."]
    colors = {"train": "tab:blue", "test": "tab:red", "gap": "tab:purple"}
    names = {"train": "train levels", "test": "held-out levels"}
    for index, members in enumerate(series.values()):
        style = styles[index % len(styles)]
        suffix = "" if len(series) == 1 else f" [{_series_name(members[0], axis)}]"
        xs = [place[s.axis_value(axis) or 0.0] for s in members]
        for part in ("train", "test"):
            intervals = [s.scores[mode, part][metric] for s in members]
            _line(left, xs, intervals, colors[part], style, f"{names[part]}{suffix}")
        gaps = [s.gaps[mode][metric] for s in members if mode in s.gaps]
        if len(gaps) == len(members):
            _line(right, xs, gaps, colors["gap"], style, f"train - held-out{suffix}")
    right.axhline(0.0, color="black", linewidth=0.8)
    label = "training levels" if axis in (TRAIN_LEVELS_AXIS, "num_train_levels") else axis
    for panel in (left, right):
        panel.set_xscale("log")
        panel.set_xticks(placed_all)
        panel.set_xticklabels(labels_all)
        panel.minorticks_off()
        panel.set_xlabel(f"{label} (log scale)")
        panel.grid(alpha=0.3)
        panel.legend(fontsize=8)
    what = f"{metric.upper() if metric == 'iqm' else metric} {score}"
    left.set_ylabel(what)
    if score == "success":
        left.set_ylim(-0.02, 1.02)
    left.set_title(f"{what} on training and held-out levels", fontsize=10)
    right.set_ylabel(f"gap in {what}")
    right.set_title("generalization gap (train - held-out)", fontsize=10)
    runs = sorted({len(s.run_ids) for ss in series.values() for s in ss})
    figure.suptitle(
        f"{mode} actions; bands: {confidence:.0%} bootstrap CIs over "
        f"{'/'.join(map(str, runs))} seed{'s' if runs != [1] else ''} x levels",
        fontsize=10,
    )
    return _png(figure, path)


def _series_name(summary: SettingSummary, axis: str) -> str:
    rest = [f"{k}={v}" for k, v in summary.params.items() if k not in (axis, "split")]
    return ", ".join(([summary.arm] if summary.arm else []) + rest) or summary.group


def _line(panel: Any, xs: list[float], intervals: list[Interval], color: str, style: str,
          label: str) -> None:  # fmt: skip
    panel.plot(xs, [i.point for i in intervals], style, marker="o", color=color, label=label)
    panel.fill_between(
        xs, [i.low for i in intervals], [i.high for i in intervals], color=color, alpha=0.18
    )


def plot_profiles(
    summaries: Sequence[SettingSummary], mode: str, path: Path, *, score: str, reps: int
) -> Path | None:
    """rliable performance profiles of the held-out scores: the fraction of (run, level)
    scores above each threshold, per setting, with bootstrap CI bands."""
    from rliable import library as rly_library

    scores = {
        s.group: s.tables[mode, "test"].matrix for s in summaries if (mode, "test") in s.tables
    }
    if not scores:
        return None
    values = np.concatenate([m.ravel() for m in scores.values()])
    low, high = float(values.min()), float(values.max())
    taus = np.linspace(low, high if high > low else low + 1.0, 41)
    profiles, intervals = rly_library.create_performance_profile(scores, taus, reps=reps)
    figure = Figure(figsize=(6.5, 4.2))
    panel = figure.subplots()
    for name, profile in profiles.items():
        line = panel.plot(taus, profile, label=name.split("/", 1)[-1])[0]
        lower, upper = intervals[name]
        panel.fill_between(taus, lower, upper, color=line.get_color(), alpha=0.15)
    panel.set_xlabel(f"held-out {score} threshold tau")
    panel.set_ylabel("fraction of runs x levels with score > tau")
    panel.set_title(f"performance profiles on held-out levels ({mode} actions)", fontsize=10)
    panel.grid(alpha=0.3)
    panel.legend(fontsize=7)
    return _png(figure, path)


def _improvement_lines(
    summaries: Sequence[SettingSummary], axis: str | None, mode: str, *, reps: int,
    confidence: float,
) -> list[str]:  # fmt: skip
    """P(X > Y) on common held-out levels for settings next to each other along the axis
    (every pair when there is no axis)."""
    ordered = [s for s in _sorted(summaries, axis) if (mode, "test") in s.tables]
    if axis is not None:
        pairs = [
            (b, a)
            for a, b in zip(ordered, ordered[1:], strict=False)
            if _series_key(a, axis) == _series_key(b, axis)
        ]
    else:
        pairs = [(b, a) for i, a in enumerate(ordered) for b in ordered[i + 1 :]]
    lines = []
    for x, y in pairs:
        table_x, table_y = x.tables[mode, "test"], y.tables[mode, "test"]
        if "level_seed" not in (table_x.column_kind, table_y.column_kind):
            continue
        common = sorted(set(table_x.columns) & set(table_y.columns))
        if not common:
            continue
        interval = probability_of_improvement(
            table_x.matrix[:, [table_x.columns.index(c) for c in common]],
            table_y.matrix[:, [table_y.columns.index(c) for c in common]],
            reps=reps,
            confidence=confidence,
        )
        lines.append(f"| {x.group} | {y.group} | {interval.format()} | {len(common)} |")
    if not lines:
        return []
    return [
        f"## Probability of improvement on held-out levels ({mode} actions)",
        "",
        "P(X > Y): the chance that X scores higher than Y on a held-out level both played, "
        f"with {confidence:.0%} stratified-bootstrap CIs (rliable); 0.5: no difference.",
        "",
        "| X | Y | P(X > Y) | common levels |",
        "|---|---|---|---|",
        *lines,
        "",
    ]


def write_sweep_report(
    folder: str | Path,
    out_dir: str | Path | None = None,
    *,
    score: str | None = None,
    axis: str | None = None,
    reps: int | None = None,
    confidence: float | None = None,
) -> Path:
    """Write ``report.md`` with the table, the gap-vs-axis plots, profiles and P(X > Y).

    Args:
        folder: The sweep folder (holding ``gengap.sqlite`` and ``study.json``).
        out_dir: Where the report goes (default ``<folder>/report``).
        score: ``success``, ``return`` or ``normalized_return`` (default: the study's).
        axis: The swept numeric field for the plot (default: each one found).
        reps: Bootstrap replications (default: the study's).
        confidence: Interval coverage (default: the study's).

    Returns:
        The path of ``report.md``.

    Raises:
        InputFileNotFoundError: If ``folder`` is not a sweep folder.
        InputError: On an axis that was not swept.
    """
    folder = Path(folder)
    store_path, study_path = folder / "gengap.sqlite", folder / "study.json"
    if not store_path.is_file() or not study_path.is_file():
        raise InputFileNotFoundError(
            f"{str(folder)!r} is not a sweep folder (no gengap.sqlite and study.json there)"
        )
    saved = json.loads(study_path.read_text())
    study = saved["study"]
    score = score or study["score"]
    reps = reps or study["reps"]
    confidence = confidence or study["confidence"]
    store = ResultsStore(store_path)
    summaries = summarize_sweep(
        store,
        score=score,
        study=study["name"],
        run_ids=saved.get("trials"),
        reps=reps,
        confidence=confidence,
    )
    axes = sweep_axes(summaries)
    if axis is not None and axis not in axes:
        raise InputError(unknown_name_message("swept numeric axis", axis, axes))
    chosen = [axis] if axis else axes
    main_axis = chosen[0] if chosen else None
    out = Path(out_dir) if out_dir is not None else folder / "report"
    out.mkdir(parents=True, exist_ok=True)
    modes = list(dict.fromkeys(mode for s in summaries for mode in s.modes))
    lines = [
        f"# Sweep {study['name']}",
        "",
        f"`{study['base'].get('algo', 'ppo')}` on `{study['base']['env_id']}`; "
        f"{sum(len(s.run_ids) for s in summaries)} finished runs in {len(summaries)} settings"
        f" (scale {saved.get('scale', 1.0)}). Score: **{score}**; intervals: {confidence:.0%} "
        f"bootstrap CIs over seeds x levels ({reps} resamples); the gap is train minus "
        "held-out score (paired over seeds).",
        "",
        "## Mean",
        "",
        format_table(summaries, axis=main_axis, metric="mean"),
        "",
        "## IQM",
        "",
        format_table(summaries, axis=main_axis, metric="iqm"),
        "",
    ]
    if score == "success":
        lines[-1:-1] = [
            "",
            "Per (seed, level) success is mostly 0 or 1 (one episode per held-out level), so "
            "the IQM is 1 whenever over 75% of cells are solved: read the mean.",
        ]
    extra = format_extra_table(summaries)
    if extra:
        lines += ["## Extra evaluations (mean)", "", extra, ""]
    for name in chosen:
        for mode in modes:
            png = plot_gap_vs_axis(
                summaries, name, mode, out / f"gap-vs-{name}-{mode}.png",
                score=score, confidence=confidence,
            )  # fmt: skip
            if png is not None:
                lines += [f"## Gap vs {name} ({mode} actions)", "", f"![gap]({png.name})", ""]
    for mode in modes:
        png = plot_profiles(summaries, mode, out / f"profiles-{mode}.png", score=score, reps=reps)
        if png is not None:
            lines += [
                f"## Performance profiles ({mode} actions)",
                "",
                f"![profiles]({png.name})",
                "",
            ]
        lines += _improvement_lines(summaries, main_axis, mode, reps=reps, confidence=confidence)
    failed = [
        run for run in store.list_runs(status="failed")
        if run["config"].get("sweep", {}).get("study") == study["name"]
        and run["run_id"] in saved.get("trials", [run["run_id"]])
    ]  # fmt: skip
    if failed:
        lines += ["## Failed trials", ""]
        lines += [
            f"- `{run['run_id']}` after {run['config']['sweep']['attempts']} attempts: "
            f"{run['config']['sweep']['error']}"
            for run in failed
        ]
        lines.append("")
    summary_json = [
        {
            "group": s.group,
            "arm": s.arm,
            "params": s.params,
            "train_levels": None if math.isnan(s.train_levels) else s.train_levels,
            "run_ids": s.run_ids,
            "failed": s.failed,
            "scores": {
                f"{mode}/{part}": {k: v.to_dict() for k, v in stats.items()}
                for (mode, part), stats in s.scores.items()
            },
            "gaps": {mode: {k: v.to_dict() for k, v in g.items()} for mode, g in s.gaps.items()},
        }
        for s in summaries
    ]
    atomic_write_text(out / "summary.json", json.dumps(summary_json, indent=2, default=str))
    report = out / "report.md"
    atomic_write_text(report, "\n".join(lines).rstrip() + "\n")
    store.close()
    return report
