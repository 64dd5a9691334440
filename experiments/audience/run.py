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
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from geoloc.bundle import open_model
from geoloc.evaluation import fit_policy
from geoloc.inference.audience import (
    METHODS,
    RECOMMENDED,
    Calibration,
    CalibrationReplicates,
    estimate_audience,
    sample_audience,
    stratified_halves,
)
from geoloc.io import log_experiment, markdown_table

HERE = Path(__file__).resolve().parent
SIZES = (20, 100, 1000, 10000)
FAMILIES = ("dirichlet", "dominant", "absent")


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


def summarise(raw: pd.DataFrame) -> pd.DataFrame:
    """Mean absolute error (x100, mean ± standard error over audiences) and coverage per
    method and size; naive counting's NaN audiences (nothing assigned) count as errors of
    the uniform guess would: they are reported in their own column instead."""
    rows = []
    for (size, method), g in raw.groupby(["size", "method"], sort=False):
        mae = g["mae"].dropna()
        rows.append({
            "size": f"{size:,}", "method": method,
            "MAE x100": f"{100 * mae.mean():.2f} ± {100 * mae.std(ddof=1) / np.sqrt(len(mae)):.2f}",
            "coverage of 90 % intervals": f"{100 * g['coverage'].mean():.1f} %",
            "mean width x100": f"{100 * g['width'].mean():.1f}",
            "no estimate": int(g["mae"].isna().sum()),
        })
    return pd.DataFrame(rows)


def plot(raw: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for method in METHODS:
        g = raw[raw["method"] == method].groupby("size")
        ax1.plot(g["mae"].mean().index, 100 * g["mae"].mean(), marker="o", label=method)
        ax2.plot(g["coverage"].mean().index, 100 * g["coverage"].mean(), marker="o",
                 label=method)
    ax1.set(xscale="log", xlabel="audience size (profiles)", ylabel="mean absolute error x100")
    ax1.set_title("error of the estimated country shares", fontsize=11)
    ax2.axhspan(85, 95, color="green", alpha=0.12, label="85-95 %")
    ax2.axhline(90, color="green", lw=0.8)
    ax2.set(xscale="log", xlabel="audience size (profiles)", ylabel="coverage (%)",
            ylim=(0, 101))
    ax2.set_title("90 % intervals holding the true share", fontsize=11)
    for ax in (ax1, ax2):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir", type=Path,
                   help="model folder of geoloc-train experiment=real_umass (<run>/model, "
                        "e.g. outputs/real_data/real_only/model)")
    p.add_argument("--audiences", type=int, default=20, help="per size and mix family")
    p.add_argument("--bootstrap", type=int, default=100)
    p.add_argument("--min-rows", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
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
