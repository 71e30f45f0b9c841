"""Evaluation over physics contexts: average and worst case, transfer ratio, heat maps.

An agent is played on a set of contexts (a held-out part of a split, a grid over
two factors, ...) for the same level seeds in every context, so contexts are
compared on equal footing. :func:`summarize` gives the average return over
contexts and the worst context's return, each with a bootstrap CI stratified by
context (episodes are resampled within each context); :func:`transfer_ratio`
gives held-out over training-context return; :func:`plot_heatmap` draws return
over two context factors.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from gengap.agents.base import Agent
from gengap.agents.history import EpisodeHistory, new_histories
from gengap.core import checks
from gengap.core.errors import InputError
from gengap.core.files import atomic_write_text
from gengap.envs import Split, make, resolve_split
from gengap.envs.contexts import ContextAxis
from gengap.eval.metrics import Interval
from gengap.eval.report_parts import save_png

METHOD_CONTEXTS = "bootstrap over episodes within each context"
METHOD_RATIO = "bootstrap over episodes within each context, independently per part"


@dataclass(frozen=True)
class ContextEvaluation:
    """Returns (and successes) of one agent, or pooled agents, on a set of contexts.

    Attributes:
        contexts: The contexts, each a ``{param: value}`` dict.
        returns: ``(num_contexts, num_episodes)`` episode returns.
        successes: Same shape, 1.0 where ``info["success"]`` was ever true (NaN where the
            env reports no success).
        levels: The level seed of each episode column (the same in every context).
    """

    contexts: tuple[dict[str, float], ...]
    returns: np.ndarray
    successes: np.ndarray
    levels: tuple[int, ...]

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p for c in self.contexts for p in c))

    def pooled(self, other: ContextEvaluation) -> ContextEvaluation:
        """This evaluation and ``other`` (same contexts; e.g. another seed) side by side."""
        if self.contexts != other.contexts:
            raise InputError("only evaluations of the same contexts can be pooled")
        return ContextEvaluation(
            self.contexts, np.concatenate([self.returns, other.returns], axis=1),
            np.concatenate([self.successes, other.successes], axis=1),
            self.levels + other.levels,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"contexts": list(self.contexts), "returns": self.returns.tolist(),
                "successes": [[None if np.isnan(v) else v for v in row]
                              for row in self.successes.tolist()],
                "levels": list(self.levels)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContextEvaluation:
        successes = [[np.nan if v is None else v for v in row] for row in data["successes"]]
        return cls(tuple(dict(c) for c in data["contexts"]), np.asarray(data["returns"], float),
                   np.asarray(successes, float), tuple(data["levels"]))


def context_grid(
    factors: Mapping[str, Sequence[float]], fixed: Mapping[str, float] | None = None
) -> list[dict[str, float]]:
    """Every combination of ``factors`` values, each with the ``fixed`` values added.

    Raises:
        InputError: For an empty factor or a parameter both varied and fixed.
    """
    fixed = dict(fixed or {})
    if not factors:
        raise InputError("a context grid needs at least one factor, got none")
    for name, values in factors.items():
        if not list(values):
            raise InputError(f"grid factor {name!r} has no values")
        if name in fixed:
            raise InputError(f"grid factor {name!r} is also fixed")
    names = list(factors)
    return [{**dict(zip(names, (float(v) for v in combo), strict=True)), **fixed}
            for combo in itertools.product(*factors.values())]


def part_contexts(split: Split, part: str, *, num_samples: int = 8, seed: int = 0
                  ) -> list[dict[str, float]]:
    """The contexts of ``part``: its points, or ``num_samples`` draws from a training box.

    Raises:
        InputError: If the split has no context axis or no such part.
    """
    axis = split.contexts
    if axis is None:
        raise InputError(f"split {split.name!r} has no context axis")
    if part in ("train", "validation", "test") and axis.train_box is not None:
        rng = np.random.default_rng(seed)
        return [axis.train_box.sample(rng) for _ in range(num_samples)]
    return axis.points(part)


def evaluate_contexts(
    agent: Agent,
    env_id: str,
    contexts: Sequence[Mapping[str, float]],
    *,
    split: Split | None = None,
    episodes_per_context: int = 5,
    deterministic: bool = True,
    num_envs: int = 4,
    env_kwargs: Mapping[str, Any] | None = None,
) -> ContextEvaluation:
    """Play ``agent`` on each context for the first ``episodes_per_context`` test levels.

    Args:
        agent: The agent (batched ``act``).
        env_id: A gengap env id with a contexts axis.
        contexts: The contexts (complete over their own parameters; parameters they do not
            name stay nominal).
        split: Gives the test levels (default: the env's default split).
        episodes_per_context: Episodes (test levels) per context.
        deterministic: Greedy actions when True.
        num_envs: Episodes played side by side.
        env_kwargs: Family options for ``make``.

    Raises:
        InputError: For no contexts, a bad context or a non-positive count.
    """
    if not contexts:
        raise InputError("evaluate_contexts needs at least one context, got none")
    checks.positive_int("episodes_per_context", episodes_per_context)
    checks.positive_int("num_envs", num_envs)
    points = [dict(c) for c in contexts]
    params = tuple(dict.fromkeys(p for c in points for p in c))
    base = resolve_split(env_id, split)
    # The contexts become the "training" contexts of an evaluation split on the same levels,
    # and play on its "test" part: IID levels held out from training, exact contexts.
    eval_split = Split(train=base.train, test=base.test, validation=base.validation,
                       name=f"{base.name}-eval", contexts=ContextAxis(params, train_points=points))
    levels = base.levels("test").first(episodes_per_context)
    schedule = [(c, i) for c in range(len(points)) for i in range(len(levels))]
    returns = np.zeros((len(points), len(levels)))
    successes = np.full((len(points), len(levels)), np.nan)
    envs = [make(env_id, split=eval_split, part="test", **dict(env_kwargs or {}))
            for _ in range(min(num_envs, len(schedule)))]
    slots: list[tuple[int, int] | None] = [None] * len(envs)
    observations: list[Any] = [None] * len(envs)
    cursor = 0

    def start(slot: int) -> None:
        nonlocal cursor
        if cursor >= len(schedule):
            slots[slot] = None
            return
        context_index, episode = schedule[cursor]
        cursor += 1
        slots[slot] = (context_index, episode)
        observations[slot], _ = envs[slot].reset(
            options={"level": levels[episode], "context": points[context_index]})

    histories = new_histories(agent.context_length, len(envs))
    for slot in range(len(envs)):
        start(slot)
    while any(s is not None for s in slots):
        active = [i for i, s in enumerate(slots) if s is not None]
        actions = agent.act(
            np.stack([observations[i] for i in active]),
            deterministic,
            histories=None if histories is None else [histories[i] for i in active],
        )
        for slot, action in zip(active, actions, strict=True):
            cell = slots[slot]
            if cell is None:  # unreachable: active slots hold an episode
                continue
            taken_on = observations[slot]
            obs, reward, terminated, truncated, info = envs[slot].step(action)
            if histories is not None:
                histories[slot].record(taken_on, action, float(reward))
            returns[cell] += float(reward)
            if "success" in info:
                successes[cell] = max(0.0 if np.isnan(successes[cell]) else successes[cell],
                                      float(bool(info["success"])))
            observations[slot] = obs
            if terminated or truncated:
                start(slot)
                if histories is not None:
                    histories[slot] = EpisodeHistory(agent.context_length)
    for env in envs:
        env.close()
    return ContextEvaluation(tuple(points), returns, successes, tuple(levels))


def evaluate_split_contexts(
    agent: Agent,
    env_id: str,
    split: Split,
    parts: Sequence[str] | None = None,
    *,
    episodes_per_context: int = 5,
    train_samples: int = 8,
    seed: int = 0,
    **kwargs: Any,
) -> dict[str, ContextEvaluation]:
    """:func:`evaluate_contexts` on ``train`` (its points, or ``train_samples`` box draws)
    and every held-out context part of ``split`` (or just ``parts``)."""
    parts = list(parts) if parts is not None else ["train", *split.context_parts]
    return {
        part: evaluate_contexts(
            agent, env_id, part_contexts(split, part, num_samples=train_samples, seed=seed),
            split=split, episodes_per_context=episodes_per_context, **kwargs)
        for part in parts
    }


@dataclass(frozen=True)
class ContextSummary:
    """Average and worst-case score over the contexts of one evaluation.

    Attributes:
        mean: Mean over contexts of each context's mean score, with its CI.
        worst: The lowest context mean, with its CI.
        worst_context: The context with the lowest mean.
        num_contexts: How many contexts.
        episodes_per_context: Episodes behind each context mean.
    """

    mean: Interval
    worst: Interval
    worst_context: dict[str, float]
    num_contexts: int
    episodes_per_context: int

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.to_dict(), "worst": self.worst.to_dict(),
                "worst_context": self.worst_context, "num_contexts": self.num_contexts,
                "episodes_per_context": self.episodes_per_context}


def _scores(evaluation: ContextEvaluation, score: str) -> np.ndarray:
    if score not in ("return", "success"):
        raise InputError(f"score must be 'return' or 'success', got {score!r}")
    values = evaluation.returns if score == "return" else evaluation.successes
    if np.isnan(values).any():
        raise InputError("the env reports no success for some episodes; use score='return'")
    return values


def _resampled_means(scores: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """``(reps, num_contexts)`` context means with episodes resampled within each context."""
    contexts, episodes = scores.shape
    picks = rng.integers(0, episodes, size=(reps, contexts, episodes))
    return np.take_along_axis(scores[None], picks, axis=2).mean(axis=2)


def _interval(point: float, samples: np.ndarray, confidence: float, method: str) -> Interval:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return Interval(float(point), float(low), float(high), method)


def summarize(evaluation: ContextEvaluation, *, score: str = "return", reps: int = 2000,
              confidence: float = 0.95, seed: int = 0) -> ContextSummary:
    """Average and worst-case ``score`` (``"return"`` or ``"success"``) over contexts."""
    scores = _scores(evaluation, score)
    means = scores.mean(axis=1)
    samples = _resampled_means(scores, reps, np.random.default_rng(seed))
    worst = int(np.argmin(means))
    return ContextSummary(
        mean=_interval(means.mean(), samples.mean(axis=1), confidence, METHOD_CONTEXTS),
        worst=_interval(means.min(), samples.min(axis=1), confidence, METHOD_CONTEXTS),
        worst_context=dict(evaluation.contexts[worst]),
        num_contexts=len(means),
        episodes_per_context=scores.shape[1],
    )


def transfer_ratio(held_out: ContextEvaluation, train: ContextEvaluation, *,
                   score: str = "return", reps: int = 2000, confidence: float = 0.95,
                   seed: int = 0) -> Interval:
    """Held-out over training-context mean score, with a bootstrap CI.

    Raises:
        InputError: If the training-context mean is not positive (the ratio means nothing).
    """
    held_scores, train_scores = _scores(held_out, score), _scores(train, score)
    train_mean = train_scores.mean(axis=1).mean()
    if train_mean <= 0:
        raise InputError(f"the transfer ratio needs a positive training-context {score}, got "
                         f"{train_mean:g}")
    rng = np.random.default_rng(seed)
    held_samples = _resampled_means(held_scores, reps, rng).mean(axis=1)
    train_samples = _resampled_means(train_scores, reps, rng).mean(axis=1)
    ratio = held_scores.mean(axis=1).mean() / train_mean
    safe = np.where(train_samples > 0, train_samples, np.nan)
    return _interval(ratio, held_samples / safe, confidence, METHOD_RATIO)


def plot_heatmap(evaluation: ContextEvaluation, x: str, y: str, path: str | Path, *,
                 score: str = "return", title: str | None = None) -> Path:
    """A heat map of mean ``score`` over context factors ``x`` and ``y`` (averaged over any
    other parameter), written as PNG.

    Raises:
        InputError: For a factor the contexts do not have.
    """
    from gengap.core.errors import unknown_name_message

    for factor in (x, y):
        if factor not in evaluation.params:
            raise InputError(unknown_name_message("context factor", factor, evaluation.params))
    scores = _scores(evaluation, score).mean(axis=1)
    xs = sorted({c[x] for c in evaluation.contexts})
    ys = sorted({c[y] for c in evaluation.contexts})
    grid = np.full((len(ys), len(xs)), np.nan)
    counts = np.zeros_like(grid)
    for context, value in zip(evaluation.contexts, scores, strict=True):
        cell = (ys.index(context[y]), xs.index(context[x]))
        grid[cell] = value if counts[cell] == 0 else grid[cell] + value
        counts[cell] += 1
    grid = np.where(counts > 0, grid / np.maximum(counts, 1), np.nan)
    figure = Figure(figsize=(1.2 + 0.9 * len(xs), 1.0 + 0.7 * len(ys)))
    axes = figure.add_subplot()
    image = axes.imshow(grid, origin="lower", cmap="viridis", aspect="auto")
    axes.set_xticks(range(len(xs)), [f"{v:g}" for v in xs])
    axes.set_yticks(range(len(ys)), [f"{v:g}" for v in ys])
    axes.set_xlabel(x)
    axes.set_ylabel(y)
    for (row, column), value in np.ndenumerate(grid):
        if not np.isnan(value):
            axes.text(column, row, f"{value:.3g}", ha="center", va="center", color="white",
                      fontsize=8)
    figure.colorbar(image, ax=axes, label=f"mean {score}")
    axes.set_title(title or f"{score} over {x} x {y}")
    return save_png(figure, Path(path))


def write_context_report(evaluations: Mapping[str, ContextEvaluation], out_dir: str | Path, *,
                         score: str = "return", heatmap: tuple[str, str] | None = None,
                         title: str = "Transfer over physics contexts") -> Path:
    """``contexts.md`` (average, worst case and transfer ratio per part), ``contexts.json``
    (every episode) and, with ``heatmap=(x, y)``, one heat map per part with both factors.

    Returns:
        The markdown file's path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", "", f"Score: {score}; 95% CIs by {METHOD_CONTEXTS}.", "",
             "| part | contexts | episodes/context | mean | worst case | worst context | "
             "transfer ratio |", "|---|---|---|---|---|---|---|"]
    train = evaluations.get("train")
    for part, evaluation in evaluations.items():
        summary = summarize(evaluation, score=score)
        ratio = "" if train is None or part == "train" else _ratio_text(evaluation, train, score)
        worst = ", ".join(f"{k}={v:g}" for k, v in summary.worst_context.items())
        lines.append(f"| {part} | {summary.num_contexts} | {summary.episodes_per_context} | "
                     f"{summary.mean.format()} | {summary.worst.format()} | {worst} | {ratio} |")
    if heatmap is not None:
        lines.append("")
        for part, evaluation in evaluations.items():
            if set(heatmap) <= set(evaluation.params):
                name = f"heatmap-{part}.png"
                plot_heatmap(evaluation, *heatmap, out / name, score=score, title=part)
                lines.append(f"![{part}]({name})")
    atomic_write_text(out / "contexts.json", json.dumps(
        {part: e.to_dict() for part, e in evaluations.items()}, indent=1))
    atomic_write_text(out / "contexts.md", "\n".join(lines) + "\n")
    return out / "contexts.md"


def _ratio_text(held_out: ContextEvaluation, train: ContextEvaluation, score: str) -> str:
    try:
        return transfer_ratio(held_out, train, score=score).format()
    except InputError as error:
        return f"n/a ({error})"
