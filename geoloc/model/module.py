"""The LightningModule: the classifier, its loss, optimiser schedule and stage metrics.

The module builds its own network from plain hyper-parameters (backbone name, depth,
tokenizer variant, label set), so ``GeolocModule.load(path)`` restores a working model
anywhere the backbone can be materialised, with no Hydra config around.

**Checkpoints carry only what training changed.** The frozen part of the word-embedding
table (96 M of mE5-small's 118 M parameters, ~384 MB) is the backbone's own: it is left
out of every checkpoint and its SHA-256 is stored instead; on load the constructor rebuilds
it from the bundled backbone and the hash proves it is the same table, so the deployed
checkpoint of the 3-layer default is 22 MB (weights only) and its resume state ~70 MB
(weights + AdamW moments) instead of ~450 MB.
:meth:`GeolocModule.load` reads checkpoints with ``torch.load(weights_only=True)``: a
checkpoint is data and cannot make the program run code.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import zipfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score
from transformers import get_linear_schedule_with_warmup

from geoloc.backbones import materialize_backbone
from geoloc.errors import BackboneMismatchError, CheckpointError, ConfigError
from geoloc.instantiate import instantiate
from geoloc.metadata import ModelMetadata

# freeze_word_embeddings is aliased: the constructor argument of that name shadows it.
from geoloc.model.encoder import (
    ProfileClassifier,
    load_encoder,
    validate_encoder_layers,
    validate_pooling,
    validate_text_pooling,
)
from geoloc.model.encoder import freeze_word_embeddings as freeze_embedding_rows
from geoloc.model.tokenization import build_tokenizer, extend_embeddings, load_base_tokenizer

#: Checkpoint key: state-dict name -> SHA-256 of each frozen backbone tensor left out.
RESTORED_KEY = "geoloc_restored_from_backbone"


@contextmanager
def checkpoint_errors(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Turn what ``torch.load(weights_only=True)`` and Lightning raise on a bad file into
    one :class:`CheckpointError` naming it. Why: torch's own errors never name the file
    (``EOFError`` for an empty one, ``KeyError: 101`` for a text file) and the refusal of a
    file that would run code is ten lines long."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: " + ("is a directory, not a checkpoint file"
                                              if path.is_dir() else "no such checkpoint file"))
    try:
        yield path
    except pickle.UnpicklingError as err:
        text = str(err)
        if "Weights only load failed" in text:
            found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", text)
            raise CheckpointError(
                f"{path}: refused: it holds "
                f"{'a reference to ' + found.group(1) if found else 'objects'} beyond "
                "tensors and plain containers, and checkpoints are only read with "
                "torch.load(weights_only=True) so that a file cannot run code") from err
        raise CheckpointError(f"{path}: not a checkpoint ({_first_line(err)})") from err
    except (RuntimeError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"{path}: not a readable checkpoint, truncated or another kind "
                              f"of file ({_first_line(err)})") from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:200]}" if text else type(err).__name__


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A checkpoint's contents, read with ``torch.load(weights_only=True)``; a bad file
    raises :class:`CheckpointError` naming it."""
    with checkpoint_errors(path) as file:
        data = torch.load(file, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or "state_dict" not in data:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict)")
    return data


def tensor_sha256(tensor: torch.Tensor) -> str:
    """SHA-256 of a tensor's bytes (contiguous CPU copy; dtype and shape are part of
    the state-dict's own check)."""
    raw = tensor.detach().cpu().contiguous().view(torch.uint8)  # any dtype, bf16 included
    return hashlib.sha256(memoryview(raw.numpy())).hexdigest()


def top_token_ids(input_ids: Sequence[Any], n: int, below: int, special: Sequence[int]
                  ) -> torch.Tensor:
    """The ``n`` ids below ``below`` most frequent in ``input_ids`` (rows of ids, or of
    texts of ids), special tokens left out; when fewer occur, unseen ids fill the rest
    (their correction gets no gradient and weight decay keeps it at zero)."""
    counts: Counter[int] = Counter()
    for row in input_ids:
        for part in (row if row and isinstance(row[0], list) else [row]):
            counts.update(part)
    skip = {i for i in special if i < below}
    if n > below - len(skip):
        raise ConfigError(f"model.tune_top_rows={n}: the vocabulary has only "
                          f"{below - len(skip)} rows to tune")
    chosen = [i for i, _ in counts.most_common() if i < below and i not in skip][:n]
    taken = set(chosen)
    filler = (i for i in range(below) if i not in taken and i not in skip)
    chosen += [next(filler) for _ in range(n - len(chosen))]
    return torch.tensor(chosen, dtype=torch.long)


