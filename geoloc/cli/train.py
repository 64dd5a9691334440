"""``geoloc-train``: fit, calibrate, evaluate with calibrated abstention, and save the
model bundle (``<run>/model/``, :mod:`geoloc.bundle`) that every later command takes.

Reads top to bottom like the lightning-hydra-template's train.py: compose (Hydra) → fit
→ calibrate → evaluate → save the bundle; returns the metric named by
``optimized_metric`` so a Hydra sweeper can optimise it. Validation, W&B closing and
error handling are :func:`geoloc.cli.common.hydra_task`'s; the steps are library
functions (:mod:`geoloc.training`).

With ``crossfit.folds=K`` the policy is fitted on the out-of-fold predictions of K fold
models and applied to a refit on all their rows (:mod:`geoloc.training.calibrate` says
why the thresholds carry over), or with ``crossfit.deploy=soup`` to the fold models'
averaged weights (no refit). With ``fusion=char_ngram`` a character n-gram model is
fitted on the same rows (and folds), its weight chosen on the calibration outputs, and
the fused log-probabilities are what the policy is fitted on and applied to
(:mod:`geoloc.training.fusion`); it is saved in the bundle with the thresholds.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from geoloc.bundle import Bundle, is_bundle
from geoloc.bundle.files import THRESHOLDS_FILE as BUNDLE_THRESHOLDS
from geoloc.cli import common
from geoloc.config import CONF_DIR
from geoloc.data.splits import CrossFitFold
from geoloc.errors import ConfigError
from geoloc.evaluation import (
    PolicyConfig,
    SplitOutputs,
    Thresholds,
    evaluate_logits,
    evaluate_split,
)
from geoloc.evaluation.render import THRESHOLDS_FILE as REPORT_THRESHOLDS
from geoloc.inference.population import PopulationProfile
from geoloc.model.ngram import Fusion
from geoloc.runs import finished_metrics, resolved, save_run_metrics, start_run
from geoloc.training.build import (
    build_fusion,
    build_loggers,
    build_policy,
    wandb_run,
    wandb_run_dir,
)
from geoloc.training.calibrate import calibration_outputs, crossfit
from geoloc.training.fit import fit, soup, warn_slow_bf16

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Run one training job on a validated config (see :func:`geoloc.cli.common.run_task`).

    Returns every metric (floats) and the objects built: ``module`` (holding the weights
    of the best checkpoint, which testing and evaluation loaded), ``datamodule``,
    ``trainer``, ``result`` (the :class:`~geoloc.evaluation.EvaluationResult`),
    ``ckpt_path`` and ``bundle`` (the saved :class:`~geoloc.bundle.Bundle`).
    """
    finished = finished_metrics(cfg)
    if finished is not None and is_bundle(Path(str(cfg.paths.model_dir))):
        # a rerun sweep: this run already finished, same config, and its model is there
        log.info("geoloc-train: %s already holds this run's metrics (skip_finished); "
                 "not training it again", cfg.paths.output_dir)
        return finished, {}
    start_run(cfg)
    warn_slow_bf16(cfg)  # once per job, not once per fold model
    started = time.time()
    folds = int(cfg.get("crossfit", {}).get("folds") or 0)
    policy = build_policy(cfg)
    if isinstance(policy, Thresholds) and policy.fitted_with:
        # a policy fitted on another model's outputs certifies nothing about this one
        raise ConfigError(f"evaluation.thresholds={cfg.evaluation.thresholds}: fitted on "
                          "another model (its fitted_with record names its weights); "
                          "leave it unset to fit this model's policy")
    fusion = build_fusion(cfg)

    # 1. fit: the fold models of a cross-fit first (their out-of-fold outputs calibrate),
    #    then the deployed model on all the rows they shared out
    cross = crossfit(cfg, folds, fusion) if folds and isinstance(policy, PolicyConfig) else None
    metrics: dict[str, float] = dict(cross.metrics) if cross is not None else {}
    loggers = build_loggers(cfg)
    for lg in loggers:
        lg.log_hyperparams(resolved(cfg))
    if cross is not None and cross.soup is not None:  # crossfit.deploy=soup
        fitted = soup(cfg, loggers, cross.soup, folds)
    else:
        fitted = fit(cfg, loggers, fold=CrossFitFold(folds, None) if folds else None)
    metrics.update(fitted.metrics)
    metrics["cost/train_minutes"] = round((time.time() - started) / 60, 3)
    if fitted.rank != 0:  # multi-process training: the first process goes on (fit)
        return metrics, {"module": fitted.module, "datamodule": fitted.datamodule,
                         "trainer": fitted.trainer, "ckpt_path": fitted.ckpt_path}
    module, datamodule, trainer = fitted.module, fitted.datamodule, fitted.trainer
    if cfg.get("test"):
        trainer.test(module, datamodule=datamodule, ckpt_path=fitted.ckpt_path,
                     weights_only=True)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})

    # 2. calibrate: the outputs the policy is fitted on, and the evaluated split's, fused
    calibrated = calibration_outputs(fitted, policy, fusion, cross)
    metrics.update(calibrated.metrics)

    # 3. evaluate: fit the policy, apply it, write the report and log it
    run = wandb_run(loggers)
    split = datamodule.eval_split
    evaluated = calibrated.evaluated
    result = evaluate_logits(calibrated.calib, evaluated, list(module.class_names), policy,
                             split=split, report_dir=str(cfg.evaluation.report_dir),
                             wandb_run=run, texts=datamodule.texts(split, evaluated.rows),
                             ids=datamodule.ids(split, evaluated.rows))
    evaluation = result.metrics()
    metrics.update(evaluation)
    if cross is not None and cross.ensemble is not None and result.fitted:
        metrics.update(ensemble_metrics(cross.ensemble, calibrated.fusion, result.thresholds,
                                        datamodule, split))
    if run is not None:
        run.summary.update({k: v for k, v in metrics.items()
                            if k.startswith(("crossfit/", "fusion/", "ensemble/"))})

    # 4. save the bundle: everything a later command needs, in one folder, with the
    #    record of the population the policy was fitted on (geoloc-predict checks inputs)
    calib = calibrated.calib if result.fitted else None
    population = None
    if calib is not None:
        texts = cross.texts if cross is not None else datamodule.texts("calib", calib.rows)
        population = PopulationProfile.of(
            result.thresholds.probabilities(calib.logits), texts, list(module.class_names),
            source="out-of-fold outputs of training" if cross is not None else
            "the calib split of training")
    bundle = Bundle.save(Path(str(cfg.paths.model_dir)), module, result.thresholds,
                         data=dict(datamodule.hparams), calibration=calib,
                         fusion=calibrated.fusion, metrics=evaluation, population=population,
                         stamp=result.fitted)
    if result.fitted:  # the report's copy is the bundle's, byte for byte (its fusion
        # names that file's SHA-256: geoloc-eval evaluation.thresholds=<report copy> pairs)
        shutil.copyfile(bundle.path(BUNDLE_THRESHOLDS),
                        Path(str(cfg.evaluation.report_dir)) / REPORT_THRESHOLDS)
    metrics["minutes"] = round((time.time() - started) / 60, 2)
    if run is not None:
        run.summary.update({k: v for k, v in metrics.items() if k.startswith("cost/")})
    save_run_metrics(cfg, metrics)  # last: its presence means the run finished
    fused = calibrated.fusion
    common.print_summary(
        "geoloc-train: test metrics",
        metrics,
        {
            "model": str(bundle.folder),
            "checkpoint": str(fitted.ckpt_path),
            "report": str(cfg.evaluation.report_dir),
            "wandb run": str(wandb_run_dir(run)),
            "split sizes": str(datamodule.split_sizes()),
            "calibration": (f"{folds}-fold cross-fit, {len(cross.oof.labels)} out-of-fold "
                            "rows" if cross is not None else "the calib split"),
            "fusion": (f"char n-gram LR (C={fused.model.C:g}), weight {fused.weight:g} "
                       "on the transformer" + (f", {fused.place_weight:g} on place evidence"
                                               if fused.place_weight else "")
                       if fused is not None else "none"),
            # test/* and abstain/* are measured on this split (val for the real tweets)
            "evaluated split": split,
        },
    )
    return metrics, {"module": module, "datamodule": datamodule, "trainer": trainer,
                     "result": result, "ckpt_path": fitted.ckpt_path, "bundle": bundle}


