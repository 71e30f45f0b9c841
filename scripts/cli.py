"""The ``gengap`` command line.

Each subcommand is thin: it parses arguments into the library's own dataclasses
and calls the library. Bad input (an :class:`~gengap.core.errors.InputError` from the
library, or an argument argparse refuses) prints one line and exits with status 2.
Any other exception is a bug in gengap: it prints its traceback and exits with status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

from gengap.scripts.argtypes import (
    key_value,
    non_negative_int,
    positive_int,
    worker_count,
)
from gengap.scripts.bench import bench_targets

USAGE_ERROR = 2
BUG = 1
INTERRUPTED = 130
#: What a Unix tool killed by SIGPIPE reports: the reader of stdout went away
#: (``gengap dataset info DS | head``), which is no error of gengap's.
CLOSED_PIPE = 128 + 13
# Evaluations a run stores (the report's --tag); studies add "study:<evaluation name>".
REPORT_TAGS = ("final", "final-greedy", "final-sampled", "eval-greedy", "eval-sampled", "latest")


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit status 2."""


class _Choices(Sequence[str]):
    """Choices read from a registry on first use, so ``gengap --help`` and commands that
    never look at them do not pay for importing the registries (torch, SB3)."""

    def __init__(self, load: Callable[[], Sequence[str]]) -> None:
        self._load = load
        self._items: tuple[str, ...] | None = None

    def _get(self) -> tuple[str, ...]:
        if self._items is None:
            self._items = tuple(self._load())
        return self._items

    def __getitem__(self, index: Any) -> Any:
        return self._get()[index]

    def __len__(self) -> int:
        return len(self._get())

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __contains__(self, value: object) -> bool:
        return value in self._get()


def _algos() -> Sequence[str]:
    """The algorithms ``gengap train`` can run: online learners play the env, offline ones
    (with ``--dataset``) learn from a dataset."""
    import gengap.offline  # noqa: F401  (registers the offline learners)
    from gengap.agents import registered_algos

    return list(registered_algos())


def _parts() -> Sequence[str]:
    from gengap.envs.splits import PARTS

    return PARTS


def _families() -> Sequence[str]:
    from gengap.envs import env_info, registered_ids

    return sorted({env_info(env_id).family for env_id in registered_ids()})


def _experiment_default(name: str) -> Callable[[], str]:
    """The default of ExperimentConfig field ``name``, read when help is shown."""

    def text() -> str:
        import dataclasses

        from gengap.eval.runs import ExperimentConfig

        field = {f.name: f for f in dataclasses.fields(ExperimentConfig)}[name]
        return str(field.default)

    return text


class _HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its choices and its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        extras = []
        if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
            extras.append("choices: " + ", ".join(str(c) for c in action.choices))
        default = getattr(action, "default_text", None)
        if callable(default):
            default = default()
        elif default is None and not (
            action.default is None
            or action.default is False
            or action.default == []
            or action.default is argparse.SUPPRESS
        ):
            default = str(action.default)
        if default is not None:
            extras.append(f"default: {default}")
        text = text + (f" ({'; '.join(extras)})" if extras else "")
        return text.replace("%", "%%").replace("%%(prog)s", "%(prog)s")


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:  # one line, not usage + message
        raise UsageError(f"{self.prog}: {message}")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """An unknown choice names the closest matches (argparse lists them all)."""
        if isinstance(action, argparse._SubParsersAction) or action.choices is None:
            super()._check_value(action, value)
            return
        if value not in action.choices:
            from gengap.core.errors import unknown_name_message

            kind = str(action.metavar or action.dest).lower().replace("_", " ")
            raise argparse.ArgumentError(
                action, unknown_name_message(str(kind), value, map(str, action.choices))
            )


def _option(
    parser: argparse.ArgumentParser,
    *flags: str,
    default_text: str | Callable[[], str] | None = None,
    **kwargs: Any,
) -> argparse.Action:
    """``parser.add_argument`` that records the default shown in help when argparse's own
    default is ``None`` (flags that override a file or the library's default)."""
    action = parser.add_argument(*flags, **kwargs)
    action.default_text = default_text  # type: ignore[attr-defined]
    return action


