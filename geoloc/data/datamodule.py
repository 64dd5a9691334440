"""The LightningDataModule: canonical profiles -> labelled, split, tokenised HF datasets.

Splits are decided by a keyed hash of each profile's id, not by shuffling row order:
a profile stays in the same split when the corpus grows or is re-ordered, so a test
split never leaks into training across runs. A record may carry an optional ``split``
field; when present and non-null it overrides the hash (e.g. synthetic rows mixed into a
real corpus are pinned to ``train``, see :class:`geoloc.data.sources.MixtureSource`).
A split may have fraction 0 (the real tweets have no ``test`` split: their held-out half
is the test); ``eval_split`` names the split that ``test_dataloader`` serves and that the
evaluation reads (``evaluation.split`` follows ``data.eval_split``).

Tokenisation is a cached ``datasets.map`` whose fingerprint is derived from what
determines its output (source, tokenizer, max length, label set), so a second run with
the same options tokenises nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from datasets import Dataset, Features, Value, load_dataset
from datasets import Sequence as HFSequence
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from geoloc.data.schema import profile_text
from geoloc.data.sources import ProfileSource
from geoloc.labels import DEFAULT_COUNTRIES, LabelSet
from geoloc.paths import cache_dir

SPLITS = ("train", "val", "calib", "test")
DEFAULT_SPLITS = {"train": 0.7, "val": 0.1, "calib": 0.1, "test": 0.1}

PROFILE_FEATURES = Features(
    {
        "id": Value("string"),
        "bio": Value("string"),
        "captions": HFSequence(Value("string")),
        "stated_location": Value("string"),
        "country": Value("string"),
    }
)
#: What the datamodule reads: the canonical fields plus the optional per-record ``split``
#: (missing in a file -> null -> decided by the id hash).
RECORD_FEATURES = Features({**PROFILE_FEATURES, "split": Value("string")})


class DataConfigError(ValueError):
    """An invalid data option; the message names the option."""


def validate_splits(splits: Mapping[str, float]) -> dict[str, float]:
    """Check ``data.splits``: the four named splits, fractions summing to 1."""
    keys = set(splits)
    if keys != set(SPLITS):
        raise DataConfigError(
            f"data.splits: expected exactly the keys {', '.join(SPLITS)}, got {sorted(keys)}"
        )
    fractions = {k: float(splits[k]) for k in SPLITS}
    if any(v < 0 for v in fractions.values()) or abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise DataConfigError(f"data.splits: fractions must be >= 0 and sum to 1, got {fractions}")
    return fractions


def assign_split(profile_id: str, seed: int, fractions: Mapping[str, float]) -> str:
    """Deterministic split of one profile id under ``seed`` (keyed SHA-256 bucket).

    A split with fraction 0 never receives a row (float rounding of the cumulative sum
    falls back to the last split with a positive fraction, not blindly to ``test``).
    """
    digest = hashlib.sha256(f"{seed}:{profile_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    acc = 0.0
    for name in SPLITS:
        if fractions[name] <= 0:
            continue
        acc += fractions[name]
        if u < acc:
            return name
    return [n for n in SPLITS if fractions[n] > 0][-1]


def record_split(record: Mapping[str, Any], seed: int, fractions: Mapping[str, float]) -> str:
    """The split of one canonical record: its own ``split`` field if set, else the id hash."""
    given = record.get("split")
    if given is not None:
        if given not in SPLITS:
            raise DataConfigError(
                f"record {record.get('id')!r}: field 'split'={given!r}: expected one of "
                f"{', '.join(SPLITS)} or null"
            )
        return str(given)
    return assign_split(str(record["id"]), seed, fractions)


def validate_eval_split(eval_split: str, fractions: Mapping[str, float]) -> str:
    """``data.eval_split``: a named split that the id hash fills (fraction > 0)."""
    if eval_split not in SPLITS:
        raise DataConfigError(
            f"data.eval_split={eval_split!r}: expected one of {', '.join(SPLITS)}"
        )
    if fractions[eval_split] <= 0:
        raise DataConfigError(
            f"data.eval_split={eval_split!r}: data.splits.{eval_split} is 0, so it would be "
            "empty; evaluate a split with a positive fraction (e.g. data.eval_split=val)"
        )
    return eval_split


def prepare_rows(batch: Mapping[str, list], label_set: LabelSet, seed: int,
                 fractions: Mapping[str, float]) -> dict[str, list]:
    """Model text, class index and split of a batch of canonical records (columns).

    The one place that turns records into (text, label, split): the datamodule and the
    baselines (:mod:`geoloc.baselines`) both call it, so they see the same split.
    """
    given = batch.get("split") or [None] * len(batch["id"])
    return {
        "text": [profile_text(b or "", c or []) for b, c in
                 zip(batch["bio"], batch["captions"], strict=True)],
        "labels": [label_set.index(c) for c in batch["country"]],
        "split": [record_split({"id": i, "split": s}, seed, fractions)
                  for i, s in zip(batch["id"], given, strict=True)],
    }


def labelled_splits(
    source: ProfileSource,
    countries: Sequence[str] = DEFAULT_COUNTRIES,
    splits: Mapping[str, float] | None = None,
    split_seed: int = 0,
) -> dict[str, dict[str, list]]:
    """Untokenised view of what the datamodule builds: ``{split: {"id", "text", "labels"}}``.

    Same source, label set, split rule and text as :class:`ProfileDataModule` (via
    :func:`prepare_rows`), without a tokenizer or HF datasets, for models that bring their
    own features (the baselines).
    """
    import json

    fractions = validate_splits(splits or DEFAULT_SPLITS)
    label_set = LabelSet.from_codes(list(countries))
    cols: dict[str, list] = {k: [] for k in ("id", "bio", "captions", "country", "split")}
    with open(source.canonical_jsonl(), encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            rec = json.loads(line)
            cols["id"].append(str(rec["id"]))
            cols["bio"].append(rec.get("bio") or "")
            cols["captions"].append(rec.get("captions") or [])
            cols["country"].append(rec.get("country"))
            cols["split"].append(rec.get("split"))
    prepared = prepare_rows(cols, label_set, int(split_seed), fractions)
    out: dict[str, dict[str, list]] = {s: {"id": [], "text": [], "labels": []} for s in SPLITS}
    for rid, text, label, split in zip(cols["id"], prepared["text"], prepared["labels"],
                                       prepared["split"], strict=True):
        out[split]["id"].append(rid)
        out[split]["text"].append(text)
        out[split]["labels"].append(label)
    return out


def _key(*parts: Any) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


class ProfileDataModule(pl.LightningDataModule):
    """Profiles from a :class:`ProfileSource`, split train/val/calib/test by id hash
    (or by a record's own ``split`` field); ``eval_split`` is what ``test_dataloader``
    serves (default ``test``)."""

    def __init__(
        self,
        source: ProfileSource,
        tokenizer: PreTrainedTokenizerBase,
        tokenizer_key: str,
        countries: Sequence[str] = DEFAULT_COUNTRIES,
        max_length: int = 128,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        splits: Mapping[str, float] | None = None,
        split_seed: int = 0,
        num_workers: int = 0,
        cache: str | None = None,
        eval_split: str = "test",
    ) -> None:
        super().__init__()
        self.source = source
        self.tokenizer = tokenizer
        self.tokenizer_key = tokenizer_key
        self.label_set = LabelSet.from_codes(list(countries))
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size)
        self.fractions = validate_splits(splits or DEFAULT_SPLITS)
        self.eval_split = validate_eval_split(str(eval_split), self.fractions)
        self.split_seed = int(split_seed)
        self.num_workers = int(num_workers)
        self.cache = Path(cache) if cache else cache_dir("hf_datasets")
        self.datasets: dict[str, Dataset] = {}
        # Plain values only (checkpoints are loaded with weights_only=True, which refuses
        # OmegaConf containers); countries are logged once, by the module, because
        # Lightning refuses two differing copies of one key.
        self.save_hyperparameters({
            "tokenizer_key": tokenizer_key, "max_length": self.max_length,
            "batch_size": self.batch_size, "eval_batch_size": self.eval_batch_size,
            "splits": self.fractions, "split_seed": self.split_seed,
            "source": repr(source), "eval_split": self.eval_split,
        }, logger=False)  # the entry points log the whole resolved Hydra config instead

    # ---------------------------------------------------------------- preparation
    def prepare_data(self) -> None:
        self.source.canonical_jsonl()

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        path = self.source.canonical_jsonl()
        raw = load_dataset(
            "json", data_files=str(path), split="train", features=RECORD_FEATURES,
            cache_dir=str(self.cache),
        )
        # "v2": splits honour a record's own ``split`` field (older caches did not).
        base_key = _key("v2", self.source.fingerprint(), self.label_set.countries,
                        self.split_seed, self.fractions)
        label_set, seed, fractions = self.label_set, self.split_seed, self.fractions

        def prepare(batch: dict[str, list]) -> dict[str, list]:
            return prepare_rows(batch, label_set, seed, fractions)

        ds = raw.map(prepare, batched=True, new_fingerprint=f"prep-{base_key}",
                     desc="labels + splits")
        ds = ds.add_column("row", list(range(len(ds))), new_fingerprint=f"row-{base_key}")
        tok, max_length = self.tokenizer, self.max_length

        def tokenize(batch: dict[str, list]) -> dict[str, list]:
            enc = tok(batch["text"], truncation=True, max_length=max_length)
            return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

        tok_key = _key(base_key, self.tokenizer_key, max_length)
        ds = ds.map(tokenize, batched=True, new_fingerprint=f"tok-{tok_key}", desc="tokenize")
        for name in SPLITS:
            self.datasets[name] = ds.filter(
                lambda s, name=name: s == name, input_columns="split",
                new_fingerprint=f"split-{name}-{tok_key}",
            )

    # ---------------------------------------------------------------- loaders
    def collate(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Pad a batch to its longest row (dynamic padding keeps short tweets cheap)."""
        enc = self.tokenizer.pad(
            {"input_ids": [r["input_ids"] for r in rows],
             "attention_mask": [r["attention_mask"] for r in rows]},
            return_tensors="pt",
        )
        enc["labels"] = torch.tensor([r["labels"] for r in rows], dtype=torch.long)
        enc["row"] = torch.tensor([r["row"] for r in rows], dtype=torch.long)
        return dict(enc)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        columns = ["input_ids", "attention_mask", "labels", "row"]
        data = self.datasets[split].select_columns(columns)
        return DataLoader(
            data, batch_size=self.batch_size if shuffle else self.eval_batch_size,
            shuffle=shuffle, collate_fn=self.collate, num_workers=self.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """The evaluation split (``eval_split``; ``test`` unless configured otherwise)."""
        return self._loader(self.eval_split, shuffle=False)

    def split_dataloader(self, split: str) -> DataLoader:
        """An ordered loader over any split (``calib`` included), for prediction."""
        if split not in SPLITS:
            raise DataConfigError(f"split={split!r}: expected one of {', '.join(SPLITS)}")
        return self._loader(split, shuffle=False)

    def split_sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.datasets.items()}
