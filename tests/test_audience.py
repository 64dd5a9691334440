"""Audience estimation: the estimators recover a planted country mix from a classifier
whose errors are known, the naive count does not, and the intervals hold the truth."""

from __future__ import annotations

import numpy as np
import pytest

from geoloc.inference.audience import (
    METHODS,
    AudienceError,
    Calibration,
    CalibrationReplicates,
    estimate_audience,
    jeffreys_interval,
)

NAMES = ("BR", "FR", "US", "OTHER")
PRIOR = np.array([0.4, 0.3, 0.2, 0.1])
# P(signal | country): BR and FR confusable, OTHER spread out; 6 signal values
EMISSION = np.array([
    [0.65, 0.20, 0.05, 0.05, 0.03, 0.02],
    [0.20, 0.65, 0.05, 0.05, 0.03, 0.02],
    [0.02, 0.03, 0.85, 0.05, 0.03, 0.02],
    [0.10, 0.10, 0.20, 0.20, 0.20, 0.20],
])


def _rows(mix: np.ndarray, n: int, rng: np.random.Generator
          ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows of a population with country mix ``mix``: their labels and the exact
    posteriors P(country | signal) under the calibration prior (a calibrated model)."""
    labels = rng.choice(len(mix), size=n, p=mix)
    signal = np.array([rng.choice(EMISSION.shape[1], p=EMISSION[y]) for y in labels])
    joint = EMISSION[:, signal].T * PRIOR
    return joint / joint.sum(axis=1, keepdims=True), labels


def _calibration(rng: np.random.Generator, n: int = 4000) -> Calibration:
    probs, labels = _rows(PRIOR, n, rng)
    return Calibration(NAMES, probs, labels)


def test_corrected_estimators_recover_a_planted_mix_that_naive_counting_misses():
    rng = np.random.default_rng(0)
    calib = _calibration(rng)
    mix = np.array([0.1, 0.5, 0.1, 0.3])  # FR-heavy: unlike the prior, BR/FR confusable
    probs, _ = _rows(mix, 3000, rng)
    decisions = np.where(probs.max(1) >= 0.6, probs.argmax(1), -1)
    out = {e.method: e for e in estimate_audience(probs, decisions, calib, METHODS,
                                                  bootstrap=100, seed=1)}
    mae = {m: float(np.abs(e.share - mix).mean()) for m, e in out.items()}
    for m in ("acc", "em"):
        assert mae[m] < 0.03, mae  # maximum likelihood on 3,000 rows, not exact
        assert np.isclose(out[m].share.sum(), 1)
    assert mae["naive"] > 2 * max(mae["acc"], mae["em"]), mae
    assert mae["pcc"] > mae["em"], mae


def test_the_90_percent_intervals_hold_the_true_shares_about_90_percent_of_the_time():
    """Over 30 audiences with random mixes (120 audience-country pairs), the corrected
    estimators' intervals hold the true share in 80-100 % of pairs (binomial noise
    around 90 %, and the Jeffreys floor errs on the wide side); naive counting's, which
    ignore the misclassification, in far fewer."""
    rng = np.random.default_rng(5)
    calib = _calibration(rng, 2000)
    shared = CalibrationReplicates(calib, bootstrap=60, seed=1, level=0.9)
    covered: dict[str, list[bool]] = {m: [] for m in METHODS}
    for _ in range(30):
        mix = rng.dirichlet(np.ones(4))
        probs, _ = _rows(mix, 400, rng)
        decisions = np.where(probs.max(1) >= 0.6, probs.argmax(1), -1)
        for e in estimate_audience(probs, decisions, shared, METHODS,
                                   seed=int(rng.integers(1 << 30))):
            covered[e.method].extend((e.low <= mix + 1e-12) & (mix <= e.high + 1e-12))
    rate = {m: float(np.mean(v)) for m, v in covered.items()}
    assert 0.8 <= rate["em"] <= 1.0 and 0.8 <= rate["acc"] <= 1.0, rate
    assert rate["naive"] < 0.6, rate


def test_estimates_are_reproducible_and_intervals_bracket_the_estimate():
    rng = np.random.default_rng(1)
    calib = _calibration(rng, 1000)
    probs, _ = _rows(PRIOR, 50, rng)
    decisions = probs.argmax(1)
    a = estimate_audience(probs, decisions, calib, bootstrap=30, seed=7)
    b = estimate_audience(probs, decisions, calib, bootstrap=30, seed=7)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.low, y.low)
        assert np.all(x.low <= x.share + 1e-12) and np.all(x.share <= x.high + 1e-12)


def test_a_small_audience_never_gets_a_zero_width_interval_for_an_unseen_country():
    """20 profiles without a US one do not prove no US follower: naive counting's upper
    end is at least a perfect classifier's (Jeffreys) bound, and the corrected methods
    keep their systematic margin above 0."""
    rng = np.random.default_rng(2)
    calib = _calibration(rng, 1000)
    probs = np.tile(np.array([[0.9, 0.05, 0.0, 0.05]]), (20, 1))
    out = {e.method: e for e in estimate_audience(probs, probs.argmax(1), calib,
                                                  ["naive", "pcc"], bootstrap=50)}
    assert out["naive"].share[2] == 0 and out["pcc"].share[2] == 0
    assert out["naive"].high[2] >= jeffreys_interval(np.zeros(1), 20, 0.9)[1][0] > 0.05
    assert out["pcc"].high[2] > 0.01


def test_naive_counting_without_any_assigned_row_says_so():
    rng = np.random.default_rng(3)
    calib = _calibration(rng, 500)
    probs, _ = _rows(PRIOR, 30, rng)
    (est,) = estimate_audience(probs, np.full(30, -1), calib, ["naive"], bootstrap=10)
    assert np.isnan(est.share).all()


@pytest.mark.parametrize("kwargs,message", [
    ({"methods": ["cc"]}, "methods=\\['cc'\\]"),
    ({"level": 1.5}, "level=1.5"),
    ({"bootstrap": -1}, "bootstrap=-1"),
])
def test_bad_options_are_named(kwargs, message):
    rng = np.random.default_rng(4)
    calib = _calibration(rng, 200)
    probs, _ = _rows(PRIOR, 10, rng)
    with pytest.raises(AudienceError, match=message):
        estimate_audience(probs, probs.argmax(1), calib, **kwargs)


def test_the_notebook_and_its_paired_script_hold_the_same_cells():
    """notebooks/audience.py is the reviewable source (jupytext percent format); the
    .ipynb must not drift from it."""
    from pathlib import Path

    import jupytext
    import nbformat

    folder = Path(__file__).resolve().parents[1] / "notebooks"
    for script in folder.glob("*.py"):
        paired = nbformat.read(script.with_suffix(".ipynb"), as_version=4)
        source = jupytext.read(script)
        assert [(c.cell_type, c.source) for c in source.cells] == \
            [(c.cell_type, c.source) for c in paired.cells], script.name
