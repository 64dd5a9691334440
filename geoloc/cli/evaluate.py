"""``geoloc-eval ckpt_path=…``: evaluate a checkpoint with its saved thresholds.

The thresholds and temperature fitted at training time live beside the checkpoint
(``<checkpoint>.thresholds.json``); this command reuses them, so the numbers it reports
are those of the system as it would be deployed. If none are found (a checkpoint from
elsewhere) they are fitted on the calibration split, and the report says so.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, open_dict

from geoloc.config import CONF_DIR, ConfigError, validate_config

log = logging.getLogger("geoloc")


def thresholds_path(ckpt_path: str | Path) -> Path:
    """Where the thresholds of a checkpoint are saved: ``<ckpt>.thresholds.json``."""
    ckpt = Path(ckpt_path)
    return ckpt.with_name(ckpt.stem + ".thresholds.json")


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Load the checkpoint, predict the configured data, write the report."""
    ckpt = Path(str(cfg.ckpt_path)).expanduser()
    if not ckpt.is_file():
        raise ConfigError(f"ckpt_path={cfg.ckpt_path}: no such checkpoint file")

    from geoloc.cli.common import (
        build_datamodule,
        build_loggers,
        predict_split,
        print_summary,
        resolved,
        setup_runtime,
        wandb_run,
        wandb_run_dir,
    )
    from geoloc.evaluation.pipeline import evaluate_and_report
    from geoloc.model.module import GeolocModule

    setup_runtime(cfg)
    module = GeolocModule.load_from_checkpoint(str(ckpt), map_location="cpu")
    hp = module.hparams
    # The model decides backbone, tokenizer and label set; data interpolates them.
    with open_dict(cfg):
        cfg.backbone.name = hp.backbone
        cfg.tokenizer.variant = hp.tokenizer_variant
        cfg.labels.countries = list(hp.countries)
        saved = thresholds_path(ckpt)
        if not cfg.evaluation.get("thresholds") and saved.exists():
            cfg.evaluation.thresholds = str(saved)
    validate_config(cfg)
    if not cfg.evaluation.get("thresholds"):
        log.warning("no thresholds beside %s: fitting them on the calib split", ckpt)

    import pytorch_lightning as pl

    datamodule = build_datamodule(cfg, module.tokenizer)
    loggers = build_loggers(cfg)
    for lg in loggers:
        lg.log_hyperparams({**resolved(cfg), "model": dict(hp)})
    trainer = hydra.utils.instantiate(cfg.trainer, logger=loggers or False, callbacks=[])
    assert isinstance(trainer, pl.Trainer)
    datamodule.prepare_data()
    datamodule.setup("predict")
    run = wandb_run(loggers)
    summary = evaluate_and_report(cfg, trainer, module, datamodule, ckpt_path=None,
                                  wandb_run=run, predict=predict_split)
    from geoloc.cli.train import HEADLINE

    print_summary(
        "geoloc-eval",
        {k: summary[k] for k in HEADLINE if k in summary},
        {"checkpoint": str(ckpt), "thresholds": str(cfg.evaluation.get("thresholds")),
         "report": str(cfg.evaluation.report_dir), "wandb run": str(wandb_run_dir(run))},
    )
    if run is not None:
        run.finish()
    return summary


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="eval")
def _hydra_main(cfg: DictConfig) -> float | None:
    try:
        summary = evaluate(cfg)
    except ConfigError as err:
        print(f"geoloc-eval: invalid config: {err}", file=sys.stderr)
        sys.exit(2)
    return summary.get("abstain/correct_country_rate")


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
