"""Recalibrate a trained model on the population it will be used on (``geoloc-calibrate``).

The thresholds training saves certify precision on profiles drawn like the *training*
population. A user's population differs (one market, one brand's followers), and there
the shipped thresholds can fail badly (European Portuguese labelled BR at 52 %). This
module refits the policy on a labelled sample of the user's own population:

1. **Labels.** From a label column when the user has one, else from each profile's
   stated location through the resolver of ``geoloc-label``. Profiles without a
   resolvable location are not calibration data; they are only counted. *Selection*:
   profiles that state a location may differ from those that do not (more local, more
   often in the local language), so the guarantee is about profiles like the labelled
   ones; the report says so.
2. **Split.** The labelled rows are split by a keyed hash of their id
   (:func:`audit_mask`): the same input and key give the same split on any machine, and
   no row is in both parts. The calibration part fits the temperature and thresholds
   with the training code (:func:`geoloc.evaluation.certify.fit_policy`, the bundle's
   policy settings unless overridden); the audit part, never seen by the fit, checks
   them: per-country precision with its Clopper-Pearson interval, own and pooled.
3. **Output.** The same model (same weights, same fusion) with the new policy, the
   calibration outputs (so ``geoloc-audience`` estimates on this population too), and a
   record of the population it was calibrated on (:mod:`geoloc.inference.population`),
   which ``geoloc-predict`` compares every later input with.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geoloc.bundle import Bundle
from geoloc.bundle.card import model_card
from geoloc.bundle.files import (
    CALIBRATION_FILE,
    CARD_FILE,
    FUSION_FILE,
    HF_CONFIG_FILE,
    MODEL_FILE,
    ONNX_FILE,
    ONNX_INT8_FILE,
    POPULATION_FILE,
    THRESHOLDS_FILE,
)
from geoloc.data.readers import error_to_dict, iter_numbered_results
from geoloc.data.schema import ColumnMapping, profile_text
from geoloc.data.splits import keyed_unit
from geoloc.errors import InputFileError, RecordError
from geoloc.evaluation import PolicyConfig, SplitOutputs, Thresholds, save_calibration_outputs
from geoloc.evaluation.calibration import softmax
from geoloc.evaluation.certify import fit_policy
from geoloc.evaluation.metrics import compute_metrics
from geoloc.evaluation.stats import clopper_pearson, min_samples_for_target
from geoloc.inference.population import PopulationProfile
from geoloc.io import PathLike, atomic_write, file_sha256, write_json_atomic
from geoloc.labels import OTHER, normalize_code
from geoloc.location import resolve_location


@dataclass
class LabelledRows:
    """The labelled profiles of an input file, in file order, and what was counted."""

    ids: list[str]
    texts: list[str]
    labels: np.ndarray
    lines: list[int]
    counts: Counter = field(default_factory=Counter)


def read_labelled(input_path: PathLike, mapping: ColumnMapping, class_names: list[str],
                  errors_out: PathLike, fmt: str | None = None,
                  min_confidence: float = 0.5) -> LabelledRows:
    """Read every row of ``input_path``: a bad row goes to ``errors_out`` (file, line,
    field, problem); a row is labelled from its label column (``mapping.country``) when
    mapped, else from its stated location; the rest are counted. A country outside the
    model's label set is OTHER (as in training)."""
    index = {n: i for i, n in enumerate(class_names)}
    other = index.get(OTHER)
    cache: dict[str, str | None] = {}
    ids, texts, labels, lines = [], [], [], []
    counts: Counter = Counter()
    with atomic_write(errors_out) as efh:
        for line, item in iter_numbered_results(input_path, mapping, fmt=fmt):
            counts["rows"] += 1
            if isinstance(item, RecordError):
                counts["errors"] += 1
                efh.write(json.dumps(error_to_dict(item), ensure_ascii=False) + "\n")
                continue
            if mapping.country is not None:
                code = normalize_code(item.get("country")) if item.get("country") else None
                if code is None:
                    counts["no_label"] += 1
                    continue
            else:
                loc = item.get("stated_location")
                if not loc:
                    counts["no_location"] += 1
                    continue
                if loc not in cache:
                    match = resolve_location(loc, min_confidence)
                    cache[loc] = match.country if match else None
                code = cache[loc]
                if code is None:
                    counts["unresolved"] += 1
                    continue
            label = index.get(code, other)
            if label is None:
                counts["outside_label_set"] += 1
                continue
            counts["labelled"] += 1
            ids.append(str(item["id"]))
            texts.append(profile_text(item["bio"], item["captions"]))
            labels.append(label)
            lines.append(int(line))
    return LabelledRows(ids, texts, np.asarray(labels, dtype=np.int64), lines, counts)


