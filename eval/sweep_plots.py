"""Sweep figures: the gap-vs-axis plot and rliable performance profiles.

The gap-vs-axis plot shows train and held-out score and the gap against any swept numeric
field (e.g. the number of training levels) with CI bands on a log-scale x; profiles show the
fraction of (run, level) held-out scores above each threshold, per setting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from gengap.eval.metrics import (
    Interval,
)
from gengap.eval.report_parts import save_png
from gengap.eval.sweep_summary import (
    TRAIN_LEVELS_AXIS,
    SettingSummary,
    axis_text,
    series_key,
    sorted_along,
)

__all__ = ["plot_gap_vs_axis", "plot_profiles"]


def _positions(values: list[float]) -> tuple[list[float], list[str]]:
    """Plot positions for axis values; unbounded goes one decade past the largest."""
    finite = [v for v in values if math.isfinite(v)]
    top = max(finite) if finite else 1.0
    placed = [v if math.isfinite(v) else top * 10 for v in values]
    labels = [axis_text(v) for v in values]
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
    for summary in sorted_along(summaries, axis):
        if summary.axis_value(axis) is not None and (mode, "test") in summary.scores:
            series.setdefault(series_key(summary, axis), []).append(summary)
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
    return save_png(figure, path)


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
    return save_png(figure, path)
