"""The text encoder: a pretrained backbone cut to its first N layers, plus pooling.

The reference system kept 3 of mBERT's 12 layers with no loss; depth is therefore the
main accuracy/cost knob and is validated against the backbone *before* any weights are
loaded, so a bad sweep value fails in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedModel

from geoloc.backbones import bundled_num_layers
from geoloc.errors import ModelConfigError

# The whole-profile pieces live in the export's model file, which must run without
# geoloc: one definition, so the exported network pools texts exactly as the trained one.
from geoloc.inference.modeling_geoloc import TEXT_POOLINGS, TextAttention, embed_profiles

POOLINGS = ("cls", "mean")


def backbone_num_layers(backbone: str) -> int:
    """Number of transformer layers of a backbone name, local folder or hub id."""
    bundled = bundled_num_layers(backbone)  # from the registry, without building it
    if bundled is not None:
        return bundled
    path = Path(backbone).expanduser()
    if (path / "config.json").exists():
        cfg = json.loads((path / "config.json").read_text())
        return int(cfg.get("num_hidden_layers") or cfg.get("n_layers") or cfg["num_layers"])
    return int(AutoConfig.from_pretrained(backbone).num_hidden_layers)


def validate_encoder_layers(encoder_layers: object, backbone: str) -> int:
    """Check ``model.encoder_layers`` against the backbone; return it as an int."""
    available = backbone_num_layers(backbone)
    if isinstance(encoder_layers, bool) or not isinstance(encoder_layers, int):
        raise ModelConfigError(
            f"model.encoder_layers={encoder_layers!r}: must be an integer from 1 to "
            f"{available} (the layers of backbone {backbone})"
        )
    if not 1 <= encoder_layers <= available:
        raise ModelConfigError(
            f"model.encoder_layers={encoder_layers}: must be from 1 to {available} "
            f"(backbone {backbone} has {available} transformer layers)"
        )
    return encoder_layers


def validate_pooling(pooling: str) -> str:
    if pooling not in POOLINGS:
        raise ModelConfigError(f"model.pooling={pooling!r}: expected one of {', '.join(POOLINGS)}")
    return pooling


def validate_text_pooling(text_pooling: str | None) -> str | None:
    if text_pooling is not None and text_pooling not in TEXT_POOLINGS:
        raise ModelConfigError(f"model.text_pooling={text_pooling!r}: expected null (one "
                               f"concatenated sequence) or one of {', '.join(TEXT_POOLINGS)}")
    return text_pooling


def load_encoder(backbone_dir: str | Path, encoder_layers: int) -> PreTrainedModel:
    """Load the backbone with only its first ``encoder_layers`` layers.

    Passing ``num_hidden_layers`` to ``from_pretrained`` builds the short model and
    simply skips the weights of the dropped layers, instead of loading all of them and
    deleting modules afterwards.
    """
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the skipped layers are expected "unused weights"
    try:
        model = AutoModel.from_pretrained(
            str(backbone_dir), num_hidden_layers=encoder_layers, add_pooling_layer=False
        )
    except TypeError:  # backbones whose class has no pooling layer option
        model = AutoModel.from_pretrained(str(backbone_dir), num_hidden_layers=encoder_layers)
    finally:
        hf_logging.set_verbosity(verbosity)
    return model


class PartiallyFrozenEmbedding(nn.Module):
    """A word-embedding table whose first ``trainable_from`` rows are frozen.

    Why not ``requires_grad=False`` plus a gradient mask: AdamW would still keep moment
    estimates for and update all 96 M rows of mE5's table (its weight decay alone moves
    them), which makes a CPU training step ~5x slower. Here only the added rows are a
    parameter; the rest is a frozen parameter the optimiser never sees.
    """

    def __init__(self, embedding: nn.Embedding, trainable_from: int, tuned_rows: int = 0
                 ) -> None:
        super().__init__()
        weight = embedding.weight.detach()
        self.trainable_from = trainable_from
        self.padding_idx = embedding.padding_idx
        self.frozen = nn.Parameter(weight[:trainable_from].clone(), requires_grad=False)
        self.trainable = nn.Parameter(weight[trainable_from:].clone())
        # ``model.tune_top_rows``: a trained correction for ``tuned_rows`` rows of the
        # frozen table, the training data's most frequent tokens (:meth:`tune`; chosen at
        # fit start, saved with the weights). A delta of N rows, not N unfrozen rows of
        # the table: the optimiser sees N x dim numbers, never the 96 M others.
        # Without it neither tensor exists, so models saved before it load as they were.
        self.register_buffer("tuned_ids", torch.full((tuned_rows,), -1, dtype=torch.long)
                             if tuned_rows else None)
        self.tuned = (nn.Parameter(torch.zeros(tuned_rows, weight.shape[1], dtype=weight.dtype))
                      if tuned_rows else None)

    def tune(self, ids: torch.Tensor) -> None:
        """Make the rows ``ids`` (as many as ``tuned_rows``, distinct, below
        ``trainable_from``) the corrected ones; their corrections start at zero."""
        ids = torch.unique(torch.as_tensor(ids, dtype=torch.long))
        n = 0 if self.tuned_ids is None else self.tuned_ids.numel()
        if ids.numel() != n or (ids >= self.trainable_from).any():
            raise ValueError(f"{ids.numel()} row ids for {n} tuned "
                             f"rows (all below {self.trainable_from}) expected")
        self.tuned_ids.copy_(ids)  # sorted: forward finds a token's slot by bisection
        with torch.no_grad():
            self.tuned.zero_()

    @property
    def tuned_chosen(self) -> bool:
        return self.tuned_ids is not None and bool((self.tuned_ids >= 0).all())

    @property
    def weight(self) -> torch.Tensor:
        """The full table (used when exporting; not on the training hot path)."""
        table = torch.cat([self.frozen, self.trainable], dim=0)
        if self.tuned_chosen:
            table = table.index_add(0, self.tuned_ids, self.tuned.to(table.dtype))
        return table

    @property
    def num_embeddings(self) -> int:
        return self.frozen.shape[0] + self.trainable.shape[0]

    @property
    def embedding_dim(self) -> int:
        return self.frozen.shape[1]

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        out = F.embedding(input_ids.clamp(max=self.trainable_from - 1), self.frozen)
        if self.trainable.shape[0]:
            # Every batch goes through the added rows, holding one of their tokens or not:
            # a graph that does not depend on the batch is what DDP needs (a parameter left
            # without a gradient in one process makes the others wait for it forever).
            is_new = input_ids >= self.trainable_from
            new = F.embedding((input_ids - self.trainable_from).clamp(min=0), self.trainable)
            out = torch.where(is_new.unsqueeze(-1), new, out)
        if self.tuned is not None:
            # every batch goes through the correction too (the same DDP reason)
            last = self.tuned_ids.numel() - 1
            slot = torch.searchsorted(self.tuned_ids, input_ids).clamp(max=last)
            hit = (self.tuned_ids[slot] == input_ids).unsqueeze(-1)
            out = out + torch.where(hit, F.embedding(slot, self.tuned), 0.0)
        return out


def freeze_word_embeddings(model: PreTrainedModel, trainable_from: int, tuned_rows: int = 0
                           ) -> None:
    """Freeze the word-embedding rows below ``trainable_from`` (the original vocabulary),
    with room for a trained correction of ``tuned_rows`` of them."""
    emb = model.get_input_embeddings()
    if isinstance(emb, PartiallyFrozenEmbedding):
        return
    model.set_input_embeddings(PartiallyFrozenEmbedding(emb, trainable_from, tuned_rows))


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool token states into one vector per profile (``cls`` = first token)."""
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class ProfileClassifier(nn.Module):
    """Encoder -> pooled embedding -> dropout -> linear head over the classes.

    ``embed`` is exposed on its own so other tasks can reuse the shared text embedding.
    With ``text_pooling`` (``mean`` or ``attention``) the inputs may be batch x texts x
    tokens: each text (bio, captions) is encoded as its own sequence and the text
    embeddings are pooled into the profile's, so no text is cut by the ones before it.
    A 2-D batch is one text per profile, which every text pooling passes through as is.
    """

    def __init__(
        self, encoder: PreTrainedModel, num_classes: int, pooling: str = "mean",
        dropout: float = 0.1, text_pooling: str | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = validate_pooling(pooling)
        self.text_pooling = validate_text_pooling(text_pooling)
        self.text_attention = (TextAttention(encoder.config.hidden_size)
                               if text_pooling == "attention" else None)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_classes)

    def _embed_texts(self, input_ids: torch.Tensor, attention_mask: torch.Tensor
                     ) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return pool(hidden, attention_mask, self.pooling)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if input_ids.dim() == 2:
            return self._embed_texts(input_ids, attention_mask)
        return embed_profiles(self._embed_texts, self.text_attention, input_ids,
                              attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(input_ids, attention_mask)))
