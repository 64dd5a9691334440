"""One reporting code path: compute everything once, then write it locally and/or to W&B.

:func:`evaluate_split` (or :func:`build_report`, which also fits the policy) produces an
:class:`EvaluationResult` holding tables (pandas DataFrames), figures (matplotlib
Figures) and scalars (a dict). :func:`write_local` and :func:`log_wandb` only *render*
that object, so the Markdown report and the W&B run can never disagree.
:func:`run_evaluation` is the convenience entry point used by training and ``geoloc-eval``.
"""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.stats import beta

from geoloc.evaluation.abstention import (
    ASSIGNED,
    DEFAULT_START_COUNTS,
    METHOD,
    METHOD_DESCRIPTION,
    STATUS_TEXT,
    UNCERTAIN_INDEX,
    Thresholds,
    fit_abstention,
)
from geoloc.evaluation.calibration import (
    CalibrationSummary,
    calibration_summary,
    reliability_figure,
    softmax,
)
from geoloc.evaluation.figures import confusion_figure, figure_png, per_class_table_figure
from geoloc.evaluation.metrics import ECE_BINS, check_outputs, compute_metrics
from geoloc.evaluation.sweep import (
    ALL,
    _ratio,
    precision_threshold_figure,
    risk_coverage_figure,
    threshold_sweep,
)
from geoloc.labels import OTHER, UNCERTAIN

log = logging.getLogger(__name__)

#: Files :func:`write_local` writes (thresholds.json comes from :func:`run_evaluation`).
TABLE_FILES = {
    "per_class": "per_class.csv",
    "sweep": "sweep.csv",
    "confusion": "confusion.csv",
    "confusion_normalized": "confusion_normalized.csv",
    "confusion_abstain": "confusion_abstain.csv",
    "reliability": "reliability.csv",
    "calibration": "calibration.csv",
    "top_confusions": "top_confusions.csv",
}
FIGURE_FILES = {
    "per_country": "per_country.png",
    "reliability": "reliability.png",
    "risk_coverage": "risk_coverage.png",
    "precision_threshold": "precision_threshold.png",
    "confusion": "confusion.png",
}
REPORT_FILE = "report.md"
SUMMARY_FILE = "summary.json"
THRESHOLDS_FILE = "thresholds.json"


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


