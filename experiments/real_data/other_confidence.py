"""How confident is the model on tweets from outside the label set (OTHER)?

A language spoken in many countries is weak evidence for any one of them. This reads a
cross-fitted run's out-of-fold predictions (``crossfit_oof.npz``, every train + calib
tweet predicted by a model that never saw it; fused with the n-gram model's as the run
did) and the policy saved in its model folder (``<run>/model``), and reports, for the
tweets whose true class is OTHER, grouped by script (Arabic, Cyrillic, Latin, ...): how
many there are, their mean calibrated top probability, and the share the policy assigns
to a *country* (a confident wrong answer). The same figures for all tweets are the
reference.

It also measures the **ceiling** of the promise on the same rows: the share of tweets
assigned their correct country by (a) the certified policy as saved, (b) per-country
thresholds chosen in hindsight on these rows so that each country's point precision is
>= target (no confidence bound), and (c) one global hindsight threshold keeping overall
precision >= target (which does not keep every country >= target). (b) is what a
perfect threshold fit could give this model; the gap from (a) to (b) is the price of
certifying from finite samples, and a target above (b) needs a better model, not a
better policy.

    python experiments/real_data/other_confidence.py outputs/real_data/real_only
"""

from __future__ import annotations

import argparse
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from geoloc.bundle import Bundle
from geoloc.io import markdown_table, read_jsonl
from geoloc.labels import OTHER


def script_of(text: str) -> str:
    """The most frequent Unicode script of the letters in ``text`` (by character name)."""
    counts: Counter = Counter()
    for ch in text:
        if ch.isalpha():
            counts[unicodedata.name(ch, "UNKNOWN").split(" ")[0]] += 1
    return counts.most_common(1)[0][0].title() if counts else "None"


def hindsight_correct(top: np.ndarray, conf: np.ndarray, right: np.ndarray,
                      target: float) -> float:
    """Share of rows assigned correctly when each predicted class keeps the largest
    most-confident prefix of its predictions whose precision is >= ``target``."""
    correct = 0
    for c in np.unique(top):
        rows = np.flatnonzero(top == c)
        hits = right[rows[np.argsort(-conf[rows], kind="stable")]]
        precise = np.flatnonzero(np.cumsum(hits) >= target * np.arange(1, len(hits) + 1))
        correct += int(hits[: precise[-1] + 1].sum()) if len(precise) else 0
    return correct / len(top)


def ceilings(probs: np.ndarray, labels: np.ndarray, decisions: np.ndarray,
             target: float) -> str:
    """Markdown table: correct-country share under the saved policy vs hindsight ones."""
    top, conf = probs.argmax(axis=1), probs.max(axis=1)
    right = top == labels
    order = np.argsort(-conf, kind="stable")
    hits = right[order]
    precise = np.flatnonzero(np.cumsum(hits) >= target * np.arange(1, len(hits) + 1))
    kept = precise[-1] + 1 if len(precise) else 0
    rows = [
        ("certified policy as saved (per-country guarantee)", (decisions >= 0).mean(),
         (decisions == labels).mean()),
        (f"per-country hindsight thresholds (point precision >= {target:.0%})",
         None, hindsight_correct(top, conf, right, target)),
        (f"one global hindsight threshold (overall precision >= {target:.0%})",
         kept / len(top), hits[:kept].sum() / len(top)),
    ]
    return markdown_table(pd.DataFrame([
        {"thresholds": name, "assigned": "—" if a is None else f"{100 * a:.1f} %",
         "assigned correct country": f"{100 * c:.1f} %"} for name, a, c in rows]))


def main(run_dir: str) -> str:
    from geoloc.data.sources import UmassTweetsSource

    run = Path(run_dir)
    oof = np.load(run / "report" / "crossfit_oof.npz")
    bundle = Bundle.open(run / "model")  # the model folder training wrote (geoloc/bundle/)
    policy = bundle.thresholds()
    records = list(read_jsonl(UmassTweetsSource().canonical_jsonl()))
    texts = [" ".join(r["captions"]) for r in records]
    # the outputs the policy was fitted on, as the bundle keeps them: the out-of-fold
    # logits fused (n-gram model and place expert) exactly as training fused them
    with np.load(bundle.calibration_file(), allow_pickle=False) as cal:
        logits, cal_labels = cal["logits"], cal["labels"]
    if not np.array_equal(cal_labels, oof["labels"]):
        raise SystemExit(f"{run}: the model's calibration outputs are not this run's "
                         "out-of-fold rows")
    probs = policy.probabilities(logits)
    decisions = policy.apply(probs)
    names = policy.class_names
    other = names.index(OTHER)
    df = pd.DataFrame({
        "script": [script_of(texts[i]) for i in oof["rows"]],
        "is_other": oof["labels"] == other,
        "top_prob": probs.max(axis=1),
        "assigned_country": (decisions >= 0) & (decisions != other),
        "assigned_right": decisions == oof["labels"],
    })
    rows = []
    for (script, is_other), g in df.groupby(["script", "is_other"]):
        if len(g) < 10:
            continue
        rows.append({"script": script, "true class": "OTHER" if is_other else "a country",
                     "tweets": len(g), "mean top prob": f"{g['top_prob'].mean():.2f}",
                     "assigned a country": f"{100 * g['assigned_country'].mean():.1f} %",
                     "assigned correctly": f"{100 * g['assigned_right'].mean():.1f} %"})
    table = markdown_table(pd.DataFrame(rows))
    wrong = Counter(names[d] for d, o in zip(decisions, df["is_other"], strict=True)
                    if o and d >= 0 and d != other)
    return (f"{table}\n\nOTHER tweets assigned a country, by country: "
            f"{dict(wrong.most_common()) or 'none'}\n\n"
            f"## Ceiling of the promise on these {len(df)} out-of-fold tweets\n\n"
            f"{ceilings(probs, oof['labels'], decisions, policy.target)}\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a cross-fitted run folder (with report/ and model/), "
                        "e.g. outputs/real_data/real_only")
    print(main(parser.parse_args().run_dir))
