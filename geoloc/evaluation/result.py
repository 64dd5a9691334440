"""What an evaluation computes: one :class:`EvaluationResult` per evaluated split.

:func:`evaluate_split` turns a split's logits and labels, under a fitted abstention policy,
into tables (pandas), figures (matplotlib) and scalars. Nothing here writes files or talks
to W&B: :mod:`geoloc.evaluation.render` renders the same object to the report folder and
to the W&B run, so the two can never disagree.

**Metric names.** Inside the result, scalars have short names (``accuracy``, ``ece``,
``coverage``); wherever they leave it (W&B, the entry points' returned metrics) they carry
the group that says what they measure (:data:`METRIC_GROUPS`): ``eval/`` for the argmax
classifier on the evaluated split, ``calibration/`` for temperature scaling, and
``abstain/`` for the policy with UNCERTAIN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from geoloc.evaluation.abstention import (
    ASSIGNED,
    UNCERTAIN_INDEX,
    Thresholds,
    guarantee_statement,
)
from geoloc.evaluation.calibration import (
    CalibrationSummary,
    calibration_summary,
    reliability_figure,
    softmax,
)
from geoloc.evaluation.figures import confusion_figure, per_class_table_figure
from geoloc.evaluation.metrics import ECE_BINS, check_outputs, compute_metrics
from geoloc.evaluation.stats import (
    binomial_se,
    bootstrap_macro_f1_se,
    clopper_pearson,
    ratio,
)
from geoloc.evaluation.sweep import (
    precision_threshold_figure,
    risk_coverage_figure,
    threshold_sweep,
)
from geoloc.labels import OTHER, UNCERTAIN

#: The group (name prefix outside the result) of each scalar that is not an ``abstain/``
#: one: ``eval/`` = argmax classifier on the evaluated split, ``calibration/`` =
#: temperature scaling (fitted on the calibration split, measured on the evaluated one).
METRIC_GROUPS: dict[str, str] = {
    **dict.fromkeys(("n_samples", "n_classes", "accuracy", "accuracy_se", "macro_f1",
                     "macro_f1_se"), "eval"),
    **dict.fromkeys(("ece", "ece_uncalibrated", "nll", "nll_uncalibrated", "temperature",
                     "calibration_samples"), "calibration"),
}


def metric_key(name: str) -> str:
    """The full name of a result scalar: ``eval/…``, ``calibration/…`` or ``abstain/…``."""
    return f"{METRIC_GROUPS.get(name, 'abstain')}/{name}"


@dataclass
class EvaluationResult:
    """Everything the report shows, computed once."""

    split: str
    class_names: list[str]
    thresholds: Thresholds
    scalars: dict[str, float]
    """Headline numbers; keys are listed in the module's report and W&B docs."""
    tables: dict[str, pd.DataFrame]
    figures: dict[str, Figure]
    flagged: list[str]
    """Countries with a threshold and >= 1 assignment whose precision here is below target."""
    never_assigned: dict[str, str]
    """Class -> status for classes without a finite threshold (never assigned)."""
    labels: np.ndarray
    predictions: np.ndarray
    """Argmax class per profile (no abstention)."""
    decisions: np.ndarray
    """Class per profile after abstention, -1 for UNCERTAIN."""
    fitted: bool = False
    """True when the thresholds were fitted in this evaluation (not loaded)."""
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def metrics(self) -> dict[str, float]:
        """The finite scalars under their full names (:func:`metric_key`): what W&B and
        the entry points report."""
        return {
            metric_key(k): float(v)
            for k, v in self.scalars.items()
            if isinstance(v, int | float) and math.isfinite(v)
        }


