"""ProfileDataModule: takes the model's ModelMetadata, binds its source, honours a record's
own ``split`` field, reuses its tokenisation cache, and pads batches dynamically."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import compose
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from geoloc.data.datamodule import ProfileDataModule, labelled_splits
from geoloc.data.sources import CanonicalJsonlSource, MixtureSource
from geoloc.data.splits import validate_splits
from geoloc.io import read_jsonl
from geoloc.metadata import ModelMetadata

FRACTIONS = {"train": 0.6, "val": 0.2, "calib": 0.2, "test": 0.0}
COUNTRIES = ["BR", "FR", "JP"]
METADATA = ModelMetadata.create(COUNTRIES, "wordlevel", "base")
WORDS = {"BR": "bom dia saudade", "FR": "bonjour merci beaucoup", "JP": "arigato tokyo",
         "VE": "hola"}


def _real(tmp_path: Path, n: int) -> CanonicalJsonlSource:
    """Canonical profiles whose captions have different lengths (1..6 words)."""
    path = tmp_path / "real.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            code = [*COUNTRIES, "VE"][i % 4]
            caption = " ".join([WORDS[code]] + ["x"] * (i % 4))
            fh.write(json.dumps({"id": str(1000 + i), "bio": "", "captions": [caption],
                                 "stated_location": None, "country": code}) + "\n")
    return CanonicalJsonlSource(str(path))


def _tokenizer() -> PreTrainedTokenizerFast:
    """A tiny word-level tokenizer (no files, instant), padding on the right."""
    vocab = {"[UNK]": 0, "[PAD]": 1}
    for word in " ".join(WORDS.values()).split() + ["x"]:
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")


def _datamodule(source, cache: Path, metadata: ModelMetadata = METADATA,
                max_length: int = 16) -> ProfileDataModule:
    return ProfileDataModule(source, _tokenizer(), metadata, max_length=max_length,
                             batch_size=8, eval_batch_size=16, splits=FRACTIONS, split_seed=0,
                             num_workers=0, eval_split="val", cache=str(cache))


def _cache_files(cache: Path) -> dict[Path, int]:
    """Every Arrow file of the HF datasets cache, with its modification time."""
    return {p: p.stat().st_mtime_ns for p in cache.rglob("*.arrow")}


def test_datamodule_honours_the_split_field(tmp_path):
    mix = MixtureSource(real=_real(tmp_path, 60), synthetic_ratio=1.0, synthetic_seed=1)
    dm = _datamodule(mix, tmp_path / "hf")
    dm.setup()
    expect = labelled_splits(mix, COUNTRIES, FRACTIONS, 0)
    raw = list(read_jsonl(dm.source.canonical_jsonl()))
    for name in ("train", "val", "calib", "test"):
        rows = dm.datasets[name]["row"]
        assert [raw[r]["id"] for r in rows] == expect[name]["id"]
        assert dm.datasets[name]["labels"] == expect[name]["labels"]
    assert any(raw[r]["id"].startswith("synthetic:") for r in dm.datasets["train"]["row"])
    assert not any(raw[r]["id"].startswith("synthetic:") for r in dm.datasets["val"]["row"])
    assert len(dm.datasets["test"]) == 0
    batch = next(iter(dm.test_dataloader()))  # eval_split: the validation rows
    assert batch["row"].tolist() == dm.datasets["val"]["row"][: len(batch["row"])]


def test_tokenisation_cache_is_reused_and_keyed_by_length_and_tokenizer(tmp_path):
    source, cache = _real(tmp_path, 80), tmp_path / "hf"
    _datamodule(source, cache).setup()
    first = _cache_files(cache)
    assert first, "setup wrote no cache files"

    # Same options: nothing is written again, nothing rewritten.
    again = _datamodule(source, cache)
    again.setup()
    assert _cache_files(cache) == first
    assert all(Path(f["filename"]) in first for ds in again.datasets.values()
               for f in ds.cache_files)

    # Another max_length: new files for the tokenised data; the old ones are untouched.
    _datamodule(source, cache, max_length=4).setup()
    longer = _cache_files(cache)
    assert set(longer) > set(first)
    assert {p: longer[p] for p in first} == first

    # Another tokenizer identity (here: the variant), same max_length: new files again.
    other = ModelMetadata.create(COUNTRIES, "wordlevel", "location_emoji")
    _datamodule(source, cache, metadata=other).setup()
    assert set(_cache_files(cache)) > set(longer)


def test_batches_are_padded_to_their_longest_row_on_the_right(tmp_path):
    dm = _datamodule(_real(tmp_path, 80), tmp_path / "hf", max_length=16)
    dm.setup()
    batch = next(iter(dm.split_dataloader("train")))
    ids, mask = batch["input_ids"], batch["attention_mask"]
    lengths = mask.sum(dim=1)
    assert ids.shape == mask.shape and ids.shape[1] == int(lengths.max()) < 16
    assert int(lengths.min()) < int(lengths.max())  # the batch really needed padding
    pad = dm.tokenizer.pad_token_id
    for row, n in zip(ids.tolist(), lengths.tolist(), strict=True):
        assert pad not in row[:n] and row[n:] == [pad] * (len(row) - n)
    n_rows = len(batch["row"])
    assert batch["labels"].tolist() == dm.datasets["train"]["labels"][:n_rows]
    assert batch["row"].tolist() == dm.datasets["train"]["row"][:n_rows]
    assert batch["labels"].dtype == batch["row"].dtype == ids.dtype  # int64


@pytest.mark.parametrize("data", ["synthetic", "umass", "umass_mix"])
def test_entry_point_call_binds_the_models_metadata(data):
    """``build_datamodule(cfg, tokenizer, metadata)``, as the entry points call it:
    the model's label set reaches the datamodule and the source; nothing is built."""
    from geoloc.training.build import build_datamodule

    cfg = compose([f"data={data}"])
    metadata = ModelMetadata.create(["JP", "BR"], "me5_small", "location_emoji")
    dm = build_datamodule(cfg, None, metadata)
    assert dm.metadata == metadata and dm.label_set.countries == ("JP", "BR")
    assert dm.fractions == validate_splits(cfg.data.splits)
    assert dm.eval_split == cfg.data.eval_split
    if data != "umass":  # the sources that need the label set got the model's
        assert list(dm.source.countries) == ["JP", "BR"]
    if data == "umass_mix":
        assert dm.source.splits == dm.fractions and dm.source.split_seed == dm.split_seed
    assert dm.source.fingerprint()
    with pytest.raises(RuntimeError, match="need a tokenizer"):
        dm.setup()


