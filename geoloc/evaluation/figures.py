"""Figure helpers shared by the evaluation modules: Agg figures, PNG rendering, tables, heatmaps.

Every figure is a :class:`matplotlib.figure.Figure` attached to an Agg canvas directly,
never through pyplot: the report is produced inside training jobs and notebooks, where
pyplot's global figure registry would leak figures and could switch the user's backend.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

FLAG_RED = "#c44e52"
FLAG_BG = "#f8d7da"
OTHER_BG = "#e8eef7"
MUTED = "#8a8a8a"


def new_figure(width: float, height: float) -> Figure:
    """A Figure drawn by the Agg backend, independent of pyplot's global state."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """PNG bytes of a figure (what both the local report and W&B receive)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _fmt(x: float, pct: bool = True) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{100 * x:.1f}" if pct else f"{x:.2f}"


def per_class_table_figure(per_class: pd.DataFrame, target: float, title: str) -> Figure:
    """The per-country results as a PNG table: flagged rows red, never-assigned rows grey.

    Countries first, then OTHER on a blue row of its own so that it is not read as a
    country. ``per_class`` is the report's per-class table.
    """
    cols = [
        "class",
        "name",
        "threshold",
        "support",
        "assigned",
        "precision_abstain",
        "precision_ci95",
        "recall_abstain",
        "cal_lower_bound",
        "note",
    ]
    headers = [
        "code",
        "country",
        "threshold",
        "support",
        "assigned",
        "precision %",
        "95% CI %",
        "recall %",
        "cal. bound %",
        "note",
    ]
    rows, colors, text_colors = [], [], []
    ordered = pd.concat([per_class[per_class["is_country"]], per_class[~per_class["is_country"]]])
    for _, r in ordered.iterrows():
        never = not np.isfinite(r["threshold"])
        if r["flagged"]:
            note = f"BELOW {100 * target:.0f}% TARGET"
        elif never:
            note = "never assigned"
        elif r["assigned"] == 0:
            note = "not assigned on this split"
        else:
            note = ""
        ci = (
            "–"
            if np.isnan(r["precision_ci95_low"])
            else f"{_fmt(r['precision_ci95_low'])}–{_fmt(r['precision_ci95_high'])}"
        )
        rows.append(
            [
                r["class"],
                str(r["name"])[:22],
                "never" if never else f"{r['threshold']:.3g}",
                str(int(r["support"])),
                str(int(r["assigned"])),
                _fmt(r["precision_abstain"]),
                ci,
                _fmt(r["recall_abstain"]),
                _fmt(r["cal_lower_bound"]),
                note,
            ]
        )
        bg = FLAG_BG if r["flagged"] else (OTHER_BG if not r["is_country"] else "white")
        colors.append([bg] * len(cols))
        fg = FLAG_RED if r["flagged"] else (MUTED if never else "black")
        text_colors.append(fg)
    fig = new_figure(12.5, 0.2 * (len(rows) + 1) + 0.5)
    ax = fig.subplots()
    ax.axis("off")
    table = ax.table(
        cellText=rows, colLabels=headers, cellColours=colors, loc="upper center", cellLoc="center"
    )
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.auto_set_column_width(list(range(len(cols))))
    for (i, _j), cell in table.get_celld().items():
        if i == 0:
            cell.set_text_props(fontweight="bold")
            cell.set_facecolor("#dddddd")
        else:
            cell.get_text().set_color(text_colors[i - 1])
            if text_colors[i - 1] == FLAG_RED:
                cell.get_text().set_fontweight("bold")
    ax.set_title(title, fontsize=10)
    return fig


def confusion_figure(confusion_normalized: pd.DataFrame, title: str) -> Figure:
    """Row-normalised confusion matrix heatmap (cell = share of the true class's profiles)."""
    names = list(confusion_normalized.columns)
    c = len(names)
    size = max(5.0, 0.24 * c + 2.5)
    fig = new_figure(size + 1.0, size)
    ax = fig.subplots()
    im = ax.imshow(confusion_normalized.to_numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(c), names, rotation=90, fontsize=7)
    ax.set_yticks(range(c), list(confusion_normalized.index), fontsize=7)
    ax.set_xlabel("predicted (argmax, no abstention)")
    ax.set_ylabel("true")
    if c <= 12:
        for i in range(c):
            for j in range(c):
                v = confusion_normalized.iat[i, j]
                ax.text(
                    j,
                    i,
                    f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if v > 0.5 else "black",
                )
    fig.colorbar(im, ax=ax, shrink=0.8, label="share of true class")
    ax.set_title(title)
    return fig
