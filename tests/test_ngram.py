"""The char n-gram model and its fusion with the transformer: safe save/load that restores
the same predictions, a weight chosen by calibration log-loss, config validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import log_softmax

from geoloc.io import file_sha256
from geoloc.model.ngram import (
    CharNgramLR,
    Fusion,
    FusionConfig,
    fuse,
    place_evidence,
    select_fusion,
)

WORDS = [["bom dia", "saudade", "valeu"], ["bonjour", "merci", "bisous"],
         ["howdy", "y'all", "awesome"], ["arigato", "kawaii", "東京 🇯🇵"]]


def _texts(n: int, seed: int = 0) -> tuple[list[str], list[int]]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(WORDS), n).tolist()
    texts = [f"{WORDS[y][rng.integers(3)]} {WORDS[rng.integers(4)][rng.integers(3)]} {i}"
             for i, y in enumerate(labels)]
    return texts, labels


def test_saved_fusion_restores_the_same_predictions(tmp_path):
    texts, labels = _texts(200)
    # 5 classes, one never seen in training: it gets the floor, before and after loading
    model = CharNgramLR(n_classes=5, C=30.0).fit(texts, labels)
    fusion = Fusion(model=model, weight=0.6, trials=[{"C": 30.0, "weight": 0.6, "nll": 1.0}])
    path = tmp_path / "geoloc_fusion.json"
    fusion.save(path)
    assert json.loads(path.read_text())["format"] == "geoloc-fusion/1"
    with np.load(path.with_suffix(".npz"), allow_pickle=False) as arrays:  # no pickles
        assert set(arrays.files) == {"idf", "coef", "intercept", "classes"}
    loaded = Fusion.load(path)
    probe, _ = _texts(50, seed=1)
    probe += ["", "🇧🇷🇧🇷", "completely unseen words"]
    np.testing.assert_allclose(loaded.model.log_proba(probe), model.log_proba(probe),
                               atol=1e-5)
    logits = np.random.default_rng(2).normal(size=(len(probe), 5)).astype(np.float32)
    np.testing.assert_allclose(loaded.apply(logits, probe), fusion.apply(logits, probe),
                               atol=1e-5)
    assert loaded.weight == 0.6 and loaded.trials == fusion.trials


def test_loading_something_else_fails_clearly(tmp_path):
    path = tmp_path / "x.fusion.json"
    path.write_text(json.dumps({"format": "pickle"}))
    with pytest.raises(ValueError, match="not a geoloc-fusion/1 file"):
        Fusion.load(path)


def test_fuse_is_a_weighted_sum_of_log_probabilities():
    rng = np.random.default_rng(0)
    tr, ng = rng.normal(size=(4, 3)), log_softmax(rng.normal(size=(4, 3)), axis=1)
    np.testing.assert_allclose(fuse(tr, ng, 1.0), log_softmax(tr, axis=1), atol=1e-6)
    np.testing.assert_allclose(fuse(tr, ng, 0.0), ng, atol=1e-6)
    np.testing.assert_allclose(fuse(tr, ng, 0.3), 0.3 * log_softmax(tr, axis=1) + 0.7 * ng,
                               atol=1e-6)


def test_select_fusion_follows_the_informative_model():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 600)
    informative = np.eye(4)[labels] * 3 + rng.normal(size=(600, 4))
    noise = rng.normal(size=(600, 4))
    # transformer informative, n-gram noise: all weight on the transformer
    c, w, a, trials = select_fusion(informative, {1.0: log_softmax(noise, axis=1)}, labels,
                                    [0.0, 0.5, 1.0])
    assert (c, w, a) == (1.0, 1.0, 0.0) and len(trials) == 3
    # the reverse: all weight on the better of two n-gram models
    c, w, _, _ = select_fusion(noise, {1.0: log_softmax(noise, axis=1),
                                       10.0: log_softmax(informative, axis=1)},
                               labels, [0.0, 0.5, 1.0])
    assert (c, w) == (10.0, 0.0)
    # two equally informative, independent views: a mix beats either alone
    other = np.eye(4)[labels] * 3 + rng.normal(size=(600, 4))
    _, w, _, _ = select_fusion(informative, {1.0: log_softmax(other, axis=1)}, labels,
                               [0.0, 0.5, 1.0])
    assert w == 0.5


def test_select_fusion_weighs_place_evidence_by_what_it_is_worth():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 600)
    weak = np.eye(4)[labels] * 1.0 + rng.normal(size=(600, 4))
    ngram = log_softmax(rng.normal(size=(600, 4)), axis=1)
    # a third of the rows name a place of their own country: a weight > 0 is chosen
    named = np.where((rng.random(600) < 0.33)[:, None], np.eye(4)[labels], 0.0)
    _, w, a, trials = select_fusion(weak, {1.0: ngram}, labels, [0.5, 1.0], named,
                                    [0.0, 1.0, 3.0])
    assert a > 0 and len(trials) == 6
    assert {t["place_weight"] for t in trials} == {0.0, 1.0, 3.0}
    # places unrelated to the label: no weight
    unrelated = np.where((rng.random(600) < 0.33)[:, None],
                         np.eye(4)[rng.integers(0, 4, 600)], 0.0)
    _, _, a, _ = select_fusion(weak, {1.0: ngram}, labels, [0.5, 1.0], unrelated,
                               [0.0, 1.0, 3.0])
    assert a == 0.0
    with pytest.raises(ValueError, match="place evidence"):
        fuse(weak, ngram, 0.5, None, 1.0)


def test_place_evidence_lays_the_named_places_on_the_classes():
    names = ["US", "BR", "PT", "OTHER"]
    ev = place_evidence(["Bom dia Lisboa 🇵🇹", "nothing here at all", "Sunset in Reykjavík",
                         "Bom dia Lisboa 🇵🇹"], names)
    assert ev.shape == (4, 4) and ev.dtype == np.float32
    assert ev[0].argmax() == names.index("PT") and ev[0].sum() == pytest.approx(1.0)
    assert not ev[1].any()  # no place named: no evidence
    assert ev[2, names.index("OTHER")] == pytest.approx(1.0)  # Iceland is not a class
    np.testing.assert_array_equal(ev[0], ev[3])
    # without OTHER, a country outside the label set is no evidence
    assert not place_evidence(["Sunset in Reykjavík"], ["US", "BR"]).any()


def test_a_saved_place_expert_restores_the_same_predictions(tmp_path):
    """The place weight, the class names and the gazetteer's version travel in the JSON;
    the export's scorer (which runs without geoloc but for this step) adds the same
    evidence."""
    from geoloc.inference.modeling_geoloc import CharNgramScorer
    from geoloc.location.gazetteer import index_version

    texts, labels = _texts(200)
    names = ["BR", "FR", "US", "JP"]
    model = CharNgramLR(n_classes=4, C=30.0).fit(texts, labels)
    with pytest.raises(ValueError, match="class names"):
        Fusion(model=model, weight=0.6, place_weight=2.0)
    fusion = Fusion(model=model, weight=0.6, place_weight=2.0, class_names=names)
    path = tmp_path / "geoloc_fusion.json"
    fusion.save(path)
    meta = json.loads(path.read_text())
    assert (meta["place_weight"], meta["class_names"]) == (2.0, names)
    assert meta["format"] == "geoloc-fusion/2"  # a reader without the place term refuses it
    assert meta["gazetteer"] == index_version()
    loaded = Fusion.load(path)
    probe = ["bonjour Paris", "howdy from Austin, TX", "saudade 🇧🇷", "kawaii"]
    logits = np.random.default_rng(2).normal(size=(4, 4)).astype(np.float32)
    got = loaded.apply(logits, probe)
    np.testing.assert_allclose(got, fusion.apply(logits, probe), atol=1e-6)
    without = fuse(logits, model.log_proba(probe), 0.6)
    assert (got - without)[2, names.index("BR")] == pytest.approx(2.0, abs=1e-4)  # a flag
    assert (got - without)[0, names.index("FR")] > 1.9  # Paris: mostly France
    assert got[3].tolist() == pytest.approx(without[3].tolist(), abs=1e-6)  # no place
    with np.load(path.with_suffix(".npz"), allow_pickle=False) as arrays:
        scorer = CharNgramScorer(meta, dict(arrays))
    exported = (0.6 * log_softmax(logits.astype(np.float64), axis=1)
                + 0.4 * scorer.log_proba(probe) + scorer.place_weight * scorer.places(probe))
    np.testing.assert_allclose(exported, got, atol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    ({"weights": (1.5,)}, "fusion.weights"),
    ({"weights": ()}, "fusion.weights"),
    ({"C_grid": (0.0,)}, "fusion.C_grid"),
    ({"place_weights": (-1.0,)}, "fusion.place_weights"),
    ({"place_weights": ()}, "fusion.place_weights"),
])
def test_fusion_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FusionConfig(**kwargs)


def test_fit_fusion_on_the_calib_split(tmp_path):
    """Without cross-fitting the n-gram models are fitted on the datamodule's train split
    and choose their weight on the calib split; uninformative transformer logits get no
    weight, and the fused outputs keep the rows and labels they were given."""
    from test_datamodule import _datamodule, _real

    from geoloc.evaluation import SplitOutputs
    from geoloc.training.fusion import fit_fusion

    dm = _datamodule(_real(tmp_path, 240), tmp_path / "cache")
    dm.setup()
    rng = np.random.default_rng(0)

    def noise(split: str) -> SplitOutputs:
        data = dm.datasets[split]
        rows = np.asarray(data["row"])[::-1]  # any order: texts follow the rows
        labels = np.asarray(data["labels"])[::-1]
        return SplitOutputs(rng.normal(size=(len(rows), 4)).astype(np.float32), labels, rows)

    assert dm.texts("val", [int(dm.datasets["val"]["row"][1])]) == [dm.datasets["val"]["text"][1]]
    calib, val = noise("calib"), noise("val")
    fusion, fused_calib, fused_val, metrics = fit_fusion(
        FusionConfig(C_grid=(10.0,), weights=(0.0, 0.5, 1.0)), dm, calib, val, "val")
    assert fusion.weight == 0.0 and metrics["fusion/weight"] == 0.0
    assert fused_val.rows.tolist() == val.rows.tolist()
    assert fused_val.labels.tolist() == val.labels.tolist()
    assert metrics["fusion/val_acc_fused"] == metrics["fusion/val_acc_ngram"] == 1.0
    assert metrics["fusion/val_acc_transformer"] < 0.6
    assert metrics["fusion/calib_nll"] < metrics["fusion/calib_nll_transformer"]
    assert fused_calib.logits.shape == calib.logits.shape


def test_a_fused_policy_only_pairs_with_its_own_thresholds(tmp_path):
    from geoloc.model.ngram import check_pairing

    texts, labels = _texts(60)
    thresholds = tmp_path / "epoch01.thresholds.json"
    thresholds.write_text('{"policy": "fitted with the fusion"}')
    fusion = Fusion(model=CharNgramLR(n_classes=4, C=10.0).fit(texts, labels), weight=0.5)
    fusion.thresholds_sha256 = file_sha256(thresholds)
    fusion.save(path := tmp_path / "geoloc_fusion.json")
    loaded = Fusion.load(path)
    check_pairing(loaded, thresholds, path)  # its own: fine
    check_pairing(None, thresholds, path)  # no fusion: nothing to pair
    other = tmp_path / "other.thresholds.json"
    other.write_text('{"policy": "fitted on the transformer alone"}')
    with pytest.raises(ValueError, match="was not fitted with the fusion"):
        check_pairing(loaded, other, path)
    with pytest.raises(ValueError, match="needs the thresholds fitted with its fusion"):
        check_pairing(loaded, None, path)
