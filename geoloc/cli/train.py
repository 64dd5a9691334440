"""``geoloc-train``: compose the config, fit, test with the best checkpoint, then evaluate
with calibrated abstention and write the report.

Reads top to bottom like the lightning-hydra-template's train.py; returns the metric named
by ``optimized_metric`` so a Hydra sweeper can optimise it.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

from geoloc.config import CONF_DIR, ConfigError, validate_config

# What the closing table shows; everything else is in the report and the W&B run.
HEADLINE = (
    "test/acc", "test/macro_f1", "abstain/correct_country_rate", "abstain/uncertain_rate",
    "abstain/country_precision", "abstain/countries_with_threshold",
    "abstain/countries_meeting_target", "abstain/ece", "abstain/ece_uncalibrated",
    "abstain/temperature",
)


def train(cfg: DictConfig) -> dict[str, float]:
    """Run one training job; return all logged metrics (floats)."""
    validate_config(cfg)  # fail before anything heavy

    import pytorch_lightning as pl

    from geoloc.cli.common import (
        build_callbacks,
        build_datamodule,
        build_loggers,
        predict_split,
        print_summary,
        resolved,
        setup_runtime,
        wandb_run,
        wandb_run_dir,
    )
    from geoloc.cli.evaluate import thresholds_path
    from geoloc.evaluation.pipeline import evaluate_and_report
    from geoloc.evaluation.report import THRESHOLDS_FILE

    setup_runtime(cfg)
    started = time.time()
    pl.seed_everything(cfg.seed, workers=True)

    module = hydra.utils.instantiate(cfg.model)
    datamodule = build_datamodule(cfg, module.tokenizer)
    loggers = build_loggers(cfg)
    for lg in loggers:
        lg.log_hyperparams(resolved(cfg))
    callbacks = build_callbacks(cfg, has_logger=bool(loggers))
    trainer = hydra.utils.instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)

    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}

    ckpt = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    ckpt = ckpt or None
    if cfg.get("test"):
        trainer.test(module, datamodule=datamodule, ckpt_path=ckpt)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})

    run = wandb_run(loggers)
    summary = evaluate_and_report(
        cfg, trainer, module, datamodule, ckpt_path=ckpt, wandb_run=run,
        predict=predict_split,
    )
    metrics.update(summary)
    if ckpt:  # every later command (geoloc-eval, prediction) finds them beside the weights
        fitted = Path(str(cfg.evaluation.report_dir)) / THRESHOLDS_FILE
        if fitted.exists():
            shutil.copyfile(fitted, thresholds_path(ckpt))
    headline = {k: metrics[k] for k in HEADLINE if k in metrics}
    headline["minutes"] = round((time.time() - started) / 60, 2)
    print_summary(
        "geoloc-train: test metrics",
        headline,
        {
            "checkpoint": str(ckpt),
            "thresholds": str(thresholds_path(ckpt)) if ckpt else "none",
            "report": str(cfg.evaluation.report_dir),
            "wandb run": str(wandb_run_dir(run)),
            "split sizes": str(datamodule.split_sizes()),
            # test/* and abstain/* are measured on this split (val for the real tweets)
            "evaluated split": str(getattr(datamodule, "eval_split", "test")),
        },
    )
    if run is not None:
        run.finish()
    return metrics


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    try:
        metrics = train(cfg)
    except ConfigError as err:
        print(f"geoloc-train: invalid config: {err}", file=sys.stderr)
        sys.exit(2)
    return metrics.get(cfg.get("optimized_metric") or "", None)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
