"""One fit from a config: build module, datamodule and trainer, train, and hand back the
best checkpoint's model ready for testing, calibration and evaluation."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch.distributed as dist
from omegaconf import DictConfig

from geoloc.data.splits import CrossFitFold
from geoloc.instantiate import instantiate
from geoloc.io import cpu_info
from geoloc.training.build import build_callbacks, build_datamodule, build_trainer

log = logging.getLogger("geoloc")
#: Lightning's names of full fp32 precision (what serving uses).
FP32 = ("32-true", "32")


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
    curve: list[dict[str, float]] = field(default_factory=list)
    """The validation metrics (``val/loss``, ``val/acc``, ...) after each epoch: for a
    cross-fit fold model validating on its held-out fold, the out-of-fold learning curve
    the recipe's epoch count is chosen on."""


class ValidationCurve(pl.Callback):
    """Keeps every epoch's validation metrics (Lightning keeps only the last)."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        self.epochs.append({"epoch": float(trainer.current_epoch), **{
            k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}})


def fit(cfg: DictConfig, loggers: list, fold: CrossFitFold | None = None,
        ckpt_subdir: str | None = None) -> Fitted:
    """Build module, datamodule and trainer from ``cfg`` and fit (``fold``: a cross-fit
    fold model, whose checkpoints go to ``ckpt_subdir``)."""
    pl.seed_everything(cfg.seed, workers=True)
    module = instantiate(cfg.model)
    datamodule = build_datamodule(cfg, module.tokenizer, module.metadata, fold=fold)
    curve = ValidationCurve()
    callbacks = [*build_callbacks(cfg, has_logger=bool(loggers)), curve]
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
    serve: dict[str, Any] = {}
    if trainer.world_size > 1:
        # Multi-process training (trainer=ddp_cpu, ddp): testing, prediction and the
        # policy need every row of a split in one process, and a distributed predict
        # loop would hand each process a shard. So the processes part here: the first
        # goes on with a one-device trainer on the best checkpoint, the others stop
        # (geoloc.cli.train returns after fit for rank > 0).
        serve.update(devices=1, strategy="auto")
    if str(cfg.trainer.get("precision", "32-true")) not in FP32:
        # Trained in reduced precision (trainer.precision=bf16-mixed, faster on CPUs with
        # AVX512-BF16 or AMX: experiments/benchmarks/train_speed.md) but served in fp32:
        # the outputs the policy is fitted on, and every evaluation, are the fp32
        # network's, so prediction and testing get an fp32 trainer.
        serve.update(precision="32-true")
    if serve and rank == 0:
        trainer = build_trainer(cfg, loggers, [], **serve)
    return Fitted(module, datamodule, trainer, ckpt or None, metrics, rank, curve.epochs)


def soup(cfg: DictConfig, loggers: list, state: dict[str, Any], folds: int) -> Fitted:
    """The deployed model of ``crossfit.deploy=soup``: the fold models' averaged weights
    (:func:`geoloc.training.calibrate.average_states`) in a fresh module, with the refit's
    datamodule (every pooled row is train, the evaluated split is the same) and an fp32
    trainer; validated once, so its ``val/*`` metrics stand where a refit's would. No
    training: this replaces the refit, a third of a 3-fold cross-fit's training steps
    (6 layers on the real tweets: 19.1 minutes with a refit, 14.8 without)."""
    pl.seed_everything(cfg.seed, workers=True)
    module = instantiate(cfg.model)
    missing, unexpected = module.load_state_dict(state, strict=False)
    frozen = set(module.frozen_parameter_names())
    if unexpected or set(missing) - frozen:
        raise RuntimeError(f"fold models' weights do not fit the model: missing "
                           f"{sorted(set(missing) - frozen)}, unexpected {unexpected}")
    datamodule = build_datamodule(cfg, module.tokenizer, module.metadata,
                                  fold=CrossFitFold(folds, None))
    trainer = build_trainer(cfg, loggers, [], precision="32-true")
    trainer.validate(module, datamodule=datamodule, verbose=False)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return Fitted(module, datamodule, trainer, None, metrics)


def warn_slow_bf16(cfg: DictConfig) -> None:
    """One warning when bf16 autocast is asked for on a CPU whose flags show neither
    AVX512-BF16 nor AMX-BF16: there it emulates bf16 and was 5-30x slower than fp32."""
    trainer = cfg.get("trainer") or {}
    if not str(trainer.get("precision", "")).startswith("bf16") or \
            trainer.get("accelerator") != "cpu":
        return
    if not cpu_info()[1] & {"avx512_bf16", "amx_bf16"}:
        log.warning("trainer.precision=%s on a CPU without AVX512-BF16 or AMX: bf16 is "
                    "emulated there and training may be several times slower; set "
                    "trainer.precision=32-true", trainer.get("precision"))
