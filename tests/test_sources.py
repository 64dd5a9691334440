"""MixtureSource: synthetic rows only ever in train, the ratio is respected, real rows keep
their split; sources are bound to the run's label set and split rule, never repeat them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from geoloc.data.datamodule import labelled_splits
from geoloc.data.sources import CanonicalJsonlSource, MixtureSource, SyntheticSource
from geoloc.data.splits import record_split
from geoloc.errors import DataConfigError
from geoloc.io import read_jsonl
from geoloc.labels import LabelSet

FRACTIONS = {"train": 0.6, "val": 0.2, "calib": 0.2, "test": 0.0}
COUNTRIES = ["BR", "FR", "JP"]
LABELS = LabelSet.from_codes(COUNTRIES)


def _real(tmp_path: Path, n: int = 120) -> CanonicalJsonlSource:
    path = tmp_path / "real.jsonl"
    words = {"BR": "bom dia saudade", "FR": "bonjour merci beaucoup", "JP": "arigato tokyo"}
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            code = [*COUNTRIES, "VE"][i % 4]
            row = {"id": str(1000 + i), "bio": "", "captions": [f"{words.get(code, 'hola')} {i}"],
                   "stated_location": None, "country": code}
            fh.write(json.dumps(row) + "\n")
    return CanonicalJsonlSource(str(path))


def _bound(source: MixtureSource, split_seed: int = 7) -> MixtureSource:
    return source.bind(label_set=LABELS, splits=FRACTIONS, split_seed=split_seed)


@pytest.mark.parametrize("ratio", [0.5, 2.0])
def test_mixture_puts_synthetic_rows_only_in_train_at_the_ratio(tmp_path, ratio):
    real = _real(tmp_path)
    mix = MixtureSource(real=real, synthetic_ratio=ratio, synthetic_seed=3)
    plain = labelled_splits(real, COUNTRIES, FRACTIONS, 7)
    mixed = labelled_splits(mix, LABELS, FRACTIONS, 7)  # binds the mixture itself
    n_real_train = len(plain["train"]["id"])
    synthetic = {k: [i for i in v["id"] if i.startswith("synthetic:")] for k, v in mixed.items()}
    assert len(synthetic["train"]) == round(ratio * n_real_train) > 0
    assert synthetic["val"] == synthetic["calib"] == synthetic["test"] == []
    # Every real row stays in exactly the split it has without the mixture.
    for name in ("train", "val", "calib"):
        real_ids = [i for i in mixed[name]["id"] if not i.startswith("synthetic:")]
        assert real_ids == plain[name]["id"]
        assert mixed[name]["labels"][: len(real_ids)] == plain[name]["labels"]
    # Cached by fingerprint; another ratio is another file.
    bound = _bound(mix)
    assert bound.canonical_jsonl() == bound.canonical_jsonl()
    other = _bound(MixtureSource(real=real, synthetic_ratio=ratio + 1, synthetic_seed=3))
    assert other.fingerprint() != bound.fingerprint()


def test_zero_ratio_is_the_real_data_and_negative_ratio_fails(tmp_path):
    real = _real(tmp_path, 40)
    mix = _bound(MixtureSource(real=real, synthetic_ratio=0, synthetic_seed=0))
    assert sum(1 for _ in read_jsonl(mix.canonical_jsonl())) == 40
    with pytest.raises(ValueError, match="synthetic_ratio"):
        MixtureSource(real=real, synthetic_ratio=-1, synthetic_seed=0)


def test_binding_fills_what_is_unset_and_keeps_what_is_set(tmp_path):
    real = _real(tmp_path, 8)
    mix = _bound(MixtureSource(real=real, synthetic_ratio=1.0, synthetic_seed=0))
    assert (mix.countries, mix.splits, mix.split_seed) == (COUNTRIES, FRACTIONS, 7)
    # A synthetic source may deliberately generate another country list than the labels.
    syn = SyntheticSource(n=10, seed=0, countries=["US"])
    assert syn.bind(label_set=LABELS, splits=FRACTIONS, split_seed=0) is syn
    unset = SyntheticSource(n=10, seed=0)
    bound = unset.bind(label_set=LABELS, splits=FRACTIONS, split_seed=0)
    assert bound.countries == COUNTRIES and unset.countries is None  # a copy, not a mutation
    assert real.bind(label_set=LABELS, splits=FRACTIONS, split_seed=0) is real


def test_unbound_or_mismatched_sources_fail_naming_the_field(tmp_path):
    real = _real(tmp_path, 8)
    with pytest.raises(DataConfigError, match=r"SyntheticSource\.countries is unset"):
        SyntheticSource(n=10, seed=0).fingerprint()
    with pytest.raises(DataConfigError, match=r"MixtureSource\.countries is unset"):
        MixtureSource(real=real, synthetic_ratio=1.0, synthetic_seed=0).canonical_jsonl()
    # A mixture that counted other training rows than the datamodule's would get the
    # ratio wrong: a split rule set on the source must be the data config's.
    other = {"train": 0.8, "val": 0.1, "calib": 0.1, "test": 0.0}
    with pytest.raises(DataConfigError, match=r"data\.source\.splits=.*differs from data\.splits"):
        _bound(MixtureSource(real=real, synthetic_ratio=1.0, synthetic_seed=0, splits=other))
    with pytest.raises(DataConfigError, match=r"data\.source\.split_seed=3"):
        _bound(MixtureSource(real=real, synthetic_ratio=1.0, synthetic_seed=0, split_seed=3))
    same = MixtureSource(real=real, synthetic_ratio=1.0, synthetic_seed=0, splits=FRACTIONS,
                         split_seed=7)
    assert _bound(same).fingerprint() == _bound(
        MixtureSource(real=real, synthetic_ratio=1.0, synthetic_seed=0)).fingerprint()


def test_record_split_field_overrides_the_hash_and_is_validated():
    assert record_split({"id": "a", "split": "train"}, 0, {**FRACTIONS, "train": 0.0,
                                                            "val": 0.8}) == "train"
    assert record_split({"id": "a", "split": None}, 0, FRACTIONS) in {"train", "val", "calib"}
    with pytest.raises(DataConfigError, match="field 'split'='dev'"):
        record_split({"id": "a", "split": "dev"}, 0, FRACTIONS)


def test_splits_and_sources_do_not_import_the_datamodule():
    """The split rules sit below both sources and the datamodule (no import cycle)."""
    import subprocess
    import sys

    code = ("import sys, geoloc.data.sources, geoloc.data.splits; "
            "assert 'geoloc.data.datamodule' not in sys.modules, 'datamodule imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
