"""Evaluation of model outputs: per-class metrics, calibration, threshold sweeps,
abstention with a precision guarantee, and one report written locally and to W&B.

Modules, in the order data flows through them:

- :mod:`~geoloc.evaluation.runner`: the one path from a finished model (or a baseline's
  logits) to a result: :func:`evaluate_model`, :func:`evaluate_logits`, :func:`predict_split`;
- :mod:`~geoloc.evaluation.abstention` and :mod:`~geoloc.evaluation.certify`: the policy: :class:`PolicyConfig` (how to fit),
  :func:`fit_policy`, :class:`Thresholds` (the fitted, saved policy);
- :mod:`~geoloc.evaluation.result`: what is computed (:func:`evaluate_split` ->
  :class:`EvaluationResult`); :mod:`metrics`, :mod:`calibration`, :mod:`sweep` and
  :mod:`stats` (Clopper-Pearson) are its pure-numpy pieces;
- :mod:`~geoloc.evaluation.render`: how it is shown (report folder, W&B).
"""

from geoloc.evaluation.abstention import (
    METHOD,
    UNCERTAIN_INDEX,
    ClassCalibration,
    PolicyConfig,
    Thresholds,
)
from geoloc.evaluation.calibration import fit_temperature, softmax
from geoloc.evaluation.certify import fit_policy, fit_thresholds
from geoloc.evaluation.render import log_wandb, render_markdown, write_report
from geoloc.evaluation.result import EvaluationResult, evaluate_split, metric_key
from geoloc.evaluation.runner import (
    PREDICTIONS_FILE,
    SplitOutputs,
    evaluate_logits,
    evaluate_model,
    predict_split,
    save_calibration_outputs,
    write_predictions,
)
from geoloc.evaluation.stats import clopper_pearson, min_samples_for_target

__all__ = [
    "METHOD",
    "PREDICTIONS_FILE",
    "UNCERTAIN_INDEX",
    "ClassCalibration",
    "EvaluationResult",
    "PolicyConfig",
    "SplitOutputs",
    "Thresholds",
    "clopper_pearson",
    "evaluate_logits",
    "evaluate_model",
    "evaluate_split",
    "fit_policy",
    "fit_temperature",
    "fit_thresholds",
    "log_wandb",
    "metric_key",
    "min_samples_for_target",
    "predict_split",
    "render_markdown",
    "save_calibration_outputs",
    "softmax",
    "write_predictions",
    "write_report",
]
