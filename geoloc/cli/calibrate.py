"""``geoloc-calibrate model_dir=… input=… output=…``: re-establish the 90 % promise on the
population the model will be used on.

A thin entry point over :mod:`geoloc.training.recalibrate` (labels, keyed split, fit,
audit, the new bundle and its report); see there for what is guaranteed and why the
temperature is kept by default. Every argument and path is checked before the model is
loaded or anything is written; bad rows go to ``OUTPUT.errors.jsonl`` beside the new
model folder, one line each (file, line, field, problem).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from geoloc.bundle import is_bundle
from geoloc.cli import common
from geoloc.config import CONF_DIR
from geoloc.data.readers import require_file
from geoloc.data.schema import ColumnMapping
from geoloc.errors import ConfigError, InputFileError
from geoloc.inference.job import errors_path
from geoloc.inference.predictor import Predictor
from geoloc.io import file_sha256
from geoloc.runs import resolved
from geoloc.training.recalibrate import (
    TEMPERATURES,
    log_wandb,
    read_labelled,
    recalibrate,
    save_recalibrated,
    write_report,
)

log = logging.getLogger("geoloc")


def _check(cfg: DictConfig) -> tuple[ColumnMapping, Path, Path]:
    """The column mapping, output folder and errors file, refused before any work."""
    require_file(Path(str(cfg.input)), "input=")
    output = Path(str(cfg.output))
    if output.resolve() == Path(str(cfg.model_dir)).resolve():
        raise ConfigError(f"output={output}: is the model folder; write the recalibrated "
                          "model to a new folder")
    if output.exists() and not (bool(cfg.overwrite) and is_bundle(output)):
        raise ConfigError(f"output={output}: exists; choose another folder or "
                          "overwrite=true (only a model folder is replaced)")
    fraction = cfg.audit_fraction
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or \
            not 0.0 < fraction < 1.0:
        raise ConfigError(f"audit_fraction={fraction!r}: expected a share in (0, 1)")
    if str(cfg.temperature) not in TEMPERATURES:
        raise ConfigError(f"temperature={cfg.temperature}: expected one of "
                          f"{', '.join(TEMPERATURES)}")
    columns = OmegaConf.to_container(cfg.columns, resolve=True)
    if not isinstance(columns, dict):
        raise ConfigError("columns: expected a mapping of field -> column")
    label, location = cfg.label_column, cfg.location_column
    if not (label or location):
        raise ConfigError("label_column and location_column are both null: name the "
                          "column the labels come from")
    mapping = ColumnMapping.from_dict({
        **{k: v for k, v in columns.items() if k != "group"},
        "stated_location": None if label else str(location),
        "country": str(label) if label else None})
    errors = errors_path(output)
    if errors.is_dir():
        raise ConfigError(f"{errors}: is a directory (the bad rows of output={output} go "
                          "there)")
    report = Path(str(cfg.report_dir))
    if report.exists() and not report.is_dir():
        raise ConfigError(f"report_dir={report}: exists and is not a folder")
    return mapping, output, errors


def calibrate(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Label, split, refit and audit; write the new bundle and its report."""
    start = time.perf_counter()
    with common.option_errors():
        mapping, output, errors = _check(cfg)
        bundle = common.model_bundle(cfg)
        shipped = bundle.thresholds()
        changes = {k: v for k, v in OmegaConf.to_container(cfg.policy, resolve=True).items()
                   if v is not None}
        policy = replace(shipped.policy, **changes)
        quantized = bool(cfg.quantized)
        # the policy is refitted here, so the shipped one may be of the other precision
        predictor = Predictor.load(bundle, backend=str(cfg.backend), quantized=quantized,
                                   batch_size=int(cfg.batch_size), threads=cfg.threads,
                                   allow_precision_mismatch=True)
        rows = read_labelled(cfg.input, mapping, bundle.class_names, errors, cfg.format,
                             float(cfg.min_confidence))
        if not rows.ids:
            raise InputFileError(f"{cfg.input}: no labelled rows ({dict(rows.counts)}); "
                                 "name the label or location column (label_column=, "
                                 "location_column=)")
        result = recalibrate(predictor, rows, policy, str(cfg.split_key),
                             float(cfg.audit_fraction), str(cfg.input),
                             temperature=str(cfg.temperature),
                             scored_with="int8" if quantized else "fp32")
        record = {"input": str(Path(str(cfg.input)).resolve()),
                  "input_sha256": file_sha256(cfg.input), "split_key": str(cfg.split_key),
                  "audit_fraction": float(cfg.audit_fraction),
                  "temperature": str(cfg.temperature),
                  "backend": str(cfg.backend), "quantized": quantized,
                  "counts": {k: int(v) for k, v in rows.counts.items()},
                  "recalibrated_from": str(bundle.folder)}
        new = save_recalibrated(bundle, result, output, record)
        report = write_report(result, cfg.report_dir, str(cfg.input), str(bundle.folder),
                              str(new.folder))
    run = None
    if cfg.get("logger"):
        # imported only with a logger: geoloc.training.build loads PyTorch Lightning
        # (~10 s), which recalibrating an export with ONNX Runtime does without
        from geoloc.training.build import build_loggers, wandb_run

        run = wandb_run(build_loggers(cfg))
    if run is not None:
        run.config.update({**resolved(cfg), "recalibrated": record}, allow_val_change=True)
        log_wandb(result, run, report)
    metrics = {k: float(v) for k, v in result.scalars.items()}
    metrics["seconds"] = time.perf_counter() - start
    s = result.scalars
    print(f"\n## geoloc-calibrate\n\nrows read:    {rows.counts['rows']} (bad rows "
          f"{rows.counts['errors']} -> {errors})\nlabelled:     {len(rows.ids)} "
          f"({int(s['calibration_rows'])} calibration, {int(s['audit_rows'])} audit)\n"
          f"certified:    {int(s['before/countries_certified_own'])} -> "
          f"{int(s['after/countries_certified_own'])} countries on their own\n"
          f"audit:        correct country {100 * s['before/correct_country_rate']:.1f} % -> "
          f"{100 * s['after/correct_country_rate']:.1f} %\n"
          f"model:        {new.folder}\nreport:       {report}\n"
          + (f"wandb run:    {Path(run.dir).parent}\n" if run is not None else "") +
          f"time:         {metrics['seconds']:.1f} s", flush=True)
    return metrics, {"bundle": new, "result": result}


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="calibrate")
def _hydra_main(cfg: DictConfig) -> float | None:
    return common.hydra_task("geoloc-calibrate", calibrate, cfg, None)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
