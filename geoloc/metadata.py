"""The one object the model hands to the data side: label set and tokenizer identity.

The model decides which classes exist (the label set, with OTHER last) and how text becomes
tokens (backbone + tokenizer variant, whose added tokens depend on the label set). The
datamodule needs both: the label set to turn country codes into class indices, the
tokenizer identity to key its tokenisation cache. Passing this object, rather than the
same ``countries`` list interpolated into several config nodes and a separate tokenizer
key, means the two sides cannot disagree, and a checkpoint that stores the model's
hyper-parameters stores it too (``GeolocModule.metadata``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from geoloc.labels import LabelSet


@dataclass(frozen=True)
class ModelMetadata:
    """Label set + tokenizer identity of a model (see the module docstring)."""

    label_set: LabelSet
    backbone: str
    tokenizer_variant: str
    per_text: bool = False
    """Whole-profile model: each text (bio, caption) is its own token sequence
    (``model.text_pooling``), so the datamodule tokenises the texts one by one."""

    @classmethod
    def create(cls, countries: Sequence[str], backbone: str, tokenizer_variant: str,
               per_text: bool = False) -> ModelMetadata:
        """Validate the codes and build the object."""
        return cls(LabelSet.from_codes(list(countries)), str(backbone), str(tokenizer_variant),
                   bool(per_text))

    @property
    def countries(self) -> tuple[str, ...]:
        return self.label_set.countries

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names in index order (the countries, then OTHER)."""
        return self.label_set.names

    @property
    def tokenizer_id(self) -> str:
        """Everything that determines token ids: backbone, variant and (through the flags a
        variant adds) the label set. Keys the datamodule's tokenisation cache."""
        return f"{self.backbone}|{self.tokenizer_variant}|{','.join(self.countries)}"

    def to_dict(self) -> dict[str, Any]:
        return {"countries": list(self.countries), "backbone": self.backbone,
                "tokenizer_variant": self.tokenizer_variant, "per_text": self.per_text}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelMetadata:
        return cls.create(data["countries"], data["backbone"], data["tokenizer_variant"],
                          bool(data.get("per_text", False)))