def _plain(value: Any) -> Any:
    """OmegaConf containers -> plain Python, so hparams pickle and print cleanly."""
    if isinstance(value, DictConfig) or OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return value


def balanced_weights(labels: torch.Tensor, num_classes: int, alpha: float) -> torch.Tensor:
    """Per-class loss weights count^-alpha (a class without rows counts as one), scaled so
    that the mean weight over the rows of ``labels`` is 1: the loss keeps its scale and
    the learning rate its meaning."""
    counts = torch.bincount(labels, minlength=num_classes).float()
    weights = counts.clamp(min=1.0) ** -alpha
    return weights * counts.sum() / (weights * counts).sum()


def language_weights(languages: Sequence[str], labels: Sequence[int], beta: float,
                     floor: float = 0.01) -> torch.Tensor:
    """Per-row loss weights P(country | language)^-beta from the rows' own counts
    (P floored at ``floor``), scaled to a mean of 1. Why: in the real tweets a language
    nearly names a country (every Cyrillic tweet was predicted RU, true for 53 %; English
    US for 93 % against 69 %); down-weighting each language's majority country makes the
    model look past the language for the cues that tell its countries apart."""
    pairs = list(zip(languages, labels, strict=True))
    per_pair, per_language = Counter(pairs), Counter(languages)
    p = torch.tensor([per_pair[pair] / per_language[pair[0]] for pair in pairs])
    weights = p.clamp(min=floor) ** -beta
    return weights / weights.mean()


def detect_languages(texts: Sequence[str]) -> list[str]:
    """The language py3langid (a maintained langid.py, model inside the package) detects
    for each text; it is an optional dependency (extras ``analysis`` and ``dev``)."""
    try:
        import py3langid  # optional: only model.language_balance needs it
    except ImportError as err:
        raise ConfigError("model.language_balance needs py3langid: pip install "
                          "'geoloc[analysis]'") from err
    return [py3langid.classify(t)[0] for t in texts]


