"""From a finished model to an :class:`EvaluationResult`: the one evaluation path.

``geoloc-train``, ``geoloc-eval`` and the baselines all end here::

    evaluate_model(trainer, module, datamodule, policy, split=…, report_dir=…)
      ├─ predict_split(…, "calib")   (only when the policy still has to be fitted)
      ├─ predict_split(…, split)
      └─ evaluate_logits(calib, evaluated, class_names, policy, …)
           ├─ fit_policy                 (certify.py: temperature + thresholds)
           ├─ evaluate_split             (result.py: tables, figures, scalars)
           └─ write_report, log_wandb    (render.py)

``policy`` is either a :class:`PolicyConfig` (fit temperature and thresholds on the
``calib`` split now) or a fitted :class:`Thresholds` (a saved policy, applied as is), so a
reused policy and a fresh one take the same road. Models that are not Lightning modules
(the baselines) enter at :func:`evaluate_logits` with their own logits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geoloc.evaluation.abstention import PolicyConfig, Thresholds
from geoloc.evaluation.calibration import calibration_summary
from geoloc.evaluation.certify import fit_policy
from geoloc.evaluation.metrics import ECE_BINS, check_outputs
from geoloc.evaluation.render import log_wandb, write_report
from geoloc.evaluation.result import EvaluationResult, evaluate_split
from geoloc.io import atomic_write
from geoloc.labels import UNCERTAIN

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitOutputs:
    """A model's raw outputs on one split, in dataset order."""

    logits: np.ndarray
    """(N, C) float32 logits (before temperature)."""
    labels: np.ndarray
    """(N,) int64 class indices."""
    rows: np.ndarray | None = None
    """(N,) row index of each output in the datamodule's dataset (None for baselines)."""


def save_calibration_outputs(outputs: SplitOutputs, class_names: list[str],
                             path: str | Path) -> Path:
    """Write ``outputs`` (logits, labels) with the class names, atomically, as plain
    arrays (read back with ``allow_pickle=False``)."""
    path = Path(path)
    with atomic_write(path, mode="wb") as fh:
        np.savez_compressed(fh, logits=np.asarray(outputs.logits, dtype=np.float32),
                            labels=np.asarray(outputs.labels, dtype=np.int64),
                            class_names=np.asarray(class_names, dtype=str))
    return path


def predict_split(trainer: Any, module: Any, datamodule: Any, split: str,
                  ckpt_path: str | None = None) -> SplitOutputs:
    """Logits, labels and row indices of one datamodule split (``calib`` included), via
    ``trainer.predict`` so devices, precision and checkpoint loading follow the trainer."""
    import torch

    outputs = trainer.predict(module, dataloaders=datamodule.split_dataloader(split),
                              ckpt_path=ckpt_path, weights_only=True)
    return SplitOutputs(
        logits=torch.cat([o["logits"] for o in outputs]).numpy().astype(np.float32),
        labels=torch.cat([o["labels"] for o in outputs]).numpy().astype(np.int64),
        rows=torch.cat([o["row"] for o in outputs]).numpy(),
    )


