"""The Hugging Face model class of an exported geoloc model.

geoloc's classifier is a BERT encoder cut to N layers, **mean pooling** over the
attention mask, and one linear layer. No stock ``*ForSequenceClassification`` class pools
that way (they read the first token through a tanh "pooler"), so an export ships this
file beside its weights and names it in ``config.json`` (``auto_map``): plain
``transformers`` then loads the folder with ``AutoModelForSequenceClassification`` and
``pipeline("text-classification")`` given ``trust_remote_code=True``, the usual way a
Hub model brings its own head. The file imports only ``torch`` and ``transformers`` so it
works where geoloc is not installed; geoloc itself imports the class from its package and
never executes code from an export folder.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import BertConfig, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

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

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state
        if self.config.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)
