"""`gengap <command> --help` documents every flag, and every `gengap bench` target runs."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gengap.scripts.bench import BENCHMARKS_DIR, bench_targets
from gengap.scripts.cli import build_parser, main


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


COMMANDS = sorted(_subparsers(build_parser()))


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help_with_its_choices_and_default(command):
    parser = _subparsers(build_parser())[command]
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help.strip(), f"{command} {name} has no help line"
        text = formatter._expand_help(action)
        if action.choices is not None:
            for choice in action.choices:
                assert str(choice) in text, f"{command} {name}: help does not list {choice!r}"
        takes_value = action.nargs != 0 and not isinstance(action, argparse._StoreConstAction)
        if takes_value and not action.required and action.nargs != "+":
            assert "default: " in text, f"{command} {name}: help does not give its default"


def test_fixed_sets_come_from_their_registries():
    from gengap.agents import registered_algos
    from gengap.envs import env_info, registered_ids
    from gengap.envs.splits import PARTS

    commands = _subparsers(build_parser())

    def choices(command: str, dest: str) -> list[str]:
        (action,) = [a for a in commands[command]._actions if a.dest == dest]
        return list(action.choices)

    import gengap.offline  # noqa: F401  (registers the offline learners)

    algos = list(registered_algos())
    assert choices("train", "algo") == algos and {"ppo", "dqn", "sac", "bc", "cql"} <= set(algos)
    assert choices("eval", "part") == list(PARTS)
    assert choices("envs", "family") == sorted({env_info(i).family for i in registered_ids()})
    files = sorted(p.stem.removeprefix("bench_") for p in Path(BENCHMARKS_DIR).glob("bench_*.py"))
    assert choices("bench", "what") == files == bench_targets()
    assert {"envs", "shapes", "train"} <= set(files)


def test_help_prints_and_exits_0(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--env-option KEY=VALUE" in out and "--final-eval-episodes N" in out
    assert "dqn, dt, iql" in " ".join(out.split())  # the registered learners, sorted


# Derived from the benchmarks folder, so a new bench_<target>.py is covered by construction.
@pytest.mark.slow
@pytest.mark.parametrize("target", bench_targets())
def test_every_bench_target_runs_on_a_tiny_budget(capsys, target):
    code = main(["bench", target, "--quick"])
    out = capsys.readouterr().out
    assert code == 0
    assert "x" in out and out.strip()  # every benchmark prints its ratios ("1.23x")
