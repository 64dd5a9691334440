"""Audience geography on real tweets: do the corrected estimators beat naive counting,
and do their 90 % intervals cover the true shares?

Rows: the real recipe's out-of-fold outputs (the calibration outputs
``geoloc_calibration.npz`` in the model folder ``<run>/model`` of
``geoloc-train experiment=real_umass``: every train + calib tweet predicted by a fold
model that never trained on it, fused as deployed). They are split in two halves,
stratified by country (seeded): one half is the calibration data (the policy's
temperature and thresholds are refitted on it with the saved recipe, and the estimators'
misclassification rates and prior come from it), the other the pool audiences are drawn
from; then the halves swap, so every audience is scored by a calibration that never saw
its rows. Only countries with at least ``--min-rows`` tweets in each half take part in
mixes.

Caveats: the audiences are fold-model outputs, as are the calibration rows, so the
experiment does not show a mismatch between fold models and the deployed refit; and a
small country's audience rows are drawn with replacement from its few pool tweets (at
least ``--min-rows``), so at 10,000 profiles they repeat.

Audiences: a country mix ``p`` is drawn, ``n`` profiles are drawn from it (counts
multinomial, each profile a random pool tweet of its country, with replacement), and
each estimator's shares are compared with ``p``. Mixes differ from the training prior:

- ``dirichlet``: p ~ Dirichlet(0.3) over the eligible countries (a few large, many tiny);
- ``dominant``: 3 countries share 85 % (Dirichlet(5, 5, 5)), the rest Dirichlet(0.3);
- ``absent``: the calibration prior, perturbed (Dirichlet(50 x prior)), with its largest
  country set to 0 (an audience outside the model's majority country).

Scores per estimator and size: mean absolute error over classes (averaged over
audiences, with its standard error) and coverage: the share of (audience, class) pairs
whose 90 % interval holds the true share.

    python experiments/audience/run.py MODEL_DIR [--audiences 20] [--bootstrap 100]

(``MODEL_DIR``: e.g. ``outputs/real_data/real_only/model``.)

writes ``results.md``, ``results.csv`` and ``results.png`` beside this file and logs
them to W&B (group ``audience``; offline unless ``WANDB_MODE`` says so).

``--deployed``: the model a user gets. The audience pool is the deployed model's
(the refit on train + calib) calibrated probabilities and decisions on the run's ``val``
tweets, which it never trained on (``<run>/report/predictions.csv``: id, text, true; scored
once with :class:`~geoloc.inference.predictor.Predictor` and cached under
``outputs/audience/``), while the estimators are calibrated exactly as
``geoloc-audience`` calibrates them: on the bundle's out-of-fold calibration outputs with
the saved temperature and thresholds (:func:`~geoloc.inference.audience.load_calibration`,
:class:`~geoloc.inference.audience.CalibrationReplicates`). Same mix families, over the
countries with at least ``--min-rows`` val tweets; sizes 100 and 1,000 (the val split has
a few hundred tweets). Also reports the deployed model's calibration gap on val beside
the out-of-fold rows' (mean top probability, accuracy, ECE, reliability bins). Writes
``results_deployed.md``, ``results_deployed.csv`` and ``results_deployed.png`` (W&B
group ``audience_deployed``).

    python experiments/audience/run.py MODEL_DIR --deployed [--audiences 40]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from geoloc.bundle import open_model
from geoloc.evaluation import fit_policy
from geoloc.inference.audience import (
    MARGIN_SIZES,
    METHODS,
    RECOMMENDED,
    Calibration,
    CalibrationReplicates,
    estimate_audience,
    load_calibration,
    sample_audience,
    stratified_halves,
)
from geoloc.io import log_experiment, markdown_table

HERE = Path(__file__).resolve().parent
SIZES = (20, 100, 1000, 10000)
DEPLOYED_SIZES = (100, 1000)
FAMILIES = ("dirichlet", "dominant", "absent")
#: Confidence bins of the reliability table of ``--deployed`` (top probability).
RELIABILITY_EDGES = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def draw_mix(family: str, eligible: np.ndarray, prior: np.ndarray, n_classes: int,
             rng: np.random.Generator) -> np.ndarray:
    """A country mix over all classes (zero outside ``eligible``)."""
    p = np.zeros(n_classes)
    k = len(eligible)
    if family == "dirichlet":
        p[eligible] = rng.dirichlet(np.full(k, 0.3))
    elif family == "dominant":
        top = rng.choice(k, size=3, replace=False)
        rest = np.setdiff1d(np.arange(k), top)
        p[eligible[top]] = 0.85 * rng.dirichlet(np.full(3, 5.0))
        p[eligible[rest]] = 0.15 * rng.dirichlet(np.full(len(rest), 0.3))
    elif family == "absent":
        base = prior[eligible] / prior[eligible].sum()
        q = rng.dirichlet(50 * base + 1e-3)
        q[np.argmax(base)] = 0.0
        p[eligible] = q / q.sum()
    else:
        raise ValueError(family)
    return p


def run(model_dir: Path, audiences: int, bootstrap: int, min_rows: int, seed: int
        ) -> tuple[pd.DataFrame, dict]:
    bundle = open_model(model_dir)  # verified against its manifest
    saved = bundle.thresholds()
    calibration_file = bundle.calibration_file()
    if calibration_file is None:
        raise SystemExit(f"{bundle.folder}: holds no calibration outputs (the run applied "
                         "a saved policy instead of fitting one)")
    with np.load(calibration_file, allow_pickle=False) as data:
        logits, labels = data["logits"], data["labels"].astype(np.int64)
    names = list(saved.class_names)
    c = len(names)
    rng = np.random.default_rng(seed)
    half = (~stratified_halves(labels, rng)).astype(np.int64)  # 0 or 1 per row
    counts = np.stack([np.bincount(labels[half == h], minlength=c) for h in (0, 1)])
    eligible = np.flatnonzero(counts.min(axis=0) >= min_rows)
    # The deployed temperature and thresholds were fitted on every out-of-fold row; here
    # each half gets its own, fitted on the other half alone (the same recipe), so no
    # audience row ever informed the calibration that scores it.
    setups = []
    for pool_half in (0, 1):
        calib_rows = half != pool_half
        policy = fit_policy(logits[calib_rows], labels[calib_rows], names, saved.policy)
        probs = policy.probabilities(logits)
        decisions = policy.apply(probs)
        calibration = Calibration(tuple(names), probs[calib_rows], labels[calib_rows],
                                  decisions[calib_rows])
        setups.append((calib_rows, probs, decisions,
                       CalibrationReplicates(calibration, bootstrap, seed + pool_half, 0.9)))
    pools = [[np.flatnonzero((labels == k) & ~calib_rows) for k in range(c)]
             for calib_rows, *_ in setups]
    records = []
    jobs = [(n, fam, a) for n in SIZES for fam in FAMILIES for a in range(audiences)]
    for n, fam, a in tqdm(jobs, desc="audiences"):
        calib_rows, probs, decisions, replicates = setups[a % 2]  # halves swap roles
        prior = np.bincount(labels[calib_rows], minlength=c) / calib_rows.sum()
        p = draw_mix(fam, eligible, prior, c, rng)
        rows = sample_audience(pools[a % 2], p, n, rng)
        estimates = estimate_audience(probs[rows], decisions[rows], replicates, METHODS,
                                      level=0.9, seed=int(rng.integers(1 << 31)))
        for est in estimates:
            err = np.abs(est.share - p)
            covered = (est.low <= p + 1e-12) & (p - 1e-12 <= est.high)
            records.append({
                "size": n, "family": fam, "audience": a, "method": est.method,
                "mae": float(np.nanmean(err)) if not np.isnan(est.share).all() else np.nan,
                "coverage": float(covered.mean()),
                "width": float(np.nanmean(est.high - est.low)),
                "assigned": float((decisions[rows] >= 0).mean()),
            })
    meta = {"rows": int(len(labels)), "eligible": [names[i] for i in eligible],
            "classes": c}
    return pd.DataFrame(records), meta


# -- --deployed: the deployed refit on the val tweets ------------------------------------


def deployed_scores(bundle, predictions_csv: Path, cache_dir: Path) -> dict[str, np.ndarray]:
    """The deployed model's calibrated probabilities and decisions on the val tweets of
    ``predictions_csv`` (id, text, true), with their true class indices: scored once with
    :class:`~geoloc.inference.predictor.Predictor` and cached under ``cache_dir`` (keyed
    by the bundle's files and the texts)."""
    frame = pd.read_csv(predictions_csv, keep_default_na=False,
                        dtype={"id": str, "text": str, "true": str})
    names = list(bundle.thresholds().class_names)
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted(set(frame["true"]) - set(index))
    if unknown:
        raise SystemExit(f"{predictions_csv}: labels {unknown} are not the model's classes")
    key = hashlib.sha256(json.dumps(
        [sorted((k, v["sha256"]) for k, v in bundle.manifest["files"].items()),
         list(frame["id"]), list(frame["text"])]).encode()).hexdigest()[:16]
    cache = cache_dir / f"deployed_val_{key}.npz"
    if not cache.is_file():
        from geoloc.inference.predictor import Predictor

        predicted = Predictor.load(bundle, batch_size=32).predict_texts(list(frame["text"]))
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.savez(cache, probabilities=predicted.probabilities.astype(np.float32),
                 decisions=predicted.decisions.astype(np.int64))
    with np.load(cache, allow_pickle=False) as data:
        out = {k: data[k] for k in ("probabilities", "decisions")}
    out["labels"] = frame["true"].map(index).to_numpy(np.int64)
    # the report's own confidence column was written by the same deployed model: a check
    # that these are its outputs on the same texts
    out["report_gap"] = float(np.abs(out["probabilities"].max(1)
                                     - frame["confidence"].astype(float)).max())
    out["cache"] = str(cache)
    return out


def calibration_gap(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """Mean top probability against accuracy, ECE (the project's 15-bin top-1 ECE) and
    a reliability table by top-probability bin."""
    from geoloc.evaluation.metrics import expected_calibration_error

    top = probabilities.max(1)
    correct = probabilities.argmax(1) == labels
    bins = []
    edges = RELIABILITY_EDGES
    which = np.clip(np.digitize(top, edges[1:-1]), 0, len(edges) - 2)
    for b in range(len(edges) - 1):
        sel = which == b
        bins.append({"bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}", "n": int(sel.sum()),
                     "mean top probability": float(top[sel].mean()) if sel.any() else np.nan,
                     "accuracy": float(correct[sel].mean()) if sel.any() else np.nan})
    n = len(labels)
    return {"rows": n, "mean_top_probability": float(top.mean()),
            "accuracy": float(correct.mean()),
            "accuracy_se": float(np.sqrt(correct.mean() * (1 - correct.mean()) / n)),
            "ece": expected_calibration_error(probabilities, labels), "bins": bins}


def _score_audiences(pools: list[np.ndarray], probs: np.ndarray, decisions: np.ndarray,
                     replicates: CalibrationReplicates, jobs: list[tuple[int, str, int]],
                     eligible: np.ndarray, prior: np.ndarray, rng: np.random.Generator,
                     pool_name: str) -> list[dict]:
    """Draw and estimate the audiences ``jobs`` ((size, family, index) each) from
    ``pools``; one record per audience and method."""
    c = probs.shape[1]
    records = []
    for n, fam, a in tqdm(jobs, desc=f"audiences ({pool_name})"):
        p = draw_mix(fam, eligible, prior, c, rng)
        rows = sample_audience(pools, p, n, rng)
        estimates = estimate_audience(probs[rows], decisions[rows], replicates, METHODS,
                                      level=0.9, seed=int(rng.integers(1 << 31)))
        present = p > 0
        for est in estimates:
            err = np.abs(est.share - p)
            covered = (est.low <= p + 1e-12) & (p - 1e-12 <= est.high)
            records.append({
                "pool": pool_name, "size": n, "family": fam, "audience": a,
                "method": est.method,
                "mae": float(np.nanmean(err)) if not np.isnan(est.share).all() else np.nan,
                "coverage": float(covered.mean()),
                "coverage_present": float(covered[present].mean()),
                "width": float(np.nanmean(est.high - est.low)),
                "absent_share": float(np.nansum(est.share[~present])),
                "assigned": float((decisions[rows] >= 0).mean()),
            })
    return records


def whole_split(probs: np.ndarray, decisions: np.ndarray, labels: np.ndarray,
                calibration: Calibration, top: int = 3) -> pd.DataFrame:
    """Each method's point estimate on the whole val split (one audience: the split's own
    mix) against its true mix: MAE, and the countries it over-estimates most, with the
    number of val and out-of-fold tweets whose probability of that country exceeds 0.02
    (the deployed model against the fold models)."""
    from geoloc.inference.audience.estimators import _estimate, _Fitted

    names = calibration.class_names
    truth = np.bincount(labels, minlength=len(names)) / len(labels)
    fitted = _Fitted.of(calibration)
    rows = []
    for m in METHODS:
        est = _estimate(m, probs.astype(np.float64), decisions, fitted)
        over = np.argsort(-(est - truth))[:top]
        rows.append({"method": m, "MAE x100": f"{100 * np.abs(est - truth).mean():.2f}",
                     "largest over-estimates (estimate / truth x100; val / out-of-fold "
                     "tweets with p > 0.02)": "; ".join(
                         f"{names[k]} {100 * est[k]:.1f} / {100 * truth[k]:.1f} "
                         f"({(probs[:, k] > 0.02).sum()} / "
                         f"{(calibration.probabilities[:, k] > 0.02).sum()})" for k in over)})
    return pd.DataFrame(rows)


def run_deployed(model_dir: Path, predictions_csv: Path, audiences: int, bootstrap: int,
                 min_rows: int, seed: int, control_splits: int = 3,
                 sizes: tuple[int, ...] = DEPLOYED_SIZES) -> tuple[pd.DataFrame, dict]:
    """Audiences drawn from the deployed model's val outputs, estimated with the bundle's
    own calibration as ``geoloc-audience`` does (module docstring).

    With ``control_splits``, also the control that tells a model mismatch from the
    small pool: the same audiences (sizes, families, countries) drawn from out-of-fold
    rows instead, a held-out pool with the val split's class counts (at most half a
    class's rows), the policy refitted with the saved recipe on the other out-of-fold
    rows and the estimators calibrated on them; ``control_splits`` such splits share the
    audiences. Fold-model audiences scored by a fold-model calibration: what the
    estimators do with a pool of this size when the calibration matches the model."""
    bundle = open_model(model_dir)
    thresholds, calibration = load_calibration(bundle)
    names = list(calibration.class_names)
    c = len(names)
    pool = deployed_scores(bundle, predictions_csv, HERE.parent.parent / "outputs" / "audience")
    probs, decisions, labels = pool["probabilities"], pool["decisions"], pool["labels"]
    counts = np.bincount(labels, minlength=c)
    eligible = np.flatnonzero(counts >= min_rows)
    prior = calibration.prior()
    start = time.perf_counter()
    replicates = CalibrationReplicates(calibration, bootstrap, seed, 0.9, METHODS)
    margins_s = time.perf_counter() - start
    rng = np.random.default_rng([seed, 0xDE9])
    jobs = [(n, fam, a) for n in sizes for fam in FAMILIES for a in range(audiences)]
    records = _score_audiences([np.flatnonzero(labels == k) for k in range(c)], probs,
                               decisions, replicates, jobs, eligible, prior, rng,
                               "deployed, val")
    if control_splits:
        with np.load(bundle.calibration_file(), allow_pickle=False) as data:
            logits, oof_labels = data["logits"], data["labels"].astype(np.int64)
        for h in range(control_splits):
            hold = np.zeros(len(oof_labels), dtype=bool)
            for k in range(c):
                idx = np.flatnonzero(oof_labels == k)
                hold[rng.choice(idx, min(counts[k], len(idx) // 2), replace=False)] = True
            policy = fit_policy(logits[~hold], oof_labels[~hold], names, thresholds.policy)
            oof_probs = policy.probabilities(logits)
            oof_decisions = policy.apply(oof_probs)
            split = Calibration(tuple(names), oof_probs[~hold], oof_labels[~hold],
                                oof_decisions[~hold])
            records += _score_audiences(
                [np.flatnonzero(hold & (oof_labels == k)) for k in range(c)], oof_probs,
                oof_decisions, CalibrationReplicates(split, bootstrap, seed + 1 + h, 0.9,
                                                     METHODS),
                [j for j in jobs if j[2] % control_splits == h], eligible, split.prior(),
                rng, "out-of-fold control")
    meta = {"rows": int(len(labels)), "eligible": [names[i] for i in eligible],
            "classes": c, "calibration_rows": int(len(calibration.labels)),
            "temperature": float(thresholds.temperature),
            "control_splits": control_splits,
            "whole_split": whole_split(probs, decisions, labels, calibration),
            "report_confidence_gap": pool["report_gap"], "cache": pool["cache"],
            "margins_seconds": round(margins_s, 1),
            "margins": {m: [round(float(x), 3) for x in v[1]]
                        for m, v in replicates.margins.items()},
            "gap_val": calibration_gap(probs, labels),
            "gap_oof": calibration_gap(calibration.probabilities, calibration.labels)}
    return pd.DataFrame(records), meta


def summarise(raw: pd.DataFrame) -> pd.DataFrame:
    """Mean absolute error (x100, mean ± standard error over audiences) and coverage per
    method and size; naive counting's NaN audiences (nothing assigned) count as errors of
    the uniform guess would: they are reported in their own column instead."""
    rows = []
    keys = ["pool", "size", "method"] if "pool" in raw else ["size", "method"]
    for key, g in raw.groupby(keys, sort=False):
        *pool, size, method = key
        mae = g["mae"].dropna()
        rows.append({
            **({"pool": pool[0]} if pool else {}), "size": f"{size:,}", "method": method,
            "MAE x100": f"{100 * mae.mean():.2f} ± {100 * mae.std(ddof=1) / np.sqrt(len(mae)):.2f}",
            "coverage of 90 % intervals": f"{100 * g['coverage'].mean():.1f} %",
            **({"coverage where p > 0": f"{100 * g['coverage_present'].mean():.1f} %"}
               if "coverage_present" in g else {}),
            "mean width x100": f"{100 * g['width'].mean():.1f}",
            **({"share on countries not in the mix x100":
                f"{100 * g['absent_share'].mean():.1f}"} if "absent_share" in g else {}),
            "no estimate": int(g["mae"].isna().sum()),
        })
    return pd.DataFrame(rows)


def plot(raw: pd.DataFrame, path: Path, gaps: dict | None = None) -> None:
    """Error and coverage by size; with ``gaps`` (``--deployed``: the calibration gap of
    the val and out-of-fold rows) a third panel, the reliability of each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3 if gaps else 2, figsize=(18 if gaps else 12, 4.5))
    ax1, ax2 = axes[:2]
    pools = list(raw["pool"].unique()) if "pool" in raw else [None]
    coverage = "coverage_present" if "coverage_present" in raw else "coverage"
    for pool, style in zip(pools, ("-", "--", ":"), strict=False):
        for i, method in enumerate(METHODS):
            sel = raw["method"] == method
            if pool is not None:
                sel &= raw["pool"] == pool
            g = raw[sel].groupby("size")
            label = method if pool is None else f"{method} ({pool})"
            kw = {"marker": "o", "ls": style, "color": f"C{i}", "label": label}
            ax1.plot(g["mae"].mean().index, 100 * g["mae"].mean(), **kw)
            ax2.plot(g[coverage].mean().index, 100 * g[coverage].mean(), **kw)
    ax1.set(xscale="log", xlabel="audience size (profiles)",
            ylabel="mean absolute error x100")
    ax1.set_title("error of the estimated country shares", fontsize=11)
    ax2.axhspan(85, 95, color="green", alpha=0.12, label="85-95 %")
    ax2.axhline(90, color="green", lw=0.8)
    ax2.set(xscale="log", xlabel="audience size (profiles)", ylabel="coverage (%)",
            ylim=(0, 101))
    ax2.set_title("90 % intervals holding the true share"
                  + (" (countries in the mix)" if coverage == "coverage_present" else ""),
                  fontsize=11)
    if gaps:
        ax3 = axes[2]
        ax3.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        for label, gap in gaps.items():
            bins = pd.DataFrame(gap["bins"]).dropna()
            ax3.plot(bins["mean top probability"], bins["accuracy"], marker="o",
                     label=f"{label}: top prob {gap['mean_top_probability']:.3f}, "
                           f"acc {gap['accuracy']:.3f}, ECE {gap['ece']:.3f}")
        ax3.set(xlabel="mean top probability in bin", ylabel="accuracy in bin",
                xlim=(0, 1), ylim=(0, 1))
        ax3.set_title("reliability (calibrated probabilities)", fontsize=11)
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def gap_table(gaps: dict) -> pd.DataFrame:
    """The calibration gap of each set of rows, one line each."""
    return pd.DataFrame([{
        "rows": label, "n": f"{g['rows']:,}",
        "mean top probability": f"{g['mean_top_probability']:.3f}",
        "accuracy (argmax)": f"{g['accuracy']:.3f} ± {g['accuracy_se']:.3f}",
        "gap": f"{g['mean_top_probability'] - g['accuracy']:+.3f}",
        "ECE": f"{g['ece']:.3f}"} for label, g in gaps.items()])


def reliability_table(gaps: dict) -> pd.DataFrame:
    """Mean top probability and accuracy per confidence bin, for each set of rows."""
    out = None
    for label, g in gaps.items():
        b = pd.DataFrame(g["bins"]).set_index("bin")
        b = pd.DataFrame({f"{label} n": b["n"],
                          f"{label} top prob": b["mean top probability"].map("{:.3f}".format),
                          f"{label} accuracy": b["accuracy"].map("{:.3f}".format)})
        out = b if out is None else out.join(b)
    return out.reset_index()


def main_deployed(a: argparse.Namespace) -> None:
    predictions = a.predictions or a.model_dir.parent / "report" / "predictions.csv"
    start = time.perf_counter()
    raw, meta = run_deployed(a.model_dir, predictions, a.audiences, a.bootstrap,
                             a.min_rows, a.seed, a.control_splits)
    minutes = (time.perf_counter() - start) / 60
    table = summarise(raw)
    gaps = {"deployed, val": meta["gap_val"], "out-of-fold (calibration)": meta["gap_oof"]}
    raw.to_csv(HERE / "results_deployed.csv", index=False)
    plot(raw, HERE / "results_deployed.png", gaps)
    margins = pd.DataFrame({"method": list(meta["margins"]),
                            **{f"λ at {n:,}": [v[i] for v in meta["margins"].values()]
                               for i, n in enumerate(MARGIN_SIZES)}})
    (HERE / "results_deployed.md").write_text(
        "# Audience geography with the deployed model: estimated country shares against "
        "the truth\n\n"
        f"`python experiments/audience/run.py MODEL_DIR --deployed --audiences {a.audiences} "
        f"--bootstrap {a.bootstrap} --min-rows {a.min_rows} --seed {a.seed} "
        f"--control-splits {a.control_splits}` "
        f"({minutes:.1f} min). Pool: the deployed refit's outputs on the {meta['rows']:,} "
        f"val tweets it never trained on ({len(meta['eligible'])} of {meta['classes']} "
        f"classes with ≥ {a.min_rows} tweets in the mixes: {', '.join(meta['eligible'])}). "
        f"Estimators calibrated as `geoloc-audience` does: the bundle's "
        f"{meta['calibration_rows']:,} out-of-fold rows, temperature "
        f"{meta['temperature']:.3f}, saved thresholds. {a.audiences} audiences per size "
        f"and mix family ({len(FAMILIES)} families), drawn with replacement per country; "
        f"{a.bootstrap} bootstrap replicates. Recommended estimator: `{RECOMMENDED}`.\n\n"
        "## Shares\n\n" + markdown_table(table) + "\n\n"
        "`coverage`: over all (audience, class) pairs, as in `results.md` (the "
        f"{meta['classes'] - len(meta['eligible'])} classes never in a mix are easy to "
        "cover); `coverage where p > 0`: over the classes present in the audience's mix. "
        "`share on countries not in the mix`: the estimate's total share on countries "
        "whose true share is 0. `out-of-fold control`: audiences of the same sizes, "
        "families and countries drawn from "
        f"out-of-fold rows held out with the val split's class counts ({a.control_splits} "
        "splits), scored by a calibration on the other out-of-fold rows: a pool of this "
        "size without the model mismatch.\n\n"
        "## The whole val split as one audience\n\n"
        + markdown_table(meta["whole_split"]) + "\n\n"
        "## Calibration gap\n\n" + markdown_table(gap_table(gaps)) + "\n\n"
        + markdown_table(reliability_table(gaps)) + "\n\n"
        "The out-of-fold rows are those the temperature was fitted on (in-sample for "
        "the temperature).\n\n"
        "## Systematic margins λ(n) of this job (calibration data only)\n\n"
        + markdown_table(margins) + "\n\n![results](results_deployed.png)\n",
        encoding="utf-8")
    log_experiment("audience_deployed", {**vars(a), "model_dir": str(a.model_dir),
                                         "predictions": str(predictions),
                                         **{k: v for k, v in meta.items()
                                            if not k.startswith("gap")
                                            and k != "whole_split"}},
                   {"summary": table, "audiences": raw, "gap": gap_table(gaps),
                    "whole_split": meta["whole_split"]},
                   {"figure": HERE / "results_deployed.png"},
                   HERE.parent.parent / "outputs")
    print(markdown_table(table))
    print(markdown_table(meta["whole_split"]))
    print(markdown_table(gap_table(gaps)))
    print(json.dumps({"minutes": round(minutes, 1), "margins": meta["margins"],
                      "report_confidence_gap": meta["report_confidence_gap"]}))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir", type=Path,
                   help="model folder of geoloc-train experiment=real_umass (<run>/model, "
                        "e.g. outputs/real_data/real_only/model)")
    p.add_argument("--audiences", type=int, default=20, help="per size and mix family")
    p.add_argument("--bootstrap", type=int, default=100)
    p.add_argument("--min-rows", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--deployed", action="store_true",
                   help="audiences from the deployed model's outputs on the val tweets "
                        "(module docstring); writes results_deployed.*")
    p.add_argument("--control-splits", type=int, default=3,
                   help="--deployed: out-of-fold splits of the control (0: no control)")
    p.add_argument("--predictions", type=Path, default=None,
                   help="--deployed: the val tweets (id, text, true); default "
                        "MODEL_DIR/../report/predictions.csv")
    a = p.parse_args(argv)
    if a.deployed:
        main_deployed(a)
        return
    start = time.perf_counter()
    raw, meta = run(a.model_dir, a.audiences, a.bootstrap, a.min_rows, a.seed)
    table = summarise(raw)
    minutes = (time.perf_counter() - start) / 60
    raw.to_csv(HERE / "results.csv", index=False)
    plot(raw, HERE / "results.png")
    (HERE / "results.md").write_text(
        "# Audience geography on real tweets: estimated country shares against the truth\n\n"
        f"`python experiments/audience/run.py MODEL_DIR --audiences {a.audiences} --bootstrap "
        f"{a.bootstrap} --min-rows {a.min_rows} --seed {a.seed}` ({minutes:.0f} min). "
        f"{meta['rows']:,} out-of-fold tweets, halves swapping between calibration and "
        f"audience pool; {len(meta['eligible'])} of {meta['classes']} classes in the "
        f"mixes; {a.audiences} audiences per size and mix family ({len(FAMILIES)} "
        f"families). Recommended estimator: `{RECOMMENDED}`.\n\n"
        + markdown_table(table) + "\n\n![results](results.png)\n", encoding="utf-8")
    log_experiment("audience", {**vars(a), "model_dir": str(a.model_dir), **meta},
                   {"summary": table, "audiences": raw}, {"figure": HERE / "results.png"},
                   HERE.parent.parent / "outputs")
    print(markdown_table(table))
    print(json.dumps({"minutes": round(minutes, 1)}))


if __name__ == "__main__":
    main()
