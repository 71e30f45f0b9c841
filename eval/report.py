"""Markdown reports with plots: train vs held-out scores, learning curves, the generalization gap.

Figures go through :mod:`gengap.eval.report_parts` (Agg canvas, never ``pyplot``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from gengap.core.files import atomic_write_text
from gengap.eval.metrics import (
    Interval,
    ScoreTable,
    aggregate,
    generalization_gap,
    score_table,
)
from gengap.eval.report_parts import improvement_on_common_levels, improvement_table, save_png
from gengap.eval.store import PARTS, ResultsStore

__all__ = ["GroupSummary", "report_runs", "summarize_group", "write_report"]

_SCORES: tuple[str, ...] = ("return", "normalized_return", "success")
_PART_COLORS = {
    "train": "tab:blue",
    "validation": "tab:orange",
    "test": "tab:red",
    # held-out combination parts (gengap.envs.combinations), shown after the IID test part
    "combinatorial": "tab:purple",
    "extrapolation": "tab:brown",
}
_REPORT_METRICS: tuple[str, ...] = ("iqm", "mean")


@dataclass
class GroupSummary:
    """Statistics of one group of runs (same env, algorithm and config label; several seeds).

    Attributes:
        name: Readable name, ``"<algo> on <env_id> [label]"``.
        runs: The store's run dicts, sorted by run id.
        episodes: Per part, the evaluation episodes used (see :func:`summarize_group`).
        evaluations: Per part, the ``(checkpoint_step, eval_tag)`` pairs those came from.
        tables: Per part, the score table.
        scores: Per part, ``{"iqm": Interval, "mean": Interval}``.
        gaps: ``{"iqm": Interval, "mean": Interval}`` of train minus held-out part, if both exist.
        held_out_part: ``"test"``, or ``"validation"`` when no test episodes exist.
    """

    name: str
    runs: list[dict[str, Any]]
    episodes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    evaluations: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    tables: dict[str, ScoreTable] = field(default_factory=dict)
    scores: dict[str, dict[str, Interval]] = field(default_factory=dict)
    gaps: dict[str, Interval] = field(default_factory=dict)
    held_out_part: str | None = None


def _group_name(run: Mapping[str, Any]) -> str:
    label = f" [{run['label']}]" if run.get("label") else ""
    return f"{run['algo']} on {run['env_id']}{label}"


def _latest_evaluation(episodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The episodes of the most recently stored evaluation (checkpoint step and tag)."""
    if not episodes:
        return []
    last = episodes[-1]
    key = (last["checkpoint_step"], last["eval_tag"])
    return [e for e in episodes if (e["checkpoint_step"], e["eval_tag"]) == key]


