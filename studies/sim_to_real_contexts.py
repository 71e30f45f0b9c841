"""Average and worst-case return and the transfer ratio of every arm of the sim-to-real study.

Plays every trained agent of the given study folders (``gengap study`` output: the online
arms of ``studies/sim_to_real.toml`` and the offline arms of
``studies/sim_to_real_offline.toml``) on each context of each part of its split, for the
same test levels (``gengap.eval.contexts``), pools the seeds of an arm, and writes one
context report per arm (``<out>/<arm>/contexts.md``, ``contexts.json``) and the table of
all arms (``<out>/contexts.md``): per part, mean over contexts and the worst context's
mean return with 95% CIs (bootstrap over episodes within each context, seeds pooled) and
the transfer ratio, part / the arm's own training contexts (its nominal point, or 8
draws from its randomization box).

    python studies/sim_to_real_contexts.py runs/studies/sim-to-real \\
        runs/studies/sim-to-real-offline --out runs/studies/sim-to-real-contexts
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from gengap.agents import load_agent
from gengap.core.files import atomic_write_text, read_json
from gengap.eval.contexts import (
    ContextEvaluation,
    evaluate_split_contexts,
    summarize,
    transfer_ratio,
    write_context_report,
)
from gengap.eval.runs import RunFolder

PARTS = ("train", "interpolation", "combinatorial_interpolation",
         "single_factor_extrapolation", "all_factor_extrapolation", "target")


def evaluate_study(study_dir: Path, episodes: int, out: Path
                   ) -> dict[str, dict[str, ContextEvaluation]]:
    """Every finished run of a study folder on its split's context parts, seeds pooled
    per arm (the arm is the run's label after the study name). Each run's evaluation is
    kept in ``<out>/runs/<run>.json`` and reused, so runs can be scored as they finish."""
    arms: dict[str, dict[str, ContextEvaluation]] = {}
    for run_dir in sorted((study_dir / "runs").iterdir()):
        folder = RunFolder(run_dir)
        if not folder.has_agent() or folder.status() != "done":
            continue
        config, split = folder.read_config(), folder.read_split()
        arm = (config.label or config.name).rsplit("/", 1)[-1]
        kept = out / "runs" / f"{run_dir.name}.json"
        data = read_json(kept, "kept evaluation") if kept.is_file() else {}
        if data.get("episodes_per_context") == episodes:
            evaluations = {part: ContextEvaluation.from_dict(value)
                           for part, value in data["parts"].items()}
        else:
            agent = load_agent(folder.agent_dir, device="cpu")
            evaluations = evaluate_split_contexts(
                agent, config.env_id, split, PARTS, episodes_per_context=episodes,
                num_envs=episodes, env_kwargs=config.env_kwargs)
            atomic_write_text(kept, json.dumps({"episodes_per_context": episodes, "parts": {
                part: evaluation.to_dict() for part, evaluation in evaluations.items()}}))
        pooled = arms.setdefault(arm, {})
        for part, evaluation in evaluations.items():
            pooled[part] = evaluation if part not in pooled else pooled[part].pooled(evaluation)
        print(f"{run_dir.name}: " + ", ".join(
            f"{part} {evaluation.returns.mean():.1f}" for part, evaluation in evaluations.items()))
    return arms


def tables(arms: dict[str, dict[str, ContextEvaluation]]) -> str:
    """Markdown: mean over contexts, worst context and transfer ratio [95% CI], one row per
    part and one column per arm."""
    names = list(arms)
    header = ["| part | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    sections = {"Mean return over the part's contexts": [], "Worst context's return": [],
                "Transfer ratio (part / own training contexts)": []}
    mean_rows, worst_rows, ratio_rows = sections.values()
    for part in PARTS:
        summaries = [summarize(arms[name][part]) for name in names]
        mean_rows.append(f"| {part} | " + " | ".join(s.mean.format() for s in summaries) + " |")
        worst_rows.append(f"| {part} | " + " | ".join(
            f"{s.worst.format()} ({_context(s.worst_context)})" for s in summaries) + " |")
        if part != "train":
            ratio_rows.append(f"| {part} | " + " | ".join(
                transfer_ratio(arms[name][part], arms[name]["train"]).format()
                for name in names) + " |")
    return "\n".join(f"## {title}\n\n" + "\n".join(header + rows) + "\n"
                     for title, rows in sections.items())


def _context(context: dict[str, float]) -> str:
    return ", ".join(f"{k.removesuffix('_scale')} {v:g}" for k, v in context.items())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("studies", nargs="+", type=Path, help="gengap study folders")
    parser.add_argument("--episodes", type=int, default=10,
                        help="test levels played per context and run (10)")
    parser.add_argument("--out", type=Path, default=Path("runs/studies/sim-to-real-contexts"))
    args = parser.parse_args(argv)
    arms: dict[str, dict[str, ContextEvaluation]] = {}
    for study_dir in args.studies:
        arms.update(evaluate_study(study_dir, args.episodes, args.out))
    for name, evaluations in arms.items():
        write_context_report(evaluations, args.out / name, title=f"Arm {name}")
    text = tables(arms)
    atomic_write_text(args.out / "contexts.md",
                      "# Sim-to-real: return over the context parts (seeds pooled)\n\n" + text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
