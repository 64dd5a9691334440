"""``geoloc-eval model_dir=…``: evaluate a model bundle with its saved policy.

The temperature and thresholds fitted at training time live in the bundle
(:mod:`geoloc.bundle`), with the char n-gram model fused at training time, if any; this
command applies them, so the numbers it reports are those of the system as it would be
deployed. ``evaluation.thresholds=<file>`` applies another saved policy instead (refused
for a fused model: that policy was not fitted on its fused outputs).
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
from omegaconf import DictConfig

from geoloc.cli import common
from geoloc.config import CONF_DIR
from geoloc.evaluation import evaluate_model
from geoloc.inference.predictor import check_precision
from geoloc.runs import resolved
from geoloc.training.build import (
    build_datamodule,
    build_loggers,
    build_trainer,
    wandb_run,
    wandb_run_dir,
)

log = logging.getLogger("geoloc")


def evaluate(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Load the bundle, predict the configured data, write the report; returns the
    metrics and the objects built (``module``, ``datamodule``, ``result``, ``bundle``)."""
    other = cfg.evaluation.get("thresholds")
    with common.option_errors():  # one line each: a bad folder names the file (bad input),
        bundle = common.model_bundle(cfg)  # another policy than the fused model's (option)
        if not other:  # PyTorch scores here: an int8-fitted policy is not about its outputs
            check_precision(bundle.thresholds(), bundle, quantized=False,
                            allow=bool(cfg.get("allow_precision_mismatch", False)))
        fusion = bundle.fusion(str(other) if other else None)
        # another policy file is checked as the bundle's own: its classes, and the model
        # its fitted_with record names
        policy = bundle.thresholds(other or None)
        module = bundle.load_module()
    log.info("applying the saved policy %s", other or bundle.folder)
    if fusion is not None:
        log.info("fusing with the bundle's n-gram model (weight %.2g on the transformer)",
                 fusion.weight)
    datamodule = build_datamodule(cfg, module.tokenizer, module.metadata)
    loggers = build_loggers(cfg)
    for lg in loggers:
        lg.log_hyperparams({**resolved(cfg), "model": dict(module.hparams)})
    trainer = build_trainer(cfg, loggers, callbacks=[])
    datamodule.prepare_data()
    datamodule.setup("predict")
    run = wandb_run(loggers)
    result = evaluate_model(trainer, module, datamodule, policy, split=datamodule.eval_split,
                            report_dir=str(cfg.evaluation.report_dir), wandb_run=run,
                            fusion=fusion)
    metrics = result.metrics()
    common.print_summary(
        "geoloc-eval",
        metrics,
        {"model": str(bundle.folder), "thresholds": str(other or "the bundle's"),
         "fusion": "the bundle's" if fusion is not None else "none",
         "report": str(cfg.evaluation.report_dir), "wandb run": str(wandb_run_dir(run)),
         "evaluated split": datamodule.eval_split},
    )
    return metrics, {"module": module, "datamodule": datamodule, "result": result,
                     "bundle": bundle}


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="eval")
def _hydra_main(cfg: DictConfig) -> float | None:
    return common.hydra_task("geoloc-eval", evaluate, cfg, "abstain/correct_country_rate")


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
