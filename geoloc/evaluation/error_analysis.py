"""Error analysis of one evaluated split, from the report's per-row predictions
(``report/predictions.csv``, :func:`geoloc.evaluation.runner.write_predictions`): which
countries fail and how, what the profiles the policy leaves UNCERTAIN look like, and
which pairs of countries the model confuses, with examples.

The aggregate report (per-country precision and recall, confusion matrix) says how much;
these tables say which profiles, so that a researcher can read the failures
(``notebooks/error_analysis``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from geoloc.labels import UNCERTAIN

#: Columns :func:`load_predictions` requires.
COLUMNS = ("id", "text", "true", "top", "confidence", "decision", "correct")


def load_predictions(path: str | Path) -> pd.DataFrame:
    """The per-row predictions of a report folder (or of the CSV itself), checked."""
    path = Path(path)
    if path.is_dir():
        path = path / "predictions.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no per-row predictions (geoloc-train and "
                                "geoloc-eval write report/predictions.csv)")
    frame = pd.read_csv(path, keep_default_na=False, dtype={"id": str, "text": str})
    missing = [c for c in COLUMNS if c not in frame]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    frame["correct"] = frame["correct"].astype(str).str.lower().eq("true")
    frame["confidence"] = frame["confidence"].astype(float)
    return frame


def country_errors(pred: pd.DataFrame) -> pd.DataFrame:
    """Per true country: ``profiles``; the shares ``correct`` (assigned their country),
    ``wrong`` (assigned another) and ``uncertain``; ``top_right`` (the share whose most
    probable class was right, abstention aside: what a lower precision target could
    gain); ``precision`` of the country's own assignments; its most frequent wrong
    assignment. Most profiles first."""
    uncertain = pred["decision"] == UNCERTAIN
    rows = []
    for country, g in pred.groupby("true"):
        u = uncertain[g.index]
        wrong = g[~u & ~g["correct"]]
        assigned_as = pred[pred["decision"] == country]
        rows.append({
            "country": country,
            "profiles": len(g),
            "correct": g["correct"].mean(),
            "wrong": len(wrong) / len(g),
            "uncertain": u.mean(),
            "top_right": (g["top"] == country).mean(),
            "precision": assigned_as["correct"].mean() if len(assigned_as) else np.nan,
            "assigned_instead": (wrong["decision"].value_counts().index[0]
                                 if len(wrong) else ""),
        })
    return pd.DataFrame(rows).sort_values(["profiles", "country"], ascending=[False, True],
                                          ignore_index=True)


def confused_pairs(pred: pd.DataFrame, top: int = 10, assigned_only: bool = False
                   ) -> pd.DataFrame:
    """The ``top`` (true, predicted) pairs of different countries, by count: the most
    probable class (abstention aside) or, with ``assigned_only``, the policy's wrong
    assignments. Each with its count, the share of the true country's profiles it
    takes, and the shortest example text."""
    column = "decision" if assigned_only else "top"
    errors = pred[(pred[column] != pred["true"]) & (pred[column] != UNCERTAIN)]
    totals = pred["true"].value_counts()
    rows = []
    for (true, predicted), g in errors.groupby(["true", column]):
        example = g.loc[g["text"].str.len().idxmin()]
        rows.append({"true": true, "predicted": predicted, "count": len(g),
                     "share_of_true": len(g) / totals[true],
                     "mean_confidence": g["confidence"].mean(),
                     "example": example["text"]})
    out = pd.DataFrame(rows, columns=["true", "predicted", "count", "share_of_true",
                                      "mean_confidence", "example"])
    return out.sort_values(["count", "true"], ascending=[False, True],
                           ignore_index=True).head(top)


def uncertain_examples(pred: pd.DataFrame, n: int = 10, seed: int = 0) -> pd.DataFrame:
    """A random sample of ``n`` UNCERTAIN profiles (seeded, so a notebook rerun shows the
    same ones), most confident first: what the policy declines to label."""
    uncertain = pred[pred["decision"] == UNCERTAIN]
    sample = uncertain.sample(min(n, len(uncertain)), random_state=seed)
    return sample[["id", "true", "top", "confidence", "text"]].sort_values(
        "confidence", ascending=False, ignore_index=True)


def uncertain_summary(pred: pd.DataFrame) -> dict[str, float]:
    """How the UNCERTAIN profiles split: their share, the share of them whose most
    probable class was right (declined although right) and their median confidence,
    against the assigned profiles' median confidence."""
    uncertain = pred["decision"] == UNCERTAIN
    u = pred[uncertain]
    return {
        "uncertain_share": float(uncertain.mean()),
        "uncertain_top_right": float((u["top"] == u["true"]).mean()) if len(u) else np.nan,
        "uncertain_median_confidence": float(u["confidence"].median()) if len(u) else np.nan,
        "assigned_median_confidence": (float(pred.loc[~uncertain, "confidence"].median())
                                       if (~uncertain).any() else np.nan),
    }


__all__ = ["COLUMNS", "confused_pairs", "country_errors", "load_predictions",
           "uncertain_examples", "uncertain_summary"]
