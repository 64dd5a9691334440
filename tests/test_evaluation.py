"""Tests of geoloc.evaluation on planted classifier outputs with known per-class precision.

Planted classes (probabilities are built directly, so precision is known exactly):

* US (class A): confidence ~ U(0.5, 1); right 97 % of the time at >= 0.8, 60 % below.
  Its true precision at threshold t < 0.8 is (0.2 * 0.97 + (0.8 - t) * 0.6) / (1 - t),
  which crosses 0.90 at t = 0.753, so the certified threshold must lie a little above.
* BR (class B): always 70 % right: the bound never reaches 0.90, never assigned.
* FR (class C): 5 calibration predictions, all right: 5/5 cannot certify 0.90 at
  delta = 0.05 (needs 29/29), never assigned.
* OTHER: 96 % right at every confidence: assigned at the loosest threshold.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import wandb_summary
from scipy.stats import binomtest

from geoloc.evaluation import (
    METHOD,
    UNCERTAIN_INDEX,
    PolicyConfig,
    SplitOutputs,
    Thresholds,
    clopper_pearson,
    evaluate_logits,
    evaluate_model,
    evaluate_split,
    fit_temperature,
    fit_thresholds,
    log_wandb,
    min_samples_for_target,
    render_markdown,
    softmax,
    write_report,
)
from geoloc.evaluation.abstention import ASSIGNED, BOUND_BELOW_TARGET, TOO_FEW
from geoloc.evaluation.calibration import nll, reliability_bins
from geoloc.evaluation.metrics import compute_metrics, expected_calibration_error
from geoloc.evaluation.render import FIGURE_FILES, TABLE_FILES
from geoloc.evaluation.sweep import ALL, threshold_sweep
from geoloc.labels import UNCERTAIN

NAMES = ["US", "BR", "FR", "OTHER"]
US, BR, FR, OTHER_IDX = range(4)


def _rows(pred: int, conf: np.ndarray, correct: np.ndarray, rng: np.random.Generator):
    c = len(NAMES)
    probs = np.tile(((1 - conf) / (c - 1))[:, None], (1, c))
    probs[:, pred] = conf
    wrong = (pred + rng.integers(1, c, size=len(conf))) % c  # any class but pred
    labels = np.where(correct, pred, wrong)
    return probs, labels


def planted(
    rng: np.random.Generator,
    n_us: int = 3000,
    n_br: int = 1000,
    n_fr: int = 5,
    n_other: int = 1000,
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (N, 4) and labels with the per-class precision in the module doc."""
    parts = []
    conf = rng.uniform(0.5, 1.0, n_us)
    parts.append(_rows(US, conf, rng.random(n_us) < np.where(conf >= 0.8, 0.97, 0.60), rng))
    conf = rng.uniform(0.5, 1.0, n_br)
    parts.append(_rows(BR, conf, rng.random(n_br) < 0.70, rng))
    parts.append(_rows(FR, rng.uniform(0.9, 1.0, n_fr), np.ones(n_fr, bool), rng))
    conf = rng.uniform(0.5, 1.0, n_other)
    parts.append(_rows(OTHER_IDX, conf, rng.random(n_other) < 0.96, rng))
    probs = np.concatenate([p for p, _ in parts])
    labels = np.concatenate([y for _, y in parts])
    perm = rng.permutation(len(labels))
    return probs[perm], labels[perm]


def policy(**changes) -> PolicyConfig:
    """The configured default policy (geoloc/conf/evaluation/default.yaml), with changes."""
    import hydra
    from conftest import compose

    return hydra.utils.instantiate(compose().evaluation.policy, **changes)


POLICY = policy()


def th_fixed(thresholds: dict[str, float]) -> Thresholds:
    """A hand-set policy (thresholds given, nothing fitted)."""
    return Thresholds(NAMES, thresholds, POLICY)


def true_precision_us(t: float) -> float:
    if t >= 0.8:
        return 0.97
    t = max(t, 0.5)
    return (0.2 * 0.97 + (0.8 - t) * 0.6) / (1 - t)


@pytest.fixture(scope="module")
def cal() -> tuple[np.ndarray, np.ndarray]:
    return planted(np.random.default_rng(1))


