"""``gengap collect`` and ``gengap dataset info|verify``: thin wrappers over gengap.offline
(and gengap.drivers.collect, which resolves run-folder policies)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

DEFAULT_NUM_ENVS = 16


def add_parsers(sub: Any) -> None:
    """Register ``collect`` and ``dataset`` on the ``gengap`` subcommand parser ``sub``."""
    from gengap.offline.collect import ACTION_MODES, SKILL_LEVELS
    from gengap.offline.dataset import CODECS, DEFAULT_CHUNK_ROWS, DEFAULT_CODEC
    from gengap.scripts.argtypes import key_value, non_negative_int, positive_int

    collect = sub.add_parser(
        "collect", help="roll a policy out on a split's training levels and write a dataset"
    )
    collect.add_argument("--env", dest="env_id", required=True, help="a registered env id")
    collect.add_argument(
        "--policy",
        default="random",
        help="random (default), bot (BabyAI's expert), or a run folder RUN_DIR with an optional "
        f"skill level @{'|@'.join(SKILL_LEVELS)} (default @expert: the final agent)",
    )
    collect.add_argument(
        "--epsilon",
        type=float,
        default=0.0,
        help="probability of a uniform action instead of the policy's, per step",
    )
    budget = collect.add_mutually_exclusive_group(required=True)
    budget.add_argument(
        "--transitions",
        type=positive_int("--transitions"),
        help="stop at exactly this many transitions (running episodes end as truncated; "
        "default: none, give this or --episodes)",
    )
    budget.add_argument(
        "--episodes",
        type=positive_int("--episodes"),
        help="stop after this many episodes (default: none, give this or --transitions)",
    )
    collect.add_argument(
        "--train-levels",
        type=positive_int("--train-levels"),
        default=None,
        help="collect on training levels 0..N-1 (default: the run's or env's training levels)",
    )
    collect.add_argument(
        "--env-option",
        metavar="KEY=VALUE",
        action="append",
        type=key_value("--env-option"),
        default=[],
        help="an env option, e.g. --env-option distribution_mode=hard (repeatable; default: "
        "the run's options, else none)",
    )
    collect.add_argument("--out", required=True, help="dataset folder to create (must not exist)")
    collect.add_argument(
        "--seed", type=non_negative_int("--seed"), default=0, help="seed (default 0)"
    )
    collect.add_argument(
        "--num-envs",
        type=positive_int("--num-envs"),
        default=DEFAULT_NUM_ENVS,
        help=f"parallel envs (default {DEFAULT_NUM_ENVS})",
    )
    collect.add_argument(
        "--action-mode",
        choices=ACTION_MODES,
        default="sampled",
        help="for run-folder policies: sampled (default) or greedy actions",
    )
    collect.add_argument(
        "--codec",
        choices=CODECS,
        default=DEFAULT_CODEC,
        help=f"frame compression (default {DEFAULT_CODEC})",
    )
    collect.add_argument(
        "--chunk-rows",
        type=positive_int("--chunk-rows"),
        default=DEFAULT_CHUNK_ROWS,
        help=f"frames per compressed chunk (default {DEFAULT_CHUNK_ROWS})",
    )
    collect.add_argument("--quiet", action="store_true", help="no progress output")
    collect.set_defaults(handler=cmd_collect)

    dataset = sub.add_parser("dataset", help="inspect or verify a dataset")
    dataset_sub = dataset.add_subparsers(
        dest="dataset_command",
        required=True,
        parser_class=type(dataset),
        metavar="ACTION",
        help="info (print the card) or verify (recompute the checksums)",
    )
    info = dataset_sub.add_parser("info", help="print the dataset card")
    info.add_argument("path", help="dataset folder")
    info.add_argument("--json", action="store_true", help="the whole card as JSON")
    info.set_defaults(handler=cmd_dataset_info)
    verify = dataset_sub.add_parser("verify", help="recompute every file's checksum")
    verify.add_argument("path", help="dataset folder")
    verify.set_defaults(handler=cmd_dataset_verify)


def cmd_collect(args: argparse.Namespace) -> int:
    from gengap.drivers.collect import resolve_policy
    from gengap.offline.collect import collect, training_split

    plan = resolve_policy(args.policy, epsilon=args.epsilon, action_mode=args.action_mode)
    split = training_split(args.env_id, plan.split, args.train_levels)
    options = dict(args.env_option) if args.env_option else None
    path = collect(
        args.env_id,
        plan,
        args.out,
        num_transitions=args.transitions,
        num_episodes=args.episodes,
        split=split,
        env_options=options,
        num_envs=args.num_envs,
        seed=args.seed,
        progress=not args.quiet,
        codec=args.codec,
        chunk_rows=args.chunk_rows,
    )
    print(f"wrote {path}")
    print(_summary(path))
    return 0


def _summary(path: Path) -> str:
    from gengap.offline.dataset import Dataset

    dataset = Dataset.open(path)
    card = dataset.card
    levels = dataset.level_seeds()
    size = sum(entry["bytes"] for entry in card["files"].values())
    returns = card["returns"]
    policy = card.get("policy") or {}
    split = card.get("split") or {}
    lines = [
        f"dataset    {path}",
        f"env        {card.get('env_id')}  options {json.dumps(card.get('env_options', {}))}",
        f"split      {split.get('name')}: train levels {json.dumps(split.get('train'))}",
        f"policy     {policy.get('name')} ({policy.get('kind')})"
        + (f", epsilon {policy['epsilon']}" if policy.get("epsilon") else "")
        + f"; skill {card.get('skill_level') or '-'}; seed {card.get('seed')}",
        f"size       {dataset.num_transitions} transitions, {dataset.num_episodes} episodes "
        f"({card.get('cut_episodes', 0)} cut by the budget), {size / 1e6:.1f} MB on disk",
        f"levels     {len(card['episodes_per_level'])} distinct, seeds "
        f"{levels.min()}..{levels.max()}",
        f"returns    mean {returns['mean']:.3f} +- {returns['std']:.3f}, median "
        f"{returns['median']:.3f}, min {returns['min']:.3f}, max {returns['max']:.3f}"
        + (f", success {returns['success_rate']:.2f}" if "success_rate" in returns else ""),
        f"score      {json.dumps(card.get('policy_score')) if card.get('policy_score') else '-'}",
        f"provenance gengap {card.get('gengap_version')}, git {card.get('git_revision')}, "
        f"created {card.get('created')}",
    ]
    if "episodes_per_combination" in card:
        lines.append(f"combos     {json.dumps(card['episodes_per_combination'])}")
    return "\n".join(lines)


def cmd_dataset_info(args: argparse.Namespace) -> int:
    from gengap.offline.dataset import Dataset

    if args.json:
        print(json.dumps(Dataset.open(args.path).card, indent=2))
    else:
        print(_summary(Path(args.path)))
    return 0


def cmd_dataset_verify(args: argparse.Namespace) -> int:
    from gengap.offline.dataset import Dataset

    dataset = Dataset.open(args.path, verify=True)
    files = dataset.card["files"]
    size = sum(entry["bytes"] for entry in files.values())
    print(f"ok: {len(files)} files, {size / 1e6:.1f} MB, every sha256 matches the card")
    return 0
