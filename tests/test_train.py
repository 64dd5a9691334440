"""End to end on tiny data: the real tokenizer, mE5 cut to 1 layer, the real Lightning
trainer and a real offline W&B run, read back from disk; then geoloc-eval on the model
bundle the run left (weights, policy, fusion: one folder)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import compose, notebook_images, run_notebook

TINY = [
    "trainer=debug",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "data.source.n=400",
    "data.batch_size=8",
    "data.eval_batch_size=32",
    "model.encoder_layers=1",
    "threads=2",
]


def _inspect(run_dir: Path, *args: str) -> str:
    cmd = [sys.executable, "-m", "wandb", "leet", "inspect", *args, "--json", str(run_dir)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout


def _summary(run_dir: Path) -> dict:
    """State, config and summary of an offline run (one JSON document)."""
    return json.loads(_inspect(run_dir, "--summary"))


def _history(run_dir: Path) -> list[dict]:
    """The logged history rows (one JSON record per line, of several types)."""
    records = [json.loads(line) for line in _inspect(run_dir).splitlines() if line.strip()]
    return [r["history"]["item"] for r in records if r.get("type") == "history"]


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory, me5_dir):
    from geoloc.cli.common import run_task
    from geoloc.cli.train import train

    out = tmp_path_factory.mktemp("train")
    cfg = compose([*TINY, f"paths.output_dir={out}"])
    metrics, objects = run_task(train, cfg)
    return out, objects, metrics


def test_train_logs_config_and_test_metrics_to_wandb(trained):
    out, _, metrics = trained
    assert 0.0 <= metrics["test/acc"] <= 1.0 and "test/macro_f1" in metrics
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    record = _summary(runs[0])
    config, summary = record["config"], record["summary"]
    assert config["backbone"]["name"] == "me5_small"
    assert config["model"]["encoder_layers"] == 1
    assert config["tokenizer"]["variant"] == "location_emoji"
    for key in ("test/acc", "test/macro_f1", "val/macro_f1", "eval/accuracy",
                "abstain/correct_country_rate", "abstain/uncertain_rate",
                "abstain/countries_meeting_target", "calibration/ece",
                "calibration/temperature"):
        assert key in summary, key
    assert record["state"] == "finished"  # run_task closed the run
    assert summary["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)
    # The evaluation artefacts a reviewer reads: per-country table, confusion matrices,
    # threshold sweep, risk-coverage and calibration figures.
    for key in ("report/per_class", "report/sweep", "report/confusion_matrix_table",
                "report/risk_coverage_table", "report/figures/reliability",
                "report/figures/risk_coverage", "report/figures/per_country",
                "report/figures/confusion", "report/figures/precision_threshold"):
        assert key in summary, key
    history = _history(runs[0])
    assert any("train/loss_step" in h for h in history)
    assert any("abstain/countries_with_threshold" in h for h in history)


def test_train_writes_report_and_one_model_bundle(trained):
    from geoloc.bundle import Bundle
    from geoloc.bundle.files import CALIBRATION_FILE, REQUIRED, THRESHOLDS_FILE

    out, objects, _ = trained
    report = out / "report"
    for name in ("report.md", "per_class.csv", "sweep.csv", "confusion.csv", "summary.json",
                 "thresholds.json", "risk_coverage.png", "reliability.png", "confusion.png",
                 "per_country.png", "precision_threshold.png"):
        assert (report / name).is_file(), name
    # every evaluated profile, for error analysis: its text, truth, decision
    import pandas as pd

    predictions = pd.read_csv(report / "predictions.csv", keep_default_na=False)
    summary = json.loads((report / "summary.json").read_text())["scalars"]
    assert len(predictions) == summary["n_samples"] and predictions["text"].str.len().gt(0).all()
    assert predictions["correct"].mean() == pytest.approx(summary["correct_country_rate"])
    assert ((predictions["decision"] == "UNCERTAIN").mean()
            == pytest.approx(summary["uncertain_rate"]))
    assert predictions["confidence"].between(0, 1).all()
    # the Lightning checkpoint stays (the best epoch's weights); nothing sits beside it
    ckpts = list((out / "checkpoints").glob("*"))
    assert len(ckpts) == 1 and ckpts[0].suffix == ".ckpt"
    bundle = Bundle.open(out / "model")  # verified against its manifest
    assert bundle.folder == objects["bundle"].folder
    assert set(REQUIRED) | {CALIBRATION_FILE} <= set(bundle.manifest["files"])
    assert json.loads(bundle.path(THRESHOLDS_FILE).read_text()) == json.loads(
        (report / "thresholds.json").read_text())
    assert bundle.class_names == list(objects["module"].class_names)
    assert bundle.max_length == objects["datamodule"].max_length
    assert "## The guarantee" in bundle.path("README.md").read_text()


def test_geoloc_eval_reuses_saved_thresholds(trained, tmp_path):
    from geoloc.cli.common import run_task
    from geoloc.cli.evaluate import evaluate

    out, _, metrics = trained
    cfg = compose([f"model_dir={out / 'model'}", "logger=none", "data.source.n=400",
                   f"paths.output_dir={tmp_path}"],
                  config_name="eval")
    summary, _ = run_task(evaluate, cfg)
    assert (tmp_path / "report" / "report.md").is_file()
    assert not (tmp_path / "report" / "thresholds.json").exists()  # reused, not refitted
    saved = json.loads((out / "report" / "summary.json").read_text())
    fresh = json.loads((tmp_path / "report" / "summary.json").read_text())
    # Same checkpoint, same thresholds, same test rows -> same headline figures.
    for key in ("temperature", "uncertain_rate", "correct_country_rate"):
        assert fresh["scalars"][key] == pytest.approx(saved["scalars"][key], abs=1e-6), key
    assert summary["calibration/temperature"] == pytest.approx(saved["scalars"]["temperature"])
    assert metrics["calibration/temperature"] == pytest.approx(saved["scalars"]["temperature"])


@pytest.mark.parametrize("source", ["bundle", "checkpoint"])
def test_model_reloads_to_the_trained_model(trained, source):
    """The bundle (and the Lightning checkpoint) restore exactly the model that was
    trained and evaluated in memory (the weights of the best checkpoint, which testing
    loaded into it): same logits on text with added emoji tokens, same tokenizer, same
    metadata."""
    import torch

    from geoloc.model.module import GeolocModule

    _, objects, _ = trained
    trained_module = objects["module"].eval()
    reloaded = (objects["bundle"].load_module() if source == "bundle"
                else GeolocModule.load(objects["ckpt_path"]).eval())
    texts = ["Bom dia 🇧🇷 São Paulo 📍", "howdy y'all", "東京 🇯🇵"]
    enc = trained_module.tokenizer(texts, padding=True, return_tensors="pt")
    assert reloaded.tokenizer(texts, padding=True, return_tensors="pt")["input_ids"].equal(
        enc["input_ids"])
    with torch.no_grad():
        expected = trained_module(enc["input_ids"], enc["attention_mask"])
        got = reloaded(enc["input_ids"], enc["attention_mask"])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    # Training moved the head away from its initialisation: the comparison is not vacuous.
    fresh = GeolocModule(**reloaded.hparams).eval()
    with torch.no_grad():
        assert not torch.allclose(fresh(enc["input_ids"], enc["attention_mask"]), expected)
    assert reloaded.metadata == trained_module.metadata
    assert reloaded.hparams.encoder_layers == 1


def test_ablation_helpers_rerun_and_collect(trained, tmp_path):
    from geoloc.ablation import collect_runs, grid_overrides, plot_metric
    from geoloc.cli.grid import run_grid

    assert grid_overrides({"a": [1, 2], "b": ["x"]}) == [["a=1", "b=x"], ["a=2", "b=x"]]
    df = run_grid({"model.pooling": ["cls"]}, base=[*TINY, "logger=none"], out_root=tmp_path)
    assert list(df["model.pooling"]) == ["cls"] and "test/macro_f1" in df
    collected = collect_runs(tmp_path)
    assert len(collected) == 1
    assert collected["abstain/uncertain_rate"].between(0, 1).all()
    df["model.encoder_layers"] = 1
    fig = plot_metric(df, "model.encoder_layers", ["test/acc"])
    assert fig.axes[0].get_xlabel() == "model.encoder_layers"


def test_error_analysis_notebook_reads_the_run(trained, tmp_path):
    """notebooks/error_analysis runs on the run's report (per-country errors, UNCERTAIN
    examples, confused pairs), and its tables agree with the report's own numbers."""
    from geoloc.evaluation.error_analysis import (
        confused_pairs,
        country_errors,
        load_predictions,
        uncertain_summary,
    )

    out, _, _ = trained
    nb = run_notebook("error_analysis", tmp_path, {"GEOLOC_RUN": str(out)})
    assert notebook_images(nb) == 1
    pred = load_predictions(out / "report")
    errors = country_errors(pred)
    summary = json.loads((out / "report" / "summary.json").read_text())["scalars"]
    assert errors["profiles"].sum() == len(pred) == summary["n_samples"]
    # per-country shares add back up to the report's overall rates
    correct = (errors["correct"] * errors["profiles"]).sum() / len(pred)
    assert correct == pytest.approx(summary["correct_country_rate"])
    assert uncertain_summary(pred)["uncertain_share"] == pytest.approx(summary["uncertain_rate"])
    pairs = confused_pairs(pred, top=5)
    assert (pairs["true"] != pairs["predicted"]).all() and pairs["count"].is_monotonic_decreasing