#: What the fold ensemble is reported on: ensemble/<name> <- the evaluation's <key>.
ENSEMBLE_METRICS = {"accuracy": "eval/accuracy", "macro_f1": "eval/macro_f1",
                    "correct_country_rate": "abstain/correct_country_rate",
                    "country_precision": "abstain/country_precision"}


def ensemble_metrics(ensemble: SplitOutputs, fusion: Fusion | None, thresholds: Thresholds,
                     datamodule: Any, split: str) -> dict[str, float]:
    """The K fold models' ensemble on the evaluated split (fused like the deployed model,
    under the same policy): issue 22's fold-ensemble lever, measured in every cross-fit
    beside the refit or soup that is deployed, so choosing between them needs no extra
    run. Reported only; the policy was fitted on single fold models' outputs, which the
    ensemble averages, so it is the deployed network's certificate, not this one's."""
    logits = ensemble.logits
    if fusion is not None:
        logits = fusion.apply(logits, datamodule.texts(split, ensemble.rows))
    got = evaluate_split(logits, ensemble.labels, list(thresholds.class_names), thresholds,
                         split=split).metrics()
    return {f"ensemble/{name}": float(got[key]) for name, key in ENSEMBLE_METRICS.items()
            if got.get(key) is not None}


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    return common.hydra_task("geoloc-train", train, cfg, cfg.get("optimized_metric"))


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