@pytest.fixture(scope="module")
def fitted(cal) -> Thresholds:
    return fit_thresholds(*cal, NAMES, POLICY)


# ------------------------------------------------------------------ Clopper-Pearson


@pytest.mark.parametrize("n", [1, 5, 10, 29, 50, 200])
def test_clopper_pearson_all_correct_is_delta_root(n: int) -> None:
    assert clopper_pearson(n, n, 0.05) == pytest.approx(0.05 ** (1 / n), rel=1e-9)


@pytest.mark.parametrize(("k", "n"), [(1, 10), (58, 60), (90, 100), (970, 1000)])
def test_clopper_pearson_matches_scipy_exact_interval(k: int, n: int) -> None:
    # A one-sided bound at delta is the lower end of the two-sided exact interval at 1 - 2 delta.
    ref = binomtest(k, n).proportion_ci(confidence_level=0.90, method="exact")
    assert clopper_pearson(k, n, 0.05) == pytest.approx(ref.low, rel=1e-7)
    assert clopper_pearson(k, n, 0.05, "upper") == pytest.approx(ref.high, rel=1e-7)


def test_clopper_pearson_edges_and_vectorised() -> None:
    assert clopper_pearson(0, 10, 0.05) == 0.0
    assert clopper_pearson(0, 0, 0.05) == 0.0
    assert clopper_pearson(10, 10, 0.05, "upper") == 1.0
    out = clopper_pearson(np.array([0, 5, 10]), np.array([10, 10, 10]), 0.05)
    assert out.shape == (3,) and np.all(np.diff(out) > 0)
    assert min_samples_for_target(0.9, 0.05) == 29
    assert clopper_pearson(28, 28, 0.05) < 0.9 <= clopper_pearson(29, 29, 0.05)
    with pytest.raises(ValueError):
        clopper_pearson(3, 2, 0.05)
    with pytest.raises(ValueError, match="bound"):
        clopper_pearson(1, 2, 0.05, "both")


# ------------------------------------------------------------------ thresholds


def test_planted_thresholds(cal, fitted: Thresholds) -> None:
    probs, labels = cal
    t_us = fitted.thresholds["US"]
    assert 0.75 <= t_us <= 0.81, t_us
    assert true_precision_us(t_us) >= 0.9
    # Counts recorded for the chosen threshold are the real ones.
    top, conf = probs.argmax(1), probs.max(1)
    kept = (top == US) & (conf >= t_us)
    info = fitted.calibration["US"]
    assert info.status == ASSIGNED
    assert info.n_kept == kept.sum() and info.n_correct == (kept & (labels == US)).sum()
    assert info.lower_bound >= 0.9
    # delta is split equally between the class's fixed sequences (one per start count),
    # and a rejected threshold passes its share on (alpha-recycling): the chosen one was
    # tested at a whole number of shares, at most delta.
    shares = info.delta_per_test / (0.05 / len(info.start_thresholds))
    assert 1 <= round(shares) <= len(info.start_thresholds)
    assert shares == pytest.approx(round(shares))
    assert clopper_pearson(info.n_correct, info.n_kept, info.delta_per_test) == (
        pytest.approx(info.lower_bound)
    )

    assert fitted.thresholds["BR"] == math.inf
    assert fitted.calibration["BR"].status == BOUND_BELOW_TARGET
    assert fitted.thresholds["FR"] == math.inf
    assert fitted.calibration["FR"].status == TOO_FEW
    assert fitted.calibration["FR"].n_predicted == 5
    assert fitted.never_assigned == ["BR", "FR"]
    # OTHER is a class like the others: 96 % everywhere, so the loosest threshold.
    assert fitted.thresholds["OTHER"] <= 0.5
    assert fitted.method == METHOD == "fixed_sequence_clopper_pearson"


