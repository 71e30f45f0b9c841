"""Pieces every report shares: writing a figure, and the probability-of-improvement table.

Figures are drawn on :class:`matplotlib.figure.Figure` objects with the Agg canvas directly,
never through ``pyplot``: no display is needed and a caller's process-wide matplotlib backend
(a notebook, say) is left alone. They are written atomically, like every other file.

The probability of improvement compares two score tables on the held-out levels both played
(rliable's P(X > Y) is defined per task, so unpaired levels cannot enter it); tables whose
columns are episode indices rather than level seeds have no levels to pair and are skipped.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gengap.core.files import atomic_write_bytes
from gengap.eval.metrics import Interval, ScoreTable, probability_of_improvement

__all__ = ["improvement_on_common_levels", "improvement_table", "save_png"]


def save_png(figure: Figure, path: Path) -> Path:
    """Render ``figure`` with the Agg canvas and write it to ``path`` atomically."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
    return path


def improvement_on_common_levels(
    table_x: ScoreTable, table_y: ScoreTable, *, reps: int, confidence: float, seed: int = 0
) -> tuple[Interval, int] | None:
    """P(X > Y) over the levels both tables hold, and how many those are.

    Returns:
        The interval and the number of common levels; None when either table's columns are
        not level seeds, or the tables share no level.
    """
    if table_x.column_kind != "level_seed" or table_y.column_kind != "level_seed":
        return None
    common = sorted(set(table_x.columns) & set(table_y.columns))
    if not common:
        return None
    interval = probability_of_improvement(
        table_x.matrix[:, [table_x.columns.index(c) for c in common]],
        table_y.matrix[:, [table_y.columns.index(c) for c in common]],
        reps=reps,
        seed=seed,
        confidence=confidence,
    )
    return interval, len(common)


def improvement_table(title: str, rows: Sequence[str], confidence: float) -> list[str]:
    """A markdown section: ``title``, what P(X > Y) means, and ``rows`` (``| X | Y | P | n |``)."""
    if not rows:
        return []
    return [
        f"## {title}",
        "",
        "P(X > Y): the chance that X scores higher than Y on a held-out level, averaged over "
        f"the levels both played (rliable), with {confidence:.0%} stratified-bootstrap CIs; "
        "0.5 means no difference.",
        "",
        "| X | Y | P(X > Y) | common levels |",
        "|---|---|---|---|",
        *rows,
        "",
    ]