def summarize_group(
    store: ResultsStore,
    runs: Sequence[Mapping[str, Any]],
    score: str = "return",
    *,
    tag: str | None = None,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> GroupSummary:
    """Score tables, aggregates with CIs and the generalization gap of one group of runs.

    Args:
        store: The results store.
        runs: Run dicts (:meth:`ResultsStore.get_run`) of one configuration, several seeds.
        score: ``"return"``, ``"normalized_return"`` or ``"success"``.
        tag: Use the episodes with this ``eval_tag``; ``None``: for each run and part, the
            episodes of its most recently stored evaluation.
        reps: Bootstrap replications.
        confidence: Interval coverage.
        seed: Bootstrap seed.

    Returns:
        The summary. The gap is train minus the held-out part (test, else validation), by IQM
        and by mean (:func:`gengap.eval.metrics.generalization_gap`).
    """
    ordered = sorted(runs, key=lambda run: str(run["run_id"]))
    summary = GroupSummary(_group_name(ordered[0]), [dict(run) for run in ordered])
    for part in PARTS:
        chosen: list[dict[str, Any]] = []
        evaluations: set[tuple[int, str]] = set()
        for run in ordered:
            stored = store.episodes(run_id=run["run_id"], part=part, tag=tag)
            selected = stored if tag is not None else _latest_evaluation(stored)
            chosen.extend(selected)
            evaluations.update((e["checkpoint_step"], e["eval_tag"]) for e in selected)
        if not chosen:
            continue
        summary.episodes[part] = chosen
        summary.evaluations[part] = sorted(evaluations)
        table = score_table(chosen, score=score)
        summary.tables[part] = table
        summary.scores[part] = aggregate(
            table.matrix, metrics=_REPORT_METRICS, reps=reps, confidence=confidence, seed=seed
        )
    summary.held_out_part = next(
        (part for part in ("test", "validation") if part in summary.tables), None
    )
    if "train" in summary.tables and summary.held_out_part is not None:
        train, held_out = summary.tables["train"], summary.tables[summary.held_out_part]
        for metric in _REPORT_METRICS:
            summary.gaps[metric] = generalization_gap(
                train.matrix,
                held_out.matrix,
                reps=reps,
                seed=seed,
                metric=metric,
                confidence=confidence,
                paired=train.run_ids == held_out.run_ids,
            )
    return summary


# -- plots -----------------------------------------------------------------------------------
def _plot_curves(store: ResultsStore, summary: GroupSummary, score: str, path: Path) -> Path | None:
    points = [point for run in summary.runs for point in store.curves(run["run_id"])]
    if not points:
        return None
    metrics = sorted({point["metric"] for point in points})
    if score in metrics:
        metrics = [score]
    figure = Figure(figsize=(6.0 * len(metrics), 4.0))
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    for axis, metric in zip(axes, metrics, strict=True):
        for part in PARTS:
            by_run: dict[str, dict[int, float]] = {}
            for point in points:
                if point["metric"] == metric and point["part"] == part:
                    by_run.setdefault(point["run_id"], {})[point["step"]] = point["value"]
            if not by_run:
                continue
            steps = sorted({step for values in by_run.values() for step in values})
            # Seeds are averaged at each step where they logged a value; the band spans them.
            columns = [[values[s] for values in by_run.values() if s in values] for s in steps]
            mean = np.array([np.mean(column) for column in columns])
            low = np.array([np.min(column) for column in columns])
            high = np.array([np.max(column) for column in columns])
            color = _PART_COLORS[part]
            axis.plot(
                steps,
                mean,
                color=color,
                marker="o",
                markersize=3,
                label=f"{part} levels (mean of {len(by_run)} runs)",
            )
            if len(by_run) > 1:
                axis.fill_between(steps, low, high, color=color, alpha=0.2)
        axis.set_xlabel("environment steps")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(f"{summary.name}: learning curves (band: min-max over runs)", fontsize=10)
    return save_png(figure, path)


def _plot_scores(summaries: list[GroupSummary], score: str, confidence: float, path: Path) -> Path:
    rows = [(summary, part) for summary in summaries for part in PARTS if part in summary.scores]
    height = max(2.5, 0.45 * len(rows) + 1.5)
    figure = Figure(figsize=(11.0, height))
    axes = figure.subplots(1, len(_REPORT_METRICS), squeeze=False)[0]
    positions = np.arange(len(rows))[::-1]
    labels = [f"{summary.name} | {part}" for summary, part in rows]
    for axis, metric in zip(axes, _REPORT_METRICS, strict=True):
        for position, (summary, part) in zip(positions, rows, strict=True):
            interval = summary.scores[part][metric]
            axis.errorbar(
                interval.point,
                position,
                xerr=[[interval.point - interval.low], [interval.high - interval.point]],
                fmt="o",
                color=_PART_COLORS[part],
                capsize=4,
            )
        axis.set_yticks(positions)
        axis.set_yticklabels(labels if axis is axes[0] else [""] * len(labels), fontsize=8)
        axis.set_xlabel(f"{metric.upper() if metric == 'iqm' else metric} {score}")
        axis.grid(axis="x", alpha=0.3)
    figure.suptitle(f"{score} with {confidence:.0%} bootstrap confidence intervals", fontsize=10)
    return save_png(figure, path)


# -- markdown --------------------------------------------------------------------------------
def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def _level_rows(
    episodes: list[dict[str, Any]], score: str, max_levels: int
) -> tuple[list[tuple[int, float, int, int]], bool]:
    """(level_seed, mean over runs of each run's mean, episodes, runs) rows; trimmed flag."""
    per_level: dict[int, dict[str, list[float]]] = {}
    for episode in episodes:
        value = episode["return"] if score == "return" else episode[score]
        runs = per_level.setdefault(int(episode["level_seed"]), {})
        runs.setdefault(episode["run_id"], []).append(float(value))
    rows = [
        (
            level,
            float(np.mean([np.mean(values) for values in runs.values()])),
            sum(len(values) for values in runs.values()),
            len(runs),
        )
        for level, runs in per_level.items()
    ]
    rows.sort(key=lambda row: (row[1], row[0]))
    if len(rows) <= 2 * max_levels:
        return sorted(rows), False
    return rows[:max_levels] + rows[-max_levels:], True


def _provenance(run: Mapping[str, Any]) -> list[str]:
    versions = run.get("versions") or {}
    lines = [
        f"#### `{run['run_id']}`",
        "",
        f"- kind `{run['kind']}`, algorithm `{run['algo']}`, env `{run['env_id']}`, "
        f"seed {run['seed']}, status `{run['status']}`",
        f"- created {run['created']}, updated {run['updated']}",
        f"- git revision `{run.get('git_rev') or 'unknown'}`",
        f"- run folder `{run.get('run_dir') or '-'}`",
        "- versions: " + (", ".join(f"{k} {v}" for k, v in sorted(versions.items())) or "-"),
        "",
        "<details><summary>config</summary>",
        "",
        "```json",
        json.dumps(run.get("config"), indent=2, sort_keys=True),
        "```",
        "",
        "</details>",
        "",
        "<details><summary>split</summary>",
        "",
        "```json",
        json.dumps(run.get("split"), indent=2, sort_keys=True),
        "```",
        "",
        "</details>",
        "",
    ]
    return lines


def _group_markdown(
    summary: GroupSummary,
    score: str,
    confidence: float,
    curves_png: Path | None,
    max_levels: int,
) -> list[str]:
    seeds = ", ".join(str(run["seed"]) for run in summary.runs)
    lines = [f"## {summary.name}", "", f"{len(summary.runs)} runs (seeds {seeds}).", ""]
    if not summary.tables:
        return [*lines, "No evaluation episodes stored for these runs yet.", ""]
    if summary.gaps:
        iqm, mean = summary.gaps["iqm"], summary.gaps["mean"]
        lines += [
            f"**Generalization gap** (train - {summary.held_out_part}, {score}): "
            f"IQM **{iqm.format()}**, mean {mean.format()} ({confidence:.0%} CI; {iqm.method}).",
            "",
        ]
    lines += [
        f"| part | runs | levels | episodes | IQM {score} [{confidence:.0%} CI] | "
        f"mean {score} [{confidence:.0%} CI] | evaluated at (step, tag) |",
        "|---|---|---|---|---|---|---|",
    ]
    for part, table in summary.tables.items():
        stats = summary.scores[part]
        levels = len(table.columns) if table.column_kind == "level_seed" else "per episode"
        evaluations = "; ".join(f"{step}, {tag}" for step, tag in summary.evaluations[part])
        lines.append(
            f"| {part} | {len(table.run_ids)} | {levels} | {len(summary.episodes[part])} | "
            f"{stats['iqm'].format()} | {stats['mean'].format()} | {evaluations} |"
        )
    methods = sorted(
        {interval.method for stats in summary.scores.values() for interval in stats.values()}
    )
    lines += ["", f"Intervals: {'; '.join(methods)}.", ""]
    if curves_png is not None:
        lines += [f"![learning curves]({curves_png.name})", ""]
    if summary.held_out_part is not None:
        part = summary.held_out_part
        rows, trimmed = _level_rows(summary.episodes[part], score, max_levels)
        title = (
            f"Held-out ({part}) levels: the {max_levels} lowest and {max_levels} highest "
            f"scoring of {len({e['level_seed'] for e in summary.episodes[part]})}"
            if trimmed
            else f"Held-out ({part}) levels"
        )
        lines += [
            f"### {title}",
            "",
            f"| level_seed | mean {score} over runs | episodes | runs |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {level} | {value:.3f} | {count} | {runs} |" for level, value, count, runs in rows
        ]
        lines.append("")
    lines += ["### Provenance", ""]
    for run in summary.runs:
        lines += _provenance(run)
    return lines


def _improvement_markdown(
    summaries: Sequence[GroupSummary], *, reps: int, confidence: float, seed: int
) -> list[str]:
    """Pairwise probability of improvement on the held-out levels both groups played."""
    tables = [
        (s.name, s.tables[s.held_out_part])
        for s in summaries
        if s.held_out_part is not None and s.held_out_part in s.tables
    ]
    tables = [(name, t) for name, t in tables if t.column_kind == "level_seed"]
    if len(tables) < 2:
        return []
    rows = []
    for i, (name_x, table_x) in enumerate(tables):
        for name_y, table_y in tables[i + 1 :]:
            paired = improvement_on_common_levels(
                table_x, table_y, reps=reps, confidence=confidence, seed=seed
            )
            if paired is None:
                rows.append(f"| {name_x} | {name_y} | no common levels | 0 |")
            else:
                rows.append(f"| {name_x} | {name_y} | {paired[0].format()} | {paired[1]} |")
    return improvement_table("Probability of improvement on held-out levels", rows, confidence)


def write_report(
    store: ResultsStore,
    run_ids: Sequence[str],
    out_dir: str | Path,
    score: str = "return",
    *,
    tag: str | None = None,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    max_levels: int = 10,
) -> Path:
    """Write ``report.md`` (plus PNG plots and ``summary.json``) for the given runs.

    Runs are grouped by (env id, algorithm, config label), so the seeds of one experiment are
    aggregated together. For each group the report gives train / validation / test scores (IQM
    and mean with bootstrap CIs over runs and levels), the generalization gap with its CI,
    learning curves from the store's ``curves`` table, a per-level table of the held-out part
    (all levels, or the ``max_levels`` lowest and highest scoring) and each run's provenance.

    Args:
        store: The results store holding the runs.
        run_ids: Runs to report.
        out_dir: Folder for ``report.md``, ``scores.png``, ``curves-*.png``, ``summary.json``.
        score: ``"return"``, ``"normalized_return"`` or ``"success"``.
        tag: Only episodes with this ``eval_tag``; ``None``: each run's latest evaluation.
        reps: Bootstrap replications.
        confidence: Interval coverage.
        seed: Bootstrap seed (same seed, same numbers).
        max_levels: Rows at each end of the per-level table when it is long.

    Returns:
        The path of ``report.md``.

    Raises:
        ValueError: On no or repeated run ids, an unknown score, or ``max_levels < 1``.
        KeyError: On a run id the store does not hold.
    """
    if isinstance(run_ids, str) or not run_ids:
        raise ValueError(f"run_ids must be a non-empty list of run ids, got {run_ids!r}")
    if len(set(run_ids)) != len(run_ids):
        raise ValueError(f"run_ids must not repeat, got {list(run_ids)}")
    if score not in _SCORES:
        raise ValueError(f"score must be one of {_SCORES}, got {score!r}")
    if max_levels < 1:
        raise ValueError(f"max_levels must be >= 1, got {max_levels!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = [store.get_run(run_id) for run_id in run_ids]
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["env_id"], run["algo"], run["label"]), []).append(run)
    summaries = [
        summarize_group(store, members, score, tag=tag, reps=reps, confidence=confidence, seed=seed)
        for members in groups.values()
    ]

    lines = [
        "# gengap report",
        "",
        f"Score: **{score}**. Runs: {len(runs)} in {len(summaries)} group(s). Each level is a "
        "task and each run (training seed) a sample: intervals are percentile bootstrap "
        f"{confidence:.0%} CIs ({reps} resamples, seed {seed}); the gap is train minus held-out "
        "score.",
        "",
    ]
    if any(summary.scores for summary in summaries):
        scores_png = _plot_scores(summaries, score, confidence, out / "scores.png")
        lines += [f"![scores]({scores_png.name})", ""]
    json_summary = []
    for index, summary in enumerate(summaries):
        curves_png = _plot_curves(
            store, summary, score, out / f"curves-{index}-{_slug(summary.name)}.png"
        )
        lines += _group_markdown(summary, score, confidence, curves_png, max_levels)
        json_summary.append(
            {
                "group": summary.name,
                "run_ids": [run["run_id"] for run in summary.runs],
                "score": score,
                "scores": {
                    part: {k: v.to_dict() for k, v in stats.items()}
                    for part, stats in summary.scores.items()
                },
                "gap": {k: v.to_dict() for k, v in summary.gaps.items()},
                "held_out_part": summary.held_out_part,
            }
        )
    lines += _improvement_markdown(summaries, reps=reps, confidence=confidence, seed=seed)
    atomic_write_text(out / "summary.json", json.dumps(json_summary, indent=2))
    report = out / "report.md"
    atomic_write_text(report, "\n".join(lines).rstrip() + "\n")
    return report


