"""Subcommand bodies of the ``gengap`` CLI (kept apart so ``--help`` stays fast)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

# Wide when piped (logs, CI, tests) so env ids are never folded across lines.
console = Console(width=None if sys.stdout.isatty() else 200)


def _space_text(space: Any) -> str:
    shape = getattr(space, "shape", None)
    dtype = getattr(space, "dtype", None)
    name = type(space).__name__
    if name == "Discrete":
        return f"Discrete({space.n})"
    if name == "Dict":
        return "Dict(" + ", ".join(f"{k}:{_space_text(v)}" for k, v in space.spaces.items()) + ")"
    return f"{name}{tuple(shape) if shape is not None else ''} {dtype}"


def cmd_envs(args: argparse.Namespace) -> int:
    import gymnasium

    from gengap.envs import env_info, registered_ids

    if args.check_leakage:
        env_info(args.check_leakage)  # unknown ids fail here, with close matches
        from gengap.envs.leakage import check_leakage, format_report

        report = check_leakage(
            args.check_leakage,
            num_train_levels=args.train_levels,
            num_test_levels=args.test_levels,
        )
        print(format_report(report))
        return 0
    ids = registered_ids()
    if args.family:
        families = sorted({env_info(i).family for i in ids})
        if args.family not in families:
            from gengap.envs.registry import unknown_name_message

            raise ValueError(unknown_name_message("family", args.family, families))
        ids = [i for i in ids if env_info(i).family == args.family]
    table = Table(title=f"gengap environments ({len(ids)})")
    for column in ("id", "family", "axes", "default split", "observation", "action"):
        table.add_column(column, overflow="fold")
    for env_id in ids:
        info = env_info(env_id)
        env = gymnasium.make(env_id)
        table.add_row(
            env_id,
            info.family,
            ",".join(info.axes),
            info.default_split.describe(),
            _space_text(env.observation_space),
            _space_text(env.action_space),
        )
        env.close()
    console.print(table)
    return 0


def _dataset_env(path: str) -> str:
    """The env id an offline dataset was collected on (its card), for ``--dataset`` alone."""
    from gengap.envs.errors import InputError
    from gengap.offline.dataset import Dataset

    env_id = Dataset.open(path).env_id
    if env_id is None:
        raise InputError(f"dataset {path!r} does not name its env; give --env ID")
    return env_id


def _experiment_from_args(args: argparse.Namespace) -> Any:
    from gengap.eval.runs import ExperimentConfig

    data: dict[str, Any] = {}
    if args.experiment:
        import tomllib

        path = Path(args.experiment)
        if not path.is_file():
            raise FileNotFoundError(f"experiment file {args.experiment!r} does not exist")
        data = tomllib.loads(path.read_text())
    for key in (
        "env_id",
        "algo",
        "num_train_levels",
        "total_timesteps",
        "seed",
        "num_envs",
        "out_dir",
        "name",
        "exclude_leaked_levels",
        "dataset",
        "num_updates",
        "validation_dataset",
    ):
        value = getattr(args, key)
        if value is not None:
            data[key] = value
    if args.agent:
        data["agent"] = {**data.get("agent", {}), **dict(args.agent)}
    if "env_id" not in data and data.get("dataset"):
        data["env_id"] = _dataset_env(str(data["dataset"]))
    if "env_id" not in data:
        raise ValueError(
            "train needs an environment: give --env ID or an experiment file with env_id"
        )
    return ExperimentConfig.from_dict(data)


def cmd_train(args: argparse.Namespace) -> int:
    from gengap.drivers.train import resume_experiment, run_experiment

    if args.resume:
        run_dir = resume_experiment(args.resume)
    else:
        run_dir = run_experiment(_experiment_from_args(args))
    _print_run_summary([run_dir])
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from gengap.eval.evaluate import evaluate_run

    records = evaluate_run(
        args.run_dir,
        part=args.part,
        num_episodes=args.episodes,
        num_workers=args.workers,
        deterministic=not args.sampled,
    )
    returns = [r.episode_return for r in records]
    successes = [r.success for r in records if r.success is not None]
    mean_return = sum(returns) / len(returns)
    line = f"{args.run_dir}: {args.part}: {len(records)} episodes, mean return {mean_return:.3f}"
    if successes:
        line += f", success {sum(successes) / len(successes):.3f}"
    print(line)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from gengap.eval.report import report_runs

    path = report_runs(args.run_dirs, args.out, tag=None if args.tag == "latest" else args.tag)
    print(f"report: {path}")
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from gengap.drivers.quickstart import run_quickstart

    run_quickstart(
        seeds=args.seeds,
        total_timesteps=args.steps,
        num_train_levels=args.train_levels,
        out_dir=args.out,
        workers=args.workers,
        console=console,
    )
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from gengap.drivers.study import load_study, run_study

    study = load_study(args.study_file)  # bad files fail here, before any training
    console.print(
        f"study {study.name}: {len(study.arms)} arms x {len(study.seeds)} seeds on "
        f"{study.env_id}, {study.total_timesteps:,} steps each"
    )
    with console.status("training and evaluating..."):
        result = run_study(study, workers=args.workers, out_dir=args.out)
    console.print(result.markdown())
    console.print(f"results: {result.config.study_dir() / 'results.md'}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"bench_{args.what}.py"
    if not path.is_file():
        raise FileNotFoundError(
            f"benchmark {args.what!r}: {path} is missing (run from a source checkout)"
        )
    spec = importlib.util.spec_from_file_location(f"gengap_bench_{args.what}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return int(module.main([]) or 0)


def _print_run_summary(run_dirs: list[Path]) -> None:
    from gengap.eval.runs import RunFolder

    for run_dir in run_dirs:
        info = RunFolder(run_dir).read_info()
        console.print(f"run {info['run_id']}: {info['status']} -> {run_dir}")
