"""``geoloc-train``: fit, test with the best checkpoint, then evaluate with calibrated
abstention and write the report.

Reads top to bottom like the lightning-hydra-template's train.py; returns the metric named
by ``optimized_metric`` so a Hydra sweeper can optimise it. Validation, W&B closing and
error handling are :func:`geoloc.cli.common.hydra_task`'s.

With ``crossfit.folds=K`` the policy is fitted on the out-of-fold predictions of K fold
models and applied to a refit on all their rows (:mod:`geoloc.cli.fit` says why the
thresholds carry over). With ``fusion=char_ngram`` a character n-gram model is fitted on
the same rows (and folds), its weight chosen on the calibration outputs, and the fused
log-probabilities are what the policy is fitted on and applied to
(:mod:`geoloc.model.ngram`); it is saved beside the checkpoint (``*.fusion.json``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import hydra
from omegaconf import DictConfig

from geoloc.cli import common
from geoloc.config import CONF_DIR

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Run one training job on a validated config (see :func:`geoloc.cli.common.run_task`).

    Returns every metric (floats) and the objects built: ``module`` (holding the weights
    of the best checkpoint, which testing and evaluation loaded), ``datamodule``,
    ``trainer``, ``result`` (the :class:`~geoloc.evaluation.EvaluationResult`) and
    ``ckpt_path``.
    """
    from geoloc.ablation import finished_metrics, save_run_metrics, start_run
    from geoloc.cli.fit import crossfit_calibration, fit, fit_fusion
    from geoloc.data.splits import CrossFitFold
    from geoloc.evaluation import (
        PolicyConfig,
        calibration_path,
        evaluate_logits,
        predict_split,
        save_calibration_outputs,
        thresholds_path,
    )
    from geoloc.io import file_sha256
    from geoloc.model.ngram import fusion_path, remove_fusion

    finished = finished_metrics(cfg)
    if finished is not None:  # a rerun sweep: this run already finished, same config
        log.info("geoloc-train: %s already holds this run's metrics (skip_finished); "
                 "not training it again", cfg.paths.output_dir)
        return finished, {}
    start_run(cfg)
    started = time.time()
    folds = int(cfg.get("crossfit", {}).get("folds") or 0)
    metrics: dict[str, float] = {}
    policy = common.build_policy(cfg)
    fusion_cfg = common.build_fusion(cfg)
    oof = oof_ngram = None
    if folds and isinstance(policy, PolicyConfig):
        oof, oof_ngram, metrics = crossfit_calibration(cfg, folds, fusion_cfg)

    loggers = common.build_loggers(cfg)
    for lg in loggers:
        lg.log_hyperparams(common.resolved(cfg))
    objs = fit(cfg, loggers, fold=CrossFitFold(folds, None) if folds else None)
    module, datamodule, trainer, ckpt = (objs["module"], objs["datamodule"], objs["trainer"],
                                         objs["ckpt_path"])
    metrics.update(objs["metrics"])
    metrics["cost/train_minutes"] = round((time.time() - started) / 60, 3)
    if objs["rank"] != 0:  # multi-process training: the first process evaluates (fit)
        return metrics, objs
    if cfg.get("test"):
        trainer.test(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})

    run = common.wandb_run(loggers)
    report_dir = str(cfg.evaluation.report_dir)
    split = datamodule.eval_split
    # Calibration outputs: out of fold (cross-fit), else the calib split (unless the
    # policy is a saved one, which needs none).
    calib = oof
    if calib is None and isinstance(policy, PolicyConfig):
        calib = predict_split(trainer, module, datamodule, "calib", ckpt)
    predict_started = time.perf_counter()
    evaluated = predict_split(trainer, module, datamodule, split, ckpt)
    # what a sweep compares depths and backbones on: this split through the predict loop
    metrics["cost/predict_profiles_per_s"] = len(evaluated.labels) / (
        time.perf_counter() - predict_started)
    fusion = None
    if fusion_cfg is not None:
        fusion, calib, evaluated, fusion_metrics = fit_fusion(
            fusion_cfg, datamodule, calib, evaluated, split, calib_ngram=oof_ngram)
        metrics.update(fusion_metrics)
    result = evaluate_logits(calib, evaluated, list(module.class_names), policy,
                             split=split, report_dir=report_dir, wandb_run=run,
                             texts=datamodule.texts(split, evaluated.rows),
                             ids=datamodule.ids(split, evaluated.rows))
    metrics.update(result.metrics())
    if run is not None:
        run.summary.update({k: v for k, v in metrics.items()
                            if k.startswith(("crossfit/", "fusion/"))})
    if ckpt and result.fitted:  # later commands (geoloc-eval, prediction) find it there
        result.thresholds.to_json(thresholds_path(ckpt))
        # what the policy was fitted on (fused when there is a fusion): audience
        # estimation's misclassification rates and calibration prior come from it
        save_calibration_outputs(calib, list(module.class_names), calibration_path(ckpt))
    elif ckpt:  # an earlier run's, under the same name, would not match this policy
        calibration_path(ckpt).unlink(missing_ok=True)
    if ckpt:  # the fusion beside the checkpoint, tied to those thresholds by their hash
        remove_fusion(fusion_path(ckpt))  # an earlier run's, under the same name
        if fusion is not None:
            if result.fitted:
                fusion.thresholds_sha256 = file_sha256(thresholds_path(ckpt))
            fusion.save(fusion_path(ckpt))
    metrics["minutes"] = round((time.time() - started) / 60, 2)
    if run is not None:
        run.summary.update({k: v for k, v in metrics.items() if k.startswith("cost/")})
    save_run_metrics(cfg, metrics)  # last: its presence means the run finished
    common.print_summary(
        "geoloc-train: test metrics",
        metrics,
        {
            "checkpoint": str(ckpt),
            "thresholds": str(thresholds_path(ckpt)) if ckpt else "none",
            "report": report_dir,
            "wandb run": str(common.wandb_run_dir(run)),
            "split sizes": str(datamodule.split_sizes()),
            "calibration": (f"{folds}-fold cross-fit, {len(oof.labels)} out-of-fold rows"
                            if oof is not None else "the calib split"),
            "fusion": (f"char n-gram LR (C={fusion.model.C:g}), weight {fusion.weight:g} "
                       "on the transformer" if fusion is not None else "none"),
            # test/* and abstain/* are measured on this split (val for the real tweets)
            "evaluated split": split,
        },
    )
    return metrics, {"module": module, "datamodule": datamodule, "trainer": trainer,
                     "result": result, "ckpt_path": ckpt}


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    return common.hydra_task("geoloc-train", train, cfg, cfg.get("optimized_metric"))


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
