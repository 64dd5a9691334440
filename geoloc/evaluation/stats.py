"""Exact binomial bounds and safe ratios: the statistics every evaluation table shares.

One Clopper-Pearson function serves both the abstention policy (a one-sided lower bound
of calibration precision, tested against the target) and the report (a two-sided 95 %
interval of precision on the evaluated split), so the two can never use different
conventions at the edges (k = 0, k = n, n = 0).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from scipy.stats import beta


def clopper_pearson(
    k: Any, n: Any, alpha: float, bound: Literal["lower", "upper"] = "lower"
) -> Any:
    """One-sided exact (Clopper-Pearson) confidence bound of a binomial proportion k / n.

    ``bound="lower"``: with probability >= 1 - alpha the true proportion is >= the bound,
    ``Beta(alpha; k, n - k + 1)`` (0 when k = 0; for k = n it is alpha ** (1 / n)).
    ``bound="upper"``: ``Beta(1 - alpha; k + 1, n - k)`` (1 when k = n). A two-sided
    interval at level 1 - a is ``(lower at a/2, upper at a/2)``. With n = 0 the bounds
    are the trivial 0 and 1. Vectorised over k and n; a float for scalar input.
    """
    k_arr = np.asarray(k, dtype=float)
    n_arr = np.asarray(n, dtype=float)
    if np.any(k_arr < 0) or np.any(k_arr > n_arr):
        raise ValueError("need 0 <= k <= n")
    if bound == "lower":
        ok = k_arr > 0
        out = np.where(ok, beta.ppf(alpha, np.where(ok, k_arr, 1.0),
                                    np.where(ok, n_arr - k_arr + 1, 1.0)), 0.0)
    elif bound == "upper":
        ok = k_arr < n_arr
        out = np.where(ok, beta.ppf(1 - alpha, np.where(ok, k_arr + 1, 1.0),
                                    np.where(ok, n_arr - k_arr, 1.0)), 1.0)
    else:
        raise ValueError(f"bound must be 'lower' or 'upper', got {bound!r}")
    return float(out) if out.ndim == 0 else out


def min_samples_for_target(target: float, delta: float) -> int:
    """Fewest predictions n for which n-of-n correct certifies ``target`` at level
    ``delta`` (``delta ** (1 / n) >= target``): 29 at 0.90 / 0.05."""
    n = max(1, math.ceil(math.log(delta) / math.log(target)))
    while clopper_pearson(n, n, delta) < target:  # guard against float rounding
        n += 1
    return n


def ratio(num: Any, den: Any) -> np.ndarray:
    """num / den elementwise, NaN where den is 0 (precision of a class never predicted is
    undefined, not 0)."""
    num = np.asarray(num, dtype=float)
    den = np.broadcast_to(np.asarray(den, dtype=float), num.shape)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def binomial_se(p: float, n: int) -> float:
    """Standard error of a proportion p measured on n independent rows."""
    return math.sqrt(p * (1 - p) / n) if n > 0 else math.nan


def bootstrap_macro_f1_se(labels: np.ndarray, preds: np.ndarray, n_classes: int,
                          n_boot: int = 200, seed: int = 0) -> float:
    """Bootstrap standard error of macro-F1 (rows resampled with replacement).

    Hand-written over confusion counts (one ``bincount`` per resample) because a metric
    object per resample would be ~100x slower. F1 of a class with no true and no predicted
    row in a resample counts as 0, as in the point estimate's macro average.
    """
    labels = np.asarray(labels, dtype=np.int64)
    preds = np.asarray(preds, dtype=np.int64)
    n = len(labels)
    if n == 0:
        return math.nan
    rng = np.random.default_rng(seed)
    scores = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        conf = np.bincount(labels[idx] * n_classes + preds[idx],
                           minlength=n_classes * n_classes).reshape(n_classes, n_classes)
        tp = np.diag(conf).astype(float)
        denom = conf.sum(0) + conf.sum(1)  # 2 tp + fp + fn
        f1 = np.divide(2 * tp, denom, out=np.zeros(n_classes), where=denom > 0)
        scores[b] = f1.mean()
    return float(scores.std(ddof=1))