def _clopper_pearson_interval(k: np.ndarray, n: np.ndarray, level: float = 0.95):
    """Exact two-sided interval per element (NaN where n = 0). Vectorised beta quantiles."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    a = (1 - level) / 2
    with np.errstate(invalid="ignore"):
        low = np.where(k > 0, beta.ppf(a, np.maximum(k, 1), n - k + 1), 0.0)
        high = np.where(k < n, beta.ppf(1 - a, k + 1, np.maximum(n - k, 1)), 1.0)
    low = np.where(n > 0, low, np.nan)
    high = np.where(n > 0, high, np.nan)
    return low, high


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
    pc["cal_predicted"] = [ci.n_predicted if ci else np.nan for ci in cal_info]
    pc["cal_kept"] = [ci.n_kept if ci else np.nan for ci in cal_info]
    pc["cal_precision"] = [
        ci.precision if ci and ci.precision is not None else np.nan for ci in cal_info
    ]
    pc["cal_lower_bound"] = [
        ci.lower_bound if ci and ci.lower_bound is not None else np.nan for ci in cal_info
    ]
    assigned = np.bincount(decisions[decisions >= 0], minlength=c)
    hit = (decisions == labels) & (decisions >= 0)
    assigned_correct = np.bincount(labels[hit], minlength=c)
    pc["assigned"] = assigned
    pc["assigned_correct"] = assigned_correct
    pc["precision_abstain"] = _ratio(assigned_correct, assigned)
    low, high = _clopper_pearson_interval(assigned_correct, assigned)
    pc["precision_ci95_low"] = low
    pc["precision_ci95_high"] = high
    pc["recall_abstain"] = _ratio(assigned_correct, pc["support"].to_numpy())
    pc["kept_share"] = _ratio(assigned, pc["predicted"].to_numpy())
    evaluable = np.isfinite(tvec) & (assigned > 0)
    pc["meets_target"] = pd.array(
        [
            bool(p >= target) if e else pd.NA
            for p, e in zip(pc["precision_abstain"], evaluable, strict=True)
        ],
        dtype="boolean",
    )
    pc["flagged"] = evaluable & (pc["precision_abstain"].to_numpy() < target)

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
        "macro_f1": metrics.macro_f1,
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
        "selective_accuracy": float(hit.sum() / kept.sum()) if kept.any() else math.nan,
        "country_precision": (
            float((country_dec & hit).sum() / country_dec.sum()) if country_dec.any() else math.nan
        ),
        "countries_total": int(len(countries)),
        "countries_with_threshold": int(np.isfinite(countries["threshold"]).sum()),
        "countries_assigned": int(
            (np.isfinite(countries["threshold"]) & (countries["assigned"] > 0)).sum()
        ),
        "countries_meeting_target": int(countries["meets_target"].fillna(False).sum()),
        "countries_below_target": len(flagged),
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


def build_report(
    cal_logits: np.ndarray | None,
    cal_labels: np.ndarray | None,
    test_logits: np.ndarray,
    test_labels: np.ndarray,
    class_names: Sequence[str],
    *,
    target: float = 0.9,
    delta: float = 0.05,
    thresholds: Thresholds | None = None,
    split: str = "test",
    grid: np.ndarray | None = None,
    start_counts: Sequence[int] = DEFAULT_START_COUNTS,
    simultaneous: bool = False,
    n_bins: int = ECE_BINS,
) -> EvaluationResult:
    """Fit temperature + thresholds on the calibration split (unless ``thresholds`` is
    given), then evaluate the test split. The calibration split may be None only when
    ``thresholds`` is given."""
    fitted = thresholds is None
    if thresholds is None:
        if cal_logits is None or cal_labels is None:
            raise ValueError("a calibration split is needed to fit thresholds")
        thresholds = fit_abstention(
            cal_logits,
            cal_labels,
            class_names,
            target=target,
            delta=delta,
            grid=grid,
            start_counts=start_counts,
            simultaneous=simultaneous,
        )
    elif not math.isclose(target, thresholds.target):
        log.warning("using the saved thresholds' target %.3g, not %.3g", thresholds.target, target)
    cal_summary = None
    if cal_logits is not None and cal_labels is not None:
        cal_logits, cal_labels, _ = check_outputs(cal_logits, cal_labels, class_names)
        cal_summary = calibration_summary(
            cal_logits, cal_labels, thresholds.temperature, "calibration", n_bins
        )
    return evaluate_split(
        test_logits,
        test_labels,
        class_names,
        thresholds,
        split=split,
        calibration=cal_summary,
        grid=grid,
        n_bins=n_bins,
        fitted=fitted,
    )


# ----------------------------------------------------------------------------- rendering


def _md_table(df: pd.DataFrame) -> str:
    """Minimal GitHub-Markdown table. Hand-written because pandas' ``to_markdown`` needs
    the optional ``tabulate`` package, which the project does not depend on."""
    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = [
        "| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |"
        for row in df.itertuples(index=False)
    ]
    return "\n".join([head, sep, *body])


def _pct(x: Any) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(x) else f"{100 * x:.1f} %"


def _thr(x: float) -> str:
    return f"{x:.3g}" if np.isfinite(x) else "never"


def _class_rows(pc: pd.DataFrame, target: float) -> pd.DataFrame:
    rows = []
    for _, r in pc.iterrows():
        if r["flagged"]:
            flag = f"⚠️ **below {100 * target:.0f} %**"
        elif not np.isfinite(r["threshold"]):
            flag = "never assigned"
        elif r["assigned"] == 0:
            flag = "no assignment here"
        else:
            flag = "ok"
        code = f"**{r['class']}**" if r["flagged"] else r["class"]
        ci = (
            "–"
            if np.isnan(r["precision_ci95_low"])
            else f"{100 * r['precision_ci95_low']:.1f}–{100 * r['precision_ci95_high']:.1f}"
        )
        rows.append(
            {
                "": flag,
                "code": code,
                "country": r["name"],
                "threshold": _thr(r["threshold"]),
                "assigned": int(r["assigned"]),
                "precision": _pct(r["precision_abstain"]),
                "95 % CI": ci,
                "recall": _pct(r["recall_abstain"]),
                "support": int(r["support"]),
                "precision (argmax)": _pct(r["precision"]),
                "recall (argmax)": _pct(r["recall"]),
                "F1 (argmax)": _pct(r["f1"]),
                "cal. bound": _pct(r["cal_lower_bound"]),
            }
        )
    return pd.DataFrame(rows)


def render_markdown(result: EvaluationResult) -> str:
    """The Markdown report (``report.md``); figures are referenced by their PNG file names."""
    s = result.scalars
    th = result.thresholds
    pc = result.tables["per_class"]
    target = th.target
    split = result.split
    lines = [
        f"# Evaluation report: {split} split",
        "",
        f"{s['n_samples']} profiles, {s['countries_total']} countries"
        + (" + OTHER" if OTHER in result.class_names else "")
        + f". Generated {result.created_at}.",
        "",
        "## Headline",
        "",
        _md_table(
            pd.DataFrame(
                [
                    ("Accuracy without abstention (argmax)", _pct(s["accuracy"])),
                    ("Macro-F1 without abstention", _pct(s["macro_f1"])),
                    ("Profiles assigned the correct country", _pct(s["correct_country_rate"])),
                    (
                        "Profiles assigned the correct label (countries or OTHER)",
                        _pct(s["correct_assigned_rate"]),
                    ),
                    ("Profiles UNCERTAIN", _pct(s["uncertain_rate"])),
                    ("Accuracy of assigned labels", _pct(s["selective_accuracy"])),
                    (
                        f"Countries meeting the {100 * target:.0f} % target here",
                        f"{s['countries_meeting_target']} of {s['countries_assigned']} assigned "
                        f"({s['countries_with_threshold']} have a threshold, "
                        f"{s['countries_total']} in the label set)",
                    ),
                    (
                        "Countries below target here (flagged)",
                        ", ".join(f"⚠️ **{c}**" for c in result.flagged) or "none",
                    ),
                    ("Countries never assigned", str(s["countries_never_assigned"])),
                    (
                        "ECE before → after temperature scaling",
                        f"{s['ece_uncalibrated']:.4f} → {s['ece']:.4f}",
                    ),
                ],
                columns=["metric", "value"],
            )
        ),
        "",
        "## Abstention policy",
        "",
        f"A profile gets its top class c only when P(c) ≥ t_c after temperature scaling "
        f"(T = {th.temperature:.3g}); otherwise it is {UNCERTAIN}. "
        f"Thresholds were {'fitted in this run' if result.fitted else 'loaded (fitted earlier)'} "
        f"on a calibration split of {th.n_calibration} profiles with method "
        f"`{th.method}`: {METHOD_DESCRIPTION if th.method == METHOD else th.method}. "
        f"Target precision {100 * target:.0f} %, δ = {th.delta:g}"
        + (
            f" split over {len(th.class_names)} classes (simultaneous)"
            if th.simultaneous
            else " per class"
        )
        + f". Start counts: {list(th.start_counts)} (a class with fewer predictions than "
        "the first starts once, with all of them). Guarantee: for each class with a threshold, with "
        f"probability ≥ {1 - th.delta:g} over the calibration sample, its precision on data "
        "like the calibration split is ≥ target. Precision measured on this finite split can "
        "still fall below target by chance; the 95 % interval shows how far.",
        "",
    ]
    if result.never_assigned:
        lines += [
            "**Never assigned** (no threshold; these classes are always "
            f"{UNCERTAIN} when predicted):",
            "",
        ]
        by_status: dict[str, list[str]] = {}
        for name, status in result.never_assigned.items():
            by_status.setdefault(status, []).append(name)
        for status, group in by_status.items():
            lines.append(f"- {STATUS_TEXT.get(status, status)}: {', '.join(group)}")
        lines.append("")
    lines += [
        f"## Per country after abstention (target {100 * target:.0f} %)",
        "",
        "Precision/recall/CI are after abstention on this split; argmax columns are "
        "without abstention; cal. bound is the Clopper–Pearson lower bound of calibration "
        "precision at the chosen threshold (for a never-assigned class: the highest bound "
        "any of its tests reached).",
        "",
        _md_table(_class_rows(pc[pc["is_country"]], target)),
        "",
        "![per-country table](per_country.png)",
        "",
    ]
    if OTHER in result.class_names:
        lines += [
            "## OTHER (catch-all, reported apart from countries)",
            "",
            'Assigning OTHER is a claim too ("not one of the listed countries"), so it has a '
            "threshold chosen the same way.",
            "",
            _md_table(_class_rows(pc[~pc["is_country"]], target)),
            "",
        ]
    cal = result.tables["calibration"]
    lines += [
        "## Calibration",
        "",
        f"Temperature T = {th.temperature:.4g} fitted by minimising NLL on the calibration "
        "split (bounded scalar minimisation over log T). Top-1 ECE uses 15 equal-width bins.",
        "",
        _md_table(
            cal.assign(
                nll=cal["nll"].map("{:.4f}".format),
                ece=cal["ece"].map("{:.4f}".format),
                temperature=cal["temperature"].map("{:.4g}".format),
            )
        ),
        "",
        "![reliability diagram](reliability.png)",
        "",
        "## Threshold sweeps",
        "",
        "One global threshold applied to all classes (the star marks the per-class policy).",
        "",
        "![risk-coverage](risk_coverage.png)",
        "",
        "![precision vs threshold](precision_threshold.png)",
        "",
        "## Confusions (argmax, no abstention)",
        "",
    ]
    top = result.tables["top_confusions"]
    if len(top):
        lines += [_md_table(top.assign(share_of_true=top["share_of_true"].map(_pct))), ""]
    lines += [
        "![confusion matrix](confusion.png)",
        "",
        "## Files",
        "",
        *[
            f"- `{f}`"
            for f in [
                *TABLE_FILES.values(),
                *FIGURE_FILES.values(),
                SUMMARY_FILE,
                *([THRESHOLDS_FILE] if result.fitted else []),
            ]
        ],
        "",
    ]
    return "\n".join(lines)


def _json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_local(result: EvaluationResult, out_dir: str | Path) -> dict[str, Path]:
    """Write report.md, summary.json, the CSV tables and the PNG figures into ``out_dir``.

    Returns {name: path} of what was written. Infinite thresholds appear as ``inf`` in CSVs.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for key, fname in TABLE_FILES.items():
        df = result.tables[key]
        keep_index = key.startswith("confusion")
        df.to_csv(out / fname, index=keep_index)
        written[key] = out / fname
    for key, fname in FIGURE_FILES.items():
        (out / fname).write_bytes(figure_png(result.figures[key]))
        written[f"{key}_png"] = out / fname
    summary = {
        "split": result.split,
        "scalars": result.scalars,
        "flagged_countries": result.flagged,
        "never_assigned": result.never_assigned,
        "method": result.thresholds.method,
        "created_at": result.created_at,
    }
    (out / SUMMARY_FILE).write_text(json.dumps(_json_safe(summary), indent=2) + "\n")
    written["summary"] = out / SUMMARY_FILE
    (out / REPORT_FILE).write_text(render_markdown(result))
    written["report"] = out / REPORT_FILE
    return written


