"""Evaluation of model outputs: per-class metrics, calibration, threshold sweeps,
abstention with a precision guarantee, and one report written locally and to W&B.

A pure library over numpy arrays (logits (N, C), labels (N,), class names); the training
and ``geoloc-eval`` entry points call :func:`run_evaluation`.
"""

from geoloc.evaluation.abstention import (
    METHOD,
    UNCERTAIN_INDEX,
    ClassCalibration,
    Thresholds,
    clopper_pearson_lower,
    fit_abstention,
    fit_thresholds,
    min_samples_for_target,
)
from geoloc.evaluation.calibration import (
    CalibrationSummary,
    calibration_summary,
    fit_temperature,
    nll,
    reliability_bins,
    reliability_figure,
    softmax,
)
from geoloc.evaluation.metrics import (
    ClassificationMetrics,
    compute_metrics,
    expected_calibration_error,
)
from geoloc.evaluation.report import (
    EvaluationResult,
    build_report,
    evaluate_split,
    log_wandb,
    render_markdown,
    run_evaluation,
    write_local,
)
from geoloc.evaluation.sweep import (
    default_grid,
    precision_threshold_figure,
    risk_coverage_figure,
    threshold_sweep,
)

__all__ = [
    "METHOD",
    "UNCERTAIN_INDEX",
    "CalibrationSummary",
    "ClassCalibration",
    "ClassificationMetrics",
    "EvaluationResult",
    "Thresholds",
    "build_report",
    "calibration_summary",
    "clopper_pearson_lower",
    "compute_metrics",
    "default_grid",
    "evaluate_split",
    "expected_calibration_error",
    "fit_abstention",
    "fit_temperature",
    "fit_thresholds",
    "log_wandb",
    "min_samples_for_target",
    "nll",
    "precision_threshold_figure",
    "reliability_bins",
    "reliability_figure",
    "render_markdown",
    "risk_coverage_figure",
    "run_evaluation",
    "softmax",
    "threshold_sweep",
    "write_local",
]
