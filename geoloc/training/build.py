"""Config groups -> the objects a training or evaluation run uses, built one way.

``geoloc-train``, ``geoloc-eval`` and the cross-fit all build their datamodule, policy,
fusion, loggers, callbacks and trainer here, through :func:`geoloc.instantiate.instantiate`
(the allow-listed Hydra instantiation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from pytorch_lightning.callbacks import LearningRateMonitor
from pytorch_lightning.loggers import WandbLogger

from geoloc.callbacks import AtomicCheckpointIO
from geoloc.evaluation import PolicyConfig, Thresholds
from geoloc.instantiate import instantiate
from geoloc.model.ngram import FusionConfig
from geoloc.runs import sweep_group


def build_datamodule(cfg: DictConfig, tokenizer: Any, metadata: Any, fold: Any = None) -> Any:
    """Instantiate ``cfg.data`` with the model's tokenizer and
    :class:`~geoloc.metadata.ModelMetadata` (label set and tokenizer identity travel from
    the model to the data, never through config).

    Instantiated as a partial and then called, so the two objects reach the datamodule as
    they are: keyword arguments given to ``instantiate`` itself are merged into the config
    first, which would turn the metadata dataclass into a ``DictConfig``. ``fold`` is the
    cross-fitting driver's (:class:`~geoloc.data.splits.CrossFitFold`), never config's.
    """
    return instantiate(cfg.data, _partial_=True)(tokenizer=tokenizer, metadata=metadata,
                                                 fold=fold)


def build_policy(cfg: DictConfig) -> PolicyConfig | Thresholds:
    """The abstention policy to evaluate with: the saved one named by
    ``evaluation.thresholds`` (applied as is), else ``evaluation.policy`` (fitted now)."""
    saved = cfg.evaluation.get("thresholds")
    if saved:
        return Thresholds.from_json(str(saved))
    return instantiate(cfg.evaluation.policy)


def build_fusion(cfg: DictConfig) -> FusionConfig | None:
    """The :class:`~geoloc.model.ngram.FusionConfig` of ``cfg.fusion`` (None: no fusion)."""
    return instantiate(cfg.fusion) if cfg.get("fusion") else None


def build_loggers(cfg: DictConfig) -> list:
    """Instantiate every ``cfg.logger`` entry that has a ``_target_``; a W&B logger
    joins the sweep's group in a multirun (:func:`geoloc.runs.sweep_group`)."""
    group = sweep_group(cfg)
    loggers = []
    for lg in (cfg.get("logger") or {}).values():
        if not (isinstance(lg, DictConfig) and "_target_" in lg):
            continue
        grouped = group and "WandbLogger" in str(lg._target_) and not lg.get("group")
        loggers.append(instantiate(lg, group=group) if grouped else instantiate(lg))
    return loggers


def build_callbacks(cfg: DictConfig, has_logger: bool = True) -> list:
    """Instantiate ``cfg.callbacks``; logger-only callbacks are dropped without a logger
    (Lightning refuses a LearningRateMonitor with ``logger=none``)."""
    callbacks = [
        instantiate(cb)
        for cb in (cfg.get("callbacks") or {}).values()
        if isinstance(cb, DictConfig) and "_target_" in cb
    ]
    if not has_logger:
        callbacks = [cb for cb in callbacks if not isinstance(cb, LearningRateMonitor)]
    return callbacks


def build_trainer(cfg: DictConfig, loggers: list, callbacks: list, **overrides: Any) -> Any:
    """The Lightning trainer of ``cfg.trainer`` (with ``overrides`` of its options);
    checkpoints are written atomically (:class:`~geoloc.callbacks.AtomicCheckpointIO`)."""
    return instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks,
                       plugins=[AtomicCheckpointIO()], **overrides)


def wandb_run(loggers: list) -> Any:
    """The live W&B run of the loggers, if any."""
    for lg in loggers:
        if isinstance(lg, WandbLogger):
            return lg.experiment
    return None


def wandb_run_dir(run: Any) -> str | None:
    """The run's folder on disk (what ``wandb sync`` / ``wandb leet inspect`` take)."""
    return None if run is None else str(Path(run.dir).parent)
