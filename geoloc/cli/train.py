"""``geoloc-train``: fit, test with the best checkpoint, then evaluate with calibrated
abstention and write the report.

Reads top to bottom like the lightning-hydra-template's train.py; returns the metric named
by ``optimized_metric`` so a Hydra sweeper can optimise it. Validation, W&B closing and
error handling are :func:`geoloc.cli.common.hydra_task`'s.
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
    import pytorch_lightning as pl

    from geoloc.evaluation import evaluate_model, thresholds_path

    started = time.time()
    pl.seed_everything(cfg.seed, workers=True)

    module = hydra.utils.instantiate(cfg.model)
    datamodule = common.build_datamodule(cfg, module.tokenizer, module.metadata)
    loggers = common.build_loggers(cfg)
    for lg in loggers:
        lg.log_hyperparams(common.resolved(cfg))
    callbacks = common.build_callbacks(cfg, has_logger=bool(loggers))
    trainer = common.build_trainer(cfg, loggers, callbacks)

    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}

    ckpt = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    ckpt = ckpt or None
    if cfg.get("test"):
        trainer.test(module, datamodule=datamodule, ckpt_path=ckpt)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})

    run = common.wandb_run(loggers)
    report_dir = str(cfg.evaluation.report_dir)
    result = evaluate_model(trainer, module, datamodule, common.build_policy(cfg),
                            split=datamodule.eval_split, report_dir=report_dir,
                            ckpt_path=ckpt, wandb_run=run)
    metrics.update(result.metrics())
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
            # test/* and abstain/* are measured on this split (val for the real tweets)
            "evaluated split": datamodule.eval_split,
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
