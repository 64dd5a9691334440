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
#: ``Fusion.save`` writes its arrays beside its JSON under the same stem
FUSION_ARRAYS = FUSION_FILE.removesuffix(".json") + ".npz"
CARD_FILE = "README.md"
#: the population the policy was calibrated on (geoloc.inference.population): what
#: geoloc-predict compares every input with
POPULATION_FILE = "geoloc_population.json"
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
EXPORT_FILES = (HF_CONFIG_FILE, HF_WEIGHTS_FILE, MODELING_FILE, ONNX_FILE, ONNX_INT8_FILE)
#: What a folder may hold beside the manifest's files: metadata of the tools that copy
#: folders around (git and the Hugging Face Hub's downloads, macOS, Jupyter), never read.
IGNORED = frozenset({".git", ".gitattributes", ".cache", ".DS_Store", ".ipynb_checkpoints"})
#: ``config.json``'s ``geoloc.format`` of exports written before the bundle existed.
LEGACY_EXPORT_FORMAT = "geoloc.export/v1"
#: What each file is, for the one-line refusals.
KINDS = {MODEL_FILE: "model description", WEIGHTS_FILE: "weights",
         TOKENIZER_FILE: "tokenizer", "tokenizer_config.json": "tokenizer",
         THRESHOLDS_FILE: "thresholds", POPULATION_FILE: "population record", CALIBRATION_FILE: "calibration outputs",
         FUSION_FILE: "fusion", FUSION_ARRAYS: "fusion arrays", CARD_FILE: "model card",
         HF_CONFIG_FILE: "export config", HF_WEIGHTS_FILE: "export weights",
         MODELING_FILE: "export model code", ONNX_FILE: "ONNX graph",
         ONNX_INT8_FILE: "int8 ONNX graph"}
