"""The bundled real tweets (UMass Global English on Twitter, development half): it reads,
labels map onto the label set, and the data=umass split is deterministic with no test rows."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import compose

from geoloc.data.datamodule import ProfileDataModule, labelled_splits
from geoloc.data.sources import UmassTweetsSource
from geoloc.data.splits import SPLITS, assign_split
from geoloc.errors import DataConfigError
from geoloc.labels import OTHER, LabelSet
from geoloc.metadata import ModelMetadata
from geoloc.resources import UMASS_DEV_ROWS, resource_path, umass_dev_path


@pytest.fixture(scope="module")
def umass_rows() -> list[dict]:
    path = UmassTweetsSource().canonical_jsonl()
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_bundled_file_and_attribution_ship_with_the_package():
    assert umass_dev_path().is_file()
    readme = resource_path("umass_global_english", "README.md").read_text(encoding="utf-8")
    notice = resource_path("umass_global_english", "NOTICE.md").read_text(encoding="utf-8")
    for text in (readme, notice):
        assert "Blodgett" in text and "W-NUT" in text and "Attribution 4.0" in text
    assert "held" in notice and "not" in notice


def test_bundled_tweets_read_as_canonical_profiles(umass_rows):
    assert len(umass_rows) == UMASS_DEV_ROWS == 5174
    first = umass_rows[0]
    assert first == {"id": "434215992731136000", "bio": "",
                     "captions": ["Bugün bulusmami lazimdiii"], "stated_location": None,
                     "country": "TR"}
    assert len({r["id"] for r in umass_rows}) == len(umass_rows)
    assert all(r["bio"] == "" and len(r["captions"]) <= 1 and r["country"] for r in umass_rows)
    # The cached file is reused, keyed by the input's digest.
    assert UmassTweetsSource().canonical_jsonl() == UmassTweetsSource().canonical_jsonl()


def test_countries_outside_the_label_set_become_other(umass_rows):
    labels = LabelSet.default()
    codes = Counter(r["country"] for r in umass_rows)
    assert codes["US"] == 1460 and codes["VE"] == 24  # VE is not among the 36
    names = [labels.label(r["country"]) for r in umass_rows]
    counted = Counter(names)
    assert counted["US"] == 1460 and counted["TR"] == 318
    assert counted[OTHER] == sum(n for c, n in codes.items() if c not in labels.countries) == 277
    assert "VE" not in counted


def test_umass_config_splits_train_val_calib_only_and_evaluates_val(tmp_path):
    cfg = compose(["data=umass", f"paths.output_dir={tmp_path}"])
    assert cfg.data.max_length == 64 and cfg.data.eval_split == "val"
    assert compose([f"paths.output_dir={tmp_path}"]).data.eval_split == "test"
    fractions = dict(cfg.data.splits)
    assert fractions["test"] == 0
    args = (UmassTweetsSource(), list(cfg.labels.countries), fractions, cfg.data.split_seed)
    a, b = labelled_splits(*args), labelled_splits(*args)
    assert a == b  # deterministic
    sizes = {k: len(v["id"]) for k, v in a.items()}
    assert sizes["test"] == 0 and sum(sizes.values()) == 5174
    for name in ("train", "val", "calib"):
        assert abs(sizes[name] / 5174 - fractions[name]) < 0.03, sizes
    assert not set(a["train"]["id"]) & set(a["val"]["id"])
    # Another split seed gives another split (the seed is a real key).
    other = labelled_splits(UmassTweetsSource(), list(cfg.labels.countries), fractions, 1)
    assert other["val"]["id"] != a["val"]["id"]


def test_a_zero_fraction_split_never_gets_a_row():
    fractions = {"train": 0.7, "val": 0.15, "calib": 0.15, "test": 0.0}
    got = {assign_split(f"id{i}", 3, fractions) for i in range(5000)}
    assert got == {"train", "val", "calib"}
    # 0.1 * 3 + 0.7 does not sum to exactly 1.0 in floating point: still no "test".
    fractions = {"train": 0.7, "val": 0.1, "calib": 0.2, "test": 0.0}
    assert "test" not in {assign_split(f"x{i}", 0, fractions) for i in range(5000)}
    assert set(SPLITS) == {"train", "val", "calib", "test"}


def test_evaluating_an_empty_split_is_refused_naming_the_option():
    metadata = ModelMetadata.create(["US", "TR"], "me5_small", "base")

    def datamodule(splits: dict[str, float], eval_split: str) -> ProfileDataModule:
        return ProfileDataModule(UmassTweetsSource(), tokenizer=None, metadata=metadata,
                                 max_length=64, batch_size=8, eval_batch_size=8,
                                 splits=splits, split_seed=0, num_workers=0,
                                 eval_split=eval_split)

    no_test = {"train": 0.8, "val": 0.1, "calib": 0.1, "test": 0.0}
    with pytest.raises(DataConfigError, match=r"data\.eval_split='test'.*data\.splits\.test"):
        datamodule(no_test, "test")
    with pytest.raises(DataConfigError, match=r"data\.eval_split='dev'"):
        datamodule(no_test, "dev")
    assert datamodule(no_test, "val").eval_split == "val"
