"""Fitting the abstention policy: per-class thresholds certified on calibration outputs.

The method and what it guarantees are described in :mod:`geoloc.evaluation.abstention`
(the policy objects live there). This module does the tests:

- :func:`_sequence_tests`: the fixed-sequence tests of one family (a class, or the pooled
  rare countries) with several starts and alpha-recycling. Hand-written: the graphical
  procedure on a chain is a dozen lines, and no maintained library runs Clopper-Pearson
  fixed-sequence tests over a threshold grid (``statsmodels`` has the bound, which
  :func:`geoloc.evaluation.stats.clopper_pearson` wraps from ``scipy``);
- :func:`n_families`: how many families a ``simultaneous`` guarantee divides delta by;
- :func:`fit_thresholds` / :func:`fit_policy`: the whole policy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from geoloc.evaluation.abstention import (
    ASSIGNED,
    BOUND_BELOW_TARGET,
    NO_PREDICTIONS,
    POOL_FAILED,
    POOL_SPLIT,
    POOLED,
    POOLED_OWN,
    TOO_FEW,
    ClassCalibration,
    PolicyConfig,
    Thresholds,
)
from geoloc.evaluation.calibration import fit_temperature, softmax
from geoloc.evaluation.metrics import check_outputs
from geoloc.evaluation.stats import clopper_pearson, min_samples_for_target
from geoloc.evaluation.sweep import counts_above, default_grid
from geoloc.labels import OTHER


def _starts(kept: np.ndarray, target: float, delta: float, start_counts: Sequence[int]
            ) -> list[int] | None:
    """Grid indices where the sequences start (None: too few predictions to certify
    anything at ``delta``). Label-free: only counts of kept predictions are read."""
    n = int(kept[-1])  # kept at the loosest threshold tested (the floor)
    counts = [s for s in start_counts if s <= n] or [n]
    # A start keeping fewer predictions than n/n-correct needs to pass a test at its
    # share of delta could never certify anything: drop it rather than spend delta.
    n_min = min_samples_for_target(target, delta / len(counts))
    counts = [s for s in counts if s >= n_min]
    if not counts:
        if n < min_samples_for_target(target, delta):
            return None
        counts = [n]
    return sorted({int(np.flatnonzero(kept >= s)[0]) for s in counts})


def _sequence_tests(confidence: np.ndarray, correct: np.ndarray, n_support: int,
                    grid_desc: np.ndarray, target: float, delta: float,
                    start_counts: Sequence[int]) -> tuple[float, ClassCalibration]:
    """Fixed-sequence tests for one family, with alpha-recycling between starts.

    Each start gets weight 1 / m; walking the grid from the strictest threshold to the
    loosest, a threshold holding weight w is tested at level w * delta, and when rejected
    passes its weight to the next looser threshold (where it adds to a start's own). This
    is the Bonferroni-based graphical procedure (Bretz et al. 2009) on a chain graph, so
    the chance of certifying any threshold whose precision is below target is <= delta.
    """
    n_pred = len(confidence)
    if n_pred == 0:
        return math.inf, ClassCalibration(NO_PREDICTIONS, 0, n_support)
    kept, right = counts_above(confidence, correct, grid_desc)
    starts = _starts(kept, target, delta, start_counts)
    if starts is None:
        return math.inf, ClassCalibration(TOO_FEW, n_pred, n_support)
    weight = np.zeros(len(grid_desc))
    weight[starts] = 1.0 / len(starts)
    chosen: int | None = None
    tested: dict[int, tuple[float, float]] = {}  # index -> (level, bound)
    for j in range(starts[0], len(grid_desc)):
        if weight[j] <= 0 or kept[j] == 0:
            continue
        level = float(weight[j] * delta)
        bound = float(clopper_pearson(right[j], kept[j], level))
        tested[j] = (level, bound)
        if bound >= target:
            chosen = j
            if j + 1 < len(grid_desc):
                weight[j + 1] += weight[j]
    info = dict(n_predicted=n_pred, n_support=n_support,
                start_thresholds=[float(grid_desc[j]) for j in starts], n_tests=len(tested))
    if chosen is None:
        best = max(tested, key=lambda j: tested[j][1])
        return math.inf, ClassCalibration(
            BOUND_BELOW_TARGET, precision=float(right[best] / kept[best]),
            lower_bound=tested[best][1], delta_per_test=tested[best][0], **info)
    return float(grid_desc[chosen]), ClassCalibration(
        ASSIGNED, n_kept=int(kept[chosen]), n_correct=int(right[chosen]),
        precision=float(right[chosen] / kept[chosen]), lower_bound=tested[chosen][1],
        delta_per_test=tested[chosen][0], **info)


def n_families(n_pred: np.ndarray, alone: Sequence[int], pooled: bool,
               policy: PolicyConfig) -> int:
    """How many families a ``simultaneous`` guarantee splits delta over: the smallest F
    such that at most F families have enough predictions (>= the n-of-n minimum at
    delta / F) for a test to pass. Classes never predicted, or predicted too rarely to be
    certified at that level, are not tested and do not dilute delta. Label-free (it reads
    how often each class is predicted, never whether rightly), so the count can be chosen
    on the calibration data without voiding the Bonferroni bound."""
    if not policy.simultaneous:
        return len([c for c in alone if n_pred[c] > 0]) + int(pooled)
    candidates = [int(n_pred[c]) for c in alone if n_pred[c] > 0]
    total = len(candidates) + int(pooled)
    for f in range(1, max(total, 1) + 1):
        n_min = min_samples_for_target(policy.target, policy.delta / f)
        if sum(n >= n_min for n in candidates) + int(pooled) <= f:
            return f
    return max(total, 1)


def fit_thresholds(
    probs: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    policy: PolicyConfig,
    *,
    temperature: float = 1.0,
    grid: np.ndarray | None = None,
) -> Thresholds:
    """Choose each class's threshold on calibration probabilities (see
    :mod:`geoloc.evaluation.abstention`).

    ``probs`` must already be softmax(logits / temperature); ``temperature`` is only
    recorded so that :meth:`Thresholds.apply_logits` reproduces them.
    """
    probs, labels, names = check_outputs(probs, labels, class_names)
    grid = default_grid() if grid is None else np.asarray(grid, dtype=np.float64)
    grid_all = np.unique(grid)
    # the floor: thresholds below min_probability are never tested (hence never chosen)
    grid_desc = grid_all[grid_all >= policy.min_probability][::-1]
    if not len(grid_desc):
        grid_desc = np.array([policy.min_probability])
    pred = probs.argmax(axis=1)
    conf = probs.max(axis=1)
    correct = pred == labels
    n_pred = np.bincount(pred, minlength=len(names))
    # Which countries are pooled depends only on how often each is *predicted*, never on
    # whether the predictions are right, so the pooled test stays a valid test (the same
    # argument as for the start counts).
    pooled = [c for c, name in enumerate(names) if name != OTHER and policy.pool_below
              and 0 < n_pred[c] < policy.pool_below]
    alone = [c for c in range(len(names)) if c not in pooled]
    families = n_families(n_pred, alone, bool(pooled), policy)
    delta_c = policy.delta_per_class(families)

    def test(mask: np.ndarray, support: int, delta: float) -> tuple[float, ClassCalibration]:
        return _sequence_tests(conf[mask], correct[mask], support, grid_desc,
                               policy.target, delta, policy.start_counts)

    thresholds: dict[str, float] = {}
    calibration: dict[str, ClassCalibration] = {}
    for c in alone:
        thresholds[names[c]], calibration[names[c]] = test(
            pred == c, int((labels == c).sum()), delta_c)
    if pooled:
        _pool_down(pooled, names, pred, conf, correct, labels, n_pred, delta_c, policy,
                   test, thresholds, calibration)
    return Thresholds(
        class_names=names,
        thresholds=thresholds,
        policy=policy,
        temperature=float(temperature),
        n_calibration=len(labels),
        calibration=calibration,
        grid=[float(g) for g in grid_all],
        n_families=families,
    )


def _pool_down(pooled: list[int], names: list[str], pred: np.ndarray, conf: np.ndarray,
               correct: np.ndarray, labels: np.ndarray, n_pred: np.ndarray, delta_c: float,
               policy: PolicyConfig, test: Any, thresholds: dict[str, float],
               calibration: dict[str, ClassCalibration]) -> None:
    """The pooled rare countries: the group first, then, once it is certified, each of
    its countries alone.

    A country that passes alone gets its own threshold (kind ``class``). The pool's
    certification is about all of its countries together at the shared threshold; once
    one of them leaves with its own threshold, the countries left behind are exactly those
    that failed alone, and the pool's bound, earned partly by the one that left, no longer
    covers them: they are then never assigned (``pool_split``) rather than assigned on a
    bound that is not theirs. Under ``simultaneous`` the family's level is split in two:
    half for the pool's test, half over its countries' own tests, so the family's chance
    of any wrong certification stays <= its level.
    """
    simultaneous = policy.simultaneous
    pool_delta = delta_c / 2 if simultaneous else delta_c
    member_delta = delta_c / (2 * len(pooled)) if simultaneous else delta_c
    t_pool, pool = test(np.isin(pred, pooled), int(np.isin(labels, pooled).sum()), pool_delta)
    certified = math.isfinite(t_pool)
    pool_fields = dict(pool=[names[i] for i in pooled],
                       pool_threshold=t_pool if certified else None,
                       pool_n_kept=pool.n_kept, pool_n_correct=pool.n_correct,
                       pool_precision=pool.precision, pool_lower_bound=pool.lower_bound)
    own = {c: test(pred == c, int((labels == c).sum()), member_delta) if certified
           else (math.inf, None) for c in pooled}
    split = any(math.isfinite(t) for t, _ in own.values())
    for c in pooled:
        mask = pred == c
        own_t, own_cal = own[c]
        if own_cal is not None and math.isfinite(own_t):
            thresholds[names[c]] = own_t
            calibration[names[c]] = replace(own_cal, status=POOLED_OWN, **pool_fields)
            continue
        status = POOL_FAILED if not certified else POOL_SPLIT if split else POOLED
        keep = status == POOLED
        thresholds[names[c]] = t_pool if keep else math.inf
        k = int((mask & (conf >= t_pool)).sum()) if keep else 0
        r = int((mask & (conf >= t_pool) & correct).sum()) if keep else 0
        tested = own_cal if own_cal is not None else pool
        calibration[names[c]] = ClassCalibration(
            status, n_predicted=int(n_pred[c]), n_support=int((labels == c).sum()),
            n_kept=k, n_correct=r, precision=(r / k) if k else None,
            start_thresholds=tested.start_thresholds, delta_per_test=tested.delta_per_test,
            n_tests=tested.n_tests, **pool_fields)


def fit_policy(
    logits: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    policy: PolicyConfig,
    *,
    temperature: float | None = None,
    grid: np.ndarray | None = None,
) -> Thresholds:
    """Fit the temperature (unless given), then the per-class thresholds, on calibration
    logits: the whole abstention policy from one call."""
    logits, labels, names = check_outputs(logits, labels, class_names)
    if temperature is None:
        temperature = fit_temperature(logits, labels)
    return fit_thresholds(softmax(logits, temperature), labels, names, policy,
                          temperature=temperature, grid=grid)
