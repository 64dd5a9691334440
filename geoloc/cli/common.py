"""Scaffolding every Hydra entry point shares, written once.

:func:`hydra_task` is the lightning-hydra-template's ``task_wrapper`` idea: it validates
the config before anything heavy, runs the task, logs the exception if it fails, and
*always* closes the W&B run (marked failed when the task failed), so a failed job in a
multirun never leaves an open run behind. The ``build_*`` helpers instantiate the config
groups the same way in ``geoloc-train`` and ``geoloc-eval``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from geoloc.config import ConfigError, instantiate, validate_config
from geoloc.io import markdown_table

log = logging.getLogger("geoloc")

#: What the closing table of train and eval shows; everything else is in the report and
#: the W&B run. ``test/*`` is Lightning's test loop, the rest the evaluation's metrics.
HEADLINE = (
    # test/*: the Lightning test loop (the transformer alone); eval/*: the evaluated split
    # through the deployed system (fused with the n-gram model when fusion is on)
    "test/acc", "test/macro_f1", "eval/accuracy", "eval/macro_f1",
    "abstain/correct_country_rate", "abstain/uncertain_rate",
    "abstain/country_precision", "abstain/countries_with_threshold",
    "abstain/countries_meeting_target", "calibration/ece", "calibration/ece_uncalibrated",
    "calibration/temperature", "minutes",
)


#: A task takes a validated config and returns (metrics, objects): the metrics a sweeper
#: or a notebook reads, and the objects it built (module, datamodule, trainer, result), as
#: the lightning-hydra-template's tasks do, so callers can inspect what was trained.
Task = Callable[[DictConfig], tuple[dict[str, float], dict[str, Any]]]


def run_task(task: Task, cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Validate ``cfg`` (fails in seconds, naming the option), set up the runtime, run
    ``task(cfg)`` and always finish the W&B run, marked failed when the task raised.
    Notebooks, tests and :mod:`geoloc.ablation` call this; entry points :func:`hydra_task`."""
    validate_config(cfg)
    setup_runtime(cfg)
    failed = True
    try:
        out = task(cfg)
        failed = False
        return out
    finally:
        finish_wandb(failed)


@contextmanager
def option_errors() -> Iterator[None]:
    """Report what the libraries below an entry point raise about its arguments as a
    :class:`ConfigError` (one line, exit 2; see :func:`hydra_task`): a ``ValueError`` or
    ``FileNotFoundError`` whose message names the option or file and the problem
    (ExportError, PredictorError, JobError, BackboneMismatchError, a policy and fusion
    that do not pair). A bad input file (:class:`InputFileError`, :class:`RecordError`,
    e.g. a corrupt checkpoint) stays itself, so it is reported as bad input."""
    from geoloc.data.schema import InputFileError, RecordError

    try:
        yield
    except (InputFileError, RecordError):
        raise
    except (ValueError, FileNotFoundError) as err:
        raise ConfigError(str(err)) from err


def hydra_task(prog: str, task: Task, cfg: DictConfig, returned_metric: str | None
               ) -> float | None:
    """Entry point ``prog``: :func:`run_task`, then ``metrics[returned_metric]`` (what a
    Hydra sweeper optimises).

    A :class:`ConfigError` (or a data option found wrong late) ends the process with
    status 2 and a one-line message naming the option, a bad input file (a row error, a
    missing or unusable file) the same naming the file, line and field
    (``HYDRA_FULL_ERROR=1`` shows the traceback); any other exception is logged and
    re-raised.

    In a multirun a failed job is logged, recorded as ``failed.json`` in its folder and
    returns None instead: the other jobs run, and the sweep summary is written and names
    it (:func:`geoloc.ablation.record_failure`). Hydra would otherwise end the multirun
    (a ``SystemExit``) or raise after the batch, and no summary would be written.
    """
    from geoloc.ablation import in_multirun, record_failure
    from geoloc.data.schema import InputFileError, RecordError
    from geoloc.data.splits import DataConfigError

    try:
        metrics, _ = run_task(task, cfg)
    except Exception as err:
        kind = ("invalid config" if isinstance(err, ConfigError | DataConfigError) else
                "bad input" if isinstance(err, InputFileError | RecordError) else None)
        if in_multirun():
            log.error("%s failed: %s", prog, err, exc_info=kind is None)
            record_failure(cfg, err, kind or "error")
            return None
        if kind is not None:
            _exit_with(prog, kind, err)
        log.exception("%s failed", prog)
        raise
    return metrics.get(returned_metric) if returned_metric else None


