"""Audience geography: the country mix of a set of profiles (an influencer's followers),
with 90 % intervals, corrected for abstention and misclassification.

Counting the labels that survive abstention is biased: easy countries survive, hard ones
turn into UNCERTAIN and confusable pairs leak into each other. Quantification methods
estimate the class *prevalence* of a sample directly, from the classifier's outputs and
what calibration data say about its errors. Four estimators, side by side:

- ``naive``: classify and count the assigned labels (UNCERTAIN rows dropped), what a user
  of the labels would compute;
- ``pcc``: probabilistic classify and count, the mean calibrated probability vector;
- ``acc``: adjusted classify and count: the argmax counts corrected by the misclassification
  rates P(argmax = i | country = j) measured on the calibration data;
- ``em``: the EM prior adjustment of Saerens, Latinne & Decaestecker (2002), which re-weights
  the calibrated posteriors from the calibration prior to the sample's own.

The recommended one (:data:`RECOMMENDED`) is ``pcc``: on the deployed model, the one a
user gets, its 90 % intervals are the only ones that cover 85-95 % of the true shares
(``experiments/audience/results_deployed.md``; EM's shares break there on countries the
out-of-fold calibration hardly saw, ACC's intervals are twice as wide as needed). Every
job reports all four.

The estimators' algebra is QuaPy's (``ACC.getPteCondEstim``, ``ACC.solve_adjustment``,
``EMQ.EM``), applied to precomputed outputs. The interval is a percentile bootstrap that
resamples both the audience and the calibration rows (so it carries the uncertainty of
the misclassification rates too), widened by a systematic margin calibrated on the
calibration data (:func:`systematic_margins`: the bias the bootstrap cannot see, which
does not shrink with the audience's size). QuaPy's own
``AggregativeBootstrap`` is not used because its test resampling runs in joblib workers
that ignore its ``random_state`` (intervals would not be reproducible) and its
model-based resampling expects a ``LabelledCollection`` of predictions.

The calibration data are what the policy was fitted on: ``<ckpt>.calibration.npz``
(logits and true labels; out of fold for a cross-fitted run), saved by ``geoloc-train``.

Layout: :mod:`.estimators` (the four methods, the calibration data and the option checks),
:mod:`.intervals` (bootstrap, systematic margins, :func:`estimate_audience`) and
:mod:`.plot` (:func:`plot_group`); this package re-exports their API. Reading files and
writing the shares file is :mod:`geoloc.inference.audience_job`'s.
"""

from geoloc.inference.audience.estimators import (
    DESCRIPTIONS,
    METHODS,
    RECOMMENDED,
    AudienceError,
    Calibration,
    check_methods,
    check_options,
    load_calibration,
)
from geoloc.inference.audience.intervals import (
    MARGIN_SIZES,
    POOL_ANSWER_ROWS,
    CalibrationReplicates,
    Estimate,
    estimate_audience,
    jeffreys_interval,
    margin_factor,
    sample_audience,
    stratified_halves,
    systematic_margins,
)
from geoloc.inference.audience.plot import plot_group

__all__ = [
    "DESCRIPTIONS",
    "MARGIN_SIZES",
    "METHODS",
    "POOL_ANSWER_ROWS",
    "RECOMMENDED",
    "AudienceError",
    "Calibration",
    "CalibrationReplicates",
    "Estimate",
    "check_methods",
    "check_options",
    "estimate_audience",
    "jeffreys_interval",
    "load_calibration",
    "margin_factor",
    "plot_group",
    "sample_audience",
    "stratified_halves",
    "systematic_margins",
]