def test_ablations_notebook_reruns_a_sweep_and_reads_it_back(tmp_path, me5_dir):
    nb = run_notebook("ablations", tmp_path, {"GEOLOC_NOTEBOOK_SMOKE": "1"}, timeout=900)
    assert notebook_images(nb) == 1  # one knob varied: encoder depth
    from geoloc.ablation import collect_runs

    runs = collect_runs(tmp_path / "outputs" / "notebook_ablation")
    assert sorted(runs["model.encoder_layers"]) == ["1", "2"]


def test_minilm_backbone_learns(tmp_path):
    """The English-only backbone trains end to end and beats the majority class on the
    test split (synthetic profiles name their cities and countries in Latin script too)."""
    import numpy as np

    from geoloc.cli.common import run_task
    from geoloc.cli.train import train

    cfg = compose([*TINY, "backbone=minilm_en", "tokenizer=base", "logger=none",
                   "trainer.limit_train_batches=null", "trainer.max_epochs=2",
                   "data.source.n=700", "data.batch_size=16", "model.optimizer.lr=1e-3",
                   "trainer.limit_val_batches=null", "trainer.limit_test_batches=null",
                   f"paths.output_dir={tmp_path}"])
    metrics, objects = run_task(train, cfg)
    labels = objects["result"].labels
    majority = np.bincount(labels).max() / len(labels)
    assert metrics["test/acc"] > majority + 0.1, (metrics["test/acc"], majority)
    assert (tmp_path / "report" / "report.md").is_file()


