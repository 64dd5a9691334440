"""Temperature scaling, calibration error and reliability diagrams.

Abstention thresholds are read as "how sure is the model", so the confidences should mean
what they say. Fine-tuned transformers are usually over-confident; one temperature T that
divides every logit (Guo et al., 2017) fixes most of that without changing any argmax,
so accuracy and the confusion matrix are untouched.

**Fitting choice.** T is fitted by minimising the negative log-likelihood on the
calibration split with scipy's bounded scalar minimiser (Brent's method) over log T in
[log 0.05, log 20]. The problem is one-dimensional and the NLL is convex in 1/T (a
log-sum-exp of affine functions), hence unimodal in log T, so a bracketing 1-D method
finds the global optimum deterministically, with no learning rate, no autograd graph and
no risk of LBFGS stepping to a negative temperature. Optimising log T keeps the search
scale-free (halving and doubling T are equally far apart).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from scipy.special import softmax as _softmax

from geoloc.evaluation.figures import new_figure
from geoloc.evaluation.metrics import ECE_BINS, expected_calibration_error

log = logging.getLogger(__name__)

#: Search interval for the temperature. Outside it the model is either degenerate
#: (T < 0.05 turns every prediction into a certainty) or nearly uniform (T > 20).
TEMPERATURE_BOUNDS: tuple[float, float] = (0.05, 20.0)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Class probabilities softmax(logits / T) in float64 (float64 so that thresholds
    compared against them behave the same at fit and at apply time)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    return _softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true labels under softmax(logits / T)."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    logp = log_softmax(logits / temperature, axis=1)
    return float(-logp[np.arange(len(labels)), labels].mean())


def fit_temperature(
    logits: np.ndarray,
    labels: np.ndarray,
    bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
) -> float:
    """Temperature T minimising the calibration-split NLL of softmax(logits / T).

    See the module docstring for why a bounded scalar minimiser over log T is used. Logs a
    warning when the optimum sits on a bound, which means the logits carry almost no
    information (T at the upper bound) or the model is badly under-confident (lower bound).
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    res = minimize_scalar(
        lambda log_t: nll(logits, labels, float(np.exp(log_t))),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-5},
    )
    temperature = float(np.exp(res.x))
    if min(abs(res.x - lo), abs(res.x - hi)) < 1e-3:
        log.warning(
            "fitted temperature %.4g is at the edge of its search bounds %s", temperature, bounds
        )
    return temperature


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> pd.DataFrame:
    """Per-bin count, mean confidence and accuracy of the top-1 prediction.

    Hand-written because torchmetrics only returns the ECE scalar, not the bins behind it;
    the bins are the same equal-width, left-closed ones torchmetrics uses, so the
    count-weighted gaps drawn here sum to the ECE reported (except that a confidence of
    exactly 1.0 joins the last bin here instead of a 16th bin of its own).
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
        acc = np.bincount(idx, weights=correct, minlength=n_bins) / count
    return pd.DataFrame(
        {
            "bin_lower": edges[:-1],
            "bin_upper": edges[1:],
            "count": count.astype(int),
            "confidence": mean_conf,
            "accuracy": acc,
            "gap": np.abs(acc - mean_conf),
        }
    )


@dataclass
class CalibrationSummary:
    """Calibration of one split before and after temperature scaling."""

    split: str
    temperature: float
    n: int
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float
    bins: pd.DataFrame
    """Reliability bins with a ``stage`` column: "before" (T = 1) or "after" (fitted T)."""


def calibration_summary(
    logits: np.ndarray,
    labels: np.ndarray,
    temperature: float,
    split: str = "test",
    n_bins: int = ECE_BINS,
) -> CalibrationSummary:
    """NLL, ECE and reliability bins of ``logits`` at T = 1 and at ``temperature``."""
    before = softmax(logits, 1.0)
    after = softmax(logits, temperature)
    bins = pd.concat(
        [
            reliability_bins(before, labels, n_bins).assign(stage="before"),
            reliability_bins(after, labels, n_bins).assign(stage="after"),
        ],
        ignore_index=True,
    )
    return CalibrationSummary(
        split=split,
        temperature=float(temperature),
        n=len(labels),
        nll_before=nll(logits, labels, 1.0),
        nll_after=nll(logits, labels, temperature),
        ece_before=expected_calibration_error(before, labels, n_bins),
        ece_after=expected_calibration_error(after, labels, n_bins),
        bins=bins,
    )


def reliability_figure(summary: CalibrationSummary) -> Figure:
    """Reliability diagram before/after temperature scaling, side by side.

    Bars show accuracy per confidence bin (width = bin), the diagonal is perfect
    calibration, and the bottom strip shows how many predictions fall in each bin so that
    an off-diagonal bar with three samples is not over-read.
    """
    fig = new_figure(10, 5.2)
    axes = fig.subplots(2, 2, sharex=True, height_ratios=[3, 1])
    for col, (stage, t, ece) in enumerate(
        [("before", 1.0, summary.ece_before), ("after", summary.temperature, summary.ece_after)]
    ):
        b = summary.bins[summary.bins["stage"] == stage]
        width = (b["bin_upper"] - b["bin_lower"]).to_numpy()
        ax = axes[0, col]
        acc = b["accuracy"].to_numpy()
        conf = b["confidence"].to_numpy()
        ax.bar(
            b["bin_lower"],
            np.nan_to_num(acc),
            width=width,
            align="edge",
            color="#4c72b0",
            edgecolor="white",
            label="accuracy",
        )
        # The gap is drawn from accuracy to mean confidence, whichever is higher, so
        # over- and under-confidence look alike apart from the side of the diagonal.
        ax.bar(
            b["bin_lower"],
            np.nan_to_num(np.abs(conf - acc)),
            bottom=np.nan_to_num(np.minimum(acc, conf)),
            width=width,
            align="edge",
            facecolor="none",
            edgecolor="#c44e52",
            hatch="///",
            lw=0.8,
            label="gap to mean confidence",
        )
        ax.plot([0, 1], [0, 1], ls="--", color="black", lw=1, label="perfect calibration")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy")
        ax.set_title(f"{summary.split}: {stage} scaling (T = {t:.3g})\nECE = {ece:.3f}")
        ax.legend(loc="upper left", fontsize=8)
        cnt = axes[1, col]
        cnt.bar(b["bin_lower"], b["count"], width=width, align="edge", color="grey")
        cnt.set_xlabel("confidence (top-class probability)")
        cnt.set_ylabel("count")
    return fig