def audit_mask(ids: list[str], key: str, audit_fraction: float) -> np.ndarray:
    """True for the rows of the audit part: SHA-256 of ``key:id`` read as a number in
    [0, 1) below ``audit_fraction``. Keyed, so a user can draw another split; a function
    of the id alone, so a row never changes part when others are added."""
    if not 0.0 < audit_fraction < 1.0:
        raise ValueError(f"audit_fraction={audit_fraction}: must be in (0, 1)")
    return np.asarray([keyed_unit(key, i) for i in ids]) < audit_fraction


def audit_table(th: Thresholds, probs: np.ndarray, labels: np.ndarray,
                label: str) -> pd.DataFrame:
    """Per class: how many audit rows were assigned it under ``th``, how many rightly,
    precision with its two-sided 95 % Clopper-Pearson interval, and the guarantee kind
    (own ``class``, ``pooled`` or ``none``)."""
    names = th.class_names
    decisions = th.apply(probs)
    kept = decisions >= 0
    assigned = np.bincount(decisions[kept], minlength=len(names))
    right = np.bincount(decisions[kept & (decisions == labels)], minlength=len(names))
    low = clopper_pearson(right, assigned, 0.025, "lower")
    high = clopper_pearson(right, assigned, 0.025, "upper")
    support = np.bincount(labels, minlength=len(names))
    rows = []
    for c, name in enumerate(names):
        rows.append({"policy": label, "class": name, "guarantee": th.guarantee(name),
                     "threshold": th.thresholds[name], "support": int(support[c]),
                     "assigned": int(assigned[c]), "correct": int(right[c]),
                     "precision": right[c] / assigned[c] if assigned[c] else math.nan,
                     "ci95_low": float(low[c]) if assigned[c] else math.nan,
                     "ci95_high": float(high[c]) if assigned[c] else math.nan})
    return pd.DataFrame(rows)


