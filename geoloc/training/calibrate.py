"""The outputs a policy is fitted on: out of fold (a cross-fit) or the calib split, fused
with the char n-gram model when the run has one.

**Cross-fitting** (``crossfit.folds=K``): calibration data is the scarce resource (on the
real tweets the calib split is ~800 rows over 37 classes), so instead of fitting the
temperature and thresholds on one small split, K models are trained, model k without fold
k of the labelled rows (``train`` + ``calib``), and each predicts its held-out fold. The
pooled out-of-fold predictions are a calibration set as large as all those rows. The
deployed model is then refitted on all of them with the same recipe, and the policy fitted
on the out-of-fold predictions is applied to it.

Why the thresholds carry over: each out-of-fold prediction is an honest prediction of a
model trained exactly like the deployed one on (K - 1) / K of its data, on a row it never
saw, so the calibration set is distributed like the deployed model's outputs on new data
up to the effect of 1 / K less training data. More data makes a model no less accurate, so
precision at a given confidence threshold is, if anything, higher for the refit: the
guarantee holds for the fold models exactly and carries over to the refit under this
stability assumption (as in cross-conformal prediction and CV+, Barber et al. 2021). It is
checked, not assumed, on the evaluated split, which no model of the cross-fit trains on.

With ``crossfit.deploy=soup`` no refit is trained: the deployed network is the fold
models' weights averaged (:func:`average_states`). The same assumption carries the
thresholds over: a network at least as good as each fold model on new rows.
"""

from __future__ import annotations

import gc
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from geoloc.data.splits import CrossFitFold
from geoloc.evaluation import PolicyConfig, SplitOutputs, Thresholds, predict_split
from geoloc.model.ngram import Fusion, FusionConfig, oof_key
from geoloc.training.fit import Fitted, fit
from geoloc.training.fusion import fit_fusion, ngram_by_c

log = logging.getLogger("geoloc")


@dataclass
class CrossFit:
    """The K fold models' pooled out-of-fold outputs (``oof``), with ``ngram`` the n-gram
    model's out-of-fold log-probabilities per ``C`` (same rows, same folds; None without
    fusion), and each fold's validation metrics."""

    oof: SplitOutputs
    ngram: dict[float, np.ndarray] | None
    metrics: dict[str, float]
    texts: list[str] = field(default_factory=list)
    """The model texts of the out-of-fold rows, in their order (the population record)."""
    soup: dict[str, torch.Tensor] | None = None
    """With ``crossfit.deploy=soup``: the fold models' trained tensors averaged."""
    ensemble: SplitOutputs | None = None
    """The evaluated split as the K fold models' ensemble sees it (:func:`fold_ensemble`),
    reported beside the deployed model (``ensemble/*`` metrics), never deployed."""


def fold_ensemble(outputs: list[SplitOutputs]) -> SplitOutputs:
    """The fold models' mean log-probabilities on one split: an ensemble of the K models
    the calibration saw, measured as issue 22's fold-ensemble lever (a refit or a soup is
    one network to serve; this is K). Rows are matched by index, whatever order each
    prediction came in."""
    order = [np.argsort(o.rows, kind="stable") for o in outputs]
    rows = outputs[0].rows[order[0]]
    for o, idx in zip(outputs, order, strict=True):
        if not np.array_equal(o.rows[idx], rows):
            raise ValueError("the fold models predicted different rows of the split")
    mean = np.mean([torch.log_softmax(torch.from_numpy(o.logits[idx]).double(), -1).numpy()
                    for o, idx in zip(outputs, order, strict=True)], axis=0)
    return SplitOutputs(mean.astype(np.float32), outputs[0].labels[order[0]], rows)


