"""The LightningDataModule: canonical profiles -> labelled, split, tokenised HF datasets.

The split rule (keyed id hash, or a record's own ``split`` field) lives in
:mod:`geoloc.data.splits`; ``eval_split`` names the split that ``test_dataloader`` serves
and that the evaluation reads.

The model hands over one :class:`~geoloc.metadata.ModelMetadata`: its label set turns
country codes into class indices and its ``tokenizer_id`` keys the tokenisation cache, so
the data side cannot use a label set or tokenizer other than the model's. The datamodule
binds its source to that label set and to its own split rule
(:meth:`geoloc.data.sources.ProfileSource.bind`), so no config node repeats them.

Tokenisation is a cached ``datasets.map`` whose fingerprint is derived from what
determines its output (source, label set, split rule, tokenizer identity, max length), so
a second run with the same options tokenises nothing.

Every option the data configs (``geoloc/conf/data/*.yaml``) set is a required argument here: the
config is the one place a default is written.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from datasets import Dataset, Features, Value, load_dataset
from datasets import Sequence as HFSequence
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase
from transformers.trainer_pt_utils import LengthGroupedSampler

from geoloc.data.sources import ProfileSource
from geoloc.data.splits import (
    SPLITS,
    CrossFitFold,
    prepare_rows,
    validate_eval_split,
    validate_splits,
)
from geoloc.errors import DataConfigError
from geoloc.io import read_jsonl
from geoloc.labels import LabelSet
from geoloc.metadata import ModelMetadata
from geoloc.model.tokenization import encode_texts, pad_ids, token_count
from geoloc.paths import cache_dir

#: What the datamodule reads: the canonical fields (:class:`geoloc.data.schema.ProfileRecord`)
#: plus the optional per-record ``split`` (missing in a file -> null -> the id hash decides).
RECORD_FEATURES = Features(
    {
        "id": Value("string"),
        "bio": Value("string"),
        "captions": HFSequence(Value("string")),
        "stated_location": Value("string"),
        "country": Value("string"),
        "split": Value("string"),
    }
)


def labelled_splits(
    source: ProfileSource,
    labels: LabelSet | Sequence[str],
    splits: Mapping[str, float],
    split_seed: int,
) -> dict[str, dict[str, list]]:
    """Untokenised view of what the datamodule builds: ``{split: {"id", "text", "labels"}}``.

    Same source binding, label set, split rule and text as :class:`ProfileDataModule` (via
    :func:`geoloc.data.splits.prepare_rows`), without a tokenizer or HF datasets, for
    models that bring their own features (the baselines). ``labels`` is a label set or
    its country codes; ``splits``/``split_seed`` are the data config's (no default, so a
    caller cannot silently split differently from a run).
    """
    label_set = labels if isinstance(labels, LabelSet) else LabelSet.from_codes(list(labels))
    fractions, seed = validate_splits(splits), int(split_seed)
    source = source.bind(label_set=label_set, splits=fractions, split_seed=seed)
    cols: dict[str, list] = {k: [] for k in ("id", "bio", "captions", "country", "split")}
    for rec in read_jsonl(source.canonical_jsonl()):
        cols["id"].append(str(rec["id"]))
        cols["bio"].append(rec.get("bio") or "")
        cols["captions"].append(rec.get("captions") or [])
        cols["country"].append(rec.get("country"))
        cols["split"].append(rec.get("split"))
    prepared = prepare_rows(cols, label_set, seed, fractions)
    out: dict[str, dict[str, list]] = {s: {"id": [], "text": [], "labels": []} for s in SPLITS}
    for rid, text, label, split in zip(cols["id"], prepared["text"], prepared["labels"],
                                       prepared["split"], strict=True):
        out[split]["id"].append(rid)
        out[split]["text"].append(text)
        out[split]["labels"].append(label)
    return out


class PadCollator:
    """Feature dicts (``input_ids`` and int fields) -> a batch of padded long tensors,
    with the ``attention_mask`` (:func:`geoloc.model.tokenization.pad_ids`: one sequence
    per row, or texts x tokens for a whole-profile model). A class, not a closure, so
    DataLoader workers can pickle it."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = int(pad_id)

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        ids, mask = pad_ids([f["input_ids"] for f in features], self.pad_id)
        batch = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        for key in features[0]:
            if key != "input_ids":
                batch[key] = torch.tensor([f[key] for f in features], dtype=torch.long)
        return batch


def _key(*parts: Any) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


