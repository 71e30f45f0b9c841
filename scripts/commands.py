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

    from gengap.core.errors import InputError
    from gengap.envs import env_info, registered_ids

    if args.check_leakage is not None:
        if args.family is not None:
            raise InputError("--family lists envs; it does not apply with --check-leakage")
        return _check_leakage(args)
    check_only = {
        "--train-levels": args.train_levels,
        "--test-levels": args.test_levels,
        "--part": args.part,
        "--env-option": args.env_option or None,
        "--probe-steps": args.probe_steps,
    }
    given = [flag for flag, value in check_only.items() if value is not None]
    if given:
        raise InputError(f"{', '.join(given)} only apply with --check-leakage ENV_ID")
    ids = registered_ids()
    if args.family:  # the parser checked it against the registry's families
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


def _check_leakage(args: argparse.Namespace) -> int:
    from gengap.core.errors import InputError
    from gengap.envs import env_info
    from gengap.envs.leakage import check_env_options, check_leakage, format_report

    env_id = args.check_leakage.strip()
    if not env_id:
        raise InputError(
            f"--check-leakage needs an env id (see `gengap envs`), got {args.check_leakage!r}"
        )
    env_info(env_id)  # unknown ids fail here, with close matches
    keys = [key for key, _ in args.env_option]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise InputError(f"--env-option sets {', '.join(repeated)} more than once")
    try:
        env_options = check_env_options(dict(args.env_option))
    except InputError as error:
        raise InputError(f"--env-option: {error}") from None
    # Flags left out take the library's defaults (its help text names them).
    given = {
        "num_test_levels": args.test_levels,
        "part": args.part,
        "probe_steps": args.probe_steps,
    }
    report = check_leakage(
        env_id,
        num_train_levels=args.train_levels,
        **{name: value for name, value in given.items() if value is not None},
        **env_options,
    )
    print(format_report(report))
    return 0


# train flags that set the ExperimentConfig key of the same name (over the file's value)
_TRAIN_KEYS = (
    "env_id",
    "algo",
    "num_train_levels",
    "total_timesteps",
    "seed",
    "num_envs",
    "eval_every",
    "eval_episodes",
    "eval_num_envs",
    "final_eval_episodes",
    "out_dir",
    "name",
    "exclude_leaked_levels",
    "dataset",
    "num_updates",
    "validation_dataset",
)
_TRAIN_FLAGS = {"num_envs": "--num-envs", "env_kwargs": "--env-option", "agent": "--agent"}


def _dataset_env(path: str) -> str:
    """The env id an offline dataset was collected on (its card), for ``--dataset`` alone."""
    from gengap.core.errors import InputError
    from gengap.offline.dataset import Dataset

    env_id = Dataset.open(path).env_id
    if env_id is None:
        raise InputError(f"dataset {path!r} does not name its env; give --env ID")
    return env_id


def _experiment_from_args(args: argparse.Namespace) -> Any:
    from gengap.core.errors import InputError
    from gengap.core.files import read_toml
    from gengap.envs.factory import check_env_options, check_num_envs
    from gengap.eval.runs import ExperimentConfig

    data: dict[str, Any] = {}
    if args.experiment:
        data = read_toml(args.experiment, "experiment file")
    for key in _TRAIN_KEYS:
        value = getattr(args, key)
        if value is not None:
            data[key] = value
    if "env_id" not in data and data.get("dataset"):
        data["env_id"] = _dataset_env(str(data["dataset"]))
    if "env_id" not in data:
        raise InputError(
            "train needs an environment: give --env ID or an experiment file with env_id"
        )
    if args.num_envs is not None:
        check_num_envs(args.num_envs, "--num-envs")
    if args.eval_num_envs is not None:
        check_num_envs(args.eval_num_envs, "--eval-num-envs")
    if args.env_options:
        # Checked apart from the file's options so the message names the flag.
        check_env_options(str(data["env_id"]), dict(args.env_options), what="--env-option")
        data["env_kwargs"] = {**data.get("env_kwargs", {}), **dict(args.env_options)}
    if args.agent:
        data["agent"] = {**data.get("agent", {}), **dict(args.agent)}
    return ExperimentConfig.from_dict(data)