class GeolocModule(pl.LightningModule):
    """Country classifier over bio + captions; see the package README for the knobs."""

    def __init__(
        self,
        *,
        backbone: str,
        encoder_layers: int,
        pooling: str,
        dropout: float,
        tokenizer_variant: str,
        countries: Sequence[str],
        freeze_word_embeddings: bool,
        optimizer: Mapping[str, Any],
        warmup_ratio: float,
        compile: bool,
        class_balance: float = 0.0,
        focal_gamma: float = 0.0,
        text_pooling: str | None = None,
        language_balance: float = 0.0,
        tune_top_rows: int = 0,
    ) -> None:
        """Every option is required: ``geoloc/conf/model/default.yaml`` is where their values
        live, and a checkpoint's hyper-parameters supply them all on reload (the training
        loss's ``class_balance`` and ``focal_gamma`` default to plain cross-entropy, what
        models saved before they existed were trained with).

        ``class_balance`` = a: each training row's loss is weighted by its class's
        training count to the power -a (0: none; 1: inverse frequency), normalised to a
        mean weight of 1 over the training rows. ``focal_gamma`` = g: the focal loss
        (1 - p_true)^g x cross-entropy (0: cross-entropy). Both act on the training loss
        only; validation and test losses stay plain cross-entropy, so the out-of-fold
        learning curve compares. ``language_balance`` = b weights each training row by
        P(its country | its detected language)^-b (:func:`language_weights`; 0: none).

        ``text_pooling`` (``mean`` or ``attention``; None, the default and what older
        checkpoints hold: one concatenated sequence) makes a whole-profile model: the bio
        and each caption are encoded as their own sequences of up to ``data.max_length``
        tokens and pooled into the profile embedding (:class:`ProfileClassifier`).

        ``tune_top_rows`` = N trains a correction of the frozen word-embedding rows of the
        N tokens most frequent in the train split (chosen at fit start, saved with the
        weights; 0: none), the "unfrozen top of the embeddings" at the cost of N rows."""
        super().__init__()
        countries = list(_plain(countries))
        optimizer = dict(_plain(optimizer))
        self.save_hyperparameters(
            {
                "backbone": backbone, "encoder_layers": encoder_layers, "pooling": pooling,
                "dropout": dropout, "tokenizer_variant": tokenizer_variant,
                "countries": countries, "freeze_word_embeddings": freeze_word_embeddings,
                "optimizer": optimizer, "warmup_ratio": warmup_ratio, "compile": compile,
                "class_balance": float(class_balance), "focal_gamma": float(focal_gamma),
                "text_pooling": text_pooling, "language_balance": float(language_balance),
                "tune_top_rows": int(tune_top_rows),
            },
            # The entry points log the whole resolved Hydra config (a superset); logging
            # these flat keys too would overwrite its `backbone`/`tokenizer` groups.
            logger=False,
        )
        self.metadata = ModelMetadata.create(countries, backbone, tokenizer_variant,
                                             per_text=text_pooling is not None)
        self.label_set = self.metadata.label_set
        validate_encoder_layers(encoder_layers, backbone)
        validate_pooling(pooling)
        validate_text_pooling(text_pooling)
        # (geoloc.config checks both before any work; this guards direct construction)
        if not 0.0 <= float(class_balance) <= 1.0:
            raise ConfigError(f"model.class_balance={class_balance}: expected 0 .. 1")
        if not float(focal_gamma) >= 0.0:
            raise ConfigError(f"model.focal_gamma={focal_gamma}: expected >= 0")
        if not 0.0 <= float(language_balance) <= 1.0:
            raise ConfigError(f"model.language_balance={language_balance}: expected 0 .. 1")
        if int(tune_top_rows) < 0 or (int(tune_top_rows) and not freeze_word_embeddings):
            raise ConfigError(f"model.tune_top_rows={tune_top_rows}: expected >= 0, and "
                              "model.freeze_word_embeddings=true (unfrozen, every row trains)")
        # class weights of the training loss, set from the train split at fit start
        self.register_buffer("class_weights", None, persistent=False)
        # per-row weights of language_balance, indexed by a batch's ``row``
        self.register_buffer("row_weights", None, persistent=False)

        backbone_dir = materialize_backbone(backbone)
        base_tokenizer = load_base_tokenizer(backbone_dir)
        self.tokenizer, self.added_tokens = build_tokenizer(
            backbone_dir, tokenizer_variant, self.label_set.countries
        )
        encoder = load_encoder(backbone_dir, encoder_layers)
        extend_embeddings(encoder, base_tokenizer, self.tokenizer, self.added_tokens)
        if freeze_word_embeddings:
            freeze_embedding_rows(encoder, trainable_from=len(base_tokenizer),
                                  tuned_rows=int(tune_top_rows))
        self.net = ProfileClassifier(encoder, self.label_set.num_classes, pooling, dropout,
                                     text_pooling)
        # from_pretrained returns the encoder in eval mode and Lightning keeps each
        # submodule's mode, so without this the encoder's dropout would stay off in training.
        self.net.train()
        if compile:
            self.net = torch.compile(self.net, dynamic=True)

        n = self.label_set.num_classes
        metrics = MetricCollection(
            {
                "acc": MulticlassAccuracy(num_classes=n, average="micro"),
                "macro_f1": MulticlassF1Score(num_classes=n, average="macro"),
            }
        )
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.label_set.names

    @classmethod
    def load(cls, path: str | os.PathLike[str], map_location: Any = "cpu") -> GeolocModule:
        """Restore a model from a checkpoint of :meth:`on_save_checkpoint`, reading it with
        ``torch.load(weights_only=True)`` (tensors and plain containers only); a file that
        is not such a checkpoint raises :class:`CheckpointError` naming it."""
        # read once under the error wrapper (it names the file); errors of building the
        # module (a state_dict mismatch, a backbone that cannot be built) stay themselves
        read_checkpoint(path)
        return cls.load_from_checkpoint(str(path), map_location=map_location,
                                        weights_only=True)

    def frozen_parameter_names(self) -> list[str]:
        """State-dict names of the parameters training never changes (the frozen rows of
        the backbone's word-embedding table, when ``freeze_word_embeddings``)."""
        return [name for name, p in self.named_parameters() if not p.requires_grad]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Leave the frozen backbone tensors out; record their hashes instead."""
        state = checkpoint["state_dict"]
        checkpoint[RESTORED_KEY] = {
            name: tensor_sha256(state.pop(name))
            for name in self.frozen_parameter_names() if name in state
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Put back the frozen tensors this module already rebuilt from the backbone, after
        checking they are the very tensors the checkpoint was trained with."""
        own = dict(self.named_parameters())
        state = checkpoint["state_dict"]
        for name, digest in checkpoint.get(RESTORED_KEY, {}).items():
            if name not in own:
                raise BackboneMismatchError(
                    f"checkpoint expects a frozen backbone tensor {name!r} this model lacks")
            if tensor_sha256(own[name]) != digest:
                raise BackboneMismatchError(
                    f"backbone {self.hparams.backbone!r} materialised here differs from the "
                    f"one this checkpoint was trained on ({name} has another SHA-256); "
                    "rebuild the backbone with the package versions the run used")
            state[name] = own[name].detach()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.net(input_ids, attention_mask)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The shared pooled text embedding (before dropout and head)."""
        return self.net.embed(input_ids, attention_mask)

    def on_fit_start(self) -> None:
        """Class weights of ``class_balance`` from the train split's label counts; row
        weights of ``language_balance`` from its texts' detected languages; the rows of
        ``tune_top_rows`` from its token counts (unless a resumed checkpoint has them)."""
        emb = self.net.encoder.get_input_embeddings()
        if int(self.hparams.get("tune_top_rows", 0)) and not emb.tuned_chosen:
            emb.tune(top_token_ids(self.trainer.datamodule.datasets["train"]["input_ids"],
                                   emb.tuned_ids.numel(), emb.trainable_from,
                                   self.tokenizer.all_special_ids))
        alpha = float(self.hparams.get("class_balance", 0.0))
        beta = float(self.hparams.get("language_balance", 0.0))
        if alpha == 0 and beta == 0:
            return
        train = self.trainer.datamodule.datasets["train"]
        if alpha > 0:
            labels = torch.as_tensor(train["labels"])
            self.class_weights = balanced_weights(
                labels, self.label_set.num_classes, alpha).to(self.device)
        if beta > 0:
            rows = torch.as_tensor(train["row"])
            weights = language_weights(detect_languages(train["text"]), train["labels"],
                                       beta)
            self.row_weights = torch.zeros(int(rows.max()) + 1).index_copy(
                0, rows, weights).to(self.device)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor, stage: str,
              rows: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy; in training, weighted by class, by language and focal when
        configured. The focal loss is written here: torch has it only for binary
        (sigmoid) outputs."""
        gamma = float(self.hparams.get("focal_gamma", 0.0))
        if stage != "train" or (gamma == 0 and self.class_weights is None
                                and self.row_weights is None):
            return F.cross_entropy(logits, labels)
        ce = F.cross_entropy(logits.float(), labels, reduction="none")
        if gamma > 0:
            ce = (1 - torch.exp(-ce)) ** gamma * ce
        if self.class_weights is not None:
            ce = ce * self.class_weights[labels]
        if self.row_weights is not None and rows is not None:
            ce = ce * self.row_weights[rows]
        return ce.mean()

    def _step(self, batch: Mapping[str, torch.Tensor], metrics: MetricCollection, stage: str):
        logits = self(batch["input_ids"], batch["attention_mask"])
        loss = self._loss(logits, batch["labels"], stage, batch.get("row"))
        metrics.update(logits, batch["labels"])
        bs = batch["labels"].shape[0]
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True,
                 prog_bar=True, batch_size=bs)
        return loss

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._step(batch, self.train_metrics, "train")
        self.log_dict(self.train_metrics, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, self.val_metrics, "val")
        self.log_dict(self.val_metrics, on_step=False, on_epoch=True, prog_bar=True)

    def test_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, self.test_metrics, "test")
        self.log_dict(self.test_metrics, on_step=False, on_epoch=True)

    def predict_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> dict:
        logits = self(batch["input_ids"], batch["attention_mask"])
        out = {"logits": logits.float().cpu(), "row": batch["row"].cpu()}
        if "labels" in batch:
            out["labels"] = batch["labels"].cpu()
        return out

    def configure_optimizers(self) -> dict:
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = instantiate(self.hparams.optimizer)(params=params)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(self.hparams.warmup_ratio * total)
        scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }

