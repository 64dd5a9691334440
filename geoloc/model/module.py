"""The LightningModule: the classifier, its loss, optimiser schedule and stage metrics.

The module builds its own network from plain hyper-parameters (backbone name, depth,
tokenizer variant, label set), so ``GeolocModule.load_from_checkpoint(path)`` restores a
working model anywhere the backbone can be materialised, with no Hydra config around.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score
from transformers import get_linear_schedule_with_warmup

from geoloc.backbones import materialize_backbone
from geoloc.metadata import ModelMetadata

# freeze_word_embeddings is aliased: the constructor argument of that name shadows it.
from geoloc.model.encoder import (
    ProfileClassifier,
    load_encoder,
    validate_encoder_layers,
    validate_pooling,
)
from geoloc.model.encoder import freeze_word_embeddings as freeze_embedding_rows
from geoloc.model.tokenization import build_tokenizer, extend_embeddings, load_base_tokenizer


def _plain(value: Any) -> Any:
    """OmegaConf containers -> plain Python, so hparams pickle and print cleanly."""
    if isinstance(value, DictConfig) or OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return value


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
    ) -> None:
        """Every option is required: ``conf/model/default.yaml`` is where their values
        live, and a checkpoint's hyper-parameters supply them all on reload."""
        super().__init__()
        countries = list(_plain(countries))
        optimizer = dict(_plain(optimizer))
        self.save_hyperparameters(
            {
                "backbone": backbone, "encoder_layers": encoder_layers, "pooling": pooling,
                "dropout": dropout, "tokenizer_variant": tokenizer_variant,
                "countries": countries, "freeze_word_embeddings": freeze_word_embeddings,
                "optimizer": optimizer, "warmup_ratio": warmup_ratio, "compile": compile,
            },
            # The entry points log the whole resolved Hydra config (a superset); logging
            # these flat keys too would overwrite its `backbone`/`tokenizer` groups.
            logger=False,
        )
        self.metadata = ModelMetadata.create(countries, backbone, tokenizer_variant)
        self.label_set = self.metadata.label_set
        validate_encoder_layers(encoder_layers, backbone)
        validate_pooling(pooling)

        backbone_dir = materialize_backbone(backbone)
        base_tokenizer = load_base_tokenizer(backbone_dir)
        self.tokenizer, self.added_tokens = build_tokenizer(
            backbone_dir, tokenizer_variant, self.label_set.countries
        )
        encoder = load_encoder(backbone_dir, encoder_layers)
        extend_embeddings(encoder, base_tokenizer, self.tokenizer, self.added_tokens)
        if freeze_word_embeddings:
            freeze_embedding_rows(encoder, trainable_from=len(base_tokenizer))
        self.net = ProfileClassifier(encoder, self.label_set.num_classes, pooling, dropout)
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

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.net(input_ids, attention_mask)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The shared pooled text embedding (before dropout and head)."""
        return self.net.embed(input_ids, attention_mask)

    def _step(self, batch: Mapping[str, torch.Tensor], metrics: MetricCollection, stage: str):
        logits = self(batch["input_ids"], batch["attention_mask"])
        loss = F.cross_entropy(logits, batch["labels"])
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
        optimizer = hydra.utils.instantiate(self.hparams.optimizer)(params=params)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(self.hparams.warmup_ratio * total)
        scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }

