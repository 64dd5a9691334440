"""Confidence-threshold sweeps: what each threshold would buy in precision and cost in coverage.

A sweep applies one global confidence threshold t to the top-class probability and reports,
for every class and for all classes together, how many predictions are kept and how good
they are. It is the diagnostic behind the per-class thresholds of
:mod:`geoloc.evaluation.abstention` and behind the risk-coverage and precision-threshold
plots that reviewers read.

Definitions at threshold t (a prediction is kept when its top-class probability >= t):

* per class c: ``kept`` = kept predictions whose top class is c; ``precision`` =
  ``accuracy_kept`` = share of them that are right; ``recall`` = right kept predictions of
  c / true members of c; ``coverage`` = kept / all predictions of c (at t = 0).
* ``ALL``: ``coverage`` = kept / N; ``precision`` = ``accuracy_kept`` = selective accuracy
  (share of kept predictions that are right); ``recall`` = right kept predictions / N (the
  share of all profiles that get a correct label); ``risk`` = 1 - selective accuracy.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from geoloc.evaluation.figures import new_figure
from geoloc.evaluation.metrics import check_outputs, is_country
from geoloc.evaluation.stats import ratio

#: Row label of the all-classes rows in a sweep table.
ALL = "ALL"


def default_grid() -> np.ndarray:
    """Thresholds 0.00, 0.01, ..., 0.99 plus 0.995 and 0.999.

    The two extra points resolve the low-coverage end of the risk-coverage curve, where a
    confident model puts a large share of its predictions.
    """
    return np.round(np.concatenate([np.arange(100) / 100, [0.995, 0.999]]), 3)


def counts_above(
    confidence: np.ndarray, correct: np.ndarray, grid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each threshold in ``grid``: how many ``confidence >= t`` and how many of those are correct.

    Hand-written (a sort plus suffix sums, O(n log n)) because the same counts feed both the
    sweep and the threshold search; a library metric per threshold would re-scan the data
    100 times per class.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    order = np.argsort(confidence, kind="stable")
    conf_sorted = confidence[order]
    correct_sorted = np.asarray(correct, dtype=np.int64)[order]
    # suffix[i] = number correct among conf_sorted[i:]
    suffix = np.concatenate([np.cumsum(correct_sorted[::-1])[::-1], [0]])
    first_kept = np.searchsorted(conf_sorted, np.asarray(grid, dtype=np.float64), side="left")
    return len(confidence) - first_kept, suffix[first_kept]


def threshold_sweep(
    probs: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    grid: np.ndarray | None = None,
) -> pd.DataFrame:
    """Long table with one row per (threshold, class) plus the ``ALL`` rows; see module doc.

    Columns: threshold, class, is_country, predicted, support, kept, correct, precision,
    recall, coverage, accuracy_kept, risk.
    """
    probs, labels, names = check_outputs(probs, labels, class_names)
    grid = default_grid() if grid is None else np.asarray(grid, dtype=np.float64)
    pred = probs.argmax(axis=1)
    conf = probs.max(axis=1)
    correct = pred == labels
    n = len(labels)
    frames = []
    for c, name in enumerate([*names, ALL]):
        if name == ALL:
            mask = np.ones(n, dtype=bool)
            support = predicted = n
        else:
            mask = pred == c
            support = int((labels == c).sum())
            predicted = int(mask.sum())
        kept, right = counts_above(conf[mask], correct[mask], grid)
        precision = ratio(right, kept)
        frames.append(
            pd.DataFrame(
                {
                    "threshold": grid,
                    "class": name,
                    "is_country": name != ALL and is_country(name),
                    "predicted": predicted,
                    "support": support,
                    "kept": kept.astype(int),
                    "correct": right.astype(int),
                    "precision": precision,
                    "recall": ratio(right, support),
                    "coverage": ratio(kept, predicted),
                    "accuracy_kept": precision,
                    "risk": 1.0 - precision,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def risk_coverage_figure(
    sweep: pd.DataFrame,
    operating_point: tuple[float, float] | None = None,
    title: str = "Risk-coverage",
) -> Figure:
    """Selective risk (1 - accuracy of kept predictions) against coverage, one global threshold.

    ``operating_point`` = (coverage, risk) of the per-class-threshold abstention policy,
    drawn as a star so that it can be compared with what one global threshold achieves.
    """
    rows = sweep[sweep["class"] == ALL].sort_values("threshold")
    fig = new_figure(6.5, 4.8)
    ax = fig.subplots()
    ax.plot(rows["coverage"], rows["risk"], color="#4c72b0", lw=2, label="one global threshold")
    for i, t in enumerate((0.5, 0.8, 0.9, 0.95, 0.99)):
        r = rows[np.isclose(rows["threshold"], t)]
        if len(r) and r["coverage"].iloc[0] > 0:
            # Alternate label sides: on the flat low-risk end the points sit close together.
            ax.annotate(
                f"t={t:g}",
                (r["coverage"].iloc[0], r["risk"].iloc[0]),
                textcoords="offset points",
                xytext=(0, 8 if i % 2 else -13),
                fontsize=8,
                ha="center",
            )
            ax.plot(r["coverage"], r["risk"], "o", color="#4c72b0", ms=3)
    if operating_point is not None and np.isfinite(operating_point).all():
        ax.plot(
            *operating_point,
            marker="*",
            ms=14,
            color="#c44e52",
            ls="none",
            label="per-class thresholds (abstention policy)",
        )
    ax.set_xlim(0, 1.02)
    ax.set_ylim(bottom=-0.02 * max(0.05, float(rows["risk"].max(skipna=True) or 0)))
    ax.set_xlabel("coverage (share of profiles given a label)")
    ax.set_ylabel("risk (1 - accuracy of labelled profiles)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def precision_threshold_figure(
    sweep: pd.DataFrame,
    thresholds: Mapping[str, float] | None = None,
    target: float | None = None,
    flagged: Collection[str] = (),
    title: str = "Precision vs confidence threshold",
    ncols: int = 7,
) -> Figure:
    """Small multiples, one panel per class: precision (blue) and coverage (grey) vs threshold.

    Small multiples keep 37 classes readable where one panel of 37 lines would not be. The
    red dotted line is the target precision, the green vertical line the class's chosen
    threshold (none: never assigned); flagged classes (below target on this split) get a
    red title. OTHER, when present, is the last panel.
    """
    classes = [c for c in dict.fromkeys(sweep["class"]) if c != ALL]
    nrows = max(1, int(np.ceil(len(classes) / ncols)))
    ncols = min(ncols, max(1, len(classes)))
    fig = new_figure(2.3 * ncols, 1.9 * nrows + 0.6)
    axes = np.atleast_1d(
        fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
    ).ravel()
    for ax, name in zip(axes, classes, strict=False):
        rows = sweep[sweep["class"] == name].sort_values("threshold")
        ax.plot(rows["threshold"], rows["coverage"], color="grey", lw=1, ls="--")
        ax.plot(rows["threshold"], rows["precision"], color="#4c72b0", lw=1.6)
        if target is not None:
            ax.axhline(target, color="#c44e52", ls=":", lw=1)
        t = None if thresholds is None else thresholds.get(name)
        if t is not None and np.isfinite(t):
            ax.axvline(t, color="#55a868", lw=1.2)
            label = f"t={t:.2f}"
        else:
            label = "never" if thresholds is not None else ""
        n_pred = int(rows["predicted"].iloc[0]) if len(rows) else 0
        color = "#c44e52" if name in flagged else "black"
        weight = "bold" if name in flagged else "normal"
        ax.set_title(f"{name}  n={n_pred}  {label}", fontsize=8, color=color, fontweight=weight)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
    for ax in axes[len(classes) :]:
        ax.set_visible(False)
    fig.suptitle(
        f"{title}  (blue: precision, grey dashed: coverage of the class's predictions,"
        " red dotted: target, green: chosen threshold)",
        fontsize=9,
    )
    fig.supxlabel("confidence threshold", fontsize=9)
    return fig
