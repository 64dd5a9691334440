"""MixtureSource: synthetic rows only ever in train, the ratio is respected, real rows keep
their split; the datamodule honours a record's own ``split`` field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from geoloc.data.datamodule import DataConfigError, ProfileDataModule, labelled_splits, record_split
from geoloc.data.sources import CanonicalJsonlSource, MixtureSource

FRACTIONS = {"train": 0.6, "val": 0.2, "calib": 0.2, "test": 0.0}
COUNTRIES = ["BR", "FR", "JP"]


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


def _tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "[PAD]": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")


@pytest.mark.parametrize("ratio", [0.5, 2.0])
def test_mixture_puts_synthetic_rows_only_in_train_at_the_ratio(tmp_path, ratio):
    real = _real(tmp_path)
    mix = MixtureSource(real=real, synthetic_ratio=ratio, synthetic_seed=3,
                        countries=COUNTRIES, splits=FRACTIONS, split_seed=7)
    plain = labelled_splits(real, COUNTRIES, FRACTIONS, 7)
    mixed = labelled_splits(mix, COUNTRIES, FRACTIONS, 7)
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
    assert mix.canonical_jsonl() == mix.canonical_jsonl()
    other = MixtureSource(real=real, synthetic_ratio=ratio + 1, countries=COUNTRIES,
                          splits=FRACTIONS, split_seed=7)
    assert other.fingerprint() != mix.fingerprint()


def test_zero_ratio_is_the_real_data_and_negative_ratio_fails(tmp_path):
    real = _real(tmp_path, 40)
    mix = MixtureSource(real=real, synthetic_ratio=0, countries=COUNTRIES, splits=FRACTIONS)
    assert sum(1 for _ in open(mix.canonical_jsonl(), encoding="utf-8")) == 40
    with pytest.raises(ValueError, match="synthetic_ratio"):
        MixtureSource(real=real, synthetic_ratio=-1)


def test_record_split_field_overrides_the_hash_and_is_validated():
    assert record_split({"id": "a", "split": "train"}, 0, {**FRACTIONS, "train": 0.0,
                                                            "val": 0.8}) == "train"
    assert record_split({"id": "a", "split": None}, 0, FRACTIONS) in {"train", "val", "calib"}
    with pytest.raises(DataConfigError, match="field 'split'='dev'"):
        record_split({"id": "a", "split": "dev"}, 0, FRACTIONS)


def test_datamodule_honours_the_split_field(tmp_path):
    real = _real(tmp_path, 60)
    mix = MixtureSource(real=real, synthetic_ratio=1.0, synthetic_seed=1, countries=COUNTRIES,
                        splits=FRACTIONS, split_seed=0)
    dm = ProfileDataModule(mix, _tokenizer(), "wordlevel", countries=COUNTRIES, max_length=16,
                           splits=FRACTIONS, split_seed=0, eval_split="val",
                           cache=str(tmp_path / "hf"))
    dm.setup()
    expect = labelled_splits(mix, COUNTRIES, FRACTIONS, 0)
    raw = [json.loads(x) for x in open(mix.canonical_jsonl(), encoding="utf-8")]
    for name in ("train", "val", "calib", "test"):
        rows = dm.datasets[name]["row"]
        assert [raw[r]["id"] for r in rows] == expect[name]["id"]
        assert dm.datasets[name]["labels"] == expect[name]["labels"]
    assert any(raw[r]["id"].startswith("synthetic:") for r in dm.datasets["train"]["row"])
    assert not any(raw[r]["id"].startswith("synthetic:") for r in dm.datasets["val"]["row"])
    assert len(dm.datasets["test"]) == 0
    batch = next(iter(dm.test_dataloader()))  # eval_split: the validation rows
    assert batch["row"].tolist() == dm.datasets["val"]["row"][: len(batch["row"])]
