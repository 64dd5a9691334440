"""Pieces shared by the Hydra entry points (train, eval): building objects from config,
collecting predictions, printing the summary table."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("geoloc")


def setup_runtime(cfg: DictConfig) -> None:
    """Threads and W&B defaults before anything heavy is imported or created."""
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))


def tokenizer_key(cfg: DictConfig) -> str:
    """What determines tokenisation output (used in the datamodule's cache fingerprint)."""
    return f"{cfg.backbone.name}|{cfg.tokenizer.variant}|{','.join(cfg.labels.countries)}"


def build_datamodule(cfg: DictConfig, tokenizer: Any):
    """Instantiate ``cfg.data`` with the model's tokenizer."""
    import hydra

    return hydra.utils.instantiate(cfg.data, tokenizer=tokenizer, tokenizer_key=tokenizer_key(cfg))


def build_loggers(cfg: DictConfig) -> list:
    import hydra

    loggers = []
    for _, lg_cfg in (cfg.get("logger") or {}).items():
        if isinstance(lg_cfg, DictConfig) and "_target_" in lg_cfg:
            loggers.append(hydra.utils.instantiate(lg_cfg))
    return loggers


def build_callbacks(cfg: DictConfig, has_logger: bool = True) -> list:
    """Instantiate ``cfg.callbacks``; logger-only callbacks are dropped without a logger
    (Lightning refuses a LearningRateMonitor with ``logger=none``)."""
    import hydra

    callbacks = [
        hydra.utils.instantiate(cb)
        for cb in (cfg.get("callbacks") or {}).values()
        if isinstance(cb, DictConfig) and "_target_" in cb
    ]
    if not has_logger:
        from pytorch_lightning.callbacks import LearningRateMonitor

        callbacks = [cb for cb in callbacks if not isinstance(cb, LearningRateMonitor)]
    return callbacks


def wandb_run(loggers: list):
    """The live W&B run of the loggers, if any."""
    from pytorch_lightning.loggers import WandbLogger

    for lg in loggers:
        if isinstance(lg, WandbLogger):
            return lg.experiment
    return None


def wandb_run_dir(run) -> str | None:
    """The run's folder on disk (what ``wandb sync`` / ``wandb leet inspect`` take)."""
    if run is None:
        return None
    return str(Path(run.dir).parent)


def predict_split(trainer, module, datamodule, split: str, ckpt_path: str | None = None):
    """Logits, labels and row indices of one split, in dataset order."""
    outputs = trainer.predict(module, dataloaders=datamodule.split_dataloader(split),
                              ckpt_path=ckpt_path)
    logits = torch.cat([o["logits"] for o in outputs]).numpy()
    labels = torch.cat([o["labels"] for o in outputs]).numpy()
    rows = torch.cat([o["row"] for o in outputs]).numpy()
    return logits.astype(np.float32), labels.astype(np.int64), rows


def resolved(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # type: ignore[return-value]


def print_summary(title: str, metrics: Mapping[str, float], extra: Mapping[str, str]) -> None:
    """A short Markdown table of the headline metrics, then paths."""
    lines = [f"\n## {title}\n", "| metric | value |", "| --- | --- |"]
    for k, v in metrics.items():
        lines.append(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |")
    lines.append("")
    for k, v in extra.items():
        lines.append(f"{k}: {v}")
    print("\n".join(lines), flush=True)
