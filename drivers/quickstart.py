"""The quickstart experiment (what ``make demo`` runs).

PPO on MiniGrid MultiRoom-N2-S4 trained on a few dozen level seeds, several
training seeds in a local process pool, then evaluated zero-shot on hundreds
of held-out levels. It prints train score, held-out score and the
generalization gap with 95% bootstrap confidence intervals, and writes a report.

Finished runs are kept: running it again skips them (an interrupted quickstart
resumes its unfinished runs from their checkpoints).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gengap.drivers.train import run_or_resume
from gengap.eval.executor import Executor
from gengap.eval.report import report_runs
from gengap.eval.runs import ExperimentConfig, RunFolder

QUICKSTART_ENV = "gengap/minigrid-multiroom-n2-s4-v0"
QUICKSTART_STEPS = 150_000
QUICKSTART_TRAIN_LEVELS = 25
QUICKSTART_TEST_EPISODES = 300


def quickstart_configs(
    seeds: int, total_timesteps: int, num_train_levels: int, out_dir: str
) -> list[ExperimentConfig]:
    return [
        ExperimentConfig(
            env_id=QUICKSTART_ENV,
            algo="ppo",
            total_timesteps=total_timesteps,
            num_envs=8,
            seed=seed,
            num_train_levels=num_train_levels,
            env_kwargs={"obs_mode": "image"},
            eval_episodes=20,
            final_eval_episodes=QUICKSTART_TEST_EPISODES,
            final_eval_parts=("train", "test"),
            # Sampled actions are the policy as trained; greedy ones are reported beside
            # them because a memoryless argmax policy loops on levels it could solve.
            deterministic_eval=False,
            compare_action_modes=True,
            out_dir=out_dir,
        )
        for seed in range(seeds)
    ]


def _run_one(config_dict: dict[str, Any]) -> str:
    return str(run_or_resume(ExperimentConfig.from_dict(config_dict)))


def run_quickstart(
    *,
    seeds: int = 3,
    total_timesteps: int | None = None,
    num_train_levels: int | None = None,
    out_dir: str = "runs/quickstart",
    workers: int = 2,
    console: Any = None,
) -> Path:
    """Train ``seeds`` PPO agents on the training levels, evaluate on held-out levels, report."""
    from rich.console import Console
    from rich.table import Table

    from gengap.eval.metrics import aggregate, generalization_gap, score_matrix

    console = console or Console()
    configs = quickstart_configs(
        seeds,
        total_timesteps or QUICKSTART_STEPS,
        num_train_levels or QUICKSTART_TRAIN_LEVELS,
        out_dir,
    )
    first = configs[0]
    split = first.resolved_split()
    console.print(
        f"[bold]gengap quickstart[/]: PPO on {first.env_id}, "
        f"{seeds} seeds x {first.total_timesteps:,} steps\n"
        f"  train levels: {split.train.describe()}\n  held-out levels: {split.test.describe()}"
        f" ({QUICKSTART_TEST_EPISODES} evaluated per seed)"
    )
    with console.status("training (one process per seed)..."):
        run_dirs = Executor("local", workers=workers).run(_run_one, [c.to_dict() for c in configs])
    folders = [RunFolder(run_dir) for run_dir in run_dirs]
    store = folders[0].store()
    run_ids = [folder.run_id() for folder in folders]
    table = Table(title=f"success rate on {first.env_id} over seeds x levels (95% bootstrap CIs)")
    for column in ("actions", "part", "levels", "episodes", "mean", "IQM"):
        table.add_column(column)
    for tag, label in (("final", "sampled"), ("final-greedy", "greedy")):
        episodes = [e for run_id in run_ids for e in store.episodes(run_id=run_id, tag=tag)]
        scores = {}
        for part in ("train", "test"):
            records = [e for e in episodes if e["part"] == part]
            scores[part] = score_matrix(records, score="success")
            stats = aggregate(scores[part], metrics=("iqm", "mean"), reps=2000, seed=0)
            table.add_row(
                label,
                part,
                split.levels(part).describe(),
                str(len(records)),
                stats["mean"].format(),
                stats["iqm"].format(),
            )
        gap = generalization_gap(scores["train"], scores["test"], reps=2000, seed=0)
        mean_gap = generalization_gap(
            scores["train"], scores["test"], reps=2000, seed=0, metric="mean"
        )
        table.add_row(label, "gap (train - test)", "", "", mean_gap.format(), gap.format())
    console.print(table)
    console.print(
        "Per (seed, level) success is mostly 0 or 1 (one episode per held-out level), so the "
        "IQM is 1 whenever over 75% of cells are solved: read the mean; IQM suits graded scores."
    )
    report = report_runs(run_dirs, Path(out_dir) / "report")
    console.print(f"report: {report}")
    return report