def _exit_with(prog: str, kind: str, err: Exception) -> None:
    """One line naming the option, or the file, line and field, and exit status 2; the
    traceback only with ``HYDRA_FULL_ERROR=1`` (Hydra's own switch for full errors)."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise err
    print(f"{prog}: {kind}: {err}", file=sys.stderr)
    sys.exit(2)


def finish_wandb(failed: bool) -> None:
    """Finish the process's W&B run, if one was started (exit code 1 when failed)."""
    if "wandb" not in sys.modules:  # never imported: no run to close, no import cost
        return
    import wandb

    if wandb.run is not None:
        wandb.finish(exit_code=1 if failed else 0)


def setup_runtime(cfg: DictConfig) -> None:
    """Threads and W&B defaults before anything heavy is imported or created."""
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    threads = job_threads(cfg)
    if threads:
        import torch

        torch.set_num_threads(threads)


def job_threads(cfg: DictConfig, cpus: int | None = None) -> int | None:
    """Torch threads for this job: ``threads`` when set; under a parallel Hydra launcher
    (``hydra/launcher=parallel``: ``n_jobs`` jobs at once, -1 = one per core) the cores
    shared out, ``cpus // n_jobs`` (at least 1), so parallel jobs do not oversubscribe
    the machine; in a SLURM job the cores it was given (torch would count the node's);
    else None (torch's default: every core)."""
    if cfg.get("threads"):
        return int(cfg.threads)
    if os.environ.get("SLURM_CPUS_PER_TASK", "").isdigit():  # the cores SLURM gave the job
        return int(os.environ["SLURM_CPUS_PER_TASK"])
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    n_jobs = OmegaConf.select(HydraConfig.get(), "launcher.n_jobs")
    if not n_jobs or int(n_jobs) == 1:
        return None
    cpus = cpus or len(os.sched_getaffinity(0)) or 1  # the cores this process may use
    jobs = cpus if int(n_jobs) < 0 else min(int(n_jobs), cpus)
    return max(1, cpus // jobs)


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


def build_policy(cfg: DictConfig) -> Any:
    """The abstention policy to evaluate with: the saved one named by
    ``evaluation.thresholds`` (applied as is), else ``evaluation.policy`` (fitted now)."""
    from geoloc.evaluation import Thresholds

    saved = cfg.evaluation.get("thresholds")
    if saved:
        return Thresholds.from_json(str(saved))
    return instantiate(cfg.evaluation.policy)


def build_fusion(cfg: DictConfig) -> Any:
    """The :class:`~geoloc.model.ngram.FusionConfig` of ``cfg.fusion`` (None: no fusion)."""
    return instantiate(cfg.fusion) if cfg.get("fusion") else None


def build_loggers(cfg: DictConfig) -> list:
    """Instantiate every ``cfg.logger`` entry that has a ``_target_``; a W&B logger
    joins the sweep's group in a multirun (:func:`geoloc.ablation.sweep_group`)."""
    from geoloc.ablation import sweep_group

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
        from pytorch_lightning.callbacks import LearningRateMonitor

        callbacks = [cb for cb in callbacks if not isinstance(cb, LearningRateMonitor)]
    return callbacks


def build_trainer(cfg: DictConfig, loggers: list, callbacks: list, **overrides: Any) -> Any:
    """The Lightning trainer of ``cfg.trainer`` (with ``overrides`` of its options);
    checkpoints are written atomically (:class:`~geoloc.callbacks.AtomicCheckpointIO`)."""
    from geoloc.callbacks import AtomicCheckpointIO

    return instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks,
                       plugins=[AtomicCheckpointIO()], **overrides)


def wandb_run(loggers: list) -> Any:
    """The live W&B run of the loggers, if any."""
    from pytorch_lightning.loggers import WandbLogger

    for lg in loggers:
        if isinstance(lg, WandbLogger):
            return lg.experiment
    return None


def wandb_run_dir(run: Any) -> str | None:
    """The run's folder on disk (what ``wandb sync`` / ``wandb leet inspect`` take)."""
    return None if run is None else str(Path(run.dir).parent)


def resolved(cfg: DictConfig) -> dict:
    """The config as plain containers (what loggers record as hyper-parameters)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # type: ignore[return-value]


def print_summary(title: str, metrics: Mapping[str, float], extra: Mapping[str, str]) -> None:
    """The headline metrics that ``metrics`` holds as a Markdown table, then paths."""
    import pandas as pd

    rows = [(k, f"{metrics[k]:.4f}" if isinstance(metrics[k], float) else metrics[k])
            for k in HEADLINE if k in metrics]
    table = markdown_table(pd.DataFrame(rows, columns=["metric", "value"]))
    paths = "\n".join(f"{k}: {v}" for k, v in extra.items())
    print(f"\n## {title}\n\n{table}\n\n{paths}", flush=True)
