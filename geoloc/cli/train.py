"""``geoloc-train``: fit, test with the best checkpoint, then evaluate with calibrated
abstention and write the report.

Reads top to bottom like the lightning-hydra-template's train.py; returns the metric named
by ``optimized_metric`` so a Hydra sweeper can optimise it. Validation, W&B closing and
error handling are :func:`geoloc.cli.common.hydra_task`'s.

With ``crossfit.folds=K`` the policy is fitted on the out-of-fold predictions of K fold
models and applied to a refit on all their rows (:mod:`geoloc.cli.fit` says why the
thresholds carry over).
"""

from __future__ import annotations

import time
from typing import Any

import hydra
from omegaconf import DictConfig

from geoloc.cli import common
from geoloc.config import CONF_DIR


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Run one training job on a validated config (see :func:`geoloc.cli.common.run_task`).

    Returns every metric (floats) and the objects built: ``module`` (holding the weights
    of the best checkpoint, which testing and evaluation loaded), ``datamodule``,
    ``trainer``, ``result`` (the :class:`~geoloc.evaluation.EvaluationResult`) and
    ``ckpt_path``.
    """
    from geoloc.cli.fit import crossfit_calibration, fit
    from geoloc.data.splits import CrossFitFold
    from geoloc.evaluation import (
        PolicyConfig,
        evaluate_logits,
        evaluate_model,
        predict_split,
        thresholds_path,
    )

    started = time.time()
    folds = int(cfg.get("crossfit", {}).get("folds") or 0)
    metrics: dict[str, float] = {}
    policy = common.build_policy(cfg)
    oof = None
    if folds and isinstance(policy, PolicyConfig):
        oof, metrics = crossfit_calibration(cfg, folds)

    loggers = common.build_loggers(cfg)
    for lg in loggers:
        lg.log_hyperparams(common.resolved(cfg))
    objs = fit(cfg, loggers, fold=CrossFitFold(folds, None) if folds else None)
    module, datamodule, trainer, ckpt = (objs["module"], objs["datamodule"], objs["trainer"],
                                         objs["ckpt_path"])
    metrics.update(objs["metrics"])
    if cfg.get("test"):
        trainer.test(module, datamodule=datamodule, ckpt_path=ckpt)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})

    run = common.wandb_run(loggers)
    report_dir = str(cfg.evaluation.report_dir)
    split = datamodule.eval_split
    if oof is not None:  # the refit's outputs under the policy fitted out of fold
        evaluated = predict_split(trainer, module, datamodule, split, ckpt)
        result = evaluate_logits(oof, evaluated, list(module.class_names), policy,
                                 split=split, report_dir=report_dir, wandb_run=run)
    else:
        result = evaluate_model(trainer, module, datamodule, policy, split=split,
                                report_dir=report_dir, ckpt_path=ckpt, wandb_run=run)
    metrics.update(result.metrics())
    if run is not None and folds:
        run.summary.update({k: v for k, v in metrics.items() if k.startswith("crossfit/")})
    if ckpt and result.fitted:  # later commands (geoloc-eval, prediction) find it there
        result.thresholds.to_json(thresholds_path(ckpt))
    metrics["minutes"] = round((time.time() - started) / 60, 2)
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
