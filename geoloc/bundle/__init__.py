"""The model bundle: one folder holding everything a trained model needs to be used.

Training ends by writing it (``<run>/model/``); ``geoloc-eval``, ``geoloc-predict``,
``geoloc-audience`` and ``geoloc-export`` take it as ``model_dir=<folder>``. This module is
the only code that knows its file names::

    model/
      geoloc_bundle.json         manifest: format, every file's SHA-256 and size
      geoloc_model.json          module hyper-parameters (backbone, depth, pooling,
                                 tokenizer variant, countries), id2label, the data
                                 options (max_length, source, splits), the SHA-256 of
                                 each frozen backbone tensor left out, the run's metrics
      geoloc_weights.safetensors what training changed (frozen embedding rows left out)
      tokenizer.json  tokenizer_config.json   the tokenizer with its added tokens
      geoloc_thresholds.json     temperature, per-country thresholds, guarantee kinds
      geoloc_calibration.npz     the outputs the policy was fitted on (audience shares)
      geoloc_fusion.json + .npz  the char n-gram model fused with the transformer, if any
      README.md                  the model card

``geoloc-export`` writes the same folder plus what plain ``transformers`` and ONNX
Runtime need (``config.json``, ``model.safetensors`` with the whole embedding table,
``modeling_geoloc.py``, ``model.onnx``, ``model.int8.onnx``); its manifest lists them
too, so an export folder is a bundle and every command takes it.

**Whole or refused.** :meth:`Bundle.open` checks the folder against its manifest before
anything reads it: a file missing, a file the manifest does not list, or a file whose
bytes differ from the recorded hash is refused with one line naming the file
(:class:`~geoloc.errors.BundleError`, reported as bad input). A policy swapped in from
another model, or a fusion file dropped, can no longer go unnoticed. Files are written
to a sibling folder and renamed into place, so a killed save never leaves a folder that
looks complete.

A training checkpoint with the files earlier versions wrote beside it (``<ckpt>.ckpt``,
``.thresholds.json``, ``.calibration.npz``, ``.fusion.json``/``.npz``) is converted into
a temporary bundle by :func:`bundle_from_checkpoint` (``ckpt_path=``, deprecated).
"""

from geoloc.bundle.core import (
    Bundle,
    check_policy,
    is_bundle,
    is_export,
    save_tokenizer,
    unlisted_files,
    weights_digest,
    write_manifest,
)
from geoloc.bundle.legacy import bundle_from_checkpoint, legacy_file, open_model

__all__ = ["Bundle", "bundle_from_checkpoint", "check_policy", "is_bundle", "is_export",
           "legacy_file", "open_model", "save_tokenizer", "unlisted_files",
           "weights_digest", "write_manifest"]