def average_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of state dicts of one architecture (integer buffers, such as
    position ids, are taken from the first). A "model soup" (Wortsman et al. 2022): the
    fold models are fine-tuned from one initialisation (the same seed builds the same
    head), so their weights average into one network that serves like any other."""
    out = {}
    for key, first in states[0].items():
        if first.is_floating_point():
            out[key] = torch.stack([s[key].float() for s in states]).mean(0).to(first.dtype)
        else:
            out[key] = first.clone()
    return out


def crossfit(cfg: DictConfig, folds: int, fusion: FusionConfig | None = None) -> CrossFit:
    """Train the K fold models and pool their out-of-fold outputs.

    Fold checkpoints are deleted once their fold is predicted (the refit is deployed);
    the out-of-fold logits are kept in the report folder (``crossfit_oof.npz``).
    """
    parts, ngram_parts, metrics, texts, curves, states, members = [], [], {}, [], [], [], []
    heldout = str(cfg.crossfit.get("validate", "val")) == "heldout"
    soup = str(cfg.crossfit.get("deploy", "refit")) == "soup"
    for k in range(folds):
        fitted = fit(cfg, loggers=[], fold=CrossFitFold(folds, k, validate_heldout=heldout),
                     ckpt_subdir=f"fold{k}")
        curves.append(fitted.curve)
        out = predict_split(fitted.trainer, fitted.module, fitted.datamodule, "calib",
                            fitted.ckpt_path)
        parts.append((out, np.full(len(out.labels), k)))
        eval_split = fitted.datamodule.eval_split
        # a few seconds: the fold-ensemble measurement (a fold model's train and calib
        # are not the refit's, so only a split that no model trains on is compared; and
        # only when the fold models validate on their held-out folds, else they may have
        # chosen their checkpoint on this very split)
        if heldout and eval_split in ("val", "test"):
            members.append(predict_split(fitted.trainer, fitted.module, fitted.datamodule,
                                         eval_split, fitted.ckpt_path))
        if soup:  # the predicted (checkpoint's) weights, without the frozen table
            frozen = set(fitted.module.frozen_parameter_names())
            states.append({n: t.detach().clone() for n, t in
                           fitted.module.state_dict().items() if n not in frozen})
        texts.extend(fitted.datamodule.texts("calib", out.rows))
        if fusion is not None:
            ngram_parts.append(ngram_by_c(fusion, fitted.datamodule, "calib", out.rows)[1])
        for key in ("val/acc", "val/macro_f1"):
            if key in fitted.metrics:  # on the held-out fold when it is validated on
                name = ("oof_" if heldout else "") + key.split("/")[1]
                metrics[f"crossfit/fold{k}/{name}"] = fitted.metrics[key]
        if fitted.ckpt_path:
            shutil.rmtree(Path(fitted.ckpt_path).parent, ignore_errors=True)
        del fitted
        gc.collect()
    oof = SplitOutputs(np.concatenate([p.logits for p, _ in parts]),
                       np.concatenate([p.labels for p, _ in parts]),
                       np.concatenate([p.rows for p, _ in parts]))
    report_dir = Path(str(cfg.evaluation.report_dir))
    report_dir.mkdir(parents=True, exist_ok=True)
    ngram = ({c: np.concatenate([p[c] for p in ngram_parts]) for c in fusion.C_grid}
             if fusion is not None else None)
    extra = {oof_key(c): v for c, v in (ngram or {}).items()}
    np.savez_compressed(report_dir / "crossfit_oof.npz", logits=oof.logits, labels=oof.labels,
                        rows=oof.rows, fold=np.concatenate([f for _, f in parts]), **extra)
    if heldout:
        metrics.update(oof_curve(curves))
    metrics["crossfit/folds"] = float(folds)
    metrics["crossfit/calibration_rows"] = float(len(oof.labels))
    return CrossFit(oof, ngram, metrics, texts, average_states(states) if soup else None,
                    fold_ensemble(members) if members else None)


def oof_curve(curves: list[list[dict[str, float]]]) -> dict[str, float]:
    """The out-of-fold learning curve: each epoch's validation loss on the held-out folds,
    averaged over the fold models (``crossfit/oof_loss/epochN``, N counted from 1), and
    the epoch count where it is lowest (``crossfit/oof_best_epochs``): what
    ``trainer.max_epochs`` is chosen on without looking at ``val``."""
    n = min((len(c) for c in curves), default=0)
    losses = [float(np.mean([c[e]["val/loss"] for c in curves])) for e in range(n)
              if all("val/loss" in c[e] for c in curves)]
    if not losses:
        return {}
    out = {f"crossfit/oof_loss/epoch{e + 1}": v for e, v in enumerate(losses)}
    out["crossfit/oof_best_epochs"] = float(int(np.argmin(losses)) + 1)
    log.info("out-of-fold loss by epoch: %s (lowest after %d epochs)",
             ", ".join(f"{v:.3f}" for v in losses), int(np.argmin(losses)) + 1)
    return out


@dataclass
class Calibrated:
    """The deployed model's outputs on the evaluated split and the outputs its policy is
    fitted on (None when the policy is a saved one), both fused when ``fusion`` is set."""

    calib: SplitOutputs | None
    evaluated: SplitOutputs
    fusion: Fusion | None
    metrics: dict[str, float] = field(default_factory=dict)


def calibration_outputs(fitted: Fitted, policy: PolicyConfig | Thresholds,
                        fusion: FusionConfig | None, cross: CrossFit | None) -> Calibrated:
    """Predict the evaluated split with the deployed model, take the calibration outputs
    (out of fold after a cross-fit, else the calib split's unless the policy is a saved
    one, which needs none) and fit and apply the fusion. ``metrics`` holds the predict
    throughput a sweep compares depths and backbones on, and the fusion's choice."""
    split = fitted.datamodule.eval_split
    calib = cross.oof if cross is not None else None
    if calib is None and isinstance(policy, PolicyConfig):
        calib = predict_split(fitted.trainer, fitted.module, fitted.datamodule, "calib",
                              fitted.ckpt_path)
    started = time.perf_counter()
    evaluated = predict_split(fitted.trainer, fitted.module, fitted.datamodule, split,
                              fitted.ckpt_path)
    metrics = {"cost/predict_profiles_per_s":
               len(evaluated.labels) / (time.perf_counter() - started)}
    fitted_fusion = None
    if fusion is not None:
        fitted_fusion, calib, evaluated, fusion_metrics = fit_fusion(
            fusion, fitted.datamodule, calib, evaluated, split,
            calib_ngram=cross.ngram if cross is not None else None,
            calib_texts=cross.texts if cross is not None else None)
        metrics.update(fusion_metrics)
    return Calibrated(calib, evaluated, fitted_fusion, metrics)