def evaluate_logits(
    calib: SplitOutputs | None,
    evaluated: SplitOutputs,
    class_names: list[str],
    policy: PolicyConfig | Thresholds,
    *,
    split: str,
    report_dir: str | Path,
    wandb_run: Any = None,
    texts: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
) -> EvaluationResult:
    """Fit the policy on ``calib`` (when ``policy`` is a config) or apply a fitted one,
    evaluate ``evaluated``, write the report folder and log it to ``wandb_run``. With
    the ``texts`` (and ``ids``) of the evaluated rows, in their order, the report also
    holds every row's prediction (:func:`write_predictions`).

    ``calib`` may be None only with a fitted policy; when given it also adds the
    calibration split's before/after ECE to the report.
    """
    fitted = isinstance(policy, PolicyConfig)
    if fitted:
        if calib is None:
            raise ValueError("a calibration split is needed to fit the policy")
        thresholds = fit_policy(calib.logits, calib.labels, class_names, policy)
    else:
        thresholds = policy
    cal_summary = None
    if calib is not None:
        cal_logits, cal_labels, _ = check_outputs(calib.logits, calib.labels, class_names)
        cal_summary = calibration_summary(cal_logits, cal_labels, thresholds.temperature,
                                          "calibration", ECE_BINS)
    result = evaluate_split(evaluated.logits, evaluated.labels, class_names, thresholds,
                            split=split, calibration=cal_summary, fitted=fitted)
    write_report(result, report_dir)
    if texts is not None:
        write_predictions(result, evaluated.logits, texts, ids,
                          Path(report_dir) / PREDICTIONS_FILE)
    else:  # an earlier evaluation's rows in this folder would not be this one's
        (Path(report_dir) / PREDICTIONS_FILE).unlink(missing_ok=True)
    if wandb_run is not None:
        log_wandb(result, wandb_run)
    return result


#: The report's per-row predictions of the evaluated split (:func:`write_predictions`).
PREDICTIONS_FILE = "predictions.csv"


def write_predictions(result: EvaluationResult, logits: np.ndarray, texts: Sequence[str],
                      ids: Sequence[str] | None, path: str | Path) -> Path:
    """One row per evaluated profile: ``id``, ``text``, ``true`` country, ``top`` (the
    most probable class), ``confidence`` (its calibrated probability), ``decision``
    (the policy's country or UNCERTAIN) and ``correct`` (the decision is the true
    country). Why: error analysis reads examples (typical UNCERTAIN profiles, confused
    pairs), which the aggregate tables cannot show (``notebooks/error_analysis``)."""
    import pandas as pd

    if len(texts) != len(result.labels):
        raise ValueError(f"{len(texts)} texts for {len(result.labels)} evaluated rows")
    names = np.asarray(result.class_names, dtype=object)
    probs = result.thresholds.probabilities(np.asarray(logits, dtype=np.float64))
    decided = result.decisions >= 0
    frame = pd.DataFrame({
        "id": list(ids) if ids is not None else range(len(texts)),
        "text": list(texts),
        "true": names[result.labels],
        "top": names[result.predictions],
        "confidence": probs.max(axis=1).round(4),
        "decision": np.where(decided, names[np.clip(result.decisions, 0, None)], UNCERTAIN),
        "correct": decided & (result.decisions == result.labels),
    })
    with atomic_write(path) as fh:
        frame.to_csv(fh, index=False)
    return Path(path)


def evaluate_model(
    trainer: Any,
    module: Any,
    datamodule: Any,
    policy: PolicyConfig | Thresholds,
    *,
    split: str,
    report_dir: str | Path,
    ckpt_path: str | None = None,
    wandb_run: Any = None,
    fusion: Any = None,
) -> EvaluationResult:
    """Predict what the policy needs (``calib`` only when it must be fitted, and ``split``)
    with the weights of ``ckpt_path`` (or the module as it is), then :func:`evaluate_logits`.

    ``fusion`` (a fitted :class:`geoloc.model.ngram.Fusion`, as saved beside a checkpoint)
    turns the transformer's logits into the fused ones the saved policy was fitted on.
    """
    from dataclasses import replace

    def predict(name: str) -> SplitOutputs:
        out = predict_split(trainer, module, datamodule, name, ckpt_path)
        if fusion is None:
            return out
        return replace(out, logits=fusion.apply(out.logits, datamodule.texts(name, out.rows)))

    calib = predict("calib") if isinstance(policy, PolicyConfig) else None
    evaluated = predict(split)
    return evaluate_logits(calib, evaluated, list(module.class_names), policy, split=split,
                           report_dir=report_dir, wandb_run=wandb_run,
                           texts=datamodule.texts(split, evaluated.rows),
                           ids=datamodule.ids(split, evaluated.rows))
