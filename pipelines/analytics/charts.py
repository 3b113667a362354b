"""PNG charts of the report, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Every label is ASCII (ISO months, week-start dates, the English change types), so the charts
render with DejaVu Sans, the font matplotlib bundles: no CJK font needs to be installed and no
glyph can be missing. Company and qualification names appear in the markdown, not in charts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

CHANGE_TYPES = ("added", "updated", "removed", "restored")
CHANGE_COLORS = {
    "added": "#2e7d32",
    "updated": "#1565c0",
    "removed": "#c62828",
    "restored": "#ef6c00",
}
_STYLE: dict[Any, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_SIZE = (10, 4.8)
_DPI = 110
# Fixed margins (figure fractions) that fit the title, the axis labels, two-line tick labels and the
# legend right of the changes chart; matplotlib's constrained layout computes the same at
# ~0.15 s per chart.
_MARGINS = {"left": 0.07, "right": 0.97, "bottom": 0.17, "top": 0.91}
_LEGEND_RIGHT = 0.855


def _figure(*, legend: bool = False) -> tuple[Figure, Axes]:
    figure = Figure(figsize=_SIZE)
    FigureCanvasAgg(figure)
    figure.subplots_adjust(**{**_MARGINS, **({"right": _LEGEND_RIGHT} if legend else {})})
    return figure, figure.subplots()


def expiries_chart(counts: Mapping[dt.date, int], today: dt.date, path: Path) -> Path:
    """Bars of licences expiring per month from `today` on; `counts` maps each month's first
    day to a count."""
    months = sorted(counts)
    with matplotlib.rc_context(_STYLE):
        figure, axes = _figure()
        bars = axes.bar(
            [m.strftime("%Y-%m") for m in months], [counts[m] for m in months], color="#1565c0"
        )
        axes.bar_label(bars, labels=[str(counts[m]) if counts[m] else "" for m in months])
        axes.set_title(f"Current licences expiring per month, from {today.isoformat()}")
        axes.set_xlabel("Month of validity end")
        axes.set_ylabel("Licences")
        axes.tick_params(axis="x", labelsize=8)
        _integer_axis(axes, max(counts.values(), default=0))
        if not any(counts.values()):
            _empty_note(axes, "No licence expires in the next 12 months")
        figure.savefig(path, dpi=_DPI)
    return path


def changes_chart(counts: Mapping[dt.date, Mapping[str, int]], path: Path) -> Path:
    """Stacked bars of changes per week by type; `counts` maps each week's Monday to counts."""
    weeks = sorted(counts)
    labels = [f"{week:%m-%d}\n{week:%Y}" for week in weeks]
    with matplotlib.rc_context(_STYLE):
        figure, axes = _figure(legend=True)
        bottoms = [0] * len(weeks)
        for change_type in CHANGE_TYPES:
            heights = [counts[week].get(change_type, 0) for week in weeks]
            bars = axes.bar(
                labels, heights, bottom=bottoms, label=change_type, color=CHANGE_COLORS[change_type]
            )
            bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
        axes.bar_label(bars, labels=[str(total) if total else "" for total in bottoms])
        axes.set_title("Licence changes per week by type, last 12 weeks")
        axes.set_xlabel("Week starting (Monday, Asia/Shanghai)")
        axes.set_ylabel("Changes")
        axes.tick_params(axis="x", labelsize=8)
        axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, title="Change type")
        _integer_axis(axes, max(bottoms, default=0))
        if not any(bottoms):
            _empty_note(axes, "No changes in the last 12 weeks")
        figure.savefig(path, dpi=_DPI)
    return path


def _integer_axis(axes: Axes, highest: int) -> None:
    """Whole-number ticks, with headroom above the tallest bar for its label."""
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylim(0, max(highest * 1.12, 1))


def _empty_note(axes: Axes, text: str) -> None:
    axes.text(
        0.5,
        0.5,
        text,
        transform=axes.transAxes,
        ha="center",
        va="center",
        color="#555555",
        fontsize=12,
    )