def _wandb_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Copy with NaN/inf as None and nullable booleans as plain objects (W&B tables are JSON)."""
    df = df.reset_index(drop=True).astype(object)
    return df.map(
        lambda v: (
            None
            if (v is pd.NA or (isinstance(v, float) and not math.isfinite(v)))
            else (v.item() if isinstance(v, np.generic) else v)
        )
    )


def log_wandb(
    result: EvaluationResult, run: Any, prefix: str = "test", step: int | None = None
) -> list[str]:
    """Log the result to a W&B run (e.g. ``WandbLogger.experiment``); returns the keys logged.

    Under ``{prefix}/``: every scalar (also written to ``run.summary``), ``per_class`` and
    ``sweep`` tables, ``confusion_matrix`` and ``confusion_matrix_abstain`` charts,
    ``risk_coverage`` and ``precision_threshold`` line charts and ``figures/<name>`` images
    (the same PNGs as the local report); W&B stores each chart's data as ``<key>_table``.
    Summary also gets ``flagged_countries``,
    ``never_assigned`` and ``abstention_method`` strings. ``step`` is passed to
    ``run.log`` so that a caller that steps the run itself can keep steps monotonic.
    """
    import wandb  # imported here: ~1 s, and only this function needs it
    from PIL import Image

    p = f"{prefix}/" if prefix else ""
    names = result.class_names
    sweep = result.tables["sweep"]
    payload: dict[str, Any] = {}
    payload[p + "per_class"] = wandb.Table(dataframe=_wandb_frame(result.tables["per_class"]))
    payload[p + "sweep"] = wandb.Table(dataframe=_wandb_frame(sweep))
    payload[p + "confusion_matrix"] = wandb.plot.confusion_matrix(
        y_true=result.labels.tolist(),
        preds=result.predictions.tolist(),
        class_names=names,
        title=f"{result.split}: confusion (argmax)",
    )
    abst = np.where(result.decisions < 0, len(names), result.decisions)
    payload[p + "confusion_matrix_abstain"] = wandb.plot.confusion_matrix(
        y_true=result.labels.tolist(),
        preds=abst.tolist(),
        class_names=[*names, UNCERTAIN],
        title=f"{result.split}: confusion after abstention",
    )
    rc = sweep[sweep["class"] == ALL][["threshold", "coverage", "risk"]].dropna()
    payload[p + "risk_coverage"] = wandb.plot.line(
        wandb.Table(dataframe=_wandb_frame(rc)),
        "coverage",
        "risk",
        title=f"{result.split}: risk-coverage (one global threshold)",
    )
    pt = sweep[sweep["class"] != ALL][["threshold", "precision", "class"]].dropna()
    payload[p + "precision_threshold"] = wandb.plot.line(
        wandb.Table(dataframe=_wandb_frame(pt)),
        "threshold",
        "precision",
        stroke="class",
        title=f"{result.split}: precision vs threshold per class",
    )
    for key, fig in result.figures.items():
        payload[p + f"figures/{key}"] = wandb.Image(
            Image.open(io.BytesIO(figure_png(fig))), caption=f"{result.split}: {key}"
        )
    finite = {p + k: v for k, v in _json_safe(result.scalars).items() if v is not None}
    payload.update(finite)
    run.log(payload, step=step)
    run.summary.update(
        {
            **finite,
            p + "flagged_countries": ", ".join(result.flagged),
            p + "never_assigned": ", ".join(result.never_assigned),
            p + "abstention_method": result.thresholds.method,
        }
    )
    return sorted(
        [*payload, p + "flagged_countries", p + "never_assigned", p + "abstention_method"]
    )


def run_evaluation(
    cal_logits: np.ndarray | None,
    cal_labels: np.ndarray | None,
    test_logits: np.ndarray,
    test_labels: np.ndarray,
    class_names: Sequence[str],
    out_dir: str | Path,
    target: float = 0.9,
    delta: float = 0.05,
    thresholds: Thresholds | None = None,
    wandb_run: Any = None,
    prefix: str = "test",
    *,
    grid: np.ndarray | None = None,
    start_counts: Sequence[int] = DEFAULT_START_COUNTS,
    simultaneous: bool = False,
    step: int | None = None,
    split: str | None = None,
) -> EvaluationResult:
    """Fit (or reuse) the abstention policy, evaluate the test split, write and log the report.

    With ``thresholds=None`` the temperature and thresholds are fitted on the calibration
    split and saved as ``out_dir/thresholds.json``; otherwise the given policy is reused
    (``geoloc-eval`` on a saved checkpoint) and the calibration split is optional.
    ``prefix`` names the W&B keys; ``split`` (default: the prefix) the split in titles.
    """
    result = build_report(
        cal_logits,
        cal_labels,
        test_logits,
        test_labels,
        class_names,
        target=target,
        delta=delta,
        thresholds=thresholds,
        split=split or prefix or "test",
        grid=grid,
        start_counts=start_counts,
        simultaneous=simultaneous,
    )
    out = Path(out_dir)
    if result.fitted:
        result.thresholds.to_json(out / THRESHOLDS_FILE)
    write_local(result, out)
    if wandb_run is not None:
        log_wandb(result, wandb_run, prefix=prefix, step=step)
    return result
