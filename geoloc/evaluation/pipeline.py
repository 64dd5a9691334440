"""Glue between the Lightning entry points and :func:`geoloc.evaluation.run_evaluation`.

``geoloc-train`` calls :func:`evaluate_and_report` after testing the best checkpoint. It only
predicts the ``calib`` split and the evaluated split (``evaluation.split``, default ``test``)
and hands the logits to the pure-numpy library, so the evaluation logic stays testable
without a model. Lightning objects are duck-typed (no import here):
``predict(trainer, module, datamodule, split, ckpt_path)`` must return
``(logits, labels, rows)`` as numpy arrays, and ``module.class_names`` the class names.

Config keys read (group ``evaluation``): ``target_precision``, ``delta``, ``report_dir``,
``split`` (the split evaluated; default ``test``), and optionally ``thresholds`` (path of a
saved thresholds.json to reuse instead of fitting), ``start_counts`` and ``simultaneous``
(see :mod:`geoloc.evaluation.abstention`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from geoloc.evaluation.abstention import DEFAULT_START_COUNTS, Thresholds
from geoloc.evaluation.report import EvaluationResult, run_evaluation

#: Prefix of the returned metrics and of the W&B keys. Not "test/": Lightning's test loop
#: already logs test/acc and test/macro_f1, and the two must not overwrite each other.
PREFIX = "abstain"


def evaluate_and_report(
    cfg: Any,
    trainer: Any,
    module: Any,
    datamodule: Any,
    *,
    ckpt_path: str | None = None,
    wandb_run: Any = None,
    predict: Callable[..., tuple[Any, Any, Any]],
) -> dict[str, float]:
    """Fit temperature + thresholds on ``calib`` (or load ``evaluation.thresholds``),
    evaluate ``evaluation.split`` (default ``test``), write the report to
    ``evaluation.report_dir`` and log it to W&B.

    Returns the finite headline scalars as ``{"abstain/<name>": value}``.
    """
    result = evaluate_from_config(
        cfg,
        trainer,
        module,
        datamodule,
        ckpt_path=ckpt_path,
        wandb_run=wandb_run,
        predict=predict,
    )
    return {
        f"{PREFIX}/{k}": float(v)
        for k, v in result.scalars.items()
        if isinstance(v, int | float) and math.isfinite(v)
    }


def evaluate_from_config(
    cfg: Any,
    trainer: Any,
    module: Any,
    datamodule: Any,
    *,
    ckpt_path: str | None = None,
    wandb_run: Any = None,
    predict: Callable[..., tuple[Any, Any, Any]],
) -> EvaluationResult:
    """Same as :func:`evaluate_and_report` but returns the full result object."""
    ev = cfg.evaluation
    split = str(ev.get("split", None) or "test")
    saved = ev.get("thresholds")
    thresholds = Thresholds.from_json(saved) if saved else None
    cal_logits = cal_labels = None
    if thresholds is None:
        cal_logits, cal_labels, _ = predict(trainer, module, datamodule, "calib", ckpt_path)
    test_logits, test_labels, _ = predict(trainer, module, datamodule, split, ckpt_path)
    return run_evaluation(
        cal_logits,
        cal_labels,
        test_logits,
        test_labels,
        list(module.class_names),
        ev.report_dir,
        target=float(ev.target_precision),
        delta=float(ev.delta),
        thresholds=thresholds,
        wandb_run=wandb_run,
        prefix=PREFIX,
        split=split,
        start_counts=[int(x) for x in ev.get("start_counts", None) or DEFAULT_START_COUNTS],
        simultaneous=bool(ev.get("simultaneous", False)),
    )
