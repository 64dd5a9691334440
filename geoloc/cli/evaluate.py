"""``geoloc-eval ckpt_path=…``: evaluate a checkpoint with its saved policy.

The temperature and thresholds fitted at training time live beside the checkpoint
(``<checkpoint>.thresholds.json``); this command applies them, so the numbers it reports
are those of the system as it would be deployed. A char n-gram model fused at training
time (``<checkpoint>.fusion.json``, see :mod:`geoloc.model.ngram`) is applied the same
way. If no thresholds are found (a checkpoint from elsewhere) they are fitted on the
calibration split with ``evaluation.policy``, and the log says so.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, open_dict

from geoloc.cli import common
from geoloc.config import CONF_DIR

log = logging.getLogger("geoloc")


def evaluate(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Load the checkpoint, predict the configured data, write the report; returns the
    metrics and the objects built (``module``, ``datamodule``, ``result``)."""
    ckpt = Path(str(cfg.ckpt_path)).expanduser()

    from geoloc.evaluation import evaluate_model, thresholds_path
    from geoloc.model.module import GeolocModule
    from geoloc.model.ngram import Fusion, check_pairing, fusion_path

    module = GeolocModule.load(ckpt)  # a missing or bad file: CheckpointError naming it
    saved = thresholds_path(ckpt)
    with open_dict(cfg):
        if not cfg.evaluation.get("thresholds") and saved.exists():
            cfg.evaluation.thresholds = str(saved)
    if not cfg.evaluation.get("thresholds"):
        log.warning("no thresholds beside %s: fitting them on the calib split", ckpt)
    else:
        log.info("applying the saved policy %s (evaluation.policy is not used)",
                 cfg.evaluation.thresholds)

    fusion, fusion_file = None, fusion_path(ckpt)
    if fusion_file.exists():  # the n-gram model fused at training time
        fusion = Fusion.load(fusion_file)
        log.info("fusing with %s (weight %.2g on the transformer)", fusion_file,
                 fusion.weight)
    with common.option_errors():
        check_pairing(fusion, cfg.evaluation.get("thresholds"), fusion_file)
    datamodule = common.build_datamodule(cfg, module.tokenizer, module.metadata)
    loggers = common.build_loggers(cfg)
    for lg in loggers:
        lg.log_hyperparams({**common.resolved(cfg), "model": dict(module.hparams)})
    trainer = common.build_trainer(cfg, loggers, callbacks=[])
    datamodule.prepare_data()
    datamodule.setup("predict")
    run = common.wandb_run(loggers)
    result = evaluate_model(trainer, module, datamodule, common.build_policy(cfg),
                            split=datamodule.eval_split,
                            report_dir=str(cfg.evaluation.report_dir), wandb_run=run,
                            fusion=fusion)
    metrics = result.metrics()
    common.print_summary(
        "geoloc-eval",
        metrics,
        {"checkpoint": str(ckpt), "thresholds": str(cfg.evaluation.get("thresholds")),
         "fusion": str(fusion_file) if fusion is not None else "none",
         "report": str(cfg.evaluation.report_dir), "wandb run": str(common.wandb_run_dir(run)),
         "evaluated split": datamodule.eval_split},
    )
    return metrics, {"module": module, "datamodule": datamodule, "result": result}


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="eval")
def _hydra_main(cfg: DictConfig) -> float | None:
    return common.hydra_task("geoloc-eval", evaluate, cfg, "abstain/correct_country_rate")


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
