"""The file names of a model bundle and of the export that extends it: written here once,
read by :mod:`geoloc.bundle` (save, open, verify), its model card and the export."""

from __future__ import annotations

BUNDLE_FORMAT = "geoloc.bundle/v1"
MANIFEST = "geoloc_bundle.json"
MODEL_FILE = "geoloc_model.json"
WEIGHTS_FILE = "geoloc_weights.safetensors"
THRESHOLDS_FILE = "geoloc_thresholds.json"
CALIBRATION_FILE = "geoloc_calibration.npz"
FUSION_FILE = "geoloc_fusion.json"
FUSION_ARRAYS = "geoloc_fusion.npz"
CARD_FILE = "README.md"
TOKENIZER_FILE = "tokenizer.json"
#: What every bundle holds (the others are optional: calibration outputs exist when the
#: policy was fitted, the fusion files when the run fused an n-gram model).
REQUIRED = (MODEL_FILE, WEIGHTS_FILE, TOKENIZER_FILE, THRESHOLDS_FILE, CARD_FILE)
#: The files an export adds (:mod:`geoloc.inference.export` writes them).
HF_CONFIG_FILE = "config.json"
HF_WEIGHTS_FILE = "model.safetensors"
MODELING_FILE = "modeling_geoloc.py"
ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model.int8.onnx"
#: What each file is, for the one-line refusals.
KINDS = {MODEL_FILE: "model description", WEIGHTS_FILE: "weights",
         TOKENIZER_FILE: "tokenizer", "tokenizer_config.json": "tokenizer",
         THRESHOLDS_FILE: "thresholds", CALIBRATION_FILE: "calibration outputs",
         FUSION_FILE: "fusion", FUSION_ARRAYS: "fusion arrays", CARD_FILE: "model card",
         HF_CONFIG_FILE: "export config", HF_WEIGHTS_FILE: "export weights",
         MODELING_FILE: "export model code", ONNX_FILE: "ONNX graph",
         ONNX_INT8_FILE: "int8 ONNX graph"}
