"""Simple baselines on the same split and through the same evaluation as the transformer.

Two baselines, both trained on the datamodule's own train split (the same records, the
same text, the same label set and the same split rule, via
:func:`geoloc.data.datamodule.labelled_splits`):

- ``majority``: the class prior of the train split (add-one smoothed) for every profile;
  its argmax is the most frequent class.
- ``char n-gram LR``: TF-IDF over character n-grams inside word boundaries
  (``char_wb``, 1-4 grams, sublinear tf, ``min_df=2``) + multinomial logistic regression.
  The inverse regularisation ``C`` is picked from a short grid by macro-F1 on the
  validation split (the only split decisions may look at); the chosen value is reported.

Each baseline produces log-probabilities (used as logits) for the calibration split and
the evaluated split and goes through :func:`geoloc.evaluation.evaluate_logits` exactly like
the transformer, so temperature scaling, per-country thresholds at the target precision
(UNCERTAIN otherwise) and every metric are computed by the same code.

``geoloc-baselines [hydra overrides] [--transformer "LABEL=REPORT_DIR" ...]``
composes the training config (default ``data=umass``), fits the baselines, reads the
transformer runs' ``summary.json`` and writes one side-by-side table
(``results.md`` + ``results.csv``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geoloc.data.splits import validate_eval_split, validate_splits
from geoloc.evaluation import EvaluationResult, PolicyConfig, SplitOutputs, evaluate_logits
from geoloc.evaluation.render import pct_with_se
from geoloc.instantiate import instantiate
from geoloc.io import markdown_table, write_json_atomic, write_text_atomic
from geoloc.labels import LabelSet
from geoloc.model.ngram import CharNgramLR

log = logging.getLogger("geoloc.baselines")

#: The grid searched for ``C`` (by validation macro-F1; wide, because on the short real
#: tweets macro-F1 keeps rising to C ~ 1e3 while accuracy peaks near C ~ 1e2).
DEFAULT_C_GRID = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)

#: Table columns: (header, scalar key in summary.json, format).
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("accuracy", "accuracy", "pct"),
    ("macro-F1", "macro_f1", "pct"),
    ("assigned correct country", "correct_country_rate", "pct"),
    ("countries certified alone", "countries_certified_own", "int"),
    ("countries certified as a pool", "countries_certified_pooled", "int"),
    ("UNCERTAIN", "uncertain_rate", "pct"),
    ("country coverage at target", "country_assigned_rate", "pct"),
    ("precision of assigned countries", "country_precision", "pct"),
    ("countries meeting target", "countries_meeting_target", "int"),
    ("coverage at target accuracy (oracle)", "oracle_coverage", "pct"),
)

DATASET_CITATION = (
    "Su Lin Blodgett, Johnny Tian-Zheng Wei and Brendan O'Connor, \"A Dataset and "
    "Classifier for Recognizing Social Media English\", Proceedings of the 3rd Workshop on "
    "Noisy User-generated Text (W-NUT), 2017 (data: CC BY 4.0)."
)


# ------------------------------------------------------------------------------ models


@dataclass
class MajorityBaseline:
    """The (add-one smoothed) class prior of the train split for every profile."""

    n_classes: int
    name: str = "majority"
    prior_: np.ndarray | None = field(default=None, repr=False)

    def fit(self, texts: Sequence[str], labels: Sequence[int]) -> MajorityBaseline:
        counts = np.bincount(np.asarray(labels, dtype=int), minlength=self.n_classes)
        self.prior_ = (counts + 1.0) / (counts.sum() + self.n_classes)
        return self

    def log_proba(self, texts: Sequence[str]) -> np.ndarray:
        if self.prior_ is None:
            raise RuntimeError("fit the baseline first")
        return np.tile(np.log(self.prior_), (len(texts), 1)).astype(np.float32)

    def describe(self) -> str:
        return "train-split class prior (add-one smoothed) for every profile"


def macro_f1(logits: np.ndarray, labels: Sequence[int], n_classes: int) -> float:
    """Macro-F1 over the classes present in ``labels`` or predicted (sklearn's default)."""
    from sklearn.metrics import f1_score

    return float(f1_score(np.asarray(labels), np.asarray(logits).argmax(axis=1),
                          average="macro", zero_division=0))


def tune_char_ngram(
    train: Mapping[str, list], val: Mapping[str, list], n_classes: int,
    grid: Sequence[float] = DEFAULT_C_GRID, **kwargs: Any,
) -> tuple[CharNgramLR, list[dict[str, float]]]:
    """Fit one :class:`CharNgramLR` per ``C`` on train; keep the best val macro-F1."""
    best: CharNgramLR | None = None
    best_key = (-1.0, -1.0)
    trials = []
    for c in grid:
        model = CharNgramLR(n_classes=n_classes, C=float(c), **kwargs).fit(
            train["text"], train["labels"])
        logits = model.log_proba(val["text"])
        acc = float((logits.argmax(axis=1) == np.asarray(val["labels"])).mean())
        f1 = macro_f1(logits, val["labels"], n_classes)
        trials.append({"C": float(c), "val_accuracy": acc, "val_macro_f1": f1})
        if (f1, acc) > best_key:
            best, best_key = model, (f1, acc)
    assert best is not None
    return best, trials


# -------------------------------------------------------------------------- evaluation


def evaluate_baseline(
    model: MajorityBaseline | CharNgramLR,
    splits: Mapping[str, Mapping[str, list]],
    class_names: Sequence[str],
    out_dir: str | Path,
    policy: PolicyConfig,
    *,
    eval_split: str = "test",
) -> EvaluationResult:
    """Logits for ``calib`` and ``eval_split`` -> :func:`geoloc.evaluation.evaluate_logits`
    (the same call, policy and report as ``geoloc-train``'s evaluation)."""
    cal, ev = splits["calib"], splits[eval_split]
    if not cal["labels"] or not ev["labels"]:
        raise ValueError(f"the calib and {eval_split} splits must not be empty")

    def outputs(split: Mapping[str, list]) -> SplitOutputs:
        return SplitOutputs(model.log_proba(split["text"]),
                            np.asarray(split["labels"], dtype=np.int64))

    return evaluate_logits(outputs(cal), outputs(ev), list(class_names), policy,
                           split=eval_split, report_dir=out_dir)


def oracle_coverage(sweep: pd.DataFrame, accuracy: float = 0.9) -> float | None:
    """Largest share of profiles kept by one global threshold whose kept accuracy is
    >= ``accuracy`` on the evaluated split itself (from the report's ``sweep.csv``).

    Chosen in hindsight on the evaluated split: a point of the risk-coverage curve that
    compares models, not a deployable policy (that is the calibrated columns' job)."""
    rows = sweep[(sweep["class"] == "ALL") & (sweep["accuracy_kept"] >= accuracy)]
    rows = rows[rows["kept"] > 0]
    return float(rows["coverage"].max()) if len(rows) else 0.0


def read_summary(report_dir: str | Path) -> dict[str, Any]:
    """The ``summary.json`` a report folder holds (written by ``evaluate_logits``), plus
    ``oracle_coverage`` when its ``sweep.csv`` is there."""
    path = Path(report_dir)
    path = path if path.suffix == ".json" else path / "summary.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no summary.json (did the run finish?)")
    summary = json.loads(path.read_text())
    sweep = path.parent / "sweep.csv"
    if sweep.exists() and "oracle_coverage" not in summary["scalars"]:
        target = summary["scalars"].get("target_precision") or 0.9
        summary["scalars"]["oracle_coverage"] = oracle_coverage(pd.read_csv(sweep), target)
    return summary


