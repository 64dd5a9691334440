"""The Hugging Face model class of an exported geoloc model.

geoloc's classifier is a BERT encoder cut to N layers, **mean pooling** over the
attention mask, and one linear layer. No stock ``*ForSequenceClassification`` class pools
that way (they read the first token through a tanh "pooler"), so an export ships this
file beside its weights and names it in ``config.json`` (``auto_map``): plain
``transformers`` then loads the folder with ``AutoModelForSequenceClassification`` and
``pipeline("text-classification")`` given ``trust_remote_code=True``, the usual way a
Hub model brings its own head.

The same file registers :class:`GeolocTextClassificationPipeline` as the folder's
``text-classification`` pipeline (``custom_pipelines`` in ``config.json``), so that the
pipeline answers what ``geoloc-predict`` answers: when the run fused a char n-gram model
(``geoloc_fusion.json`` + ``.npz``) the pipeline applies it, and its scores are the
temperature-scaled (calibrated) probabilities. ``AutoModelForSequenceClassification``
alone still returns the transformer's raw logits. The file needs only ``torch``,
``transformers``, ``numpy`` and, for a fused export, ``scikit-learn``, so it works where
geoloc is not installed; geoloc itself imports these classes from its package and never
executes code from an export folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import BertConfig, BertModel, BertPreTrainedModel, TextClassificationPipeline
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.utils import cached_file

try:  # only a fused export needs it; transformers skips imports guarded like this one
    from sklearn.feature_extraction.text import TfidfVectorizer
except ImportError:  # pragma: no cover - scikit-learn is a geoloc dependency
    TfidfVectorizer = None

POOLINGS = ("mean", "cls")
#: model.text_pooling of a whole-profile model (None: one concatenated sequence)
TEXT_POOLINGS = ("mean", "attention")
#: geoloc.data.schema's CAPTION_SEPARATOR and MAX_CAPTIONS + 1 (the bio): this file runs
#: without geoloc, so they are repeated here; a test checks they agree.
PROFILE_SEPARATOR = " | "
MAX_TEXTS = 6


def split_profile_text(text: str) -> list[str]:
    """The texts of a profile's model text (bio and captions joined with ' | '), as a
    whole-profile model reads them. Why from the joined string and not from the record:
    every consumer (the fused n-gram model, the baselines, geoloc-predict, this file's
    pipeline) passes that one string, so a whole-profile model keeps the one input
    format. A caption that itself holds the separator is cut too; past ``MAX_TEXTS``
    parts the rest stays joined in the last text, so no word is dropped before
    truncation."""
    return text.split(PROFILE_SEPARATOR, MAX_TEXTS - 1)


class TextAttention(nn.Module):
    """Additive attention over a profile's texts (Yang et al. 2016, "Hierarchical
    attention networks"): a score per text embedding, a softmax over the texts present.
    So one telling caption can outweigh five that say nothing, where a mean dilutes it."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, texts: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        scores = self.score(torch.tanh(self.proj(texts))).squeeze(-1)
        scores = scores.masked_fill(~present, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=1) * present.to(scores.dtype)  # no text: 0
        return (texts * weights.unsqueeze(-1)).sum(dim=1)