def test_fixed_sequence_stops_at_first_failure() -> None:
    """Precision high at the top, poor in the middle, perfect below: pooled over everything
    it would pass (0.96), but one fixed sequence from the top must stop in the poor band."""
    rng = np.random.default_rng(3)
    top = _rows(US, rng.uniform(0.9, 1.0, 300), np.ones(300, bool), rng)
    mid = _rows(US, rng.uniform(0.7, 0.9, 300), rng.random(300) < 0.5, rng)
    low = _rows(US, rng.uniform(0.5, 0.7, 4000), np.ones(4000, bool), rng)
    probs = np.concatenate([top[0], mid[0], low[0]])
    labels = np.concatenate([top[1], mid[1], low[1]])
    single = fit_thresholds(probs, labels, NAMES, policy(start_counts=[100]))
    assert 0.8 <= single.thresholds["US"] <= 0.9
    assert single.calibration["US"].status == ASSIGNED
    assert single.calibration["US"].delta_per_test == 0.05
    # With the default starts, a sequence starting where 3000 predictions are kept
    # (precision 0.95 there) may certify a looser threshold: valid, since the kept set's
    # true precision is above target all the way down.
    multi = fit_thresholds(probs, labels, NAMES, POLICY)
    t = multi.thresholds["US"]
    assert t <= single.thresholds["US"]
    kept = (probs.argmax(1) == US) & (probs.max(1) >= t)
    assert (labels[kept] == US).mean() >= 0.9


def test_simultaneous_splits_delta_over_the_families_tested(cal) -> None:
    """delta is divided by the classes predicted often enough to be tested (FR, with 5
    predictions, cannot pass any test and does not dilute it), not by the label set."""
    th = fit_thresholds(*cal, NAMES, policy(guarantee="simultaneous"))
    assert th.n_families == 3
    assert th.delta_per_class == pytest.approx(0.05 / 3)
    assert th.thresholds["US"] >= fit_thresholds(*cal, NAMES, POLICY).thresholds["US"]
    assert Thresholds.from_dict(th.to_dict()).delta_per_class == th.delta_per_class


def test_alpha_recycling_is_never_less_powerful_than_an_equal_split() -> None:
    """Every threshold one start's sequence certifies at its share delta / m alone is
    certified by the recycled procedure too, so its threshold is at most as strict."""
    rng = np.random.default_rng(5)
    for _ in range(6):
        top = _rows(US, rng.uniform(0.6, 1.0, 2000), rng.random(2000) < 0.93, rng)
        counts = [50, 100, 300, 1000]
        recycled = fit_thresholds(*top, NAMES, policy(start_counts=counts))
        for s in counts:
            alone = fit_thresholds(*top, NAMES, policy(start_counts=[s], delta=0.05 / 4))
            assert recycled.thresholds["US"] <= alone.thresholds["US"]


def test_the_floor_keeps_every_threshold_above_min_probability() -> None:
    """A class right on every calibration prediction would certify 0.0 and be assigned on
    any argmax (JP on the real tweets); the floor stops that, for old policies too."""
    rng = np.random.default_rng(4)
    probs, labels = _rows(US, rng.uniform(0.3, 1.0, 3000), np.ones(3000, bool), rng)
    assert fit_thresholds(probs, labels, NAMES, policy(min_probability=0.0)
                          ).thresholds["US"] < 0.3
    floored = fit_thresholds(probs, labels, NAMES, policy(min_probability=0.5))
    assert floored.thresholds["US"] == 0.5
    assert Thresholds.from_dict(floored.to_dict()).policy.min_probability == 0.5
    low = np.array([[0.4, 0.2, 0.2, 0.2], [0.6, 0.2, 0.1, 0.1]])
    assert floored.decode(floored.apply(low)) == ["UNCERTAIN", "US"]
    old = Thresholds(NAMES, {"US": 0.0, "BR": 0.0, "FR": 0.0, "OTHER": 0.0},
                     policy(min_probability=0.5))
    assert old.decode(old.apply(low)) == ["UNCERTAIN", "US"]


@pytest.mark.parametrize(("change", "message"), [
    ({"target": 1.0}, "evaluation.policy.target=1.0"),
    ({"delta": 0.0}, "evaluation.policy.delta=0.0"),
    ({"start_counts": []}, "evaluation.policy.start_counts"),
    ({"guarantee": "pooled"}, "evaluation.policy.guarantee='pooled'"),
])
def test_policy_config_rejects_bad_values(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("[", r"\[")):
        PolicyConfig(**{**POLICY.to_dict(), **change})


