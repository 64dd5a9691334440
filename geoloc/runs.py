"""A run's bookkeeping in its folder: the bottom floor that entry points, the config
resolvers and the sweep summary all read, so that none of them imports another.

- every run writes ``metrics.json`` (its metrics and a fingerprint of its config) last,
  when it finishes; a rerun of a cut-off multirun skips the runs already finished
  (:func:`finished_metrics`, ``skip_finished``);
- a run that fails inside a multirun writes ``failed.json`` (:func:`record_failure`);
- every run of a multirun logs to one W&B group (:func:`sweep_group`);
- a sweep's run folders are named by their overrides (:func:`run_dirname`).

Only OmegaConf, Hydra's runtime state and :mod:`geoloc.io` below it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from geoloc.io import write_json_atomic

log = logging.getLogger(__name__)

#: The file a finished run leaves in its folder: its metrics and config fingerprint.
RUN_METRICS = "metrics.json"
#: The file a run that failed inside a multirun leaves in its folder (the summary names it).
RUN_FAILED = "failed.json"
#: Top-level config keys that do not change what a run computes: a rerun that differs
#: only there (another launcher's thread count, W&B on or off) is the same run.
NOT_RESULTS = ("paths", "threads", "logger", "skip_finished", "sweep", "task_name", "tags")


def resolved(cfg: DictConfig) -> dict:
    """The config as plain containers (what loggers record as hyper-parameters)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # type: ignore[return-value]


def config_fingerprint(cfg: DictConfig) -> str:
    """A digest of what determines a run's results: the resolved config without the keys
    in :data:`NOT_RESULTS`. Two runs with one fingerprint train the same model, as far as
    the config says: the contents of a data file or backbone folder named by path, and
    the code's version, are not in it (a rerun after changing those must not pass
    ``skip_finished``). The output folder is (inside the checkpoint and report paths):
    a sweep folder moved elsewhere trains again."""
    plain = {k: v for k, v in resolved(cfg).items() if k not in NOT_RESULTS}
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()
                          ).hexdigest()


def output_dir(cfg: DictConfig) -> Path | None:
    """The run's folder (``paths.output_dir``), or None outside a Hydra app."""
    try:
        out = OmegaConf.select(cfg, "paths.output_dir")
    except Exception:  # noqa: BLE001 - ${hydra:...} outside a Hydra app
        return None
    return Path(out) if out else None


def job_overrides() -> list[str]:
    """The current Hydra job's command-line overrides ([] outside a Hydra app)."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def in_multirun() -> bool:
    """True inside a job of a Hydra multirun."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def save_run_metrics(cfg: DictConfig, metrics: Mapping[str, float],
                     overrides: Sequence[str] | None = None) -> Path | None:
    """Write ``<output_dir>/metrics.json`` (atomically: a run killed while writing it
    is not finished): the run's metrics, config fingerprint and ``overrides`` (None:
    the Hydra job's own, when there is one)."""
    out = output_dir(cfg)
    if out is None:
        return None
    return write_json_atomic(out / RUN_METRICS, {
        "fingerprint": config_fingerprint(cfg),
        "overrides": list(overrides) if overrides is not None else job_overrides(),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "metrics": {k: float(v) for k, v in metrics.items()
                    if isinstance(v, int | float) and math.isfinite(v)},
    })


def finished_metrics(cfg: DictConfig) -> dict[str, float] | None:
    """The metrics of this run when its folder already holds a finished run of the same
    config (``skip_finished``), else None. A finished run of another config in the
    folder is reported and trained over."""
    out = output_dir(cfg)
    path = out / RUN_METRICS if out is not None else None
    if not cfg.get("skip_finished") or path is None or not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        fingerprint, metrics = saved["fingerprint"], saved["metrics"]
    except (ValueError, KeyError, TypeError) as err:
        log.warning("%s: unreadable (%s); training the run again", path, err)
        return None
    if fingerprint != config_fingerprint(cfg):
        log.warning("%s: finished with another config; training this one", path)
        return None
    return {k: float(v) for k, v in metrics.items()}


def record_failure(cfg: DictConfig, err: BaseException, kind: str) -> Path | None:
    """Write ``<output_dir>/failed.json`` (the error, its kind and the job's overrides),
    and remove a ``metrics.json`` of an earlier run there: a failed run is not
    finished."""
    out = output_dir(cfg)
    if out is None:
        return None
    (out / RUN_METRICS).unlink(missing_ok=True)
    return write_json_atomic(out / RUN_FAILED, {
        "kind": kind, "error": f"{type(err).__name__}: {err}", "overrides": job_overrides(),
        "failed_at": datetime.now(UTC).isoformat(timespec="seconds")})


def start_run(cfg: DictConfig) -> None:
    """Before a run trains: forget an earlier run's outcome in its folder, so that only a
    run that finishes leaves ``metrics.json`` (a crash mid-rerun must not leave the old
    config's numbers to be summarised) and a success clears an earlier failure."""
    out = output_dir(cfg)
    if out is not None:
        for name in (RUN_METRICS, RUN_FAILED):
            (out / name).unlink(missing_ok=True)


def sweep_group(cfg: DictConfig, hydra_cfg: Any = None) -> str | None:
    """The W&B group of a run: ``sweep.group`` when set; in a multirun
    ``<task_name>-<sweep folder name>``; else None (a single run is not grouped)."""
    group = OmegaConf.select(cfg, "sweep.group")
    if group:
        return str(group)
    if hydra_cfg is None:
        if not HydraConfig.initialized():
            return None
        hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    return f"{cfg.get('task_name', 'sweep')}-{Path(str(hydra_cfg.sweep.dir)).name}"


def run_dirname(overrides: str, limit: int = 200) -> str:
    """A run's folder name from its overrides (Hydra's ``override_dirname``, e.g.
    ``crossfit.folds=null,model.encoder_layers=3``), safe as one path component: a
    ``/`` (``backbone.name=/models/xlmr``) becomes ``%``, and a name over ``limit``
    characters (a country list, say) is cut and ended with a hash of the whole, so
    distinct runs keep distinct folders. The ``run_dirname`` resolver of
    ``hydra.sweep.subdir`` (``geoloc/conf/experiment/_ablation.yaml``; registered by
    :mod:`geoloc.config`)."""
    name = str(overrides).replace("/", "%") or "default"
    if len(name) > limit:
        name = name[: limit - 17] + "~" + hashlib.sha256(name.encode()).hexdigest()[:16]
    return name


def split_overrides(overrides: Sequence[str]) -> dict[str, str]:
    """``["a=1", "+b=x"]`` -> ``{"a": "1", "b": "x"}`` (Hydra's ``+``/``~`` dropped)."""
    return {k.lstrip("+~"): v for k, _, v in (str(o).partition("=") for o in overrides)}