def _limit_torch_threads() -> None:
    """One torch thread unless GENGAP_TORCH_THREADS says otherwise: gengap's networks are
    small, and on a few cores extra threads slow them down many times over."""
    text = os.environ.get("GENGAP_TORCH_THREADS", "1")
    try:
        threads = int(text)
    except ValueError:
        threads = 0
    if threads < 1:
        raise UsageError(f"gengap: GENGAP_TORCH_THREADS must be a positive integer, got {text!r}")
    import torch

    torch.set_num_threads(threads)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gengap", description="Measure how RL agents generalize to held-out levels."
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    envs = sub.add_parser("envs", help="list registered environments, or check level leakage")
    _option(
        envs,
        "--check-leakage",
        metavar="ENV_ID",
        default_text="off: list the envs",
        help="report held-out levels identical to training levels, for this env id "
        "(`gengap envs` lists them)",
    )
    _option(
        envs,
        "--train-levels",
        metavar="N",
        type=positive_int("--train-levels"),
        default=None,
        default_text="all of a bounded training set",
        help="with --check-leakage: training levels to compare against, the first ones of "
        "the split",
    )
    _option(
        envs,
        "--test-levels",
        metavar="N",
        type=positive_int("--test-levels"),
        default=None,
        default_text="1000",
        help="with --check-leakage: held-out levels to check, the first ones of --part",
    )
    _option(
        envs,
        "--part",
        choices=["test", "validation"],
        default=None,
        default_text="test",
        help="with --check-leakage: the held-out part to check",
    )
    _option(
        envs,
        "--env-option",
        metavar="KEY=VALUE",
        action="append",
        type=key_value("--env-option"),
        default=[],
        default_text="none",
        help="with --check-leakage: an env option, e.g. --env-option distribution_mode=hard "
        "(repeatable; Procgen levels differ by distribution_mode)",
    )
    _option(
        envs,
        "--probe-steps",
        metavar="N",
        type=non_negative_int("--probe-steps"),
        default=None,
        default_text="the family's: 100 for Procgen, 0 where the fingerprint is the full "
        "initial state",
        help="with --check-leakage: steps of the probe rollout that confirms two levels are "
        "identical (0: initial state only)",
    )
    _option(
        envs,
        "--family",
        metavar="FAMILY",
        choices=_Choices(_families),
        default_text="all families",
        help="only list the envs of this family",
    )

    train = sub.add_parser("train", help="train on training levels, evaluate on held-out levels")
    _option(
        train,
        "experiment",
        nargs="?",
        default_text="none: flags only",
        help="TOML experiment file (ExperimentConfig keys); flags override it",
    )
    _option(
        train,
        "--env",
        dest="env_id",
        metavar="ENV_ID",
        default_text="the experiment file's env_id; one of the two is required",
        help="registered env id, e.g. gengap/minigrid-doorkey-5x5-v0 (`gengap envs` lists them)",
    )
    _option(
        train,
        "--algo",
        metavar="ALGO",
        choices=_Choices(_algos),
        default_text=_experiment_default("algo"),
        help="the learner: online ones (ppo, dqn, sac) play the env; offline ones (bc, cql, "
        "bcq, dt, iql, td3bc, lm) learn from --dataset",
    )
    _option(
        train,
        "--train-levels",
        metavar="N",
        dest="num_train_levels",
        type=positive_int("--train-levels"),
        default_text="the env's default split",
        help="train on levels 0..N-1 (the held-out levels stay the env's default)",
    )
    _option(
        train,
        "--steps",
        metavar="N",
        dest="total_timesteps",
        type=positive_int("--steps"),
        default_text=_experiment_default("total_timesteps"),
        help="environment steps to train for",
    )
    _option(
        train,
        "--seed",
        metavar="N",
        type=non_negative_int("--seed"),
        default_text=_experiment_default("seed"),
        help="seeds the agent, the envs and evaluation",
    )
    _option(
        train,
        "--num-envs",
        metavar="N",
        type=positive_int("--num-envs"),
        default_text=_experiment_default("num_envs"),
        help="parallel training envs",
    )
    _option(
        train,
        "--eval-every",
        metavar="N",
        type=non_negative_int("--eval-every"),
        default_text="0: ten evaluations over the run",
        help="steps between evaluations on train and test levels during training",
    )
    _option(
        train,
        "--eval-episodes",
        metavar="N",
        type=positive_int("--eval-episodes"),
        default_text=_experiment_default("eval_episodes"),
        help="episodes per part at each evaluation during training",
    )
    _option(
        train,
        "--eval-num-envs",
        metavar="N",
        type=positive_int("--eval-num-envs"),
        default_text=_experiment_default("eval_num_envs"),
        help="envs stepped side by side in evaluation (independent of --num-envs)",
    )
    _option(
        train,
        "--final-eval-episodes",
        metavar="N",
        type=positive_int("--final-eval-episodes"),
        default_text=_experiment_default("final_eval_episodes"),
        help="episodes per part in the evaluation at the end of training",
    )
    _option(
        train,
        "--out",
        dest="out_dir",
        metavar="DIR",
        default_text=_experiment_default("out_dir"),
        help="folder the run folder goes in (its results store too)",
    )
    _option(
        train,
        "--name",
        default_text="<env>-<algo>-L<levels>-s<seed>",
        help="run folder name",
    )
    _option(
        train,
        "--agent",
        metavar="KEY=VALUE",
        action="append",
        type=key_value("--agent"),
        default=[],
        default_text="the algorithm's defaults for the env family",
        help="override an agent hyperparameter, e.g. --agent learning_rate=3e-4 (repeatable; "
        "VALUE is read as JSON, else as text)",
    )
    _option(
        train,
        "--env-option",
        dest="env_options",
        metavar="KEY=VALUE",
        action="append",
        type=key_value("--env-option"),
        default=[],
        default_text="the env's defaults",
        help="set an env option, e.g. --env-option obs_mode=rgb (MiniGrid) or "
        "--env-option distribution_mode=hard (repeatable; VALUE is read as JSON, else as text)",
    )
    train.add_argument(
        "--exclude-leaked",
        dest="exclude_leaked_levels",
        action="store_const",
        const=True,
        help="drop held-out levels that duplicate a training level (leakage check) first",
    )
    train.add_argument(
        "--dataset",
        metavar="PATH",
        help="offline run: learn from this dataset (with an offline --algo: bc, cql, bcq, dt, "
        "iql, td3bc; --env defaults to the dataset's) instead of playing the env (default: none)",
    )
    train.add_argument(
        "--updates",
        dest="num_updates",
        type=positive_int("--updates"),
        help="gradient updates of an offline run (required with --dataset; default: none)",
    )
    train.add_argument(
        "--validation-dataset",
        metavar="PATH",
        help="offline run: transitions from the split's validation levels, for checkpoint "
        "selection and early stopping (bc) (default: none)",
    )
    _option(
        train,
        "--resume",
        metavar="RUN_DIR",
        default_text="off: start a new run",
        help="continue an interrupted run from its last checkpoint, with its saved config",
    )

    ev = sub.add_parser("eval", help="evaluate a trained run on a part of its split")
    ev.add_argument("run_dir", help="run folder written by `gengap train`")
    ev.add_argument(
        "--split",
        dest="part",
        metavar="PART",
        choices=_Choices(_parts),
        default="test",
        help="part of the run's split to evaluate on",
    )
    ev.add_argument(
        "--episodes", type=positive_int("--episodes"), default=200, help="episodes to play"
    )
    ev.add_argument(
        "--workers",
        metavar="N",
        type=worker_count("--workers"),
        default=1,
        help="evaluation processes",
    )
    ev.add_argument(
        "--sampled",
        action="store_true",
        help="sample actions from the policy instead of taking the most likely one",
    )

    report = sub.add_parser("report", help="write a Markdown report with plots")
    report.add_argument("run_dirs", nargs="+", help="run folders (seeds of one config are pooled)")
    report.add_argument(
        "-o", "--out", default="reports/latest", help="folder for report.md and the plots"
    )
    report.add_argument(
        "--tag",
        default="final",
        help="evaluation to report: " + ", ".join(REPORT_TAGS) + " (each run's latest "
        "evaluation), or study:<evaluation> for a study's runs",
    )

    quick = sub.add_parser(
        "quickstart", help="the demo: studies/levels_gap.toml (defaults: the file's)"
    )
    quick.add_argument(
        "--seeds",
        type=positive_int("--seeds"),
        default=None,
        help="training seeds 0..N-1 per number of training levels (default: the study "
        "file's, studies/levels_gap.toml)",
    )
    _option(
        quick,
        "--steps",
        metavar="N",
        type=positive_int("--steps"),
        default=None,
        default_text="the study file's",
        help="environment steps per run",
    )
    _option(
        quick,
        "--train-levels",
        metavar="N",
        type=positive_int("--train-levels"),
        default=None,
        default_text="the study file's grid",
        help="train on this many levels only (one setting instead of the grid)",
    )
    _option(
        quick,
        "--out",
        default=None,
        default_text="the study file's out_dir",
        help="folder for the runs and report",
    )
    _option(
        quick,
        "--workers",
        type=worker_count("--workers"),
        default=None,
        default_text="one per core",
        help="training processes",
    )

    study = sub.add_parser("study", help="run a study: arms x seeds, compared on held-out parts")
    study.add_argument("study_file", help="study TOML file (see studies/)")
    _option(
        study,
        "--workers",
        metavar="N",
        type=worker_count("--workers"),
        default=None,
        default_text="the file's workers",
        help="training processes",
    )
    _option(
        study,
        "--out",
        default=None,
        default_text="the file's out_dir",
        help="study folder",
    )

    from gengap.scripts import sweep_cli

    sweep_cli.add_parsers(sub)

    bench = sub.add_parser("bench", help="speed benchmarks (ratios measured in one run)")
    bench.add_argument(
        "what",
        metavar="TARGET",
        choices=bench_targets(),
        help="benchmark to run (benchmarks/bench_<TARGET>.py)",
    )
    bench.add_argument(
        "--quick",
        action="store_true",
        help="a tiny budget that only checks the benchmark runs end to end (its numbers "
        "mean little)",
    )

    from gengap.scripts import offline_cli

    offline_cli.add_parsers(sub)
    return parser


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _interrupted_message(interrupt: KeyboardInterrupt, command: str | None) -> str:
    """Ctrl-C: mention ``--resume RUN_DIR`` only where a checkpoint exists to resume from
    (the run loop raises ``gengap.drivers.train.TrainingInterrupted`` saying so)."""
    where = f"gengap{f' {command}' if command else ''}: interrupted"
    run_dir = getattr(interrupt, "run_dir", None)
    if run_dir is None:
        return where
    if getattr(interrupt, "resumable", False):
        return (
            f"{where}; the last checkpoint is kept: resume with "
            f"`gengap train --resume {run_dir}`"
        )
    return f"{where}; no checkpoint was written yet, so there is nothing to resume"


def main(argv: Sequence[str] | None = None) -> int:
    command = None
    try:
        args = build_parser().parse_args(argv)
        command = args.command
        _limit_torch_threads()
        import gengap.envs  # noqa: F401  (first, so old Gym's import notice stays quiet)
        from gengap.scripts import commands

        handler = getattr(args, "handler", None) or getattr(commands, f"cmd_{command}")
        code = int(handler(args) or 0)
        sys.stdout.flush()  # a closed pipe fails here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        # Point stdout at /dev/null so that the exit's own flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return CLOSED_PIPE
    except UsageError as error:
        print(f"{error}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt as interrupt:
        print(_interrupted_message(interrupt, command), file=sys.stderr)
        return INTERRUPTED
    except Exception as error:
        from gengap.core.errors import InputError

        if os.environ.get("GENGAP_DEBUG"):
            raise
        if isinstance(error, InputError):
            print(f"gengap: error: {_one_line(error)}", file=sys.stderr)
            return USAGE_ERROR
        traceback.print_exc()
        print(
            f"gengap: internal error ({type(error).__name__}): this is a bug in gengap, not "
            "in your input; please report it with the traceback above",
            file=sys.stderr,
        )
        return BUG


if __name__ == "__main__":
    sys.exit(main())