def test_failed_task_closes_its_wandb_run_and_logs_the_error(tmp_path, caplog):
    """A job that fails after its W&B run started leaves no open run (a multirun moves on
    cleanly), and the exception is logged before Hydra sees it."""
    import wandb

    from geoloc.cli.common import hydra_task

    def task(cfg):
        wandb.init(mode="offline", dir=tmp_path, project="geoloc-test")
        raise RuntimeError("boom in the middle of training")

    cfg = compose(["logger=none", f"paths.output_dir={tmp_path}"])
    with caplog.at_level("ERROR", logger="geoloc"), pytest.raises(RuntimeError, match="boom"):
        hydra_task("geoloc-train", task, cfg, None)
    assert wandb.run is None
    assert "geoloc-train failed" in caplog.text and "boom" in caplog.text
    run_dir = next((tmp_path / "wandb").glob("offline-run-*"))
    assert _summary(run_dir)["state"] != "running"


def test_crossfit_calibrates_on_out_of_fold_predictions(tmp_path):
    """crossfit.folds=2 with fusion: two fold models predict their held-out folds, the
    n-gram model is cross-fitted on the same folds, the policy is fitted on all those
    out-of-fold rows (train + calib, not just calib), the refit is deployed and evaluated,
    the fold checkpoints are cleaned up; geoloc-eval on the deployed checkpoint applies
    the saved fusion and policy and reproduces the headline figures. The recipe's speed
    settings: length-grouped batches and bf16 autocast in training, yet the policy is
    fitted on fp32 outputs (geoloc-eval's fp32 trainer reproduces them to 1e-6); the fold
    models validate on their held-out folds (the out-of-fold learning curve). The fusion
    has a place expert (one weight, so it is used), which geoloc-eval applies again; the
    fold models' ensemble is reported beside the refit."""
    import numpy as np

    from geoloc.bundle.files import FUSION_FILE, THRESHOLDS_FILE
    from geoloc.cli.common import run_task
    from geoloc.cli.evaluate import evaluate
    from geoloc.cli.train import train

    cfg = compose([*TINY, "logger=none", "crossfit.folds=2", "evaluation.policy.pool_below=50",
                   "fusion=char_ngram", "fusion.C_grid=[3.0,30.0]", "fusion.weights=[0,0.5,1]",
                   "fusion.place_weights=[2.0]", "data.group_by_length=true", "trainer.precision=bf16-mixed",
                   "crossfit.validate=heldout", "callbacks.model_checkpoint.monitor=null",
                   f"paths.output_dir={tmp_path}"])
    metrics, objects = run_task(train, cfg)
    sizes = objects["datamodule"].split_sizes()
    assert sizes["calib"] == 0  # the refit trains on every pooled row
    oof = np.load(tmp_path / "report" / "crossfit_oof.npz")
    assert metrics["crossfit/calibration_rows"] == len(oof["labels"]) == sizes["train"]
    assert oof["ngram_C3"].shape == oof["ngram_C30"].shape == oof["logits"].shape
    assert metrics["fusion/C"] in (3.0, 30.0) and metrics["fusion/weight"] in (0.0, 0.5, 1.0)
    bundle = objects["bundle"]
    saved_fusion = json.loads(bundle.path(FUSION_FILE).read_text())
    assert len(saved_fusion["trials"]) == 6
    assert saved_fusion["place_weight"] == metrics["fusion/place_weight"] == 2.0
    assert saved_fusion["class_names"] == list(objects["module"].class_names)
    for key in ("accuracy", "macro_f1", "correct_country_rate"):
        assert 0.0 <= metrics[f"ensemble/{key}"] <= 1.0, key

    eval_dir = tmp_path / "eval"
    cfg = compose([f"model_dir={bundle.folder}", "logger=none", "data.source.n=400",
                   f"paths.output_dir={eval_dir}"], config_name="eval")
    run_task(evaluate, cfg)
    saved = json.loads((tmp_path / "report" / "summary.json").read_text())["scalars"]
    fresh = json.loads((eval_dir / "report" / "summary.json").read_text())["scalars"]
    for key in ("accuracy", "temperature", "uncertain_rate", "correct_country_rate"):
        assert fresh[key] == pytest.approx(saved[key], abs=1e-6), key
    assert sorted(set(oof["fold"].tolist())) == [0, 1]
    assert len(set(oof["rows"].tolist())) == len(oof["rows"])  # each row predicted once
    assert {"crossfit/fold0/oof_macro_f1", "crossfit/fold1/oof_macro_f1",
            "crossfit/oof_loss/epoch1", "crossfit/oof_best_epochs"} <= set(metrics)
    assert objects["result"].thresholds.n_calibration == sizes["train"]
    assert not (tmp_path / "checkpoints" / "fold0").exists()
    saved = json.loads(bundle.path(THRESHOLDS_FILE).read_text())
    assert saved["pool_below"] == 50 and set(saved["guarantee_per_class"].values()) <= {
        "class", "pooled", "none"}