def test_top_class_rule_and_never_assigned() -> None:
    th = Thresholds(NAMES, {"US": 0.3, "BR": 0.9, "FR": math.inf, "OTHER": 0.5},
                    policy(min_probability=0.0))  # no floor: the thresholds alone decide
    probs = np.array(
        [
            [0.35, 0.60, 0.05, 0.00],  # US above its threshold but BR is top and below 0.9
            [0.02, 0.95, 0.02, 0.01],  # BR top and above
            [0.05, 0.05, 0.90, 0.00],  # FR is never assigned
            [0.20, 0.10, 0.10, 0.60],  # OTHER above its threshold
            [0.30, 0.25, 0.25, 0.20],  # exactly at the threshold is kept
        ]
    )
    out = th.apply(probs)
    assert out.tolist() == [UNCERTAIN_INDEX, BR, UNCERTAIN_INDEX, OTHER_IDX, US]
    assert th.decode(out) == [UNCERTAIN, "BR", UNCERTAIN, "OTHER", "US"]
    with pytest.raises(ValueError):
        th.apply(probs[:, :3])


def test_never_assigned_classes_get_uncertain_on_new_data(fitted: Thresholds) -> None:
    probs, _ = planted(np.random.default_rng(7))
    out = fitted.apply(probs)
    assert not np.isin(out, [BR, FR]).any()
    assert np.all(out[probs.argmax(1) == BR] == UNCERTAIN_INDEX)


def test_precision_holds_on_fresh_sample(fitted: Thresholds) -> None:
    probs, labels = planted(np.random.default_rng(11), n_us=6000, n_other=3000)
    out = fitted.apply(probs)
    for c, name in enumerate(NAMES):
        kept = out == c
        if math.isfinite(fitted.thresholds[name]):
            assert kept.sum() > 500
            assert (labels[kept] == c).mean() >= 0.9, name


def test_guarantee_over_repeated_calibration_draws() -> None:
    """Across independent calibration samples the certified US threshold should have true
    precision below 0.9 in at most ~delta of draws (here: essentially never)."""
    rng = np.random.default_rng(5)
    misses = 0
    for _ in range(40):
        th = fit_thresholds(*planted(rng, n_us=1500, n_br=200, n_other=200), NAMES, POLICY)
        t = th.thresholds["US"]
        misses += math.isfinite(t) and true_precision_us(t) < 0.9
    assert misses <= 4


def test_thresholds_json_round_trip(tmp_path: Path, fitted: Thresholds) -> None:
    path = fitted.to_json(tmp_path / "thresholds.json")
    raw = json.loads(path.read_text())
    assert raw["method"] == METHOD
    assert raw["thresholds"]["BR"] is None and raw["thresholds"]["FR"] is None
    assert raw["calibration"]["per_class"]["FR"]["n_predicted"] == 5
    for key in ("temperature", "target", "delta", "guarantee", "created_at", "class_names"):
        assert key in raw
    back = Thresholds.from_json(path)
    assert back.thresholds == fitted.thresholds
    assert back.to_dict() == fitted.to_dict()
    probs, _ = planted(np.random.default_rng(2))
    np.testing.assert_array_equal(back.apply(probs), fitted.apply(probs))


# ------------------------------------------------------------------ calibration


@pytest.mark.parametrize("planted_t", [0.5, 2.5])
def test_temperature_fit_recovers_planted_temperature(planted_t: float) -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 2.0, (4000, 5))  # well-calibrated logits: labels drawn from softmax(z)
    p = softmax(z)
    labels = np.minimum((rng.random((4000, 1)) > p.cumsum(1)).sum(1), 4)
    logits = z * planted_t  # what a mis-calibrated model outputs; z = logits / planted_t
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(planted_t, rel=0.1)
    assert nll(logits, labels, t) <= nll(logits, labels, 1.0)
    assert expected_calibration_error(softmax(logits, t), labels) < expected_calibration_error(
        softmax(logits), labels
    )


def test_reliability_bins_agree_with_torchmetrics_ece(cal) -> None:
    probs, labels = cal
    bins = reliability_bins(probs, labels)
    ece = float((bins["count"] * bins["gap"].fillna(0)).sum() / bins["count"].sum())
    assert ece == pytest.approx(expected_calibration_error(probs, labels), abs=1e-6)


# ------------------------------------------------------------------ metrics and sweep


