"""Intervals around an audience's estimated shares, and :func:`estimate_audience`, the
one call per group: a percentile bootstrap over the group's rows and the calibration rows,
widened in quadrature by a systematic margin calibrated split-conformally on the
calibration data (:func:`systematic_margins`); naive counting keeps a Jeffreys floor
(:func:`jeffreys_interval`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from geoloc.inference.audience.estimators import (
    METHODS,
    AudienceError,
    Calibration,
    _estimate,
    _Fitted,
    check_methods,
    check_options,
)


@dataclass
class Estimate:
    """One method's estimate for one group: shares and their interval, per class."""

    method: str
    share: np.ndarray
    low: np.ndarray
    high: np.ndarray


def stratified_halves(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random half of each class's rows (the first ``len // 2`` of a permutation), as
    a boolean mask: the two halves of a split that keeps every class in both."""
    half = np.zeros(len(labels), dtype=bool)
    for k in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == k))
        half[idx[: len(idx) // 2]] = True
    return half


def _scale(share: np.ndarray) -> np.ndarray:
    """How a share's systematic error scales: like a proportion's spread, plus a floor
    of one class's uniform share so that a country estimated at 0 keeps some room."""
    share = np.clip(np.nan_to_num(share, nan=0.0), 0, 1)
    return np.sqrt(share * (1 - share)) + 1 / share.shape[-1]


def _bootstrap_draws(methods: Sequence[str], probabilities: np.ndarray,
                     decisions: np.ndarray, replicates: Sequence[_Fitted],
                     rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Each method's estimates (replicates x classes) over the calibration
    ``replicates``, each paired with one resample of the group's rows (shared by the
    methods)."""
    n = len(probabilities)
    draws = {m: np.full((len(replicates), probabilities.shape[1]), np.nan) for m in methods}
    for b, fb in enumerate(replicates):
        idx = rng.integers(0, n, n)
        for m in methods:
            draws[m][b] = _estimate(m, probabilities[idx], decisions[idx], fb)
    return draws


def _percentile_interval(draws: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The ``level`` percentile interval of bootstrap draws, per class."""
    tail = 100 * (1 - level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # all-NaN columns (naive, nothing assigned)
        low, high = np.nanpercentile(draws, [tail, 100 - tail], axis=0)
    return low, high


def _needed_margin(share: np.ndarray, low: np.ndarray, high: np.ndarray, truth: np.ndarray,
                   n_rows: int = 0) -> np.ndarray:
    """Per class, the smallest λ for which ``truth`` lies in the interval widened by
    λ x scale(share) in quadrature (0 when the bootstrap interval already holds it);
    a lower end under one of ``n_rows`` profiles counts as 0, as in the estimate."""
    low = np.where(low * n_rows < 1, 0.0, low) if n_rows else low
    below = np.maximum(share - low, 0)
    above = np.maximum(high - share, 0)
    gap = np.where(truth < share, share - truth, truth - share)
    side = np.where(truth < share, below, above)
    return np.sqrt(np.maximum(gap**2 - side**2, 0)) / _scale(share)


#: Audience sizes the systematic margin is calibrated at (interpolated in log size).
MARGIN_SIZES = (20, 100, 1000, 4000)
#: Rows of the audience whose estimate stands for the pool's own answer to a mix
#: (:func:`systematic_margins`): its sampling error, under 0.4 points of share, is small
#: beside the pool's.
POOL_ANSWER_ROWS = 20_000


def sample_audience(pools: Sequence[np.ndarray], mix: np.ndarray, n: int,
                    rng: np.random.Generator) -> np.ndarray:
    """Row indices of a simulated audience of ``n`` profiles with country mix ``mix``:
    multinomial counts per class, each class's rows drawn with replacement from its pool
    (``pools[k]``: the row indices of class ``k``)."""
    counts = rng.multinomial(n, mix)
    return np.concatenate([rng.choice(pools[k], size=m, replace=True)
                           for k, m in enumerate(counts) if m])


def systematic_margins(calibration: Calibration, methods: Sequence[str], level: float,
                       seed: int = 0, sizes: Sequence[int] = MARGIN_SIZES,
                       audiences: int = 12, bootstrap: int = 25
                       ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each method's systematic-error factor λ by audience size, measured on the
    calibration data alone: ``{method: (sizes, λ at each size)}``.

    Why: the bootstrap measures the noise of a group's rows and of the calibration rows,
    not the estimators' bias when the model's errors on an audience differ from those on
    the calibration rows (label shift is never exactly the only shift). That bias does
    not shrink with the group's size, so a bootstrap interval of a large group is far too
    narrow (on real tweets at 10,000 profiles: 42 % coverage at 90 %); and at 20 profiles
    EM's bootstrap collapses for the countries it zeroes. So the interval is the
    bootstrap's widened in quadrature by λ(n) x scale(share) (:func:`_scale`), and λ(n)
    is calibrated split-conformally: the calibration rows are split in two (stratified,
    twice); audiences of each size with random mixes (Dirichlet 0.3 and 1 over the
    countries present) are drawn from one half and estimated, bootstrap included, with
    the other; λ(n) is the ``level`` quantile of the smallest λ that makes each
    (audience, country) interval hold the true share.

    The shift this simulates is the one between two finite samples: an audience drawn
    from the pool inherits the pool's own quirks (which tweets of each country it
    holds), an error that does not shrink with the audience's size. The pool is about
    half the calibration rows, so it would stand for twice the variance of a fresh
    sample of the calibration's size, the shift the margin is meant to stand for (and
    the one between the two halves of ``experiments/audience``); at 4,000 profiles,
    where it dominates, margins came out wide (95.6 % coverage at 10,000 for a 90 %
    interval). So that part of the error is scaled to a pool of the calibration's size:
    the true share is replaced by ``s p + (1 - s) q``, with ``q`` the method's estimate
    on a large audience from the pool (the pool's own answer to the mix ``p``) and
    ``s = sqrt(pool rows / calibration rows)``: the error to cover becomes the
    audience's sampling error plus ``s`` times the pool's.
    """
    rng = np.random.default_rng([seed, 0x5157])
    c = len(calibration.class_names)
    labels = calibration.labels
    needed: dict[str, dict[int, list[np.ndarray]]] = {
        m: {n: [] for n in sizes} for m in methods}
    for _ in range(2):
        half = stratified_halves(labels, rng)
        fitted_half = calibration.subset(np.flatnonzero(half))
        fitted = _Fitted.of(fitted_half)
        replicates = [_Fitted.of(fitted_half.resample(rng)) for _ in range(bootstrap)]
        pool = [np.flatnonzero(~half & (labels == k)) for k in range(c)]
        present = np.array([k for k in range(c) if len(pool[k]) >= 5])
        if len(present) < 2:
            continue
        s = np.sqrt((~half).sum() / len(labels))  # the pool's noise, scaled (docstring)
        decisions = (calibration.decisions if calibration.decisions is not None
                     else np.full(len(labels), -1))
        for n in sizes:
            for a in range(audiences // 2):
                p = np.zeros(c)
                p[present] = rng.dirichlet(np.full(len(present), (0.3, 1.0)[a % 2]))
                rows = sample_audience(pool, p, n, rng)
                big = sample_audience(pool, p, POOL_ANSWER_ROWS, rng)
                probs, decided = calibration.probabilities[rows], decisions[rows]
                large = calibration.probabilities[big], decisions[big]
                for m in methods:
                    est = _estimate(m, probs, decided, fitted)
                    if np.isnan(est).all():
                        continue
                    draws = _bootstrap_draws([m], probs, decided, replicates, rng)[m]
                    low, high = _percentile_interval(draws, level)
                    truth = s * p + (1 - s) * _estimate(m, *large, fitted)
                    needed[m][n].append(_needed_margin(est, low, high, truth, n))
    return {m: (np.asarray(sizes, dtype=float),
                np.array([float(np.quantile(np.concatenate(v[n]), level)) if v[n] else 0.0
                          for n in sizes]))
            for m, v in needed.items()}


def margin_factor(margins: tuple[np.ndarray, np.ndarray], n: int) -> float:
    """λ for a group of ``n`` rows: interpolated in log size, constant past the ends."""
    sizes, factors = margins
    return float(np.interp(np.log(n), np.log(sizes), factors))


class CalibrationReplicates:
    """The calibration data's estimator inputs (misclassification rates, implied prior)
    as they are and on ``bootstrap`` resamples of the calibration rows, and each
    method's systematic margin at ``level`` (:func:`systematic_margins`): computed once
    per job and shared by every group (they do not depend on the group)."""

    def __init__(self, calibration: Calibration, bootstrap: int, seed: int = 0,
                 level: float = 0.9, methods: Sequence[str] = METHODS) -> None:
        check_options(bootstrap=bootstrap, level=level)
        rng = np.random.default_rng([seed, 0xCA1B])
        self.n_classes = len(calibration.class_names)
        self.level = float(level)
        self.full = _Fitted.of(calibration)
        self.replicates = [_Fitted.of(calibration.resample(rng)) for _ in range(bootstrap)]
        corrected = [m for m in check_methods(methods) if m != "naive"]
        self.margins = systematic_margins(calibration, corrected, level, seed)


def estimate_audience(probabilities: np.ndarray, decisions: np.ndarray,
                      calibration: Calibration | CalibrationReplicates,
                      methods: Sequence[str] = METHODS, bootstrap: int = 200,
                      level: float = 0.9, seed: int = 0) -> list[Estimate]:
    """Each method's shares for one group of rows, with a ``level`` interval: the
    percentile bootstrap (``bootstrap`` replicates, each resampling the group's rows and
    the calibration rows), widened in quadrature by the method's systematic margin
    (:func:`systematic_margins`; naive counting instead keeps the Jeffreys floor).
    ``decisions`` are the policy's (class index or -1 for UNCERTAIN).
    Pass :class:`CalibrationReplicates` to share the calibration resamples across groups
    (their count then sets ``bootstrap``).

    The point estimate is the method on the rows as they are (not the bootstrap mean).
    ``naive`` is NaN for every class when no row of the group was assigned a country.
    """
    methods = check_methods(methods)
    if isinstance(calibration, Calibration):
        calibration = CalibrationReplicates(calibration, bootstrap, seed, level, methods)
    level = calibration.level
    probabilities = np.asarray(probabilities, dtype=np.float64)
    decisions = np.asarray(decisions, dtype=np.int64)
    n = len(probabilities)
    if n == 0:
        raise AudienceError("an empty group has no country mix")
    if probabilities.ndim != 2 or probabilities.shape[1] != calibration.n_classes:
        raise AudienceError(f"probabilities of shape {probabilities.shape}: expected "
                            f"{calibration.n_classes} classes")
    points = {m: _estimate(m, probabilities, decisions, calibration.full) for m in methods}
    c = probabilities.shape[1]
    draws = _bootstrap_draws(methods, probabilities, decisions, calibration.replicates,
                             np.random.default_rng(seed))
    out = []
    for m in methods:
        if len(calibration.replicates) and not np.isnan(draws[m]).all():
            low, high = _percentile_interval(draws[m], level)
            if m == "naive":  # the baseline: never narrower than an error-free count's
                floor_low, floor_high = jeffreys_interval(
                    points[m], int((decisions >= 0).sum()), level)
                low, high = np.fmin(low, floor_low), np.fmax(high, floor_high)
            else:  # the sampling noise and the systematic margin, in quadrature
                factor = (margin_factor(calibration.margins[m], n)
                          if m in calibration.margins else 0.0)
                margin = factor * _scale(points[m])
                share = points[m]
                low = share - np.hypot(np.maximum(share - low, 0), margin)
                high = share + np.hypot(np.maximum(high - share, 0), margin)
                # less than one profile's worth cannot rule out none (EM's shares approach
                # 0 without reaching it)
                low = np.where(low * n < 1, 0.0, low)
                low, high = np.clip(low, 0, 1), np.clip(high, 0, 1)
        else:
            low = high = np.full(c, np.nan)
        out.append(Estimate(m, points[m], low, high))
    return out


def jeffreys_interval(share: np.ndarray, n: int, level: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The Jeffreys interval of each share as a binomial proportion of ``n`` rows: what a
    classifier without errors would give. Why it is the interval's floor: a percentile
    bootstrap of a small audience is degenerate for a country it happens not to contain
    (every replicate says 0, the interval is [0, 0]), though 20 profiles without a
    country hardly prove that none of the audience lives there."""
    from scipy.stats import beta

    share = np.clip(np.nan_to_num(np.asarray(share, dtype=np.float64), nan=0.0), 0, 1)
    if n <= 0:
        return np.zeros_like(share), np.ones_like(share)
    x = share * n
    tail = (1 - level) / 2
    # less than one profile's worth (EM's shares approach 0 without reaching it) cannot
    # rule out none: the bound is 0, as Jeffreys' interval has it for a count of 0
    low = np.where(x < 1, 0.0, beta.ppf(tail, x + 0.5, n - x + 0.5))
    high = np.where(x > n - 1, 1.0, beta.ppf(1 - tail, x + 0.5, n - x + 0.5))
    return low, high