def report_runs(
    run_dirs: Sequence[str | Path], out_dir: str | Path, *, tag: str | None = "final"
) -> Path:
    """Write a Markdown report (with plots) over the runs in ``run_dirs``.

    The score is the envs' registry default (``EnvInfo.default_score``: success,
    normalized return, ...); runs whose envs disagree are reported by return.

    Args:
        run_dirs: Run folders sharing one results store; seeds of one config are pooled.
        out_dir: Where ``report.md`` and the plots go.
        tag: Which evaluation to report (``final``: the end-of-training one with the
            run's own action mode; ``None``: each run's latest evaluation).

    Raises:
        InputError: For no run folders, folders that are not runs (file named), or runs
            that do not share one results store.
    """
    from gengap.core.errors import InputError
    from gengap.envs import env_info
    from gengap.eval.runs import RunFolder, load_run

    if not run_dirs:
        raise InputError("report needs at least one run folder, got none")
    loaded = [load_run(run_dir) for run_dir in run_dirs]
    stores = {str(RunFolder(run_dir).store_path().resolve()) for run_dir in run_dirs}
    if len(stores) != 1:
        raise InputError(
            f"runs to report together must share one results store, got {sorted(stores)}"
        )
    scores = {env_info(config.env_id).default_score for config, _, _ in loaded}
    score = scores.pop() if len(scores) == 1 else "return"
    run_ids = [info["run_id"] for _, _, info in loaded]
    return write_report(
        ResultsStore(next(iter(stores))), run_ids, Path(out_dir), score=score, tag=tag
    )