def test_per_class_metrics_match_direct_counts(cal) -> None:
    probs, labels = cal
    m = compute_metrics(probs, labels, NAMES)
    pred = probs.argmax(1)
    for c, name in enumerate(NAMES):
        row = m.per_class.set_index("class").loc[name]
        tp = ((pred == c) & (labels == c)).sum()
        assert row["support"] == (labels == c).sum()
        assert row["precision"] == pytest.approx(tp / (pred == c).sum(), abs=1e-6)
        assert row["recall"] == pytest.approx(tp / (labels == c).sum(), abs=1e-6)
    assert m.accuracy == pytest.approx((pred == labels).mean(), abs=1e-6)
    assert m.confusion.to_numpy().sum() == len(labels)
    assert m.confusion.loc["US", "US"] == ((pred == US) & (labels == US)).sum()
    np.testing.assert_allclose(m.confusion_normalized.sum(1), 1.0, atol=1e-6)


def test_sweep_counts(cal) -> None:
    probs, labels = cal
    sw = threshold_sweep(probs, labels, NAMES)
    pred, conf = probs.argmax(1), probs.max(1)
    row = sw[(sw["class"] == "US") & np.isclose(sw["threshold"], 0.8)].iloc[0]
    kept = (pred == US) & (conf >= 0.8)
    assert row["kept"] == kept.sum()
    assert row["precision"] == pytest.approx((labels[kept] == US).mean())
    assert row["coverage"] == pytest.approx(kept.sum() / (pred == US).sum())
    all0 = sw[(sw["class"] == ALL) & (sw["threshold"] == 0)].iloc[0]
    assert all0["coverage"] == 1.0
    assert all0["accuracy_kept"] == pytest.approx((pred == labels).mean())
    assert (sw.groupby("class")["kept"].apply(lambda s: s.is_monotonic_decreasing)).all()


def test_invalid_inputs_are_rejected(cal, fitted: Thresholds) -> None:
    probs, labels = cal
    with pytest.raises(ValueError, match="labels must lie"):
        compute_metrics(probs, labels + 1, NAMES)
    with pytest.raises(ValueError, match="class names"):
        compute_metrics(probs, labels, NAMES[:3])
    with pytest.raises(ValueError, match="fitted for classes"):
        evaluate_split(np.log(probs), labels, ["US", "BR", "DE", "OTHER"], fitted)


# ------------------------------------------------------------------ report


def test_flagged_country_below_target(tmp_path: Path) -> None:
    """A country with a threshold whose precision on the evaluated split is below target is
    flagged in the scalars, the CSV and the Markdown."""
    probs, labels = planted(np.random.default_rng(4), n_us=500, n_br=500, n_fr=50, n_other=300)
    th = th_fixed({"US": 0.9, "BR": 0.0, "FR": math.inf, "OTHER": 0.0})
    result = evaluate_split(np.log(probs), labels, NAMES, th)
    assert result.flagged == ["BR"]
    assert result.scalars["countries_below_target"] == 1
    assert result.scalars["countries_meeting_target"] == 1  # US
    assert result.never_assigned == {"FR": "never_assigned"}
    write_report(result, tmp_path)
    pc = pd.read_csv(tmp_path / "per_class.csv").set_index("class")
    assert bool(pc.loc["BR", "flagged"]) and not bool(pc.loc["US", "flagged"])
    md = (tmp_path / "report.md").read_text()
    assert "⚠️ **BR**" in md


def _outputs(probs: np.ndarray, labels: np.ndarray) -> SplitOutputs:
    return SplitOutputs(np.log(probs).astype(np.float32), labels)