def pool_texts(texts: torch.Tensor, present: torch.Tensor,
               attention: TextAttention | None) -> torch.Tensor:
    """Profile embeddings (batch x H) from text embeddings (batch x texts x H): attention
    when given, else the mean over the texts ``present`` (batch x texts, bool)."""
    if attention is not None:
        return attention(texts, present)
    m = present.to(texts.dtype).unsqueeze(-1)
    return (texts * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def embed_profiles(embed_texts: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                   attention: TextAttention | None, input_ids: torch.Tensor,
                   attention_mask: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """Profile embeddings of a batch x texts x tokens batch: ``embed_texts`` (ids, mask
    -> one embedding per sequence) on the texts that exist only (a profile of 2 texts in a
    batch padded to 6 costs 2 encodings), sorted by length and encoded ``chunk`` at a time,
    each chunk cut to its own longest text (a batch's texts run from 3 to 64 tokens:
    padding all to the longest cost 3x the concatenation's time), then
    :func:`pool_texts`. Under ONNX export every slot is encoded at once (the graph then
    has no data-dependent shapes; empty slots are masked out of the pooling all the
    same)."""
    b, t, n = input_ids.shape
    ids, mask = input_ids.reshape(b * t, n), attention_mask.reshape(b * t, n)
    present = mask[:, 0] > 0  # a text's first token is its [CLS]/<s>
    if torch.onnx.is_in_onnx_export() or torch.jit.is_tracing():
        texts = embed_texts(ids, mask)
    else:
        index = present.nonzero().squeeze(1)
        lengths = mask[index].sum(dim=1)
        order = torch.argsort(lengths, stable=True)
        parts = []
        for part in order.split(chunk):
            width = max(int(lengths[part].max()), 1)
            rows = index[part]
            parts.append(embed_texts(ids[rows, :width], mask[rows, :width]))
        found = torch.cat(parts)[torch.argsort(order)]  # back to the texts' order
        texts = found.new_zeros((b * t, found.shape[-1])).index_copy(0, index, found)
    return pool_texts(texts.view(b, t, -1), present.view(b, t), attention)


class GeolocConfig(BertConfig):
    """A BERT config plus the pooling of the classification head."""

    model_type = "geoloc_bert"

    def __init__(self, pooling: str = "mean", text_pooling: str | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r}: expected one of {POOLINGS}")
        if text_pooling is not None and text_pooling not in TEXT_POOLINGS:
            raise ValueError(f"text_pooling={text_pooling!r}: expected None or one of "
                             f"{TEXT_POOLINGS}")
        self.pooling = pooling
        self.text_pooling = text_pooling


class GeolocForSequenceClassification(BertPreTrainedModel):
    """BERT encoder -> mean (or first-token) pooling -> dropout -> linear, as trained."""

    config_class = GeolocConfig

    def __init__(self, config: GeolocConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.text_attention = (TextAttention(config.hidden_size)
                               if getattr(config, "text_pooling", None) == "attention" else None)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
              token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled profile embedding the head reads (batch x hidden size): the
        representation other classifiers can reuse. A whole-profile model
        (``config.text_pooling``) also takes batch x texts x tokens inputs."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if input_ids.dim() == 3:
            return embed_profiles(self.embed, self.text_attention, input_ids, attention_mask)
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state
        if self.config.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        pooled = self.embed(input_ids, attention_mask, token_type_ids)
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


#: Floor of the n-gram model's probabilities, as in geoloc.model.ngram.PROB_FLOOR.
NGRAM_PROB_FLOOR = 1e-9


class CharNgramScorer:
    """The fused char n-gram model of an export, from its safe files (JSON + ``.npz``
    read with ``allow_pickle=False``): TF-IDF features with the saved vocabulary and idf,
    multinomial logistic regression, log-probabilities over all classes. It repeats
    ``geoloc.model.ngram.CharNgramLR.log_proba`` because this file must run without
    geoloc; the export test checks both give the same decisions."""

    def __init__(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        if TfidfVectorizer is None:
            raise ImportError("this export fuses a char n-gram model: pip install scikit-learn")
        ngram = meta["ngram"]
        self.weight = float(meta["weight"])
        self.n_classes = int(ngram["n_classes"])
        self.vectorizer = TfidfVectorizer(
            analyzer=ngram["analyzer"], ngram_range=tuple(ngram["ngram_range"]),
            min_df=ngram["min_df"], sublinear_tf=ngram["sublinear_tf"], lowercase=True,
            dtype=np.float32, vocabulary=list(ngram["vocabulary"]))
        self.vectorizer.idf_ = np.asarray(arrays["idf"], dtype=np.float32)
        self.coef = np.asarray(arrays["coef"])
        self.intercept = np.asarray(arrays["intercept"])
        self.classes = np.asarray(arrays["classes"], dtype=np.int64)
        self.place_weight = float(meta.get("place_weight", 0.0))
        self.class_names = meta.get("class_names")
        if self.place_weight:
            self.places([])  # at load, not on the first call: geoloc is needed

    def places(self, texts: list[str]) -> np.ndarray:
        """The place expert's evidence. It comes from geoloc's gazetteer (built from the
        gazetteer packages that geoloc installs, far too much to carry in this file), so
        this one step needs geoloc installed."""
        try:
            # here, not at the top: this file runs without geoloc everywhere else
            from geoloc.model.ngram import place_evidence
        except ImportError as err:
            raise ImportError("this export's fusion adds place evidence from geoloc's "
                              "gazetteer: install geoloc to use it") from err
        return place_evidence(texts, self.class_names)

    @classmethod
    def from_pretrained(cls, folder: str, name: str) -> CharNgramScorer:
        meta_file = cached_file(folder, name)
        arrays_file = cached_file(folder, name.rsplit(".", 1)[0] + ".npz")
        with open(meta_file, encoding="utf-8") as fh:
            meta = json.load(fh)
        with np.load(arrays_file, allow_pickle=False) as arrays:
            return cls(meta, dict(arrays))

    def log_proba(self, texts: list[str]) -> np.ndarray:
        scores = np.asarray(self.vectorizer.transform(texts) @ self.coef.T) + self.intercept
        if scores.shape[1] == 1:  # a binary logistic regression scores the second class
            scores = np.hstack([np.zeros_like(scores), scores])
        scores = scores - scores.max(axis=1, keepdims=True)
        proba = np.exp(scores)
        proba /= proba.sum(axis=1, keepdims=True)
        full = np.zeros((len(texts), self.n_classes), dtype=np.float64)
        full[:, self.classes] = proba
        full = np.maximum(full, NGRAM_PROB_FLOOR)
        full /= full.sum(axis=1, keepdims=True)
        return np.log(full).astype(np.float32)


class GeolocTextClassificationPipeline(TextClassificationPipeline):
    """``text-classification`` as geoloc scores it: transformer logits fused with the char
    n-gram model when the export has one (``w · log_softmax(logits) + (1 - w) · log p_ngram``,
    plus ``a · place evidence`` when the fusion has a place expert),
    divided by the saved temperature. Scores are then the calibrated probabilities that
    ``geoloc-predict`` reports; the per-country thresholds (UNCERTAIN) are not applied
    here. Plain strings only: a geoloc profile is one text, never a pair."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        meta = getattr(self.model.config, "geoloc", None) or {}
        self.temperature = float(meta.get("temperature") or 1.0)
        self.ngram = (CharNgramScorer.from_pretrained(self.model.config._name_or_path,
                                                      meta["fusion"])
                      if meta.get("fusion") else None)

    def _sanitize_parameters(self, **kwargs: Any) -> tuple[dict, dict, dict]:
        # truncated at the length the model was trained with unless the caller says
        # otherwise, as geoloc-predict does (a stock pipeline would not truncate)
        pre, fwd, post = super()._sanitize_parameters(**kwargs)
        meta = getattr(self.model.config, "geoloc", None) or {}
        pre.setdefault("truncation", True)
        if meta.get("max_length"):
            pre.setdefault("max_length", int(meta["max_length"]))
        return pre, fwd, post

    def preprocess(self, inputs: Any, **tokenizer_kwargs: Any) -> dict[str, Any]:
        if not isinstance(inputs, str):
            raise ValueError("geoloc's pipeline classifies plain strings (bio and captions "
                             f"joined with ' | '), got {type(inputs).__name__}")
        if getattr(self.model.config, "text_pooling", None):
            # A whole-profile model: each text its own sequence, 1 x MAX_TEXTS x
            # max_length, so that the pipeline's collator (which pads 3-D inputs along
            # one axis only) can batch profiles; the model skips the empty slots.
            width = int(tokenizer_kwargs.get("max_length") or self.tokenizer.model_max_length)
            kwargs = {**tokenizer_kwargs, "max_length": width}
            enc = self.tokenizer(split_profile_text(inputs), padding="max_length",
                                 return_tensors="pt", **kwargs)
            model_inputs = {}
            for key, fill in (("input_ids", self.tokenizer.pad_token_id),
                              ("attention_mask", 0)):
                full = torch.full((1, MAX_TEXTS, width), fill, dtype=enc[key].dtype)
                full[0, :enc[key].shape[0]] = enc[key]
                model_inputs[key] = full
        else:
            model_inputs = dict(super().preprocess(inputs, **tokenizer_kwargs))
        if self.ngram is not None:
            model_inputs["ngram_log_proba"] = torch.from_numpy(self.ngram.log_proba([inputs]))
            if self.ngram.place_weight:
                model_inputs["place_evidence"] = torch.from_numpy(self.ngram.places([inputs]))
        return model_inputs

    def _forward(self, model_inputs: dict[str, Any]) -> dict[str, Any]:
        ngram = model_inputs.pop("ngram_log_proba", None)
        places = model_inputs.pop("place_evidence", None)
        logits = self.model(**model_inputs).logits.double()
        if ngram is not None:
            w = self.ngram.weight
            logits = w * torch.log_softmax(logits, dim=-1) + (1.0 - w) * ngram.double()
        if places is not None:
            logits = logits + self.ngram.place_weight * places.double()
        # geoloc fuses in float64 and scores in float32, as here
        return {"logits": (logits.float() / self.temperature)}
