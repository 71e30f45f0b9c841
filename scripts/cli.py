"""The ``gengap`` command line.

Each subcommand is thin: it parses arguments into the library's own dataclasses
and calls the library. Bad input prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

USAGE_ERROR = 2


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + message
        raise UsageError(f"{self.prog}: {message}")


def _positive_int(name: str):  # type: ignore[no-untyped-def]
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name} must be a positive integer, got {text!r}"
            ) from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{name} must be a positive integer, got {value}")
        return value

    return parse


def _non_negative_int(name: str):  # type: ignore[no-untyped-def]
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"{name} must be >= 0, got {value}")
        return value

    return parse


def _limit_torch_threads() -> None:
    """One torch thread unless GENGAP_TORCH_THREADS says otherwise: gengap's networks are
    small, and on a few cores extra threads slow them down many times over."""
    import torch

    torch.set_num_threads(int(os.environ.get("GENGAP_TORCH_THREADS", "1")))


def _key_value(name: str):  # type: ignore[no-untyped-def]
    """``KEY=VALUE`` with VALUE read as JSON when it parses (numbers, true, lists), else text."""

    def parse(text: str) -> tuple[str, object]:
        key, sep, raw = text.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"{name} must look like KEY=VALUE, got {text!r}")
        try:
            value: object = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        return key, value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gengap", description="Measure how RL agents generalize to held-out levels."
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    envs = sub.add_parser("envs", help="list registered environments, or check level leakage")
    envs.add_argument(
        "--check-leakage",
        metavar="ENV_ID",
        help="report held-out levels that duplicate training levels",
    )
    envs.add_argument("--train-levels", type=_positive_int("--train-levels"), default=None)
    envs.add_argument("--test-levels", type=_positive_int("--test-levels"), default=1000)
    envs.add_argument("--family", help="only this family (procgen, minigrid, babyai, ...)")

    train = sub.add_parser("train", help="train on training levels, evaluate on held-out levels")
    train.add_argument("experiment", nargs="?", help="TOML experiment file (flags override it)")
    train.add_argument("--env", dest="env_id")
    train.add_argument("--algo")
    train.add_argument(
        "--train-levels", dest="num_train_levels", type=_positive_int("--train-levels")
    )
    train.add_argument("--steps", dest="total_timesteps", type=_positive_int("--steps"))
    train.add_argument("--seed", type=_non_negative_int("--seed"))
    train.add_argument("--num-envs", type=_positive_int("--num-envs"))
    train.add_argument("--out", dest="out_dir")
    train.add_argument("--name")
    train.add_argument(
        "--agent",
        metavar="KEY=VALUE",
        action="append",
        type=_key_value("--agent"),
        default=[],
        help="override an agent hyperparameter, e.g. --agent learning_rate=3e-4 (repeatable)",
    )
    train.add_argument(
        "--exclude-leaked",
        dest="exclude_leaked_levels",
        action="store_const",
        const=True,
        help="drop held-out levels that duplicate a training level (leakage check) first",
    )
    train.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")

    ev = sub.add_parser("eval", help="evaluate a trained run on a part of its split")
    ev.add_argument("run_dir")
    ev.add_argument("--split", dest="part", default="test", help="train, validation or test")
    ev.add_argument("--episodes", type=_positive_int("--episodes"), default=200)
    ev.add_argument("--workers", type=_positive_int("--workers"), default=1)
    ev.add_argument("--sampled", action="store_true", help="sample actions instead of argmax")

    report = sub.add_parser("report", help="write a Markdown report with plots")
    report.add_argument("run_dirs", nargs="+")
    report.add_argument("-o", "--out", default="reports/latest")
    report.add_argument(
        "--tag",
        default="final",
        help="evaluation to report: final (default), final-greedy, final-sampled, "
        "eval-greedy, eval-sampled, or latest",
    )

    quick = sub.add_parser(
        "quickstart", help="the demo: studies/levels_gap.toml (defaults: the file's)"
    )
    quick.add_argument("--seeds", type=_positive_int("--seeds"), default=None)
    quick.add_argument("--steps", type=_positive_int("--steps"), default=None)
    quick.add_argument("--train-levels", type=_positive_int("--train-levels"), default=None)
    quick.add_argument("--out", default=None)
    quick.add_argument("--workers", type=_positive_int("--workers"), default=None)

    study = sub.add_parser("study", help="run a study: arms x seeds, compared on held-out parts")
    study.add_argument("study_file", help="study TOML file (see studies/)")
    study.add_argument("--workers", type=_positive_int("--workers"), default=None)
    study.add_argument("--out", default=None, help="study folder (default: the file's out_dir)")

    from gengap.scripts import sweep_cli

    sweep_cli.add_parsers(sub)

    bench = sub.add_parser("bench", help="speed benchmarks (ratios measured in one run)")
    bench.add_argument("what", choices=["envs", "train", "shapes", "eval", "sweep"])
    return parser


def _interrupted_message(interrupt: KeyboardInterrupt) -> str:
    """Ctrl-C: mention ``--resume RUN_DIR`` only where a checkpoint exists to resume from
    (the run loop raises ``gengap.drivers.train.TrainingInterrupted`` saying so)."""
    run_dir = getattr(interrupt, "run_dir", None)
    if run_dir is None:
        return "gengap: interrupted"
    if getattr(interrupt, "resumable", False):
        return (
            f"gengap: interrupted; the last checkpoint is kept: resume with "
            f"`gengap train --resume {run_dir}`"
        )
    return f"gengap: interrupted before {run_dir} had a checkpoint; nothing to resume"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        _limit_torch_threads()
        import gengap.envs  # noqa: F401  (first, so old Gym's import notice stays quiet)
        from gengap.scripts import commands

        return int(getattr(commands, f"cmd_{args.command}")(args) or 0)
    except UsageError as error:
        print(f"{error}", file=sys.stderr)
        return USAGE_ERROR
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as error:
        if os.environ.get("GENGAP_DEBUG"):
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"gengap: error: {message}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt as interrupt:
        print(_interrupted_message(interrupt), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