def test_fold_ensemble_averages_log_probabilities_row_by_row():
    """The fold ensemble is the mean of the members' log-softmax on the same rows, whatever
    order each member predicted them in; members on different rows are refused."""
    import numpy as np
    from scipy.special import log_softmax

    from geoloc.evaluation import SplitOutputs
    from geoloc.training.calibrate import fold_ensemble

    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 3)).astype(np.float32)
    b = rng.normal(size=(5, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1])
    rows = np.array([10, 11, 12, 13, 14])
    perm = np.array([3, 0, 4, 1, 2])
    ens = fold_ensemble([SplitOutputs(a, labels, rows),
                         SplitOutputs(b[perm], labels[perm], rows[perm])])
    np.testing.assert_array_equal(ens.rows, rows)
    np.testing.assert_array_equal(ens.labels, labels)
    np.testing.assert_allclose(ens.logits, (log_softmax(a, axis=1) + log_softmax(b, axis=1)) / 2,
                               atol=1e-6)
    with pytest.raises(ValueError, match="different rows"):
        fold_ensemble([SplitOutputs(a, labels, rows), SplitOutputs(b, labels, rows + 1)])


def test_crossfit_soup_deploys_the_fold_models_averaged_weights(tmp_path, monkeypatch):
    """crossfit.deploy=soup: no refit is trained; the deployed network's weights are the
    element-wise mean of the fold models' (each taken after it predicted its held-out
    fold), the frozen table left out of the average; the bundle serves it, and
    geoloc-eval on the bundle reproduces the run's figures."""
    import torch

    from geoloc.cli.common import run_task
    from geoloc.cli.evaluate import evaluate
    from geoloc.cli.train import train
    from geoloc.training import calibrate

    a = {"w": torch.tensor([1.0, 3.0]), "ids": torch.tensor([0, 1])}
    b = {"w": torch.tensor([3.0, 5.0]), "ids": torch.tensor([0, 1])}
    avg = calibrate.average_states([a, b])
    assert torch.equal(avg["w"], torch.tensor([2.0, 4.0])) and torch.equal(avg["ids"], a["ids"])

    seen = []
    real = calibrate.average_states
    monkeypatch.setattr(calibrate, "average_states",
                        lambda states: seen.append(states) or real(states))
    cfg = compose([*TINY, "logger=none", "crossfit.folds=2", "crossfit.deploy=soup",
                   "evaluation.policy.pool_below=50", f"paths.output_dir={tmp_path}"])
    metrics, objects = run_task(train, cfg)
    (states,) = seen
    assert len(states) == 2 and objects["ckpt_path"] is None
    deployed = objects["bundle"].load_module().state_dict()
    frozen = "net.encoder.embeddings.word_embeddings.frozen"
    assert frozen not in states[0]
    head = "net.head.weight"
    assert not torch.equal(states[0][head], states[1][head])
    torch.testing.assert_close(deployed[head], (states[0][head] + states[1][head]) / 2)
    assert "val/acc" in metrics and objects["datamodule"].split_sizes()["calib"] == 0

    cfg = compose([f"model_dir={objects['bundle'].folder}", "logger=none",
                   "data.source.n=400", f"paths.output_dir={tmp_path / 'eval'}"],
                  config_name="eval")
    run_task(evaluate, cfg)
    saved = json.loads((tmp_path / "report" / "summary.json").read_text())["scalars"]
    fresh = json.loads((tmp_path / "eval" / "report" / "summary.json").read_text())["scalars"]
    for key in ("accuracy", "uncertain_rate", "correct_country_rate"):
        assert fresh[key] == pytest.approx(saved[key], abs=1e-6), key


