"""geoloc-calibrate and the population check, with real pieces: a bundle of mE5 cut to 1
layer with a fitted policy, fusion and population record (``conftest.save_tiny_bundle``), the
real readers, resolver, policy code and bundle writer, on a small CSV of profiles."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import compose, wandb_summary

LOCATIONS = {"BR": "São Paulo, Brasil", "US": "Austin, TX", "JP": "Tokyo, Japan",
             "TR": "Istanbul, Turkey", "FR": "Paris, France"}
WORDS = {"BR": "bom dia galera obrigado", "US": "howdy y'all game day", "JP": "今日は 東京 ありがとう",
         "TR": "merhaba teşekkürler arkadaşlar", "FR": "bonjour merci les amis"}


def _profiles(path: Path, n: int, seed: int, bad: bool = True) -> Path:
    """A CSV of n profiles with stated locations (some empty or unresolvable), plus one
    row without an id (a bad row)."""
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "bio", "captions", "stated_location"])
        for i in range(n):
            c = rng.choice(list(LOCATIONS))
            words = WORDS[c].split()
            text = " ".join(rng.choice(words) for _ in range(6))
            loc = LOCATIONS[c] if rng.random() < 0.9 else rng.choice(["", "somewhere ✨"])
            w.writerow([f"u{seed}-{i}", text, json.dumps([text]), loc])
        if bad:
            w.writerow(["", "no id here", "[]", "Paris"])
    return path


@pytest.fixture(scope="module")
def shipped(tiny_bundles) -> Path:
    return tiny_bundles[0]


@pytest.fixture(scope="module")
def recalibrated(shipped, tmp_path_factory):
    """geoloc-calibrate run once on 400 profiles: (folder, metrics, objects, work dir)."""
    from geoloc.cli.calibrate import calibrate
    from geoloc.cli.common import run_task

    root = tmp_path_factory.mktemp("calibrate")
    src = _profiles(root / "profiles.csv", 400, seed=1)
    out = root / "recalibrated"
    cfg = compose([f"model_dir={shipped}", f"input={src}", f"output={out}",
                   f"paths.output_dir={root / 'run'}", "policy.target=0.6",
                   "policy.delta=0.1", "logger=wandb"], config_name="calibrate")
    metrics, objects = run_task(calibrate, cfg)
    return out, metrics, objects, root


@pytest.mark.slow
def test_calibrate_refits_audits_and_writes_a_whole_model(shipped, recalibrated, tmp_path):
    from geoloc.bundle import Bundle
    from geoloc.cli.calibrate import calibrate
    from geoloc.cli.common import run_task

    out, metrics, objects, root = recalibrated
    new = Bundle.open(out)  # whole: every file listed and verified
    assert new.population() is not None and new.population().extra["counts"]["errors"] == 1
    assert new.fusion() is not None  # the fusion is paired with the new policy
    record = new.info["recalibrated"]
    assert record["split_key"] == "geoloc-calibrate" and record["counts"]["rows"] == 401
    result = objects["result"]
    assert metrics["labelled"] + record["counts"]["no_location"] \
        + record["counts"]["unresolved"] == 400
    assert metrics["calibration_rows"] + metrics["audit_rows"] == metrics["labelled"]
    after = new.thresholds()
    assert after.policy.min_probability == 0.5 and after.target == 0.6
    # the new policy names the model it was fitted on, as training's does
    assert after.fitted_with == Bundle.open(shipped).thresholds().fitted_with
    assert after.fitted_with["weights"] == new.info["weights_digest"]
    assert all(t >= 0.5 for t in after.thresholds.values())
    assert after.temperature == Bundle.open(shipped).thresholds().temperature  # kept
    assert set(result.audit["policy"]) == {"before", "after"}
    errors = (root / "recalibrated.errors.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(errors) == 1 and json.loads(errors[0])["field"] == "id"
    report = root / "run" / "report"
    assert (report / "audit.png").stat().st_size > 0
    text = (report / "report.md").read_text(encoding="utf-8")
    assert "**Selection.**" in text and "What is guaranteed" in text
    cal = np.load(new.calibration_file(), allow_pickle=True)
    assert len(cal["labels"]) == metrics["calibration_rows"]
    # logger=wandb: the scalars, the audit and thresholds tables and the figure
    summary = wandb_summary(next((root / "run" / "wandb").glob("offline-run-*")))["summary"]
    assert summary["calibrate/after/correct_country_rate"] == pytest.approx(
        metrics["after/correct_country_rate"])
    for key, kind in (("audit", "table-file"), ("thresholds", "table-file"),
                      ("audit_plot", "image-file")):
        assert summary[f"calibrate/{key}"]["_type"] == kind

    # refusals before any work: the same folder, an existing output, a bad option
    src = root / "profiles.csv"
    for overrides, message in (([f"output={shipped}"], "is the model folder"),
                               ([f"output={out}"], "exists"),
                               (["temperature=warm", f"output={tmp_path / 'new'}"],
                                "temperature=warm"),
                               (["audit_fraction=1.5", f"output={tmp_path / 'new'}"],
                                "audit_fraction=1.5")):
        cfg = compose([f"model_dir={shipped}", f"input={src}", f"output={out}",
                       f"paths.output_dir={tmp_path / 'run2'}", *overrides],
                      config_name="calibrate")
        with pytest.raises(Exception, match=message):
            run_task(calibrate, cfg)
        assert not (tmp_path / "new").exists()  # refused before anything was written


@pytest.mark.slow
def test_predict_checks_the_input_against_the_calibration_population(recalibrated, tmp_path):
    """A model recalibrated on one population: more rows of it pass the check, text in
    another script fires it; both outcomes are in OUTPUT.meta.json."""
    from geoloc.cli.common import run_task
    from geoloc.cli.predict import predict

    out = recalibrated[0]
    same = _profiles(tmp_path / "b.csv", 300, 3, bad=False)
    shifted = tmp_path / "c.csv"
    with open(shifted, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "bio", "captions"])
        for i in range(120):
            w.writerow([f"x{i}", "Привет друзья из Москвы", "[]"])
    fired = {}
    for name, src in (("same", same), ("shifted", shifted)):
        dst = tmp_path / f"{name}.jsonl"
        cfg = compose([f"model_dir={out}", f"input={src}", f"output={dst}",
                       f"paths.output_dir={tmp_path / name}", "progress=false"],
                      config_name="predict")
        metrics, _ = run_task(predict, cfg)
        meta = json.loads((tmp_path / f"{name}.jsonl.meta.json").read_text(encoding="utf-8"))
        assert meta["class_names"] == ["BR", "US", "JP", "TR", "OTHER"]
        assert meta["population_check"]["checked"]
        fired[name] = meta["population_check"]["fired"]
        assert metrics["population_shift"] == float(fired[name])
    assert fired == {"same": False, "shifted": True}


def test_population_summary_and_check():
    from geoloc.inference.population import (
        PopulationProfile,
        check_population,
        script_of,
    )

    assert [script_of(t) for t in ("hello", "Привет", "مرحبا", "東京", "ひらがな", "🙂 12", "안녕")] \
        == ["latin", "cyrillic", "arabic", "cjk", "hiragana", "none", "hangul"]
    rng = np.random.default_rng(0)
    names = ["A", "B", "OTHER"]

    def sample(n, shift=0.0):
        logits = rng.normal(size=(n, 3))
        logits[:, 0] += 1.0 - shift * 3
        texts = ["hola amigos" if rng.random() > shift else "Привет" for _ in range(n)]
        return PopulationProfile.of(np.exp(logits) / np.exp(logits).sum(1, keepdims=True),
                                    texts, names)

    reference = sample(4000)
    assert PopulationProfile.from_dict(reference.to_dict()) == reference
    false_alarms = sum(check_population(reference, sample(300)).fired for _ in range(20))
    assert false_alarms == 0
    shifted = check_population(reference, sample(300, shift=0.5))
    assert shifted.fired and "geoloc-calibrate" in shifted.message
    assert not check_population(reference, sample(20, shift=0.5)).checked  # too few rows


def test_a_streamed_summary_equals_the_whole_one_and_predictions_skip_scripts():
    """geoloc-audience accumulates the summary chunk by chunk; an input of predictions has
    no texts, so its script mix is not compared (rather than read as all-different)."""
    from geoloc.inference.population import (
        PopulationCounter,
        PopulationProfile,
        check_population,
    )

    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(3), 500)
    texts = ["hello" if i % 3 else "Привет" for i in range(500)]
    names = ["A", "B", "OTHER"]
    counter = PopulationCounter(names)
    for i in range(0, 500, 128):
        counter.add(probs[i:i + 128], texts[i:i + 128])
    whole = PopulationProfile.of(probs, texts, names)
    streamed = counter.profile()
    assert streamed.predicted_mix == pytest.approx(whole.predicted_mix)
    assert streamed.confidence_hist == pytest.approx(whole.confidence_hist)
    assert streamed.script_mix == pytest.approx(whole.script_mix)
    no_texts = PopulationCounter(names)
    no_texts.add(probs)
    check = check_population(whole, no_texts.profile())
    assert set(check.distances) == {"predicted_mix", "confidence"} and not check.fired


def test_the_audit_split_is_a_keyed_function_of_the_id():
    from geoloc.training.recalibrate import audit_mask

    ids = [f"user{i}" for i in range(2000)]
    mask = audit_mask(ids, "k", 0.3)
    assert abs(mask.mean() - 0.3) < 0.04
    assert (audit_mask(ids[:100], "k", 0.3) == mask[:100]).all()  # adding rows moves none
    assert (audit_mask(ids, "other key", 0.3) != mask).any()
