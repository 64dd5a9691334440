"""Encoder backbones that load offline: bundled ones are materialised from pip packages.

``materialize_backbone(name)`` is the one entry point the model code needs: it maps a
``backbone.name`` option (``me5_small``, ``minilm_en``, a local folder or a hub id) to
something ``transformers`` ``from_pretrained`` accepts, building and caching bundled folders
under ``GEOLOC_HOME`` on first use.
"""

from geoloc.backbones.materialize import (
    BUILD_COUNTS,
    BUNDLED_BACKBONES,
    MANIFEST,
    backbone_dir,
    backbone_info,
    check_backbone_name,
    materialize_backbone,
    session_backbone,
)

__all__ = [
    "BUILD_COUNTS",
    "BUNDLED_BACKBONES",
    "MANIFEST",
    "backbone_dir",
    "backbone_info",
    "check_backbone_name",
    "materialize_backbone",
    "session_backbone",
]
