"""Fitting models: one fit from a config, and the cross-fit that calibrates on
out-of-fold predictions: the orchestration ``geoloc-train`` (:mod:`geoloc.cli.train`)
composes with testing and evaluation.

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
"""

from __future__ import annotations

import gc
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from tqdm.auto import tqdm

from geoloc.cli import common
from geoloc.config import instantiate
from geoloc.model.ngram import CharNgramLR, Fusion, FusionConfig, fuse, oof_key, select_fusion


def fit(cfg: DictConfig, loggers: list, fold: Any = None, ckpt_subdir: str | None = None
        ) -> dict[str, Any]:
    """Build module, datamodule and trainer from ``cfg`` and fit; returns them with the
    best checkpoint path (``ckpt_path``), the fit's metrics and the process's ``rank``
    (0 unless training ran in several processes; then the trainer returned is a
    one-device trainer for what follows)."""
    import pytorch_lightning as pl

    pl.seed_everything(cfg.seed, workers=True)
    module = instantiate(cfg.model)
    datamodule = common.build_datamodule(cfg, module.tokenizer, module.metadata, fold=fold)
    callbacks = common.build_callbacks(cfg, has_logger=bool(loggers))
    if ckpt_subdir:  # one checkpoint folder per cross-fit model
        for cb in callbacks:
            if isinstance(cb, pl.callbacks.ModelCheckpoint) and cb.dirpath:
                cb.dirpath = str(Path(cb.dirpath) / ckpt_subdir)
    trainer = common.build_trainer(cfg, loggers, callbacks)
    # weights_only: a resume state holds tensors and plain containers; nothing is unpickled
    trainer.fit(module, datamodule=datamodule,
                ckpt_path=None if ckpt_subdir else cfg.get("ckpt_path"), weights_only=True)
    ckpt = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    for cb in callbacks:  # a finished fit needs no resume state (callbacks.resume_state)
        if (isinstance(cb, pl.callbacks.ModelCheckpoint) and cb is not trainer.checkpoint_callback
                and cb.dirpath and "resume" in Path(cb.dirpath).parts and cb.best_model_path
                and trainer.is_global_zero):  # one process removes it (DDP)
            last = Path(cb.best_model_path)
            last.unlink(missing_ok=True)
            if last.parent.is_dir() and not any(last.parent.iterdir()):
                last.parent.rmdir()
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    rank = trainer.global_rank
    if trainer.world_size > 1:
        import torch.distributed as dist

        if dist.is_initialized():  # else the next trainer waits on the other processes
            dist.destroy_process_group()
    if trainer.world_size > 1 and rank == 0:
        # Multi-process training (trainer=ddp_cpu, ddp): testing, prediction and the
        # policy need every row of a split in one process, and a distributed predict
        # loop would hand each process a shard. So the processes part here: the first
        # goes on with a one-device trainer on the best checkpoint, the others stop
        # (geoloc.cli.train returns after fit for rank > 0).
        trainer = common.build_trainer(cfg, loggers, [], devices=1, strategy="auto")
    return {"module": module, "datamodule": datamodule, "trainer": trainer,
            "ckpt_path": ckpt or None, "metrics": metrics, "rank": rank}


def ngram_by_c(fusion: FusionConfig, datamodule: Any, split: str, rows: np.ndarray
               ) -> tuple[dict[float, CharNgramLR], dict[float, np.ndarray]]:
    """One n-gram model per ``C`` of the fusion grid, each fitted on the datamodule's train
    split (the transformer's rows), and their log-probabilities of ``rows`` of ``split``."""
    train = datamodule.datasets["train"]
    texts, labels = list(train["text"]), list(train["labels"])
    target = datamodule.texts(split, rows)
    n_classes = len(datamodule.label_set.names)
    models, out = {}, {}
    for c in tqdm(fusion.C_grid, desc=f"n-gram models on {len(texts)} rows", unit="C"):
        models[c] = fusion.model(n_classes, c).fit(texts, labels)
        out[c] = models[c].log_proba(target)
    return models, out


