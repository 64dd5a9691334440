"""Encoder backbones that load offline: bundled ones are materialised from pip packages.

``materialize_backbone(name)`` is the one entry point the model code needs: it maps a
``backbone.name`` option (``me5_small``, ``minilm_en``, a local folder or a hub id) to
something ``transformers`` ``from_pretrained`` accepts, building and caching bundled folders
under ``GEOLOC_HOME`` on first use.
"""

from geoloc.backbones.materialize import (
    BUNDLED_BACKBONES,
    MANIFEST,
    backbone_dir,
    backbone_info,
    bundled_num_layers,
    check_backbone_name,
    materialize_backbone,
)

__all__ = [
    "BUNDLED_BACKBONES",
    "MANIFEST",
    "backbone_dir",
    "backbone_info",
    "bundled_num_layers",
    "check_backbone_name",
    "materialize_backbone",
]
