"""One fit from a config: build module, datamodule and trainer, train, and hand back the
best checkpoint's model ready for testing, calibration and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch.distributed as dist
from omegaconf import DictConfig

from geoloc.data.splits import CrossFitFold
from geoloc.instantiate import instantiate
from geoloc.training.build import build_callbacks, build_datamodule, build_trainer


@dataclass
class Fitted:
    """What :func:`fit` built and trained. ``module`` holds the last epoch's weights until
    a loop is run with ``ckpt_path`` (testing and prediction load the best checkpoint's);
    ``rank`` is 0 unless training ran in several processes (then ``trainer`` is a
    one-device trainer for what follows)."""

    module: Any
    datamodule: Any
    trainer: Any
    ckpt_path: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    rank: int = 0


def fit(cfg: DictConfig, loggers: list, fold: CrossFitFold | None = None,
        ckpt_subdir: str | None = None) -> Fitted:
    """Build module, datamodule and trainer from ``cfg`` and fit (``fold``: a cross-fit
    fold model, whose checkpoints go to ``ckpt_subdir``)."""
    pl.seed_everything(cfg.seed, workers=True)
    module = instantiate(cfg.model)
    datamodule = build_datamodule(cfg, module.tokenizer, module.metadata, fold=fold)
    callbacks = build_callbacks(cfg, has_logger=bool(loggers))
    if ckpt_subdir:  # one checkpoint folder per cross-fit model
        for cb in callbacks:
            if isinstance(cb, pl.callbacks.ModelCheckpoint) and cb.dirpath:
                cb.dirpath = str(Path(cb.dirpath) / ckpt_subdir)
    trainer = build_trainer(cfg, loggers, callbacks)
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
    if trainer.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()  # else the next trainer waits on the other processes
    if trainer.world_size > 1 and rank == 0:
        # Multi-process training (trainer=ddp_cpu, ddp): testing, prediction and the
        # policy need every row of a split in one process, and a distributed predict
        # loop would hand each process a shard. So the processes part here: the first
        # goes on with a one-device trainer on the best checkpoint, the others stop
        # (geoloc.cli.train returns after fit for rank > 0).
        trainer = build_trainer(cfg, loggers, [], devices=1, strategy="auto")
    return Fitted(module, datamodule, trainer, ckpt or None, metrics, rank)