def test_crossfit_folds_redeal_train_and_calib_only():
    """Fold k turns one K-th of the train + calib rows into calib (the rows model k
    predicts out of fold); the folds partition that pool; val, test and pinned rows never
    move; the refit (index None) trains on the whole pool."""
    from geoloc.data.splits import CROSSFIT_POOL, CrossFitFold, prepare_rows
    from geoloc.errors import DataConfigError
    from geoloc.labels import LabelSet

    n = 600
    batch = {"id": [f"p{i}" for i in range(n)], "bio": [""] * n, "captions": [["x"]] * n,
             "country": ["US"] * n, "split": [None] * (n - 10) + ["train"] * 10}
    labels = LabelSet.from_codes(["US"])
    fractions = validate_splits({"train": 0.6, "val": 0.1, "calib": 0.2, "test": 0.1})
    plain = prepare_rows(batch, labels, 3, fractions)["split"]
    pool = {i for i, s in enumerate(plain) if s in CROSSFIT_POOL and i < n - 10}
    held_out: list[set[int]] = []
    for k in range(3):
        split = prepare_rows(batch, labels, 3, fractions, CrossFitFold(3, k))["split"]
        for i, (a, b) in enumerate(zip(plain, split, strict=True)):
            if i not in pool:
                assert a == b  # val, test and pinned rows keep their split
            else:
                assert b in CROSSFIT_POOL
        held_out.append({i for i, s in enumerate(split) if s == "calib"})
    assert set().union(*held_out) == pool
    assert sum(len(h) for h in held_out) == len(pool)  # a partition
    assert all(len(h) > len(pool) / 3 * 0.7 for h in held_out)  # roughly even
    refit = prepare_rows(batch, labels, 3, fractions, CrossFitFold(3, None))["split"]
    assert all(refit[i] == "train" for i in pool) and "calib" not in refit
    with pytest.raises(DataConfigError, match="crossfit.folds=1"):
        CrossFitFold(1, 0)


def test_length_grouped_batches_and_held_out_validation(tmp_path):
    """group_by_length: every row once per epoch, in batches whose lengths spread less
    than random batches' do, reshuffled between epochs; a fold model with
    validate_heldout validates on its held-out fold (its calib split), not on val."""
    import torch

    from geoloc.data.splits import CrossFitFold

    def spreads(dm: ProfileDataModule) -> tuple[list[int], float]:
        rows, spread = [], []
        for batch in dm.train_dataloader():
            lengths = batch["attention_mask"].sum(dim=1)
            rows += batch["row"].tolist()
            spread.append(float(lengths.max() - lengths.min()))
        return rows, sum(spread) / len(spread)

    source = _real(tmp_path, 400)
    grouped = ProfileDataModule(source, _tokenizer(), METADATA, max_length=16, batch_size=8,
                                eval_batch_size=16, splits=FRACTIONS, split_seed=0,
                                num_workers=0, eval_split="val", cache=str(tmp_path / "hf"),
                                group_by_length=True)
    grouped.setup()
    plain = _datamodule(source, tmp_path / "hf")
    plain.setup()
    torch.manual_seed(0)
    first, grouped_spread = spreads(grouped)
    second, _ = spreads(grouped)
    rows, random_spread = spreads(plain)
    assert sorted(first) == sorted(rows) == sorted(grouped.datasets["train"]["row"])
    assert first != second  # a new order each epoch
    assert grouped_spread < random_spread / 2

    fold = ProfileDataModule(source, _tokenizer(), METADATA, max_length=16, batch_size=8,
                             eval_batch_size=16, splits=FRACTIONS, split_seed=0,
                             num_workers=0, eval_split="val", cache=str(tmp_path / "hf"),
                             fold=CrossFitFold(2, 0, validate_heldout=True))
    fold.setup()
    held_out = [r for b in fold.val_dataloader() for r in b["row"].tolist()]
    assert sorted(held_out) == sorted(fold.datasets["calib"]["row"])
    assert len(held_out) != len(fold.datasets["val"])
