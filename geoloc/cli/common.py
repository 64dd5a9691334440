"""Scaffolding every Hydra entry point shares, written once.

:func:`hydra_task` is the lightning-hydra-template's ``task_wrapper`` idea: it validates
the config before anything heavy, runs the task, logs the exception if it fails, and
*always* closes the W&B run (marked failed when the task failed), so a failed job in a
multirun never leaves an open run behind. :func:`model_bundle` reads the ``model_dir=``
option every command that uses a trained model takes. (The objects of a config are built
by :mod:`geoloc.training.build`.)
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pandas as pd
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from geoloc.bundle import Bundle, open_model
from geoloc.config import validate_config
from geoloc.errors import CONFIG_ERRORS, INPUT_ERRORS, ConfigError
from geoloc.inference.population import (
    DEFAULT_MARGIN,
    PopulationCheck,
    PopulationProfile,
    check_population,
    meta_path,
)
from geoloc.io import markdown_table, write_json_atomic
from geoloc.runs import in_multirun, record_failure

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
    try:
        yield
    except INPUT_ERRORS:
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
    it (:func:`geoloc.runs.record_failure`). Hydra would otherwise end the multirun
    (a ``SystemExit``) or raise after the batch, and no summary would be written.
    """
    try:
        metrics, _ = run_task(task, cfg)
    except Exception as err:
        kind = ("invalid config" if isinstance(err, CONFIG_ERRORS) else
                "bad input" if isinstance(err, INPUT_ERRORS) else None)
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
    if cfg.get("progress") is False:
        # progress=false silences transformers' own bars too ("Loading weights")
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    check_wandb_reachable(cfg)


#: How long the W&B server may take to answer before an online run is refused (W&B
#: itself waits 90 s, then fails with a traceback; the name lookup is not bounded).
WANDB_CONNECT_TIMEOUT_S = 5.0


def check_wandb_reachable(cfg: DictConfig) -> None:
    """When a W&B logger is to log online (``logger.wandb.offline=false``), check in
    seconds that its server accepts a connection, and refuse the run in one line if not:
    W&B would wait 90 s and end in a traceback after the model had loaded.
    ``WANDB_MODE=offline`` (or disabled) overrides the option, as in W&B itself; with
    ``offline: true`` Lightning's logger never goes online, whatever ``WANDB_MODE`` says."""
    if os.environ.get("WANDB_MODE", "").lower() in ("offline", "disabled", "dryrun"):
        return
    loggers = cfg.get("logger")
    if not (isinstance(loggers, Mapping) and any(
            isinstance(lg, Mapping) and "WandbLogger" in str(lg.get("_target_", ""))
            and lg.get("offline") is False for lg in loggers.values())):
        return
    import urllib.error  # only an online run opens a connection
    import urllib.request

    url = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    what = "logger.wandb.offline=false"
    try:  # through the environment's proxies, as W&B itself goes
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"),
                               timeout=WANDB_CONNECT_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return  # the server answered (with an error status): it is reachable
    except (OSError, ValueError) as err:  # no route, no name, refused, timed out, bad URL
        raise ConfigError(f"{what}: the W&B server {url} cannot be reached "
                          f"({getattr(err, 'reason', err)}); log offline (the default) and "
                          "upload the run later with `wandb sync <run folder>/wandb/"
                          "offline-run-*`") from None


