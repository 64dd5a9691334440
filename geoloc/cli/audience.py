"""``geoloc-audience model_dir=… input=… output=… columns.group=…``: where each group's
profiles live, as country shares with intervals, corrected for abstention and
misclassification (see :mod:`geoloc.inference.audience` and ``geoloc/conf/audience.yaml``)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from geoloc.cli import common
from geoloc.config import CONF_DIR
from geoloc.data.schema import ColumnMapping
from geoloc.errors import ConfigError, all_rows_rejected
from geoloc.inference.audience import check_methods, check_options, load_calibration
from geoloc.inference.audience_job import (
    audience_file,
    check_predictions_model,
    prediction_batches,
    profile_batches,
)
from geoloc.inference.job import check_paths
from geoloc.inference.population import PopulationCounter
from geoloc.inference.predictor import Predictor

log = logging.getLogger("geoloc")

KINDS = ("profiles", "predictions")


def audience(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Estimate every group's country mix into ``cfg.output``; returns the counts and the
    objects built (``summary``)."""
    start = time.perf_counter()
    kind = str(cfg.kind)
    if kind not in KINDS:
        raise ConfigError(f"kind={kind!r}: expected one of {', '.join(KINDS)}")
    # the options and files are checked here (one line each, exit 2); errors of the run
    # itself (a bad row, a library failure) are not dressed up as bad options
    with common.option_errors():
        check_options(chunk_rows=cfg.chunk_rows, buckets=cfg.buckets,
                      bootstrap=cfg.bootstrap, level=cfg.level)
        methods = check_methods(list(cfg.methods))
        check_paths(cfg.input, cfg.output, bool(cfg.overwrite))  # before loading a model
        bundle = common.model_bundle(cfg)
        reference, margin = common.population_reference(bundle, cfg)
        thresholds, calibration = load_calibration(bundle)
        names = list(calibration.class_names)
        counter = PopulationCounter(names)
        if kind == "predictions":
            check_predictions_model(Path(cfg.input), bundle.provenance(), bundle.folder,
                                    bool(cfg.allow_unrecorded))
            batches = _counted(prediction_batches(Path(cfg.input), names,
                                                  int(cfg.chunk_rows)), counter)
        else:
            columns = OmegaConf.to_container(cfg.columns, resolve=True)
            if not isinstance(columns, dict) or not columns.get("group"):
                raise ConfigError("columns.group: name the input column that holds each "
                                  "profile's group (e.g. columns.group=influencer)")
            mapping = ColumnMapping.from_dict({**columns, "stated_location": None,
                                               "country": None})
            predictor = Predictor.load(
                bundle, backend=str(cfg.backend), quantized=bool(cfg.quantized),
                batch_size=int(cfg.batch_size), threads=cfg.threads,
                max_length=cfg.max_length,
                allow_precision_mismatch=bool(cfg.allow_precision_mismatch))
            if predictor.class_names != names:
                raise ConfigError(f"{bundle.folder}: the model's classes differ from its "
                                  "calibration data's")
            batches = profile_batches(predictor, Path(cfg.input), mapping, cfg.format,
                                      int(cfg.chunk_rows), counter)
    summary = audience_file(batches, calibration, cfg.input, cfg.output, methods,
                            bootstrap=int(cfg.bootstrap), level=float(cfg.level),
                            seed=int(cfg.seed), buckets=int(cfg.buckets),
                            overwrite=bool(cfg.overwrite), progress=bool(cfg.progress))
    check = common.population_check("geoloc-audience", reference, margin, counter.profile(),
                                    str(cfg.output),
                                    {"model": str(bundle.folder), "class_names": names,
                                     "rows": summary.rows, "kind": kind})
    seconds = time.perf_counter() - start
    metrics = {"rows": summary.rows, "errors": summary.errors, "groups": summary.groups,
               "seconds": seconds,
               "population_shift": float(check.fired) if check is not None else 0.0}
    # bootstrap=0 computes point estimates only: the output has no interval columns
    intervals = (f"{int(cfg.bootstrap)} bootstrap replicates, {100 * float(cfg.level):g} % "
                 "intervals" if int(cfg.bootstrap) else "bootstrap=0: point estimates, no "
                 "intervals")
    print(f"\n## geoloc-audience\n\nrows read:   {summary.rows}\n"
          f"groups:      {summary.groups} -> {summary.output}\n"
          f"bad rows:    {summary.errors} -> {summary.errors_file}\n"
          f"methods:     {', '.join(methods)} ({intervals})\n"
          f"time:        {seconds:.1f} s\n"
          f"population:  {common.NOT_CHECKED if check is None else check.message}", flush=True)
    if kind == "profiles" and (cut := predictor.cut_summary()):
        log.warning("geoloc-audience: %s", cut)
    if summary.rows and summary.errors == summary.rows:  # written, but it did nothing
        raise all_rows_rejected(cfg.input, summary.rows, summary.errors_file)
    return metrics, {"summary": summary, "thresholds": thresholds}


def _counted(batches: Any, counter: PopulationCounter) -> Any:
    """The batches, each also shown to ``counter`` (predictions carry no texts)."""
    for batch in batches:
        counter.add(batch[1])
        yield batch


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="audience")
def _hydra_main(cfg: DictConfig) -> float | None:
    return common.hydra_task("geoloc-audience", audience, cfg, None)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