def rows_needed(th: Thresholds, probs: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """For each class not certified on its own: about how many labelled rows in all the
    calibration part would need for its bound to reach the target, if its precision
    above the floor and its share of predictions stayed as observed; ``None`` when that
    precision is not above the target (more rows alone will not certify it)."""
    n = len(labels)
    top, conf = probs.argmax(axis=1), probs.max(axis=1)
    floor = th.policy.min_probability
    out: dict[str, Any] = {}
    for c, name in enumerate(th.class_names):
        if th.guarantee(name) == "class":
            continue
        mask = (top == c) & (conf >= floor)
        k = int(mask.sum())
        p = float((labels[mask] == c).mean()) if k else math.nan
        if not k or not p > th.target:
            out[name] = None
            continue
        # the level a test of it would run at: its family's share of delta, split over the
        # start points (ignoring what alpha-recycling might add: an upper estimate)
        level = th.delta_per_class / max(len(th.policy.start_counts), 1)
        m = min_samples_for_target(th.target, level)
        while clopper_pearson(math.floor(p * m), m, level) < th.target and m < 10**6:
            m = int(m * 1.1) + 1
        out[name] = int(math.ceil(m * n / k)) if m < 10**6 else None
    return out


@dataclass
class Recalibration:
    """What :func:`recalibrate` found: the policies before and after, the audit tables,
    the population record and the counts."""

    before: Thresholds
    after: Thresholds
    audit: pd.DataFrame
    calibration: SplitOutputs
    population: PopulationProfile
    scalars: dict[str, float]
    needed: dict[str, Any]
    counts: Counter


#: ``temperature`` options of :func:`recalibrate`.
TEMPERATURES = ("keep", "refit")


def recalibrate(predictor: Any, rows: LabelledRows, policy: PolicyConfig, key: str,
                audit_fraction: float, source: str, temperature: str = "keep",
                scored_with: str = "fp32") -> Recalibration:
    """Score the labelled rows with the deployed model (fused, as served), fit the
    policy on the calibration part, and audit the old and new policies on the rest.

    ``temperature="keep"`` (default) refits only the thresholds, on the model's own
    probability scale; ``"refit"`` first refits the temperature by likelihood on the
    calibration part. Keep is the default because on a population where the model is
    confidently wrong on most rows the likelihood-optimal temperature flattens every
    probability (1.23 -> 1.67 on the AfriSenti tweets), pushing even its 99.7 %-precise
    OTHER predictions below the floor: nothing is certified. The thresholds alone carry
    the guarantee; the temperature only sets the scale they and the floor are read on
    (``experiments/shift/results.md``).

    ``scored_with`` is the precision of the predictor's graph (``"int8"`` for the
    quantised ONNX graph): the new policy records it, and the predictor pairs it only
    with a graph of that precision."""
    if temperature not in TEMPERATURES:
        raise ValueError(f"temperature={temperature!r}: expected one of "
                         f"{', '.join(TEMPERATURES)}")
    names = list(predictor.class_names)
    before: Thresholds = predictor.thresholds
    logits = predictor.logits(rows.texts).astype(np.float64)
    audit = audit_mask(rows.ids, key, audit_fraction)
    cal = ~audit
    if cal.sum() < 2 or audit.sum() < 1:
        raise InputFileError(f"{source}: {len(rows.ids)} labelled rows; too few to split "
                             "into calibration and audit parts")
    after = dataclasses.replace(  # replace: __post_init__ checks scored_with
        fit_policy(logits[cal], rows.labels[cal], names, policy,
                   temperature=before.temperature if temperature == "keep" else None),
        scored_with=scored_with)
    p_before = softmax(logits, before.temperature)
    p_after = softmax(logits, after.temperature)
    table = pd.concat([audit_table(before, p_before[audit], rows.labels[audit], "before"),
                       audit_table(after, p_after[audit], rows.labels[audit], "after")])
    scalars: dict[str, float] = {"labelled": len(rows.ids), "calibration_rows": int(cal.sum()),
                                 "audit_rows": int(audit.sum())}
    other = names.index(OTHER) if OTHER in names else -1
    for label, th, probs in (("before", before, p_before), ("after", after, p_after)):
        dec = th.apply(probs[audit])
        y = rows.labels[audit]
        country = (dec >= 0) & (dec != other)
        scalars[f"{label}/correct_country_rate"] = float((country & (dec == y)).mean())
        scalars[f"{label}/country_assigned_rate"] = float(country.mean())
        scalars[f"{label}/country_precision"] = (
            float((dec[country] == y[country]).mean()) if country.any() else math.nan)
        scalars[f"{label}/ece"] = compute_metrics(probs[audit], y, names).ece
        scalars[f"{label}/countries_certified_own"] = sum(
            th.guarantee(n) == "class" for n in names if n != OTHER)
    population = PopulationProfile.of(
        p_after[cal], [t for t, c in zip(rows.texts, cal, strict=True) if c], names,
        source=source, labelled=dict(Counter(names[i] for i in rows.labels[cal])))
    calib = SplitOutputs(logits[cal].astype(np.float32), rows.labels[cal],
                         np.flatnonzero(cal))
    return Recalibration(before, after, table, calib, population, scalars,
                         rows_needed(after, p_after[cal], rows.labels[cal]), rows.counts)


def save_recalibrated(bundle: Bundle, result: Recalibration, folder: PathLike,
                      record: dict[str, Any]) -> Bundle:
    """The bundle at ``folder``: ``bundle``'s files with the new policy, its calibration
    outputs, the population record and (when fused) the fusion re-paired with the new
    policy; ``record`` (input, key, counts) goes into the population file."""
    names = bundle.class_names

    fusion = bundle.fusion()

    def add(tmp: Path) -> None:
        # fitted on this model's (fused) outputs: the new policy says so, as training's does
        dataclasses.replace(result.after, fitted_with=bundle.fitted_with(fusion)).to_json(
            tmp / THRESHOLDS_FILE)
        save_calibration_outputs(result.calibration, names, tmp / CALIBRATION_FILE)
        population = result.population
        population.extra.update(record)
        population.save(tmp / POPULATION_FILE)
        if fusion is not None:  # the fusion certifies only with the policy it is paired to
            fusion.thresholds_sha256 = file_sha256(tmp / THRESHOLDS_FILE)
            fusion.save(tmp / FUSION_FILE)
        info = dict(bundle.info)
        info["recalibrated"] = record
        write_json_atomic(tmp / MODEL_FILE, info)
        if bundle.is_export:  # the export's pipeline applies the temperature it records
            config = json.loads((tmp / HF_CONFIG_FILE).read_text(encoding="utf-8"))
            config["geoloc"]["temperature"] = result.after.temperature
            write_json_atomic(tmp / HF_CONFIG_FILE, config)
        (tmp / CARD_FILE).write_text(model_card(
            info, result.after, fusion,
            export=bundle.is_export, onnx=bundle.has(ONNX_FILE),
            quantized=bundle.has(ONNX_INT8_FILE)), encoding="utf-8")

    # an export keeps its graphs: int8 thresholds are only usable beside the int8 graph
    return bundle.derive(folder, add, keep_export=bundle.is_export)


SELECTION_NOTE = (
    "**Selection.** Labels come from profiles that state a resolvable location (or carry "
    "a label). Such profiles may differ from those that do not: more local, more often in "
    "the local language, more often in the big markets. The audited precision is about "
    "profiles like the labelled ones; on the unlabelled rest it holds only as far as they "
    "resemble them (the population check of geoloc-predict compares them)."
)


def write_report(result: Recalibration, folder: PathLike, source: str,
                 model: str, output: str) -> Path:
    """``report.md`` (thresholds before/after, countries gained and lost, predicted-country
    mix, ECE, the audit table, rows each country still needs) and ``audit.png``; returns
    the Markdown file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # only the report draws

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    before, after, s = result.before, result.after, result.scalars
    audit = result.audit.pivot(index="class", columns="policy")
    names = after.class_names
    own = {n for n in names if after.guarantee(n) == "class"}
    old = {n for n in names if before.guarantee(n) == "class"}

    def prec(policy: str, name: str) -> str:
        k = audit.loc[name, ("assigned", policy)]
        if not k:
            return "–"
        return (f"{100 * audit.loc[name, ('precision', policy)]:.0f} % "
                f"[{100 * audit.loc[name, ('ci95_low', policy)]:.0f}–"
                f"{100 * audit.loc[name, ('ci95_high', policy)]:.0f}] of {k}")

    table = pd.DataFrame([{
        "class": n,
        "threshold before": _thr(before.thresholds[n]), "guarantee before": before.guarantee(n),
        "threshold after": _thr(after.thresholds[n]), "guarantee after": after.guarantee(n),
        "audit precision before": prec("before", n), "audit precision after": prec("after", n),
        "labelled rows needed": ("certified" if n in own else
                                 "not at its precision" if result.needed.get(n) is None
                                 else f"~{result.needed[n]}"),
    } for n in names if audit.loc[n, ("support", "after")] or before.thresholds[n] < 1.01
        or after.thresholds[n] < 1.01])
    mix = sorted(result.population.predicted_mix.items(), key=lambda kv: -kv[1])[:12]
    counts = result.counts
    lines = [
        f"# geoloc-calibrate: {Path(source).name}",
        "",
        f"Model `{model}` recalibrated on `{source}` → `{output}`.",
        "",
        f"Rows read {counts['rows']}; bad rows {counts['errors']}; labelled "
        f"{counts['labelled']} (no location {counts['no_location']}, unresolved "
        f"{counts['unresolved']}, no label {counts['no_label']}). Split by keyed hash: "
        f"{int(s['calibration_rows'])} calibration rows, {int(s['audit_rows'])} audit rows.",
        "",
        SELECTION_NOTE,
        "",
        "| on the audit rows | before | after |",
        "|---|---|---|",
        f"| rows assigned their correct country | {100 * s['before/correct_country_rate']:.1f} % "
        f"| {100 * s['after/correct_country_rate']:.1f} % |",
        f"| rows assigned a country | {100 * s['before/country_assigned_rate']:.1f} % | "
        f"{100 * s['after/country_assigned_rate']:.1f} % |",
        f"| precision of country assignments | {_pct(s['before/country_precision'])} | "
        f"{_pct(s['after/country_precision'])} |",
        f"| ECE | {s['before/ece']:.3f} | {s['after/ece']:.3f} |",
        f"| countries certified on their own | {int(s['before/countries_certified_own'])} | "
        f"{int(s['after/countries_certified_own'])} |",
        "",
        f"Countries gained: {', '.join(sorted(own - old)) or 'none'}; lost: "
        f"{', '.join(sorted(old - own)) or 'none'}. Temperature {before.temperature:.3g} → "
        f"{after.temperature:.3g}; floor {after.policy.min_probability:g}; target "
        f"{after.target:.0%}, δ = {after.delta:g} ({after.policy.guarantee}).",
        "",
        "**What is guaranteed**: for each country certified on its own here, with "
        f"probability ≥ {1 - after.delta:g} over the draw of the calibration rows, its "
        f"precision on profiles drawn like them is ≥ {after.target:.0%}. Pooled countries "
        "carry a statement about their pool together only. The audit rows check it; their "
        "95 % intervals show how much a finite audit can say.",
        "",
        "Predicted-country mix (calibration rows, argmax): "
        + ", ".join(f"{k} {100 * v:.0f} %" for k, v in mix),
        "",
        "## Per class",
        "",
        "*labelled rows needed*: about how many labelled rows in all the calibration part "
        "would need for the country to be certified alone, if its precision above the floor "
        "and its share of predictions stayed as observed.",
        "",
        table.to_markdown(index=False),
        "",
        "![audit precision before and after](audit.png)",
        "",
    ]
    md = folder / "report.md"
    md.write_text("\n".join(lines), encoding="utf-8")
    shown = [n for n in names if audit.loc[n, ("assigned", "before")]
             or audit.loc[n, ("assigned", "after")]]
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(shown) + 2), 4))
    x = np.arange(len(shown))
    for j, policy in enumerate(("before", "after")):
        p = np.array([audit.loc[n, ("precision", policy)] for n in shown], dtype=float)
        lo = np.array([audit.loc[n, ("ci95_low", policy)] for n in shown], dtype=float)
        hi = np.array([audit.loc[n, ("ci95_high", policy)] for n in shown], dtype=float)
        ax.errorbar(x + (j - 0.5) * 0.3, 100 * p, yerr=100 * np.nan_to_num(
            np.vstack([p - lo, hi - p])), fmt="o", capsize=3, label=f"{policy} thresholds")
    ax.axhline(100 * after.target, color="red", ls="--", lw=1)
    ax.set_xticks(x, shown, rotation=60)
    ax.set_ylabel("audit precision, % (95 % CI)")
    ax.set_title("precision on the audit rows, before and after recalibration")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "audit.png", dpi=110)
    plt.close(fig)
    return md


def log_wandb(result: Recalibration, run: Any, report: PathLike) -> None:
    """Log the recalibration to a W&B run: the before/after scalars (``calibrate/…``),
    the audit table (per class and policy, with the 95 % intervals), the thresholds
    before and after with the rows each country still needs, and the audit figure."""
    import wandb  # only when a W&B logger is configured

    run.log({f"calibrate/{k}": v for k, v in result.scalars.items()})
    audit = result.audit.astype({"threshold": float}).replace([np.inf], np.nan)
    after = result.after
    thresholds = pd.DataFrame([{
        "class": n, "threshold_before": _finite(result.before.thresholds[n]),
        "guarantee_before": result.before.guarantee(n),
        "threshold_after": _finite(after.thresholds[n]), "guarantee_after": after.guarantee(n),
        "rows_needed": (0 if after.guarantee(n) == "class" else result.needed.get(n))}
        for n in after.class_names])
    run.log({"calibrate/audit": wandb.Table(dataframe=audit),
             "calibrate/thresholds": wandb.Table(dataframe=thresholds),
             "calibrate/audit_plot": wandb.Image(str(Path(report).with_name("audit.png")))})


def _finite(t: float) -> float | None:
    return float(t) if math.isfinite(t) else None


def _thr(t: float) -> str:
    return "never" if not math.isfinite(t) else f"{t:.3f}"


def _pct(v: float) -> str:
    return "–" if not math.isfinite(v) else f"{100 * v:.1f} %"