def job_threads(cfg: DictConfig, cpus: int | None = None) -> int | None:
    """Torch threads for this job: ``threads`` when set; under a parallel Hydra launcher
    (``hydra/launcher=parallel``: ``n_jobs`` jobs at once, -1 = one per core) the cores
    shared out, ``cpus // n_jobs`` (at least 1), so parallel jobs do not oversubscribe
    the machine; in a SLURM job the cores it was given (torch would count the node's);
    else None (torch's default: every core)."""
    if cfg.get("threads") is not None:
        threads = cfg.threads
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            # torch.set_num_threads would raise a RuntimeError traceback
            raise ConfigError(f"threads={threads!r}: expected a positive number of threads, "
                              "or null (every core)")
        return threads
    if os.environ.get("SLURM_CPUS_PER_TASK", "").isdigit():  # the cores SLURM gave the job
        return int(os.environ["SLURM_CPUS_PER_TASK"])
    if not HydraConfig.initialized():
        return None
    n_jobs = OmegaConf.select(HydraConfig.get(), "launcher.n_jobs")
    if not n_jobs or int(n_jobs) == 1:
        return None
    cpus = cpus or len(os.sched_getaffinity(0)) or 1  # the cores this process may use
    jobs = cpus if int(n_jobs) < 0 else min(int(n_jobs), cpus)
    return max(1, cpus // jobs)


def model_bundle(cfg: DictConfig) -> Bundle:
    """The model bundle named by ``model_dir=<folder>`` (training's ``<run>/model`` or an
    export), opened and verified; ``ckpt_path=`` (a bundle folder, or a training
    checkpoint with the files earlier versions saved beside it) still works for one
    release, with a deprecation message."""
    model = OmegaConf.select(cfg, "model_dir", default=None)
    ckpt = OmegaConf.select(cfg, "ckpt_path", default=None)
    if model and ckpt:
        raise ConfigError(f"model_dir={model} and ckpt_path={ckpt}: give one (model_dir=; "
                          "ckpt_path= is deprecated)")
    if not (model or ckpt):
        raise ConfigError("model_dir=<folder>: name the model folder a training run wrote "
                          "(<run>/model) or an export of it")
    if ckpt:  # (a checkpoint file is named deprecated where it is converted)
        log.warning("ckpt_path= is deprecated and will be removed in the next release: "
                    "pass model_dir=<folder> (training writes <run>/model)")
    return open_model(str(model or ckpt))


def print_summary(title: str, metrics: Mapping[str, float], extra: Mapping[str, str]) -> None:
    """The headline metrics that ``metrics`` holds as a Markdown table, then paths."""
    rows = [(k, f"{metrics[k]:.4f}" if isinstance(metrics[k], float) else metrics[k])
            for k in HEADLINE if k in metrics]
    table = markdown_table(pd.DataFrame(rows, columns=["metric", "value"]))
    paths = "\n".join(f"{k}: {v}" for k, v in extra.items())
    print(f"\n## {title}\n\n{table}\n\n{paths}", flush=True)


NOT_CHECKED = "not checked (the model has no record of its calibration population)"


def population_reference(bundle: Bundle, cfg: DictConfig
                         ) -> tuple[PopulationProfile | None, float]:
    """The record of the population the model's policy was calibrated on (None for a
    model saved before it existed) and ``population_margin``, read and checked before a
    job does any work."""
    margin = cfg.get("population_margin", DEFAULT_MARGIN)
    if isinstance(margin, bool) or not isinstance(margin, int | float) or margin < 0:
        raise ConfigError(f"population_margin={margin!r}: expected a number >= 0")
    return bundle.population(), float(margin)


def population_check(prog: str, reference: PopulationProfile | None, margin: float,
                     observed: PopulationProfile | None, output: str,
                     meta: Mapping[str, Any]) -> PopulationCheck | None:
    """Compare a job's input with the population the model's policy was calibrated on
    (:mod:`geoloc.inference.population`): warn in one line when they differ beyond
    ``margin``, and write ``OUTPUT.meta.json`` with ``meta`` (the model, its classes, its
    fingerprint, ...), the input's summary and the check's numbers. None when the model
    has no record (saved before it existed)."""
    check = (check_population(reference, observed, margin)
             if reference is not None and observed is not None else None)
    if check is not None and check.fired:
        log.warning("%s: %s", prog, check.message)
    write_json_atomic(meta_path(output), {
        **meta, "population": None if observed is None else observed.to_dict(),
        "population_check": None if check is None else check.to_dict()})
    return check