def test_evaluate_logits_writes_report_and_logs_wandb(tmp_path: Path, monkeypatch) -> None:
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cal = _outputs(*planted(np.random.default_rng(21)))
    test = _outputs(*planted(np.random.default_rng(22), n_us=1500, n_br=500, n_other=500))
    run = wandb.init(dir=tmp_path, mode="offline", project="geoloc-test")
    try:
        result = evaluate_logits(cal, test, NAMES, POLICY, split="test",
                                 report_dir=tmp_path / "report", wandb_run=run)
    finally:
        run.finish()

    out = tmp_path / "report"
    for fname in [
        *TABLE_FILES.values(),
        *FIGURE_FILES.values(),
        "report.md",
        "summary.json",
        "thresholds.json",
    ]:
        assert (out / fname).stat().st_size > 0, fname
    assert not list(out.glob(".*.tmp"))  # every file went through the atomic writer
    assert (out / "per_country.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    assert "fixed_sequence_clopper_pearson" in md
    assert "BR" in md and "never reaches the target" in md and "too few" in md
    pc = pd.read_csv(out / "per_class.csv")
    assert {
        "precision",
        "recall",
        "f1",
        "support",
        "threshold",
        "precision_abstain",
        "recall_abstain",
        "flagged",
    } <= set(pc.columns)
    s = result.scalars
    assert result.fitted and 0 < s["uncertain_rate"] < 1
    assert s["correct_country_rate"] <= s["country_assigned_rate"]
    assert s["countries_with_threshold"] == 1 and s["countries_never_assigned"] == 2

    # What W&B recorded, read back from the offline run's transaction log: each scalar
    # under the group that says what it measures.
    run_dir = next((tmp_path / "wandb").glob("offline-run-*"))
    summary = wandb_summary(run_dir)["summary"]
    for key, name in (
        ("eval/accuracy", "accuracy"),
        ("eval/accuracy_se", "accuracy_se"),
        ("eval/macro_f1_se", "macro_f1_se"),
        ("abstain/correct_country_rate_se", "correct_country_rate_se"),
        ("abstain/correct_country_rate", "correct_country_rate"),
        ("abstain/uncertain_rate", "uncertain_rate"),
        ("abstain/coverage", "coverage"),
        ("abstain/countries_meeting_target", "countries_meeting_target"),
        ("abstain/countries_below_target", "countries_below_target"),
        ("calibration/ece", "ece"),
        ("calibration/temperature", "temperature"),
    ):
        assert summary[key] == pytest.approx(s[name], rel=1e-6), key
    assert not any(k.startswith("abstain/") and ("ece" in k or "temperature" in k)
                   for k in summary)
    assert summary["abstain/method"] == METHOD
    assert summary["abstain/never_assigned"] == "BR, FR"
    assert summary["report/per_class"]["_type"] == "table-file"
    assert summary["report/figures/reliability"]["_type"] == "image-file"
    # Custom charts (confusion matrices, line plots) are stored as "<key>_table".
    for key in (
        "confusion_matrix",
        "confusion_matrix_abstain",
        "risk_coverage",
        "precision_threshold",
    ):
        assert summary[f"report/{key}_table"]["_type"] == "table-file", key

    # Reusing a saved policy (geoloc-eval on a checkpoint): no calibration split needed,
    # no thresholds.json rewritten, same decisions.
    saved = Thresholds.from_json(out / "thresholds.json")
    again = evaluate_logits(None, test, NAMES, saved, split="test", report_dir=tmp_path / "again")
    assert not again.fitted and not (tmp_path / "again" / "thresholds.json").exists()
    np.testing.assert_array_equal(again.decisions, result.decisions)
    with pytest.raises(ValueError, match="calibration split"):
        evaluate_logits(None, test, NAMES, POLICY, split="test", report_dir=tmp_path / "x")


def test_log_wandb_keys(cal, fitted: Thresholds) -> None:
    """log_wandb only needs run.log and run.summary, so a stub shows the exact keys."""

    class Run:
        def __init__(self) -> None:
            self.logged: dict = {}
            self.summary: dict = {}

        def log(self, data: dict, step: int | None = None) -> None:
            self.logged.update(data)

    probs, labels = cal
    result = evaluate_split(np.log(probs), labels, NAMES, fitted, split="val")
    run = Run()
    keys = log_wandb(result, run)
    assert all(k.split("/")[0] in ("report", "eval", "calibration", "abstain") for k in keys)
    for k in (
        "report/per_class",
        "report/sweep",
        "report/confusion_matrix",
        "report/confusion_matrix_abstain",
        "report/risk_coverage",
        "report/precision_threshold",
        "report/figures/per_country",
        "eval/accuracy",
        "calibration/ece",
        "abstain/coverage",
    ):
        assert k in run.logged, k
    assert run.summary["abstain/correct_country_rate"] == result.scalars["correct_country_rate"]


def test_evaluate_model_predicts_only_what_the_policy_needs(tmp_path: Path) -> None:
    """evaluate_model predicts calib + the evaluated split through the trainer when the
    policy must be fitted, and only the evaluated split with a saved policy."""
    data = {"calib": planted(np.random.default_rng(31)), "test": planted(np.random.default_rng(32))}
    calls: list[tuple[str, str | None]] = []

    class Trainer:
        def predict(self, module, dataloaders, ckpt_path=None, weights_only=None):
            assert weights_only is True  # checkpoints are never unpickled
            calls.append((dataloaders, ckpt_path))
            probs, labels = data[dataloaders]
            return [{"logits": torch.from_numpy(np.log(probs)), "row": torch.arange(len(labels)),
                     "labels": torch.from_numpy(labels)}]

    class DataModule:
        def split_dataloader(self, split: str) -> str:
            return split  # the fake trainer receives the split name as its "loader"

        def texts(self, split: str, rows) -> list[str]:  # the report's predictions.csv
            return [f"{split} text {r}" for r in rows]

        def ids(self, split: str, rows) -> list[str]:
            return [f"{split}-{r}" for r in rows]

    class Module:
        class_names = tuple(NAMES)

    import torch

    result = evaluate_model(Trainer(), Module(), DataModule(), POLICY, split="test",
                            report_dir=tmp_path / "r", ckpt_path="best.ckpt")
    assert calls == [("calib", "best.ckpt"), ("test", "best.ckpt")]
    assert (tmp_path / "r" / "report.md").exists() and (tmp_path / "r" / "thresholds.json").exists()
    metrics = result.metrics()
    assert 0 < metrics["abstain/coverage"] < 1 and "calibration/temperature" in metrics
    assert all(math.isfinite(v) for v in metrics.values())

    calls.clear()
    saved = Thresholds.from_json(tmp_path / "r" / "thresholds.json")
    again = evaluate_model(Trainer(), Module(), DataModule(), saved, split="test",
                           report_dir=tmp_path / "r2")
    assert calls == [("test", None)]
    assert again.metrics()["abstain/coverage"] == metrics["abstain/coverage"]


def test_rare_countries_share_a_pooled_certified_threshold() -> None:
    """Countries too rare to certify alone (here: 25 calibration predictions each, fewer
    than the 29 all-correct ones a bound needs) are pooled by a label-free rule (fewer predictions than pool_below) and share
    one threshold whose bound is about their pooled precision; the JSON and report say
    which kind of guarantee each country has."""
    names = ["US", "BR", "FR", "DE", "JP", "OTHER"]
    rng = np.random.default_rng(8)
    rows, labels = [], []
    for c, n, p_right in ((0, 1500, 0.97), (1, 25, 0.99), (2, 25, 0.99), (3, 25, 0.99),
                          (4, 25, 0.99), (5, 400, 0.96)):
        conf = rng.uniform(0.6, 1.0, n)
        right = rng.random(n) < p_right
        probs = np.tile(((1 - conf) / (len(names) - 1))[:, None], (1, len(names)))
        probs[:, c] = conf
        rows.append(probs)
        labels.append(np.where(right, c, (c + rng.integers(1, len(names), n)) % len(names)))
    probs, labels = np.concatenate(rows), np.concatenate(labels)
    alone = fit_thresholds(probs, labels, names, POLICY)
    assert alone.never_assigned == ["BR", "FR", "DE", "JP"]
    pooled = fit_thresholds(probs, labels, names, policy(pool_below=100))
    cal = pooled.calibration
    assert cal["US"].guarantee == "class" and cal["OTHER"].guarantee == "class"
    assert pooled.thresholds["US"] == alone.thresholds["US"]
    for name in ("BR", "FR", "DE", "JP"):
        assert cal[name].guarantee == "pooled" and cal[name].pool == ["BR", "FR", "DE", "JP"]
        assert cal[name].n_predicted == 25
        assert pooled.thresholds[name] == pooled.thresholds["BR"] < 1
    # the pool's numbers in their own fields; the country's own share has no bound
    assert cal["BR"].pool_lower_bound >= 0.9 and cal["BR"].pool_n_kept <= 100
    assert cal["BR"].lower_bound is None and cal["BR"].n_kept <= 25
    raw = pooled.to_dict()
    assert raw["pool_below"] == 100 and raw["guarantee_per_class"]["FR"] == "pooled"
    assert Thresholds.from_dict(raw).to_dict() == raw
    result = evaluate_split(np.log(probs), labels, names, pooled)
    pc = result.tables["per_class"].set_index("class")
    assert pc.loc["DE", "guarantee"] == "pooled" and pc.loc["US", "guarantee"] == "class"
    assert "Pooled rare countries" in render_markdown(result)
    assert result.scalars["countries_certified_own"] == 1
    assert result.scalars["countries_certified_pooled"] == 4
    # the audit of the evaluated split, per family: countries alone and the pool as one
    assert result.scalars["pool_assigned"] > 0 and 0 < result.scalars["pool_lower_bound"] < 1
    assert pc.loc["US", "audit_lower_bound"] <= pc.loc["US", "precision_abstain"]
    assert "Audit of the `test` split, per family" in render_markdown(result)


def test_a_pooled_country_with_enough_support_earns_its_own_threshold() -> None:
    """From the pool down: once the pool is certified, a pooled country whose own
    predictions pass a test alone gets its own threshold (kind ``class``)."""
    names = ["US", "BR", "FR", "OTHER"]
    rng = np.random.default_rng(9)
    rows, labels = [], []
    for c, n, p_right in ((0, 1500, 0.97), (1, 90, 1.0), (2, 20, 0.95), (3, 400, 0.96)):
        conf = rng.uniform(0.6, 1.0, n)
        probs = np.tile(((1 - conf) / (len(names) - 1))[:, None], (1, len(names)))
        probs[:, c] = conf
        rows.append(probs)
        right = rng.random(n) < p_right
        labels.append(np.where(right, c, (c + 1) % len(names)))
    th = fit_thresholds(np.concatenate(rows), np.concatenate(labels), names,
                        policy(pool_below=100))
    assert th.calibration["BR"].guarantee == "class"
    assert th.calibration["BR"].status == "assigned_from_pool"
    assert th.calibration["BR"].pool == ["BR", "FR"]
    # FR failed alone, and the pool's bound was earned mostly by BR, which left: it no
    # longer covers FR, which is never assigned rather than assigned on BR's bound
    assert th.calibration["FR"].status == "pool_split"
    assert th.calibration["FR"].guarantee == "none" and th.thresholds["FR"] == math.inf
    # simultaneous: the family's level is split between the pool's test and its members'
    sim = fit_thresholds(np.concatenate(rows), np.concatenate(labels), names,
                         policy(pool_below=100, guarantee="simultaneous"))
    assert sim.calibration["BR"].delta_per_test <= sim.delta_per_class / 2 / 2


def test_an_old_thresholds_file_is_read_with_the_floor():
    """A policy file written before the floor (no min_probability) gets the configured
    default, so its threshold of 0.0 no longer assigns on any argmax."""
    from geoloc.evaluation.abstention import LEGACY_MIN_PROBABILITY

    assert LEGACY_MIN_PROBABILITY == policy().min_probability
    raw = Thresholds(NAMES, {"US": 0.0, "BR": 0.9, "FR": math.inf, "OTHER": 0.5},
                     policy(min_probability=0.0)).to_dict()
    del raw["min_probability"]
    old = Thresholds.from_dict(raw)
    assert old.policy.min_probability == LEGACY_MIN_PROBABILITY
    assert old.decode(old.apply(np.array([[0.3, 0.2, 0.2, 0.3]]))) == ["UNCERTAIN"]


def test_standard_errors() -> None:
    """Binomial SE of a proportion; bootstrap SE of macro-F1: 0 for a perfect classifier,
    near the binomial SE of accuracy for a balanced two-class one."""
    from geoloc.evaluation.stats import binomial_se, bootstrap_macro_f1_se

    assert binomial_se(0.5, 100) == pytest.approx(0.05)
    assert math.isnan(binomial_se(0.5, 0))
    labels = np.repeat([0, 1], 500)
    assert bootstrap_macro_f1_se(labels, labels, 2) == 0.0
    rng = np.random.default_rng(0)
    noisy = np.where(rng.random(1000) < 0.8, labels, 1 - labels)
    se = bootstrap_macro_f1_se(labels, noisy, 2)
    assert 0.6 * binomial_se(0.8, 1000) < se < 1.6 * binomial_se(0.8, 1000)
