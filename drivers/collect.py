"""Resolving ``gengap collect --policy``: built-in names, or agents of a trained run.

``gengap.offline.collect`` rolls policies out and writes datasets; it sits below
``gengap.eval``, which owns the run-folder layout (:class:`~gengap.eval.runs.RunFolder`).
Choosing *which* agents of a run to collect with is therefore done here, from the run
folder's final agent and its snapshots (``ExperimentConfig.keep_snapshots``), and
:func:`~gengap.offline.collect.collect` receives the resolved :class:`PolicyPlan`:

- ``RUN_DIR`` or ``RUN_DIR@expert``: the final agent;
- ``RUN_DIR@mixed``: the snapshot whose held-out score is closest to 75% of the last
  snapshot's (gen_dgrl's "mixed" data);
- ``RUN_DIR@suboptimal``: every scored snapshot, an equal share of the data each
  (gen_dgrl's "suboptimal" data: logs across training);
- ``RUN_DIR@best``: the snapshot with the highest score on the run's *training* levels (the
  latest of equals), for runs whose final agent is not their best; held-out scores never
  choose the data.

The plan carries the run's env, split and env options, so the data is collected where the
agents were trained unless the caller says otherwise.
"""

from __future__ import annotations

import os
from typing import Any

from gengap.core.errors import InputError, InputFileNotFoundError, unknown_name_message
from gengap.eval.runs import RunFolder, Snapshot
from gengap.offline.collect import (
    BUILT_IN_POLICIES,
    POLICY_NAMES,
    SKILL_LEVELS,
    AgentPolicy,
    PolicyPlan,
    check_policy_options,
    make_policy,
    mix_policy,
)

__all__ = ["MIXED_FRACTION", "resolve_policy", "snapshot_score"]

#: gen_dgrl's "mixed" data comes from the checkpoint at about this fraction of the final score.
MIXED_FRACTION = 0.75
#: The held-out score a snapshot is ranked by: the first of these its evaluation has.
_SCORE_METRICS = ("normalized_return", "success", "return")


def snapshot_score(snapshot: Snapshot, part: str = "test") -> tuple[str, float] | None:
    """The metric and value of ``snapshot``'s score on ``part`` (default: held-out levels),
    or None if it has none."""
    values = snapshot.scores.get(part) or {}
    for metric in _SCORE_METRICS:
        if values.get(metric) is not None:
            return metric, float(values[metric])
    return None


def resolve_policy(text: str, *, epsilon: float = 0.0, action_mode: str = "sampled"
                   ) -> PolicyPlan:
    """Resolve ``--policy``: ``random``, ``bot``, or
    ``RUN_DIR[@expert|@mixed|@suboptimal|@best]``.

    Args:
        text: What ``--policy`` was given.
        epsilon: Probability of a uniform action instead of the policy's, per step and env.
        action_mode: ``"sampled"`` or ``"greedy"`` actions of a run's agents.

    Raises:
        InputError: For an unknown policy or skill level, or a bad ``epsilon``/``action_mode``.
        InputFileNotFoundError: For a missing run folder or final agent, or a run without
            scored snapshots for ``@mixed``/``@suboptimal``/``@best``.
    """
    check_policy_options(epsilon, action_mode)
    if text in BUILT_IN_POLICIES:
        return make_policy(text, epsilon=epsilon, action_mode=action_mode)
    plan = _run_plan(text, deterministic=action_mode == "greedy")
    return mix_policy(plan, epsilon=epsilon, action_mode=action_mode)


def _run_plan(text: str, *, deterministic: bool) -> PolicyPlan:
    run_text, _, skill = text.partition("@")
    folder = RunFolder(run_text)
    if not folder.config_path.is_file():
        if not folder.path.exists() and "@" not in text and os.sep not in text:
            raise InputError(unknown_name_message("policy", text, POLICY_NAMES))
        raise InputFileNotFoundError(
            f"--policy {text!r}: {str(folder.path)!r} is not a gengap run folder "
            f"(no {RunFolder.CONFIG})"
        )
    skill = skill or "expert"
    if skill not in SKILL_LEVELS:
        raise InputError(unknown_name_message("skill level", skill, SKILL_LEVELS))
    config = folder.read_config()
    snapshots = folder.snapshots()
    base: dict[str, Any] = {"kind": "run", "run_dir": str(folder.path), "skill": skill}
    plan = PolicyPlan(
        [],
        skill=skill,
        env_id=config.env_id,
        split=folder.read_split() if folder.split_path.is_file() else None,
        env_options=dict(config.env_kwargs),
    )
    if skill == "expert":
        if not folder.has_agent():
            raise InputFileNotFoundError(
                f"--policy {text!r}: the run has no final agent ({folder.agent_dir}/config.json); "
                "finish it with `gengap train --resume`"
            )
        plan.score = snapshots[-1].scores if snapshots else None
        plan.policies = [
            AgentPolicy(folder.agent_dir, deterministic, {**base, "name": "final agent"})]
        return plan
    if skill == "best":
        ranked = [(found, snapshot) for snapshot in snapshots
                  if (found := snapshot_score(snapshot, "train")) is not None]
        if not ranked:
            raise InputFileNotFoundError(
                f"--policy {text!r}: no snapshot in {folder.snapshots_dir} has a "
                "training-level score to pick the best by"
            )
        (metric, value), best = max(ranked, key=lambda pair: (pair[0][1], pair[1].step))
        plan.score = best.scores
        plan.policies = [AgentPolicy(best.path, deterministic, {
            **base,
            "name": f"snapshot step {best.step}",
            "step": best.step,
            "chosen_by": {"part": "train", "metric": metric, "value": value},
        })]
        return plan
    scored = [s for s in snapshots if snapshot_score(s) is not None]
    if not scored:
        raise InputFileNotFoundError(
            f"--policy {text!r}: the run has no scored snapshots in {folder.snapshots_dir} "
            f"(train it with snapshots kept to collect {skill} data)"
        )
    if skill == "mixed":
        metric, final_score = _score(scored[-1])
        target = MIXED_FRACTION * final_score
        chosen = min(scored, key=lambda s: abs(_score(s)[1] - target))
        plan.score = chosen.scores
        plan.policies = [AgentPolicy(chosen.path, deterministic, {
            **base,
            "name": f"snapshot step {chosen.step}",
            "step": chosen.step,
            "target": {"metric": metric, "value": target, "final": final_score},
        })]
        return plan
    plan.score = {"snapshots": {str(s.step): s.scores for s in scored}}
    plan.policies = [
        AgentPolicy(s.path, deterministic,
                    {**base, "name": f"snapshot step {s.step}", "step": s.step})
        for s in scored
    ]
    return plan


def _score(snapshot: Snapshot) -> tuple[str, float]:
    score = snapshot_score(snapshot)
    assert score is not None  # only scored snapshots get here
    return score
