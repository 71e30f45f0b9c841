"""Reports over a whole sweep, read from its results store alone.

The report holds the per-setting table (:mod:`gengap.eval.sweep_summary`: train and held-out
scores and the gap with bootstrap CIs, mean and IQM), the gap-vs-axis plots and performance
profiles (:mod:`gengap.eval.sweep_plots`), and the probability of improvement between
settings next to each other on the axis.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from gengap.core.errors import InputError, InputFileNotFoundError, unknown_name_message
from gengap.core.files import atomic_write_text, read_json
from gengap.eval.report_parts import improvement_on_common_levels, improvement_table
from gengap.eval.store import ResultsStore
from gengap.eval.sweep_plots import plot_gap_vs_axis, plot_profiles
from gengap.eval.sweep_summary import (
    SettingSummary,
    format_extra_table,
    format_table,
    series_key,
    sorted_along,
    summarize_sweep,
    sweep_axes,
)

__all__ = [
    "SettingSummary",
    "format_extra_table",
    "format_table",
    "summarize_sweep",
    "sweep_axes",
    "write_sweep_report",
]


def _improvement_lines(
    summaries: Sequence[SettingSummary], axis: str | None, mode: str, *, reps: int,
    confidence: float,
) -> list[str]:  # fmt: skip
    """P(X > Y) on common held-out levels for settings next to each other along the axis
    (every pair when there is no axis)."""
    ordered = [s for s in sorted_along(summaries, axis) if (mode, "test") in s.tables]
    if axis is not None:
        pairs = [
            (b, a)
            for a, b in zip(ordered, ordered[1:], strict=False)
            if series_key(a, axis) == series_key(b, axis)
        ]
    else:
        pairs = [(b, a) for i, a in enumerate(ordered) for b in ordered[i + 1 :]]
    rows = []
    for x, y in pairs:
        paired = improvement_on_common_levels(
            x.tables[mode, "test"], y.tables[mode, "test"], reps=reps, confidence=confidence
        )
        if paired is not None:
            rows.append(f"| {x.group} | {y.group} | {paired[0].format()} | {paired[1]} |")
    title = f"Probability of improvement on held-out levels ({mode} actions)"
    return improvement_table(title, rows, confidence)


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
    saved = read_json(study_path, "sweep study record")
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
