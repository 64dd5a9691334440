"""End to end on tiny data: the real tokenizer, mE5 cut to 1 layer, the real Lightning
trainer and a real offline W&B run, read back from disk; then geoloc-eval on the
checkpoint with the thresholds saved beside it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import compose

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


@pytest.fixture(scope="module")
def trained(tmp_path_factory, me5_dir):
    from geoloc.cli.train import train

    out = tmp_path_factory.mktemp("train")
    cfg = compose([*TINY, f"paths.output_dir={out}"])
    metrics = train(cfg)
    return out, cfg, metrics


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
    for key in ("test/acc", "test/macro_f1", "val/macro_f1", "abstain/correct_country_rate",
                "abstain/uncertain_rate", "abstain/countries_meeting_target"):
        assert key in summary, key
    assert summary["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)
    # The evaluation artefacts a reviewer reads: per-country table, confusion matrices,
    # threshold sweep, risk-coverage and calibration figures.
    for key in ("abstain/per_class", "abstain/sweep", "abstain/confusion_matrix_table",
                "abstain/risk_coverage_table", "abstain/figures/reliability",
                "abstain/figures/risk_coverage", "abstain/figures/per_country",
                "abstain/figures/confusion", "abstain/figures/precision_threshold"):
        assert key in summary, key
    history = _history(runs[0])
    assert any("train/loss_step" in h for h in history)
    assert any("abstain/countries_with_threshold" in h for h in history)


def test_train_writes_report_and_thresholds_beside_checkpoint(trained):
    out, _, _ = trained
    report = out / "report"
    for name in ("report.md", "per_class.csv", "sweep.csv", "confusion.csv", "summary.json",
                 "thresholds.json", "risk_coverage.png", "reliability.png", "confusion.png",
                 "per_country.png", "precision_threshold.png"):
        assert (report / name).is_file(), name
    ckpts = list((out / "checkpoints").glob("*.ckpt"))
    assert len(ckpts) == 1
    beside = ckpts[0].with_name(ckpts[0].stem + ".thresholds.json")
    assert json.loads(beside.read_text()) == json.loads((report / "thresholds.json").read_text())


def test_geoloc_eval_reuses_saved_thresholds(trained, tmp_path):
    from geoloc.cli.evaluate import evaluate

    out, _, metrics = trained
    ckpt = next((out / "checkpoints").glob("*.ckpt"))
    cfg = compose([f"ckpt_path={ckpt}", "logger=none", "data.source.n=400",
                   f"paths.output_dir={tmp_path}"],
                  config_name="eval")
    summary = evaluate(cfg)
    assert (tmp_path / "report" / "report.md").is_file()
    assert not (tmp_path / "report" / "thresholds.json").exists()  # reused, not refitted
    saved = json.loads((out / "report" / "summary.json").read_text())
    fresh = json.loads((tmp_path / "report" / "summary.json").read_text())
    # Same checkpoint, same thresholds, same test rows -> same headline figures.
    for key in ("temperature", "uncertain_rate", "correct_country_rate"):
        assert fresh["scalars"][key] == pytest.approx(saved["scalars"][key], abs=1e-6), key
    assert summary["abstain/temperature"] == pytest.approx(saved["scalars"]["temperature"])
    assert metrics["abstain/temperature"] == pytest.approx(saved["scalars"]["temperature"])


def test_checkpoint_reloads_to_identical_predictions(trained, me5_dir):
    import torch

    from geoloc.model.module import GeolocModule

    out, _, _ = trained
    ckpt = next((out / "checkpoints").glob("*.ckpt"))
    a = GeolocModule.load_from_checkpoint(str(ckpt), map_location="cpu").eval()
    b = GeolocModule.load_from_checkpoint(str(ckpt), map_location="cpu").eval()
    enc = a.tokenizer(["Bom dia 🇧🇷 São Paulo", "howdy y'all"], padding=True,
                      return_tensors="pt")
    with torch.no_grad():
        la = a(enc["input_ids"], enc["attention_mask"])
        lb = b(enc["input_ids"], enc["attention_mask"])
    assert torch.equal(la, lb)
    assert a.hparams.encoder_layers == 1 and a.hparams.tokenizer_variant == "location_emoji"


def test_ablation_helpers_rerun_and_collect(trained, tmp_path):
    from geoloc.ablation import collect_runs, grid_overrides, plot_metric, run_grid

    assert grid_overrides({"a": [1, 2], "b": ["x"]}) == [["a=1", "b=x"], ["a=2", "b=x"]]
    df = run_grid({"model.pooling": ["cls"]}, base=[*TINY, "logger=none"], out_root=tmp_path)
    assert list(df["model.pooling"]) == ["cls"] and "test/macro_f1" in df
    collected = collect_runs(tmp_path)
    assert len(collected) == 1
    assert collected["abstain/uncertain_rate"].between(0, 1).all()
    df["model.encoder_layers"] = 1
    fig = plot_metric(df, "model.encoder_layers", ["test/acc"])
    assert fig.axes[0].get_xlabel() == "model.encoder_layers"


def test_minilm_backbone_runs_end_to_end(tmp_path):
    from geoloc.cli.train import train

    cfg = compose([*TINY, "backbone=minilm_en", "logger=none", "evaluation.delta=0.2",
                   f"paths.output_dir={tmp_path}"])
    metrics = train(cfg)
    assert 0.0 <= metrics["test/acc"] <= 1.0
    assert (tmp_path / "report" / "report.md").is_file()