def test_checkpoint_leaves_the_frozen_backbone_out_and_checks_its_hash(trained, tmp_path):
    """A checkpoint holds what training changed, not the frozen 96 M-row embedding table
    (restored from the backbone on load, proven identical by its SHA-256); a checkpoint
    whose recorded hash differs is refused with a clear error, and it loads with
    ``weights_only=True`` (no pickled code)."""
    import os

    import torch

    from geoloc.errors import BackboneMismatchError
    from geoloc.model.module import RESTORED_KEY, GeolocModule

    _, objects, _ = trained
    path = objects["ckpt_path"]
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    frozen = "net.encoder.embeddings.word_embeddings.frozen"
    assert frozen not in ckpt["state_dict"]
    assert set(ckpt[RESTORED_KEY]) == {frozen}
    # the frozen table alone is 250,002 x 384 fp32 = 384 MB; the deployed checkpoint holds
    # no optimiser state either (the resume state is removed when training ends)
    assert os.path.getsize(path) < 50e6 and "optimizer_states" not in ckpt
    assert not (Path(path).parent / "resume").exists()
    ckpt[RESTORED_KEY][frozen] = "0" * 64
    bad = tmp_path / "other_backbone.ckpt"
    torch.save(ckpt, bad)
    with pytest.raises(BackboneMismatchError, match="differs from the one this checkpoint"):
        GeolocModule.load(bad)
