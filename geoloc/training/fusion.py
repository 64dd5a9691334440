"""Fusion fitting: the char n-gram model fitted on the transformer's rows, its ``C`` and
weight chosen on the calibration outputs, the fused outputs the policy is fitted on
(:mod:`geoloc.model.ngram` holds the model and the fusion rule)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from geoloc.evaluation import SplitOutputs
from geoloc.evaluation.calibration import fit_temperature, nll
from geoloc.model.ngram import (
    CharNgramLR,
    Fusion,
    FusionConfig,
    fuse,
    place_evidence,
    select_fusion,
)

log = logging.getLogger(__name__)


def ngram_by_c(fusion: FusionConfig, datamodule: Any, split: str, rows: np.ndarray
               ) -> tuple[dict[float, CharNgramLR], dict[float, np.ndarray]]:
    """One n-gram model per ``C`` of the fusion grid, each fitted on the datamodule's train
    split (the transformer's rows), and their log-probabilities of ``rows`` of ``split``."""
    train = datamodule.datasets["train"]
    texts, labels = list(train["text"]), list(train["labels"])
    target = datamodule.texts(split, rows)
    n_classes = len(datamodule.label_set.names)
    models, out = {}, {}
    for c in tqdm(fusion.C_grid, desc=f"n-gram models on {len(texts)} rows", unit="C"):
        models[c] = fusion.model(n_classes, c).fit(texts, labels)
        out[c] = models[c].log_proba(target)
    return models, out


def fit_fusion(fusion: FusionConfig, datamodule: Any, calib: SplitOutputs,
               evaluated: SplitOutputs, split: str,
               calib_ngram: dict[float, np.ndarray] | None = None,
               calib_texts: list[str] | None = None
               ) -> tuple[Fusion, SplitOutputs, SplitOutputs, dict[str, float]]:
    """Choose the n-gram model's ``C`` and the weight on the calibration outputs, fit the
    deployed n-gram model on the datamodule's train split, and fuse.

    ``calib`` are the transformer's calibration outputs: out-of-fold (then
    ``calib_ngram`` holds the n-gram model's out-of-fold log-probabilities per ``C``, from
    the same folds, and ``calib_texts`` their texts, for the place expert) or the calib
    split's (then the n-gram models are fitted on the train split and predict it here).
    Returns the fitted :class:`Fusion`, the fused calibration
    and evaluated outputs, and ``fusion/*`` metrics: the choice, and each part's and the
    fusion's accuracy on the evaluated split.
    """
    fitted_on_train: dict[float, CharNgramLR] = {}
    if calib_ngram is None:  # the models that predict the calib split are the deployed ones
        fitted_on_train, calib_ngram = ngram_by_c(fusion, datamodule, "calib", calib.rows)
    names = list(datamodule.label_set.names)
    calib_places = None
    if any(fusion.place_weights):
        if calib_texts is None:
            calib_texts = datamodule.texts("calib", calib.rows)
        calib_places = place_evidence(calib_texts, names)
    c, weight, place_weight, trials = select_fusion(
        calib.logits, calib_ngram, calib.labels, fusion.weights, calib_places,
        fusion.place_weights)
    log.info("fusion: C=%g, weight %.2g on the transformer, %g on places (of %d candidates)",
             c, weight, place_weight, len(trials))
    model = fitted_on_train.get(c)
    if model is None:  # cross-fit: refit on all the pooled rows the deployed model saw
        train = datamodule.datasets["train"]
        model = fusion.model(len(names), c).fit(list(train["text"]), list(train["labels"]))
    fitted = Fusion(model=model, weight=weight, trials=trials, place_weight=place_weight,
                    class_names=names if place_weight else None)
    eval_texts = datamodule.texts(split, evaluated.rows)
    ngram_eval = model.log_proba(eval_texts)
    fused_calib = replace(calib, logits=fuse(calib.logits, calib_ngram[c], weight,
                                             calib_places, place_weight))
    fused_eval = replace(evaluated, logits=fuse(evaluated.logits, ngram_eval, weight,
                                                fitted.places(eval_texts), place_weight))
    chosen = next(t for t in trials
                  if (t["C"], t["weight"], t["place_weight"]) == (c, weight, place_weight))

    def acc(logits: np.ndarray) -> float:
        return float((logits.argmax(axis=1) == evaluated.labels).mean())

    metrics = {
        "fusion/weight": weight, "fusion/C": c, "fusion/place_weight": place_weight,
        "fusion/calib_nll": chosen["nll"],
        "fusion/calib_nll_transformer": nll(calib.logits, calib.labels,
                                            fit_temperature(calib.logits, calib.labels)),
        f"fusion/{split}_acc_transformer": acc(evaluated.logits),
        f"fusion/{split}_acc_ngram": acc(ngram_eval),
        f"fusion/{split}_acc_fused": acc(fused_eval.logits),
    }
    return fitted, fused_calib, fused_eval, metrics
