"""``geoloc-predict model_dir=… input=… output=…``: label a file of profiles.

A thin entry point over :class:`geoloc.inference.predictor.Predictor` (the model and its
saved policy) and :func:`geoloc.inference.job.predict_file` (streaming, resumable file
job); see those modules for what is guaranteed. Prints a summary: rows read, predicted,
errors, UNCERTAIN share and the most assigned countries.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from geoloc.cli import common
from geoloc.config import CONF_DIR
from geoloc.data.schema import ColumnMapping
from geoloc.errors import ConfigError, all_rows_rejected
from geoloc.inference.job import check_paths, predict_file
from geoloc.inference.predictor import Predictor

log = logging.getLogger("geoloc")


def predict(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Load the model, predict ``cfg.input`` into ``cfg.output``; returns the counts and
    the objects built (``predictor``, ``summary``)."""
    start = time.perf_counter()
    with common.option_errors():
        check_paths(cfg.input, cfg.output, bool(cfg.overwrite))  # before loading a model
        columns = OmegaConf.to_container(cfg.columns, resolve=True)
        if not isinstance(columns, dict):
            raise ConfigError("columns: expected a mapping of field -> column")
        mapping = ColumnMapping.from_dict({**columns, "stated_location": None,
                                           "country": None})
        bundle = common.model_bundle(cfg)
        reference, margin = common.population_reference(bundle, cfg)
        predictor = Predictor.load(
            bundle, backend=str(cfg.backend), quantized=bool(cfg.quantized),
            batch_size=int(cfg.batch_size), top_k=int(cfg.top_k), threads=cfg.threads,
            max_length=cfg.max_length, embeddings=bool(cfg.embeddings),
            probabilities=bool(cfg.probabilities),
            allow_precision_mismatch=bool(cfg.allow_precision_mismatch))
        summary = predict_file(predictor, cfg.input, cfg.output, mapping, fmt=cfg.format,
                               chunk_rows=int(cfg.chunk_rows), overwrite=bool(cfg.overwrite),
                               progress=bool(cfg.progress))
    check = common.population_check(
        "geoloc-predict", reference, margin, summary.population, str(cfg.output),
        {"model": str(bundle.folder), "class_names": list(predictor.class_names),
         "provenance": predictor.provenance or None, "predictor": predictor.fingerprint(),
         "rows": summary.rows})
    seconds = time.perf_counter() - start
    metrics = {"rows": summary.rows, "predicted": summary.predicted, "errors": summary.errors,
               "population_shift": float(check.fired) if check is not None else 0.0,
               "uncertain_rate": summary.uncertain / max(summary.predicted, 1),
               "seconds": seconds, "profiles_per_second": summary.rows / max(seconds, 1e-9)}
    top = ", ".join(f"{c} {n}" for c, n in summary.countries.most_common(12))
    print(f"\n## geoloc-predict\n\nrows read:   {summary.rows}\n"
          f"predicted:   {summary.predicted} -> {summary.output}\n"
          f"bad rows:    {summary.errors} -> {summary.errors_file}\n"
          f"UNCERTAIN:   {summary.uncertain} ({100 * metrics['uncertain_rate']:.1f} %)\n"
          f"countries:   {top or 'none'}\n"
          f"chunks:      {summary.chunks} ({summary.chunks_resumed} done by an earlier run)\n"
          f"time:        {seconds:.1f} s ({metrics['profiles_per_second']:.1f} profiles/s)\n"
          f"population:  {common.NOT_CHECKED if check is None else check.message}",
          flush=True)
    if cut := predictor.cut_summary():
        log.warning("geoloc-predict: %s", cut)
    if summary.rows and not summary.predicted:  # the files are written; the run did nothing
        raise all_rows_rejected(cfg.input, summary.rows, summary.errors_file)
    return metrics, {"predictor": predictor, "summary": summary}


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="predict")
def _hydra_main(cfg: DictConfig) -> float | None:
    return common.hydra_task("geoloc-predict", predict, cfg, None)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