# ------------------------------------------------------------------------------- table


def _fmt(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if kind == "pct":
        return f"{100 * float(value):.1f} %"
    return str(int(value))


def results_table(rows: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per model from its summary (``{"split", "scalars"}``); raw numbers."""
    records = []
    for name, summary in rows.items():
        s = summary["scalars"]
        rec: dict[str, Any] = {"model": name, "split": summary.get("split"),
                               "n": s.get("n_samples")}
        for header, key, _ in COLUMNS:
            rec[header] = s.get(key)
            if f"{key}_se" in s:  # standard errors travel beside their metric
                rec[f"{header} SE"] = s[f"{key}_se"]
        rec["countries assigned"] = s.get("countries_assigned")
        records.append(rec)
    return pd.DataFrame(records)


def check_same_split(table: pd.DataFrame) -> None:
    """Every row must come from the same evaluated split with the same number of rows."""
    if table[["split", "n"]].drop_duplicates().shape[0] > 1:
        raise ValueError(
            "the rows were evaluated on different splits or sizes:\n"
            + table[["model", "split", "n"]].to_string(index=False)
        )


def format_table(table: pd.DataFrame) -> pd.DataFrame:
    """The results table as people read it: percentages, "k of n assigned"."""
    rows = []
    for _, r in table.iterrows():
        row = {"model": str(r["model"])}
        for header, _, kind in COLUMNS:
            se = r.get(f"{header} SE")
            if kind == "pct" and se is not None and not pd.isna(se):
                cell = pct_with_se(r[header], se)
            else:
                cell = _fmt(r[header], kind)
            if header == "countries meeting target" and r["countries assigned"] is not None \
                    and not pd.isna(r["countries assigned"]):
                cell = f"{cell} of {int(r['countries assigned'])} assigned"
            row[header] = cell
        rows.append(row)
    return pd.DataFrame(rows, columns=["model", *[h for h, _, _ in COLUMNS]])


def write_results(
    table: pd.DataFrame, out_dir: str | Path, *, title: str, notes: Sequence[str] = (),
    command: str | None = None,
) -> dict[str, Path]:
    """``results.md`` (the table + notes) and ``results.csv`` (raw numbers)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / "results.csv", out / "results.md"
    table.to_csv(csv_path, index=False, float_format="%.6f")
    split = table["split"].iat[0] if len(table) else "?"
    n = table["n"].iat[0] if len(table) else 0
    md = [f"# {title}", "", f"Evaluated split: `{split}` ({n} profiles); same split, same "
          "metrics (`geoloc.evaluation.evaluate_logits`) for every row.", "",
          *([f"Produced by `{command}`.", ""] if command else []),
          markdown_table(format_table(table)), "", *notes, ""]
    write_text_atomic(md_path, "\n".join(md))
    return {"md": md_path, "csv": csv_path}


def column_notes(target: float, delta: float) -> str:
    """What each column means, at the run's own precision target and δ."""
    at = f"{100 * target:g} %"
    return (
    "Columns: accuracy and macro-F1 are argmax without abstention (macro over the 36 "
    "countries + OTHER); ± is one standard error on the evaluated split (binomial; "
    "bootstrap for macro-F1); *assigned correct country* is the share of all profiles that "
    "get their true country after abstention; *countries certified alone* the countries "
    "with their own certified threshold, *as a pool* those sharing the pooled rare "
    "countries' one (a statement about the group, never counted as their own; – for runs "
    "made before the two were told apart); *UNCERTAIN* the share left "
    "unassigned; *country coverage at target* the share assigned any country under the "
    f"thresholds fitted for {at} precision (δ = {delta:g}) on the calibration set (the calib "
    "split, or all out-of-fold predictions when cross-fitted); *precision of assigned "
    "countries* the precision of those assignments on this split; *countries meeting "
    f"target* counts countries whose precision here is ≥ {at}, of those assigned at least "
    f"once. *Coverage at target accuracy (oracle)* is the largest share of profiles one "
    f"global confidence threshold keeps with ≥ {at} accuracy on the evaluated split itself, "
    "chosen in hindsight: a risk-coverage point for comparing models, not a deployable "
    "policy."
    )


# ------------------------------------------------------------------------------ runner


def load_splits(cfg) -> tuple[dict[str, dict[str, list]], list[str], str]:
    """The datamodule's split of ``cfg.data`` (untokenised), the class names, the eval split."""
    # imported here: +2.2 s (transformers, lightning) on `geoloc-baselines --help` otherwise
    from geoloc.data.datamodule import labelled_splits

    source = instantiate(cfg.data.source)
    label_set = LabelSet.from_codes([str(c) for c in cfg.labels.countries])
    fractions = validate_splits(dict(cfg.data.splits))
    eval_split = validate_eval_split(str(cfg.data.eval_split), fractions)
    splits = labelled_splits(source, label_set, fractions, int(cfg.data.split_seed))
    return splits, list(label_set.names), eval_split


def run_baselines(
    overrides: Sequence[str] = ("data=umass",),
    transformers: Mapping[str, str | Path] | None = None,
    out_dir: str | Path = "experiments/baselines",
    reports_dir: str | Path = "outputs/baselines",
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    title: str = "Baselines vs transformer",
    extra_notes: Sequence[str] = (),
) -> pd.DataFrame:
    """Fit and evaluate the baselines, add the transformer runs, write the table."""
    from geoloc.config import compose_config  # ~1.5 s on --help: transformers

    cfg = compose_config(overrides)
    policy: PolicyConfig = instantiate(cfg.evaluation.policy)
    splits, names, eval_split = load_splits(cfg)
    n_classes = len(names)
    sizes = {k: len(v["labels"]) for k, v in splits.items()}
    log.info("splits %s, evaluating %s", sizes, eval_split)
    reports = Path(reports_dir)
    summaries = Path(out_dir) / "summaries"
    summaries.mkdir(parents=True, exist_ok=True)

    n_eval = len(splits[eval_split]["labels"])
    others = {label: read_summary(d) for label, d in (transformers or {}).items()}
    for label, summary in others.items():  # fail before fitting anything
        got = (summary.get("split"), summary["scalars"].get("n_samples"))
        if got != (eval_split, n_eval):
            raise ValueError(
                f"{label!r} was evaluated on different splits or sizes: split={got[0]!r}, "
                f"n={got[1]}; the baselines use split={eval_split!r}, n={n_eval}"
            )
    rows: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    t0 = time.time()
    majority = MajorityBaseline(n_classes).fit(splits["train"]["text"], splits["train"]["labels"])
    t_major = time.time() - t0
    t0 = time.time()
    lr, trials = tune_char_ngram(splits["train"], splits["val"], n_classes, grid=c_grid)
    t_lr = time.time() - t0
    for slug, model, secs in (("majority", majority, t_major), ("char_ngram_lr", lr, t_lr)):
        result = evaluate_baseline(model, splits, names, reports / slug, policy,
                                   eval_split=eval_split)
        rows[model.name] = read_summary(reports / slug)
        write_json_atomic(summaries / f"{slug}.json", rows[model.name])
        what = "fit" if slug == "majority" else f"{len(trials)} fits (the C grid)"
        notes.append(f"- **{model.name}**: {model.describe()}; {what} in {secs:.1f} s "
                     f"(accuracy {100 * result.scalars['accuracy']:.1f} %).")
    grid_txt = ", ".join(f"C={t['C']:g}: {100 * t['val_accuracy']:.1f} / "
                         f"{100 * t['val_macro_f1']:.1f}" for t in trials)
    notes.append(f"- C of the char n-gram LR chosen by validation macro-F1 (accuracy / "
                 f"macro-F1 in %: {grid_txt}); the evaluated split is that same validation "
                 "split, so this baseline is if anything optimistic.")
    for label, summary in others.items():
        rows[label] = summary
        slug = "".join(ch if ch.isalnum() else "_" for ch in label.lower()).strip("_")
        write_json_atomic(summaries / f"{slug}.json", rows[label])
    table = results_table(rows)
    check_same_split(table)
    data_notes = [
        "",
        f"Data config: `{' '.join(overrides)}`; split sizes {sizes} (split by a keyed hash "
        f"of the id, `data.split_seed={cfg.data.split_seed}`); label set: "
        f"{n_classes - 1} countries + OTHER; target precision {100 * policy.target:.0f} %, "
        f"δ = {policy.delta:g}, start counts {list(policy.start_counts)}, "
        f"{policy.guarantee} guarantee.",
    ]
    if "umass" in " ".join(overrides):
        data_notes.append(
            "Data: UMass Global English on Twitter, development half (bundled; the held-out "
            f"half is not in the repository). Cite: {DATASET_CITATION}")
    command = " ".join(["geoloc-baselines", *overrides,
                        *(f'--transformer "{label}=…"' for label in others)])
    write_results(table, out_dir, title=title, command=command,
                  notes=[column_notes(policy.target, policy.delta), "", *notes, *data_notes,
                         *extra_notes])
    return table


def compare(argv: Sequence[str] | None = None) -> pd.DataFrame:
    """``geoloc-baselines`` without the exit status: the comparison table it writes."""
    parser = argparse.ArgumentParser(
        prog="geoloc-baselines",
        description="Fit majority and char n-gram LR baselines on the datamodule's split, "
                    "evaluate them like the transformer and write one comparison table.",
    )
    parser.add_argument("overrides", nargs="*", default=None,
                        help="Hydra overrides of the training config (default: data=umass)")
    parser.add_argument("--transformer", action="append", default=[], metavar="LABEL=DIR",
                        help="a transformer run's report folder (holding summary.json)")
    parser.add_argument("--out", default="experiments/baselines",
                        help="where results.md, results.csv and summaries/ go")
    parser.add_argument("--reports", default="outputs/baselines",
                        help="where the baselines' full evaluation reports go")
    parser.add_argument("--c-grid", default=",".join(f"{c:g}" for c in DEFAULT_C_GRID),
                        help="comma-separated C values for the char n-gram LR")
    parser.add_argument("--title", default="Baselines vs transformer",
                        help="heading of results.md")
    args = parser.parse_args(argv)
    transformers = {}
    for item in args.transformer:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            parser.error(f"--transformer {item!r}: expected LABEL=REPORT_DIR")
        transformers[label] = path
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    table = run_baselines(
        overrides=args.overrides or ["data=umass"], transformers=transformers,
        out_dir=args.out, reports_dir=args.reports,
        c_grid=[float(c) for c in args.c_grid.split(",") if c.strip()], title=args.title,
    )
    print(markdown_table(format_table(table)))
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``geoloc-baselines``: 0 once the table is written (the console
    script passes the return value to ``sys.exit``, which would print a DataFrame and
    exit 1)."""
    compare(argv)
    return 0


if __name__ == "__main__":
    main()