def cmd_train(args: argparse.Namespace) -> int:
    from gengap.drivers.train import resume_experiment, run_experiment
    from gengap.eval.runs import check_out_dir
    from gengap.eval.store import ResultsStore

    if args.resume:
        run_dir = resume_experiment(args.resume)
    else:
        from gengap.eval.runs import check_out_dir
        from gengap.eval.store import ResultsStore

        config = _experiment_from_args(args)
        check_out_dir(config.out_dir, "--out" if args.out_dir is not None else "out_dir")
        ResultsStore(config.store_path())  # a file that is not a store fails now, named
        run_dir = run_experiment(config)
    _print_run_summary([run_dir])
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from gengap.eval.evaluate import evaluate_run
    from gengap.eval.runs import RunFolder

    # A bad run folder or results store fails before any episode is played.
    folder = RunFolder(args.run_dir)
    folder.require_run()
    folder.store()
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


def _check_report_runs(run_dirs: list[str], tag: str) -> None:
    """Refuse a run given twice and a tag some run has no episodes of, before writing."""
    from gengap.core.errors import InputError, unknown_name_message
    from gengap.eval.runs import RunFolder

    seen: dict[str, str] = {}
    for run_dir in run_dirs:
        folder = RunFolder(run_dir)
        folder.require_run()
        run_id = folder.run_id()
        if run_id in seen:
            raise InputError(
                f"run folders {seen[run_id]!r} and {run_dir!r} hold the same run {run_id!r}; "
                "give each run once"
            )
        seen[run_id] = run_dir
        if tag == "latest":
            continue
        tags = {e["eval_tag"] for e in folder.store().episodes(run_id=run_id)}
        if tag not in tags:
            if not tags:
                raise InputError(f"--tag {tag!r}: run {run_dir!r} has no evaluation episodes yet")
            raise InputError(
                f"--tag: run {run_dir!r} has no episodes with this tag: "
                + unknown_name_message("tag", tag, tags)
            )


def cmd_report(args: argparse.Namespace) -> int:
    from gengap.eval.report import report_runs
    from gengap.eval.runs import check_out_dir
    from gengap.scripts.sweep_cli import is_sweep_folder, print_sweep_table

    if len(args.run_dirs) == 1 and is_sweep_folder(args.run_dirs[0]):  # a whole sweep
        check_out_dir(args.out, "-o/--out")
        print_sweep_table(Path(args.run_dirs[0]), console, out_dir=args.out)
        return 0

    _check_report_runs(args.run_dirs, args.tag)
    check_out_dir(args.out, "-o/--out")
    path = report_runs(args.run_dirs, args.out, tag=None if args.tag == "latest" else args.tag)
    print(f"report: {path}")
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from gengap.drivers.quickstart import run_quickstart
    from gengap.eval.runs import check_out_dir
    from gengap.scripts.sweep_cli import print_sweep_table

    if args.out is not None:
        check_out_dir(args.out, "--out")
    outcome = run_quickstart(
        seeds=args.seeds,
        total_timesteps=args.steps,
        num_train_levels=args.train_levels,
        out_dir=args.out,
        workers=args.workers,
    )
    print_sweep_table(outcome.folder, console)
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from gengap.drivers.study import load_study, run_study
    from gengap.eval.runs import check_out_dir

    study = load_study(args.study_file)  # bad files fail here, before any training
    if args.out is not None:
        check_out_dir(args.out, "--out")
    console.print(
        f"study {study.name}: {len(study.arms)} arms x {len(study.seeds)} seeds on "
        f"{study.env_id}, {study.total_timesteps:,} steps each"
    )
    with console.status("training and evaluating..."):
        result = run_study(study, workers=args.workers, out_dir=args.out)
    console.print(result.markdown())
    console.print(f"results: {result.config.study_dir() / 'results.md'}")
    return 0


from gengap.scripts.sweep_cli import cmd_sweep  # noqa: E402,F401  (``gengap sweep``)


def cmd_bench(args: argparse.Namespace) -> int:
    from gengap.scripts.bench import run_bench

    # The parser's choices are the files there, so the file exists.
    return run_bench(args.what, ["--quick"] if args.quick else [])


def _print_run_summary(run_dirs: list[Path]) -> None:
    from gengap.eval.runs import RunFolder

    for run_dir in run_dirs:
        info = RunFolder(run_dir).read_info()
        console.print(f"run {info['run_id']}: {info['status']} -> {run_dir}")