class ProfileDataModule(pl.LightningDataModule):
    """Profiles from a :class:`ProfileSource`, split train/val/calib/test by id hash
    (or by a record's own ``split`` field); ``eval_split`` is what ``test_dataloader``
    serves.

    Built by the entry points with :func:`geoloc.cli.common.build_datamodule`: the data config supplies every keyword option, the model its tokenizer
    and :class:`~geoloc.metadata.ModelMetadata`. ``tokenizer`` may be None when no loader
    is needed (option validation, :attr:`source` inspection). ``cache`` is the folder of
    the HF datasets cache (None: ``GEOLOC_HOME/hf_datasets``). ``fold`` (set by the
    cross-fitting driver, never by config) re-deals ``train`` + ``calib`` into one model's
    share of a cross-fit (:class:`~geoloc.data.splits.CrossFitFold`).
    """

    def __init__(
        self,
        source: ProfileSource,
        tokenizer: PreTrainedTokenizerBase | None,
        metadata: ModelMetadata,
        *,
        max_length: int,
        batch_size: int,
        eval_batch_size: int,
        splits: Mapping[str, float],
        split_seed: int,
        num_workers: int,
        eval_split: str,
        cache: str | None = None,
        fold: CrossFitFold | None = None,
        group_by_length: bool = False,
    ) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        if not isinstance(metadata, ModelMetadata):
            raise TypeError(f"metadata: expected a ModelMetadata, got {type(metadata).__name__}")
        self.metadata = metadata
        self.label_set = metadata.label_set
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size)
        self.fractions = validate_splits(splits)
        self.eval_split = validate_eval_split(str(eval_split), self.fractions)
        self.split_seed = int(split_seed)
        self.num_workers = int(num_workers)
        self.fold = fold
        self.group_by_length = bool(group_by_length)
        self.source = source.bind(label_set=self.label_set, splits=self.fractions,
                                  split_seed=self.split_seed)
        self.cache = Path(cache) if cache else cache_dir("hf_datasets")
        self.datasets: dict[str, Dataset] = {}
        # Plain values only (checkpoints are loaded with weights_only=True, which refuses
        # OmegaConf containers); countries are logged once, by the module, because
        # Lightning refuses two differing copies of one key.
        self.save_hyperparameters({
            "tokenizer_id": metadata.tokenizer_id, "max_length": self.max_length,
            "batch_size": self.batch_size, "eval_batch_size": self.eval_batch_size,
            "splits": self.fractions, "split_seed": self.split_seed,
            "source": repr(self.source), "eval_split": self.eval_split,
            "group_by_length": self.group_by_length,
        }, logger=False)  # the entry points log the whole resolved Hydra config instead

    # ---------------------------------------------------------------- preparation
    def prepare_data(self) -> None:
        self.source.canonical_jsonl()

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self._require_tokenizer()
        path = self.source.canonical_jsonl()
        raw = load_dataset(
            "json", data_files=str(path), split="train", features=RECORD_FEATURES,
            cache_dir=str(self.cache),
        )
        # "v3": text goes through schema.normalize_text (v2: splits honour a record's own
        # ``split`` field). Bump whenever prepare_rows's output changes for the same input.
        base_key = _key("v3", self.source.fingerprint(), self.label_set.countries,
                        self.split_seed, self.fractions, self.fold)
        label_set, seed, fractions, fold = (self.label_set, self.split_seed, self.fractions,
                                            self.fold)

        def prepare(batch: dict[str, list]) -> dict[str, list]:
            return prepare_rows(batch, label_set, seed, fractions, fold)

        ds = raw.map(prepare, batched=True, new_fingerprint=f"prep-{base_key}",
                     desc="labels + splits")
        if stage in (None, "fit"):  # what training needs; evaluation reads its split only
            self._check_rows(path, ds["split"], ds["labels"])
        ds = ds.add_column("row", list(range(len(ds))), new_fingerprint=f"row-{base_key}")
        tok, max_length, per_text = self.tokenizer, self.max_length, self.metadata.per_text

        def tokenize(batch: dict[str, list]) -> dict[str, list]:
            # (a whole-profile model: one id list per text, each truncated on its own;
            # the mask is all ones before padding, so the collator makes it)
            return {"input_ids": encode_texts(tok, batch["text"], max_length, per_text)}

        # "t2": the mask is no longer stored (the collators build it from the ids)
        tok_key = _key(base_key, self.metadata.tokenizer_id, max_length, per_text, "t2")
        ds = ds.map(tokenize, batched=True, new_fingerprint=f"tok-{tok_key}", desc="tokenize")
        for name in SPLITS:
            self.datasets[name] = ds.filter(
                lambda s, name=name: s == name, input_columns="split",
                new_fingerprint=f"split-{name}-{tok_key}",
            )

    def _check_rows(self, path: Path, splits: Sequence[str], labels: Sequence[int]) -> None:
        """Fail before training, naming the file, when a split the run reads is empty or
        the train split holds a single class (every country outside the label set, say):
        such a run would train for minutes, then crash or report a perfect model."""
        counts = Counter(splits)
        needed = ["train", self.eval_split]
        # calib is read unless this is a cross-fit's refit (every pooled row is train)
        if self.fractions["calib"] > 0 and (self.fold is None or self.fold.index is not None):
            needed.append("calib")
        for name in dict.fromkeys(needed):
            if not counts.get(name):
                raise DataConfigError(
                    f"{path}: the {name} split has no rows ({len(splits)} labelled rows "
                    f"split {dict(counts)} by data.splits={self.fractions}); use more data "
                    "or other split fractions")
        classes = {lab for lab, s in zip(labels, splits, strict=True) if s == "train"}
        if len(classes) < 2:
            only = self.label_set.names[next(iter(classes))]
            raise DataConfigError(
                f"{path}: every train row is {only}; a classifier needs two classes or more "
                f"(countries outside labels.countries all become "
                f"{self.label_set.names[self.label_set.other_index]})")

    # ---------------------------------------------------------------- loaders
    def _require_tokenizer(self) -> PreTrainedTokenizerBase:
        if self.tokenizer is None:
            raise RuntimeError("ProfileDataModule: tokenising and loading need a tokenizer "
                               "(constructed with tokenizer=None)")
        return self.tokenizer

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        columns = ["input_ids", "labels", "row"]
        data = self.datasets[split].select_columns(columns)
        # Dynamic padding to the batch's longest row (a whole-profile model's: longest
        # text, most texts) keeps short tweets cheap; ``labels`` and ``row`` ride along as
        # long tensors. Padding is on the right, as the bundled backbones' position ids
        # assume.
        collate = PadCollator(self._require_tokenizer().pad_token_id)
        sampler = None
        if shuffle and self.group_by_length:
            # Random batches pad every tweet to the longest of 32 (~2x the mean length);
            # transformers' sampler (the Trainer's group_by_length) shuffles, then sorts
            # by length within mega-batches of 50 batches, so batches are of similar
            # length and still random. It draws from torch's global RNG, seeded per run.
            sampler = LengthGroupedSampler(self.batch_size,
                                           lengths=[token_count(x) for x in data["input_ids"]])
            shuffle = False
        return DataLoader(
            data, batch_size=(self.batch_size if sampler is not None or shuffle
                              else self.eval_batch_size),
            shuffle=shuffle, sampler=sampler, collate_fn=collate, num_workers=self.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """``val``; for a cross-fit fold model with ``validate_heldout``, its held-out
        fold (the ``calib`` split of its datamodule): the out-of-fold learning curve."""
        if self.fold is not None and self.fold.index is not None and \
                self.fold.validate_heldout:
            return self._loader("calib", shuffle=False)
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """The evaluation split (``eval_split``)."""
        return self._loader(self.eval_split, shuffle=False)

    def split_dataloader(self, split: str) -> DataLoader:
        """An ordered loader over any split (``calib`` included), for prediction."""
        if split not in SPLITS:
            raise DataConfigError(f"split={split!r}: expected one of {', '.join(SPLITS)}")
        return self._loader(split, shuffle=False)

    def texts(self, split: str, rows: Sequence[int] | None = None) -> list[str]:
        """Model text of a split's rows (all, in split order, or those ``rows`` in that
        order): what models that bring their own features (the fused n-gram model) read."""
        return self._column(split, "text", rows)

    def ids(self, split: str, rows: Sequence[int] | None = None) -> list[str]:
        """Profile ids of a split's rows, ordered as :meth:`texts` orders them."""
        return self._column(split, "id", rows)

    def _column(self, split: str, column: str, rows: Sequence[int] | None) -> list[str]:
        data = self.datasets[split]
        if rows is None:
            return list(data[column])
        by_row = dict(zip(data["row"], data[column], strict=True))
        return [by_row[int(r)] for r in rows]

    def split_sizes(self) -> dict[str, int]:
        """Rows per split (after :meth:`setup`)."""
        return {k: len(v) for k, v in self.datasets.items()}
