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


class GeolocConfig(BertConfig):
    """A BERT config plus the pooling of the classification head."""

    model_type = "geoloc_bert"

    def __init__(self, pooling: str = "mean", **kwargs) -> None:
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r}: expected one of {POOLINGS}")
        self.pooling = pooling


class GeolocForSequenceClassification(BertPreTrainedModel):
    """BERT encoder -> mean (or first-token) pooling -> dropout -> linear, as trained."""

    config_class = GeolocConfig

    def __init__(self, config: GeolocConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
              token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled profile embedding the head reads (batch x hidden size): the
        representation other classifiers can reuse."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
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
    n-gram model when the export has one (``w · log_softmax(logits) + (1 - w) · log p_ngram``),
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
        model_inputs = dict(super().preprocess(inputs, **tokenizer_kwargs))
        if self.ngram is not None:
            model_inputs["ngram_log_proba"] = torch.from_numpy(self.ngram.log_proba([inputs]))
        return model_inputs

    def _forward(self, model_inputs: dict[str, Any]) -> dict[str, Any]:
        ngram = model_inputs.pop("ngram_log_proba", None)
        logits = self.model(**model_inputs).logits.double()
        if ngram is not None:
            w = self.ngram.weight
            logits = w * torch.log_softmax(logits, dim=-1) + (1.0 - w) * ngram.double()
        # geoloc fuses in float64 and scores in float32, as here
        return {"logits": (logits.float() / self.temperature)}
