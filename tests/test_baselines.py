"""Baselines go through the same evaluation (run_evaluation) as the transformer, on the
datamodule's split, and end up in one side-by-side table."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import compose

from geoloc.baselines import (
    COLUMNS,
    CharNgramLR,
    MajorityBaseline,
    compare,
    evaluate_baseline,
    read_summary,
    run_baselines,
)
from geoloc.labels import LabelSet

WORDS = {
    "BR": ["bom dia", "saudade", "obrigado", "valeu galera", "que saudade"],
    "FR": ["bonjour", "merci beaucoup", "bisous", "c'est la vie", "oh là là"],
    "JP": ["arigato", "kawaii", "sugoi ne", "konnichiwa", "oishii"],
    "US": ["hello y'all", "awesome dude", "gonna be lit", "thanksgiving", "go team"],
    "VE": ["chamo", "pana", "arepa", "chévere", "vale pues"],
}
COUNTRIES = ["US", "BR", "FR", "JP"]


def _tweets(path: Path, n: int = 400) -> Path:
    rng = random.Random(0)
    codes = [c for c in WORDS for _ in range({"US": 4, "VE": 1}.get(c, 2))]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(["Tweet ID", "Country", "Date", "Tweet"])
        for i in range(n):
            code = rng.choice(codes)
            text = f"{rng.choice(WORDS[code])} {rng.choice(WORDS[rng.choice(list(WORDS))])} {i}"
            w.writerow([str(10**17 + i), code, "2015-01-01", text])
    return path


def _splits():
    names = list(LabelSet.from_codes(COUNTRIES).names)
    rng = random.Random(1)

    def make(n):
        labels = [rng.randrange(len(names)) for _ in range(n)]
        keys = {"US": "US", "BR": "BR", "FR": "FR", "JP": "JP", "OTHER": "VE"}
        text = [f"{rng.choice(WORDS[keys[names[y]]])} x" for y in labels]
        return {"id": [str(i) for i in range(n)], "text": text, "labels": labels}

    return {"train": make(300), "val": make(80), "calib": make(120), "test": make(0)}, names


def test_baselines_produce_log_probabilities_for_every_class():
    splits, names = _splits()
    train = splits["train"]
    for model in (MajorityBaseline(len(names)), CharNgramLR(len(names), C=10.0)):
        model.fit(train["text"], train["labels"])
        logits = model.log_proba(splits["val"]["text"])
        assert logits.shape == (80, len(names)) and np.isfinite(logits).all()
        np.testing.assert_allclose(np.exp(logits).sum(axis=1), 1.0, rtol=1e-4)
    majority = MajorityBaseline(len(names)).fit(train["text"], train["labels"])
    assert (majority.log_proba(["a", "b"]).argmax(axis=1)
            == np.bincount(train["labels"]).argmax()).all()
    # A class absent from train still gets a (floored) column.
    lr = CharNgramLR(len(names)).fit(["bom dia", "bonjour"] * 5, [1, 2] * 5)
    assert lr.log_proba(["bom"]).shape == (1, len(names))


def test_baselines_go_through_the_same_evaluation(tmp_path):
    import hydra

    splits, names = _splits()
    lr = CharNgramLR(len(names)).fit(splits["train"]["text"], splits["train"]["labels"])
    policy = hydra.utils.instantiate(compose().evaluation.policy)
    result = evaluate_baseline(lr, splits, names, tmp_path / "lr", policy, eval_split="val")
    for key in ("accuracy", "macro_f1", "correct_country_rate", "uncertain_rate",
                "countries_meeting_target", "country_assigned_rate"):
        assert key in result.scalars
    assert result.scalars["accuracy"] > 0.8  # the words give the country away
    summary = read_summary(tmp_path / "lr")
    assert summary["split"] == "val" and summary["scalars"]["n_samples"] == 80
    assert (tmp_path / "lr" / "thresholds.json").exists()


@pytest.mark.slow
def test_runner_writes_one_side_by_side_table(tmp_path):
    tsv = _tweets(tmp_path / "tweets.tsv")
    overrides = ["data=umass", f"data.source.path={tsv}", "labels.countries=[US,BR,FR,JP]",
                 f"paths.output_dir={tmp_path}"]
    table = compare([*overrides, "--out", str(tmp_path / "a"), "--reports", str(tmp_path / "ra"),
                  "--c-grid", "3,10"])
    assert list(table["model"]) == ["majority", "char n-gram LR"]
    # A transformer run's report folder (here: a baseline's) joins the same table.
    fake = tmp_path / "ra" / "char_ngram_lr"
    table = run_baselines(overrides, transformers={"transformer (real only)": fake},
                          out_dir=tmp_path / "b", reports_dir=tmp_path / "rb", c_grid=[10.0])
    assert list(table["model"]) == ["majority", "char n-gram LR", "transformer (real only)"]
    md = (tmp_path / "b" / "results.md").read_text(encoding="utf-8")
    for header, _, _ in COLUMNS:
        assert header in md
    assert "| transformer (real only) |" in md and "Blodgett" in md and "`val`" in md
    rows = list(csv.DictReader(open(tmp_path / "b" / "results.csv", encoding="utf-8")))
    assert len(rows) == 3 and {r["split"] for r in rows} == {"val"}
    assert float(rows[1]["accuracy"]) > float(rows[0]["accuracy"])
    assert json.loads((tmp_path / "b" / "summaries" / "majority.json").read_text())["split"] == "val"


def test_runner_refuses_rows_from_another_split(tmp_path):
    tsv = _tweets(tmp_path / "tweets.tsv", 300)
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "summary.json").write_text(json.dumps(
        {"split": "test", "scalars": {"n_samples": 5, "accuracy": 1.0}}))
    with pytest.raises(ValueError, match="different splits"):
        run_baselines(["data=umass", f"data.source.path={tsv}", f"paths.output_dir={tmp_path}"],
                      transformers={"t": fake}, out_dir=tmp_path / "o",
                      reports_dir=tmp_path / "r", c_grid=[10.0])
