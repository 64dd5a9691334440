"""How an evaluation is shown: the report folder (Markdown, CSV, PNG, JSON) and W&B.

Both renderers take the same :class:`~geoloc.evaluation.result.EvaluationResult` and
compute nothing of their own, so every number a reviewer reads in ``report.md`` is the
number in the W&B run. W&B keys: scalars under their full names
(:meth:`EvaluationResult.metrics`: ``eval/…``, ``calibration/…``, ``abstain/…``); tables,
charts and figures under ``report/``.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geoloc.evaluation.abstention import METHOD, METHOD_DESCRIPTION, STATUS_TEXT
from geoloc.evaluation.figures import figure_png
from geoloc.evaluation.result import EvaluationResult
from geoloc.evaluation.sweep import ALL
from geoloc.io import atomic_write, markdown_table, write_json_atomic, write_text_atomic
from geoloc.labels import OTHER, UNCERTAIN

#: Files :func:`write_report` writes into the report folder.
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
#: The fitted policy, written beside the report when this evaluation fitted it.
THRESHOLDS_FILE = "thresholds.json"
#: W&B namespace of the report's tables, charts and figures.
WANDB_REPORT = "report"


def _pct(x: Any) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(x) else f"{100 * x:.1f} %"


def pct_with_se(x: Any, se: Any) -> str:
    """A percentage with its standard error (binomial; bootstrap for macro-F1); the report
    headline and the results table both format "value ± SE %" here."""
    value = _pct(x)
    if value == "–" or se is None or not math.isfinite(float(se)):
        return value
    return f"{value[:-2]} ± {100 * float(se):.1f} %"


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
                "guarantee": r["guarantee"],
                "threshold": _thr(r["threshold"]),
                "assigned": int(r["assigned"]),
                "precision": _pct(r["precision_abstain"]),
                "95 % CI": ci,
                "recall": _pct(r["recall_abstain"]),
                "support": int(r["support"]),
                "precision (argmax)": _pct(r["precision"]),
                "recall (argmax)": _pct(r["recall"]),
                "F1 (argmax)": _pct(r["f1"]),
                "cal. support": "–" if pd.isna(r["cal_support"]) else int(r["cal_support"]),
                "cal. bound": _pct(r["cal_lower_bound"]),
                "pool bound": _pct(r["pool_lower_bound"]) if r["guarantee"] == "pooled"
                else "–",
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
        markdown_table(
            pd.DataFrame(
                [
                    ("Accuracy without abstention (argmax)",
                     pct_with_se(s["accuracy"], s.get("accuracy_se"))),
                    ("Macro-F1 without abstention",
                     pct_with_se(s["macro_f1"], s.get("macro_f1_se"))),
                    ("Profiles assigned the correct country",
                     pct_with_se(s["correct_country_rate"], s.get("correct_country_rate_se"))),
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
                        "Countries certified on their own / only as a pooled group",
                        f"{s['countries_certified_own']} / {s['countries_certified_pooled']}",
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
            f" split over the {th.n_families or len(th.class_names)} families tested "
            "(simultaneous)"
            if th.policy.simultaneous
            else " per class"
        )
        + f". Start counts: {list(th.policy.start_counts)} (a class with fewer predictions than "
        "the first starts once, with all of them). No threshold is below the floor "
        f"{th.policy.min_probability:g}.",
        "",
        f"**What is guaranteed** (a PAC statement): for each country certified on its own "
        f"(guarantee `class`), with probability ≥ {1 - th.delta:g} over the draw of the "
        "calibration sample, its precision on new profiles drawn like the calibration "
        f"population is ≥ {100 * target:.0f} %"
        + (" — for all of them at once (simultaneous)" if th.policy.simultaneous else
           " — for each country separately (per_class): with a dozen countries certified, "
           "one of them falling short is far likelier than δ; use "
           "`evaluation.policy.guarantee=simultaneous` for a joint statement")
        + ". It is not a promise about any one assignment, and it says nothing about a "
        "population unlike the calibration one (recalibrate there: `geoloc-calibrate`). "
        "Precision measured on this finite split can still fall below target by chance; "
        "the 95 % interval shows how far.",
        "",
    ]
    pooled = [n for n, c in th.calibration.items() if c.guarantee == "pooled"]
    if th.policy.pool_below:
        pool_members = sorted({m for c in th.calibration.values() for m in c.pool})
        lines += [
            f"**Pooled rare countries** (fewer than {th.policy.pool_below} calibration "
            "predictions each, a label-free rule): "
            + (", ".join(pool_members) or "none")
            + ". They are not tested alone; one threshold is certified on their pooled "
            "predictions, so the guarantee (kind `pooled`) is about the precision of all "
            "assignments to these countries together, not of each one. "
            + ("Certified: " + ", ".join(pooled) + " share it." if pooled else
               "The pooled bound did not reach the target: none of them is assigned."),
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
        "without abstention; guarantee is what the threshold certifies (`class`: this "
        "country alone, `pooled`: the pooled rare countries together, `none`: never "
        "assigned); cal. support is the country's calibration rows; cal. bound is the "
        "Clopper–Pearson lower bound of calibration precision at the chosen threshold (the "
        "pool's for a pooled country; for a never-assigned class: the highest bound any of "
        "its tests reached).",
        "",
        markdown_table(_class_rows(pc[pc["is_country"]], target)),
        "",
        "![per-country table](per_country.png)",
        "",
    ]
    lines += _audit_lines(result)
    if OTHER in result.class_names:
        lines += [
            "## OTHER (catch-all, reported apart from countries)",
            "",
            'Assigning OTHER is a claim too ("not one of the listed countries"), so it has a '
            "threshold chosen the same way.",
            "",
            markdown_table(_class_rows(pc[~pc["is_country"]], target)),
            "",
        ]
    cal = result.tables["calibration"]
    lines += [
        "## Calibration",
        "",
        f"Temperature T = {th.temperature:.4g} fitted by minimising NLL on the calibration "
        "split (bounded scalar minimisation over log T). Top-1 ECE uses 15 equal-width bins.",
        "",
        markdown_table(
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
        lines += [markdown_table(top.assign(share_of_true=top["share_of_true"].map(_pct))), ""]
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


def write_report(result: EvaluationResult, out_dir: str | Path) -> dict[str, Path]:
    """Write report.md, summary.json, the CSV tables, the PNG figures and (when this
    evaluation fitted the policy) thresholds.json into ``out_dir``, each atomically.

    Returns {name: path} of what was written. Infinite thresholds appear as ``inf`` in CSVs.
    """
    out = Path(out_dir)
    written: dict[str, Path] = {}
    if result.fitted:
        written["thresholds"] = result.thresholds.to_json(out / THRESHOLDS_FILE)
    for key, fname in TABLE_FILES.items():
        with atomic_write(out / fname) as fh:
            result.tables[key].to_csv(fh, index=key.startswith("confusion"))
        written[key] = out / fname
    for key, fname in FIGURE_FILES.items():
        with atomic_write(out / fname, "wb") as fh:
            fh.write(figure_png(result.figures[key]))
        written[f"{key}_png"] = out / fname
    summary = {
        "split": result.split,
        "scalars": result.scalars,
        "flagged_countries": result.flagged,
        "never_assigned": result.never_assigned,
        "method": result.thresholds.method,
        "created_at": result.created_at,
    }
    written["summary"] = write_json_atomic(out / SUMMARY_FILE, _json_safe(summary))
    written["report"] = write_text_atomic(out / REPORT_FILE, render_markdown(result))
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


def log_wandb(result: EvaluationResult, run: Any, step: int | None = None) -> list[str]:
    """Log the result to a W&B run (e.g. ``WandbLogger.experiment``); returns the keys logged.

    Scalars under their full names (also written to ``run.summary``); under ``report/``:
    ``per_class`` and ``sweep`` tables, ``confusion_matrix`` and
    ``confusion_matrix_abstain`` charts, ``risk_coverage`` and ``precision_threshold`` line
    charts and ``figures/<name>`` images (the same PNGs as the local report); W&B stores
    each chart's data as ``<key>_table``. The summary also gets the strings
    ``abstain/flagged_countries``, ``abstain/never_assigned`` and ``abstain/method``.
    ``step`` is passed to ``run.log`` so that a caller that steps the run itself can keep
    steps monotonic.
    """
    import wandb  # imported here: ~1 s, and only this function needs it
    from PIL import Image

    p = f"{WANDB_REPORT}/"
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
    metrics = result.metrics()
    payload.update(metrics)
    run.log(payload, step=step)
    strings = {
        "abstain/flagged_countries": ", ".join(result.flagged),
        "abstain/never_assigned": ", ".join(result.never_assigned),
        "abstain/method": result.thresholds.method,
    }
    run.summary.update({**metrics, **strings})
    return sorted([*payload, *strings])


def _audit_lines(result: EvaluationResult) -> list[str]:
    """Per family (each country certified alone, the pooled group): this split's
    precision with its one-sided lower bound at the policy's delta, and whether it is
    consistent with the target (a family whose two-sided 95 % upper bound is below the
    target falsifies the certification, or, after a cross-fit, the refit's stability)."""
    th, s = result.thresholds, result.scalars
    pc = result.tables["per_class"]
    rows = []
    for _, r in pc[(pc["guarantee"] == "class") & (pc["assigned"] > 0)].iterrows():
        rows.append((r["class"], _thr(r["threshold"]), int(r["assigned"]),
                     _pct(r["precision_abstain"]), _pct(r["audit_lower_bound"]),
                     "⚠️ below" if r["precision_ci95_high"] < th.target else "consistent"))
    if s.get("pool_assigned"):
        rows.append(("pool (" + ", ".join(pc.loc[pc["guarantee"] == "pooled", "class"])
                     + ")", "shared", int(s["pool_assigned"]), _pct(s["pool_precision"]),
                     _pct(s["pool_lower_bound"]), "group"))
    if not rows:
        return []
    return [
        f"## Audit of the `{result.split}` split, per family",
        "",
        f"Each family the policy certified, on this split: precision and its one-sided "
        f"lower bound at δ = {th.delta:g}. These are audit figures only if nothing was "
        "chosen on this split (the real recipe trains a fixed number of epochs, so `val` "
        "selects no checkpoint). After a cross-fit the policy was fitted on out-of-fold "
        "outputs and is applied to the refit; a family whose 95 % upper bound here is "
        "below target would falsify the refit's stability assumption.",
        "",
        markdown_table(pd.DataFrame(rows, columns=[
            "family", "threshold", "assigned", "precision", f"lower bound (δ={th.delta:g})",
            "vs target"])),
        "",
    ]