def crossfit_calibration(cfg: DictConfig, folds: int, fusion: FusionConfig | None = None
                         ) -> tuple[Any, dict[float, np.ndarray] | None, dict[str, float]]:
    """Train the K fold models; return their pooled out-of-fold outputs (as one
    :class:`~geoloc.evaluation.SplitOutputs`), with ``fusion`` the out-of-fold n-gram
    log-probabilities per ``C`` (same rows, same folds; else None), and each fold's
    validation metrics.

    Fold checkpoints are deleted once their fold is predicted (the refit is deployed);
    the out-of-fold logits are kept in the report folder (``crossfit_oof.npz``).
    """
    from geoloc.data.splits import CrossFitFold
    from geoloc.evaluation import SplitOutputs, predict_split

    parts, ngram_parts, metrics = [], [], {}
    for k in range(folds):
        objs = fit(cfg, loggers=[], fold=CrossFitFold(folds, k), ckpt_subdir=f"fold{k}")
        out = predict_split(objs["trainer"], objs["module"], objs["datamodule"], "calib",
                            objs["ckpt_path"])
        parts.append((out, np.full(len(out.labels), k)))
        if fusion is not None:
            ngram_parts.append(ngram_by_c(fusion, objs["datamodule"], "calib", out.rows)[1])
        for key in ("val/acc", "val/macro_f1"):
            if key in objs["metrics"]:
                metrics[f"crossfit/fold{k}/{key.split('/')[1]}"] = objs["metrics"][key]
        if objs["ckpt_path"]:
            shutil.rmtree(Path(objs["ckpt_path"]).parent, ignore_errors=True)
        del objs
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
    metrics["crossfit/folds"] = float(folds)
    metrics["crossfit/calibration_rows"] = float(len(oof.labels))
    return oof, ngram, metrics


def fit_fusion(fusion: FusionConfig, datamodule: Any, calib: Any, evaluated: Any,
               split: str, calib_ngram: dict[float, np.ndarray] | None = None
               ) -> tuple[Fusion, Any, Any, dict[str, float]]:
    """Choose the n-gram model's ``C`` and the weight on the calibration outputs, fit the
    deployed n-gram model on the datamodule's train split, and fuse.

    ``calib`` are the transformer's calibration outputs: out-of-fold (then
    ``calib_ngram`` holds the n-gram model's out-of-fold log-probabilities per ``C``, from
    the same folds) or the calib split's (then the n-gram models are fitted on the train
    split and predict it here). Returns the fitted :class:`Fusion`, the fused calibration
    and evaluated outputs, and ``fusion/*`` metrics: the choice, and each part's and the
    fusion's accuracy on the evaluated split.
    """
    from dataclasses import replace

    from geoloc.evaluation.calibration import fit_temperature, nll

    fitted_on_train: dict[float, CharNgramLR] = {}
    if calib_ngram is None:  # the models that predict the calib split are the deployed ones
        fitted_on_train, calib_ngram = ngram_by_c(fusion, datamodule, "calib", calib.rows)
    c, weight, trials = select_fusion(calib.logits, calib_ngram, calib.labels,
                                      fusion.weights)
    common.log.info("fusion: C=%g, weight %.2g on the transformer (of %d candidates)",
                    c, weight, len(trials))
    model = fitted_on_train.get(c)
    if model is None:  # cross-fit: refit on all the pooled rows the deployed model saw
        train = datamodule.datasets["train"]
        model = fusion.model(len(datamodule.label_set.names), c).fit(list(train["text"]),
                                                                      list(train["labels"]))
    fitted = Fusion(model=model, weight=weight, trials=trials)
    ngram_eval = model.log_proba(datamodule.texts(split, evaluated.rows))
    fused_calib = replace(calib, logits=fuse(calib.logits, calib_ngram[c], weight))
    fused_eval = replace(evaluated, logits=fuse(evaluated.logits, ngram_eval, weight))
    chosen = next(t for t in trials if (t["C"], t["weight"]) == (c, weight))

    def acc(logits: np.ndarray) -> float:
        return float((logits.argmax(axis=1) == evaluated.labels).mean())

    metrics = {
        "fusion/weight": weight, "fusion/C": c,
        "fusion/calib_nll": chosen["nll"],
        "fusion/calib_nll_transformer": nll(calib.logits, calib.labels,
                                            fit_temperature(calib.logits, calib.labels)),
        f"fusion/{split}_acc_transformer": acc(evaluated.logits),
        f"fusion/{split}_acc_ngram": acc(ngram_eval),
        f"fusion/{split}_acc_fused": acc(fused_eval.logits),
    }
    return fitted, fused_calib, fused_eval, metrics
