"""Per-class classification metrics over model outputs, computed with torchmetrics.

Accuracy misleads on this task (a dozen countries are two thirds of the data), so the
numbers reviewers read are per class: precision, recall, F1 and support for every country
and for OTHER, plus the confusion matrix and a calibration error. torchmetrics computes
them so that the numbers match what the Lightning module logs during training.

Inputs everywhere in :mod:`geoloc.evaluation` are plain numpy arrays: ``scores`` of shape
(N, C) (logits or probabilities), ``labels`` of shape (N,) with integers in [0, C), and
``class_names`` (C strings, countries as ISO codes, the catch-all ``OTHER`` last).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassCalibrationError,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
    MulticlassStatScores,
)
from torchmetrics.wrappers import ClasswiseWrapper

from geoloc.labels import OTHER, country_name

#: Bins of the top-1 expected calibration error (the usual choice since Guo et al. 2017).
ECE_BINS = 15


def check_outputs(
    scores: np.ndarray, labels: np.ndarray, class_names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Validate and normalise model outputs; fail early with a message that names the problem.

    A shape or label-range mistake in the caller would otherwise surface as a confusing
    torchmetrics error or, worse, as silently wrong per-class numbers.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    names = [str(n) for n in class_names]
    if scores.ndim != 2:
        raise ValueError(f"expected scores of shape (N, C), got shape {scores.shape}")
    n, c = scores.shape
    if c != len(names):
        raise ValueError(f"scores have {c} columns but {len(names)} class names were given")
    if len(set(names)) != len(names):
        raise ValueError("class names must be unique")
    if labels.shape != (n,):
        raise ValueError(f"expected labels of shape ({n},), got {labels.shape}")
    if n == 0:
        raise ValueError("no samples to evaluate")
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.equal(np.mod(labels, 1), 0)):
            raise ValueError("labels must be integer class indices")
    labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= c:
        raise ValueError(f"labels must lie in [0, {c}); got [{labels.min()}, {labels.max()}]")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or inf")
    return scores, labels, names


def is_country(name: str) -> bool:
    """True for a country class, False for the catch-all OTHER (reported separately)."""
    return name != OTHER


@dataclass
class ClassificationMetrics:
    """Metrics of the plain argmax classifier (no abstention) on one split."""

    per_class: pd.DataFrame
    """One row per class: class, name, is_country, support, predicted, tp, precision,
    recall, f1. Precision is NaN for a class never predicted and recall NaN for a class
    absent from the split (torchmetrics reports 0 there, which would read as a failure)."""
    accuracy: float
    macro_f1: float
    """Macro F1 over classes that occur in the split or are predicted (torchmetrics' rule)."""
    ece: float
    """Top-1 expected calibration error, 15 equal-width bins, l1 norm."""
    confusion: pd.DataFrame
    """Counts; rows are true classes, columns predicted classes."""
    confusion_normalized: pd.DataFrame
    """Row-normalised (each row sums to 1; an absent class has a row of zeros)."""


def compute_metrics(
    probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str], n_bins: int = ECE_BINS
) -> ClassificationMetrics:
    """Per-class precision/recall/F1/support, accuracy, macro-F1, confusion and ECE.

    ``probs`` should be probabilities (after temperature scaling when one is used): the
    argmax metrics do not depend on it but the calibration error does.
    """
    probs, labels, names = check_outputs(probs, labels, class_names)
    c = len(names)
    preds_t = torch.from_numpy(probs)
    target_t = torch.from_numpy(labels)

    def classwise(metric: torch.nn.Module, key: str) -> dict[str, float]:
        wrapper = ClasswiseWrapper(metric, labels=names, prefix=f"{key}/")
        out = wrapper(preds_t, target_t)
        return {k.split("/", 1)[1]: float(v) for k, v in out.items()}

    precision = classwise(MulticlassPrecision(num_classes=c, average=None), "precision")
    recall = classwise(MulticlassRecall(num_classes=c, average=None), "recall")
    f1 = classwise(MulticlassF1Score(num_classes=c, average=None), "f1")
    # Columns: tp, fp, tn, fn, support.
    stats = MulticlassStatScores(num_classes=c, average=None)(preds_t, target_t).numpy()
    tp, fp, support = stats[:, 0], stats[:, 1], stats[:, 4]
    predicted = tp + fp

    per_class = pd.DataFrame(
        {
            "class": names,
            "name": [country_name(n) if is_country(n) else "Other / rest of world" for n in names],
            "is_country": [is_country(n) for n in names],
            "support": support.astype(int),
            "predicted": predicted.astype(int),
            "tp": tp.astype(int),
            "precision": [precision[n] for n in names],
            "recall": [recall[n] for n in names],
            "f1": [f1[n] for n in names],
        }
    )
    per_class.loc[per_class["predicted"] == 0, "precision"] = np.nan
    per_class.loc[per_class["support"] == 0, "recall"] = np.nan

    accuracy = float(MulticlassAccuracy(num_classes=c, average="micro")(preds_t, target_t))
    macro_f1 = float(MulticlassF1Score(num_classes=c, average="macro")(preds_t, target_t))
    ece = float(
        MulticlassCalibrationError(num_classes=c, n_bins=n_bins, norm="l1")(preds_t, target_t)
    )
    cm = MulticlassConfusionMatrix(num_classes=c)(preds_t, target_t).numpy().astype(int)
    cm_norm = MulticlassConfusionMatrix(num_classes=c, normalize="true")(preds_t, target_t)
    confusion = pd.DataFrame(cm, index=pd.Index(names, name="true"), columns=names)
    confusion_normalized = pd.DataFrame(
        cm_norm.numpy().astype(float), index=pd.Index(names, name="true"), columns=names
    )
    return ClassificationMetrics(
        per_class=per_class,
        accuracy=accuracy,
        macro_f1=macro_f1,
        ece=ece,
        confusion=confusion,
        confusion_normalized=confusion_normalized,
    )


def expected_calibration_error(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS
) -> float:
    """Top-1 ECE (l1, equal-width bins) via torchmetrics, the same definition as :func:`compute_metrics`."""
    probs = np.asarray(probs, dtype=np.float64)
    metric = MulticlassCalibrationError(num_classes=probs.shape[1], n_bins=n_bins, norm="l1")
    return float(metric(torch.from_numpy(probs), torch.from_numpy(np.asarray(labels, np.int64))))