def evaluate_split(
    logits: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    thresholds: Thresholds,
    *,
    split: str = "test",
    calibration: CalibrationSummary | None = None,
    grid: np.ndarray | None = None,
    n_bins: int = ECE_BINS,
    fitted: bool = False,
) -> EvaluationResult:
    """Evaluate raw ``logits`` of one split under a fitted abstention policy.

    ``calibration`` is the calibration-split :class:`CalibrationSummary` (shown next to
    this split's own before/after numbers when given).
    """
    logits, labels, names = check_outputs(logits, labels, class_names)
    if list(thresholds.class_names) != names:
        raise ValueError(
            f"thresholds were fitted for classes {thresholds.class_names}, not {names}"
        )
    target = thresholds.target
    probs = softmax(logits, thresholds.temperature)
    metrics = compute_metrics(probs, labels, names, n_bins=n_bins)
    cal_here = calibration_summary(logits, labels, thresholds.temperature, split, n_bins)
    predictions = probs.argmax(axis=1)
    decisions = thresholds.apply(probs)
    n = len(labels)
    c = len(names)

    # --- per-class table: argmax metrics + policy + what abstention does on this split
    pc = metrics.per_class.copy()
    tvec = thresholds.vector()
    pc["threshold"] = tvec
    pc["status"] = [
        thresholds.calibration[nm].status
        if nm in thresholds.calibration
        else (ASSIGNED if np.isfinite(t) else "never_assigned")
        for nm, t in zip(names, tvec, strict=True)
    ]
    cal_info = [thresholds.calibration.get(nm) for nm in names]
    pc["guarantee"] = [ci.guarantee if ci else ("class" if np.isfinite(t) else "none")
                       for ci, t in zip(cal_info, tvec, strict=True)]
    pc["cal_support"] = [ci.n_support if ci else np.nan for ci in cal_info]
    pc["cal_predicted"] = [ci.n_predicted if ci else np.nan for ci in cal_info]
    pc["cal_kept"] = [ci.n_kept if ci else np.nan for ci in cal_info]
    pc["cal_precision"] = [
        ci.precision if ci and ci.precision is not None else np.nan for ci in cal_info
    ]
    pc["cal_lower_bound"] = [
        ci.lower_bound if ci and ci.lower_bound is not None else np.nan for ci in cal_info
    ]
    # a pooled country's group numbers, apart from its own (a pool is not a country)
    for col, attr in (("pool_threshold", "pool_threshold"), ("pool_kept", "pool_n_kept"),
                      ("pool_precision", "pool_precision"),
                      ("pool_lower_bound", "pool_lower_bound")):
        pc[col] = [getattr(ci, attr) if ci and ci.pool and getattr(ci, attr) is not None
                   else np.nan for ci in cal_info]
    pc["guarantee_statement"] = [guarantee_statement(thresholds, nm) for nm in names]
    assigned = np.bincount(decisions[decisions >= 0], minlength=c)
    hit = (decisions == labels) & (decisions >= 0)
    assigned_correct = np.bincount(labels[hit], minlength=c)
    pc["assigned"] = assigned
    pc["assigned_correct"] = assigned_correct
    pc["precision_abstain"] = ratio(assigned_correct, assigned)
    # Two-sided exact 95 % interval of precision after abstention (undefined with no
    # assignment): the same Clopper-Pearson function the policy tests with.
    none = assigned == 0
    low = np.where(none, np.nan, clopper_pearson(assigned_correct, assigned, 0.025, "lower"))
    high = np.where(none, np.nan, clopper_pearson(assigned_correct, assigned, 0.025, "upper"))
    pc["precision_ci95_low"] = low
    pc["precision_ci95_high"] = high
    pc["recall_abstain"] = ratio(assigned_correct, pc["support"].to_numpy())
    pc["kept_share"] = ratio(assigned, pc["predicted"].to_numpy())
    evaluable = np.isfinite(tvec) & (assigned > 0)
    pc["meets_target"] = pd.array(
        [
            bool(p >= target) if e else pd.NA
            for p, e in zip(pc["precision_abstain"], evaluable, strict=True)
        ],
        dtype="boolean",
    )
    pc["flagged"] = evaluable & (pc["precision_abstain"].to_numpy() < target)

    # the audit of this split per family (a country certified alone, or the pooled group):
    # the one-sided lower bound of precision at the policy's delta. Honest only when
    # nothing was chosen on this split (the real recipe trains fixed epochs for that).
    pc["audit_lower_bound"] = np.where(none, np.nan, clopper_pearson(
        assigned_correct, assigned, thresholds.delta, "lower"))
    pooled = (pc["guarantee"] == "pooled").to_numpy()
    pool_k, pool_r = int(assigned[pooled].sum()), int(assigned_correct[pooled].sum())

    countries = pc[pc["is_country"]]
    flagged = countries.loc[countries["flagged"], "class"].tolist()
    never = {
        nm: st for nm, st, t in zip(names, pc["status"], tvec, strict=True) if not np.isfinite(t)
    }

    # --- headline scalars
    kept = decisions != UNCERTAIN_INDEX
    other_idx = names.index(OTHER) if OTHER in names else None
    country_dec = kept if other_idx is None else kept & (decisions != other_idx)
    scalars: dict[str, float] = {
        "n_samples": n,
        "n_classes": c,
        "accuracy": metrics.accuracy,
        "accuracy_se": binomial_se(metrics.accuracy, n),
        "macro_f1": metrics.macro_f1,
        "macro_f1_se": bootstrap_macro_f1_se(labels, predictions, c),
        "ece": metrics.ece,
        "ece_uncalibrated": cal_here.ece_before,
        "nll": cal_here.nll_after,
        "nll_uncalibrated": cal_here.nll_before,
        "temperature": thresholds.temperature,
        "target_precision": target,
        "delta": thresholds.delta,
        "calibration_samples": thresholds.n_calibration,
        "coverage": float(kept.mean()),
        "uncertain_rate": float(1 - kept.mean()),
        "correct_assigned_rate": float(hit.mean()),
        "country_assigned_rate": float(country_dec.mean()),
        "correct_country_rate": float((country_dec & hit).mean()),
        "correct_country_rate_se": binomial_se(float((country_dec & hit).mean()), n),
        "selective_accuracy": float(hit.sum() / kept.sum()) if kept.any() else math.nan,
        "country_precision": (
            float((country_dec & hit).sum() / country_dec.sum()) if country_dec.any() else math.nan
        ),
        "countries_total": int(len(countries)),
        "countries_with_threshold": int(np.isfinite(countries["threshold"]).sum()),
        # certified alone vs. only as members of the pooled group: never added up
        "countries_certified_own": int((countries["guarantee"] == "class").sum()),
        "countries_certified_pooled": int((countries["guarantee"] == "pooled").sum()),
        "countries_assigned": int(
            (np.isfinite(countries["threshold"]) & (countries["assigned"] > 0)).sum()
        ),
        "countries_meeting_target": int(countries["meets_target"].fillna(False).sum()),
        "countries_below_target": len(flagged),
        "pool_assigned": pool_k,
        "pool_precision": pool_r / pool_k if pool_k else math.nan,
        "pool_lower_bound": float(clopper_pearson(pool_r, pool_k, thresholds.delta))
        if pool_k else math.nan,
        "countries_never_assigned": int((~np.isfinite(countries["threshold"])).sum()),
    }
    if other_idx is not None:
        o = pc.iloc[other_idx]
        scalars.update(
            {
                "other_has_threshold": int(np.isfinite(o["threshold"])),
                "other_threshold": float(o["threshold"])
                if np.isfinite(o["threshold"])
                else math.nan,
                "other_assigned_rate": float(o["assigned"] / n),
                "other_precision": float(o["precision_abstain"]),
                "other_recall": float(o["recall_abstain"]),
                "other_below_target": int(bool(o["flagged"])),
            }
        )

    # --- tables
    sweep = threshold_sweep(probs, labels, names, grid=grid)
    confusion_abstain = pd.crosstab(
        pd.Categorical(np.asarray(names)[labels], categories=names),
        pd.Categorical(
            [UNCERTAIN if d < 0 else names[d] for d in decisions], categories=[*names, UNCERTAIN]
        ),
        dropna=False,
    )
    confusion_abstain.index.name = "true"
    confusion_abstain.columns.name = None
    cal_rows = [cal_here] + ([calibration] if calibration is not None else [])
    calibration_table = pd.DataFrame(
        [
            {
                "split": s.split,
                "stage": stage,
                "temperature": 1.0 if stage == "before" else s.temperature,
                "n": s.n,
                "nll": nll,
                "ece": ece,
            }
            for s in cal_rows
            for stage, nll, ece in (
                ("before", s.nll_before, s.ece_before),
                ("after", s.nll_after, s.ece_after),
            )
        ]
    )
    off = metrics.confusion.to_numpy().copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None)[::-1][:10]
    top_conf = pd.DataFrame(
        [
            {
                "true": names[i],
                "predicted": names[j],
                "count": int(off[i, j]),
                "share_of_true": float(off[i, j] / max(1, metrics.per_class["support"].iat[i])),
            }
            for i, j in zip(*np.unravel_index(order, off.shape), strict=True)
            if off[i, j] > 0
        ],
        columns=["true", "predicted", "count", "share_of_true"],
    )
    tables = {
        "per_class": pc,
        "sweep": sweep,
        "confusion": metrics.confusion,
        "confusion_normalized": metrics.confusion_normalized,
        "confusion_abstain": confusion_abstain,
        "reliability": cal_here.bins.assign(split=split),
        "calibration": calibration_table,
        "top_confusions": top_conf,
    }

    # --- figures
    op = (scalars["coverage"], 1 - scalars["selective_accuracy"])
    figures = {
        "per_country": per_class_table_figure(
            pc,
            target,
            f"{split}: per-country precision/recall after abstention "
            f"(target {100 * target:.0f}%; red = below target)",
        ),
        "reliability": reliability_figure(cal_here),
        "risk_coverage": risk_coverage_figure(sweep, op, title=f"{split}: risk-coverage"),
        "precision_threshold": precision_threshold_figure(
            sweep, thresholds.thresholds, target, flagged, title=f"{split}:"
        ),
        "confusion": confusion_figure(
            metrics.confusion_normalized, f"{split}: confusion (row-normalised)"
        ),
    }
    return EvaluationResult(
        split=split,
        class_names=names,
        thresholds=thresholds,
        scalars=scalars,
        tables=tables,
        figures=figures,
        flagged=flagged,
        never_assigned=never,
        labels=labels,
        predictions=predictions,
        decisions=decisions,
        fitted=fitted,
    )
