"""``geoloc-export``: a model bundle -> the same bundle plus what plain ``transformers``
and ONNX Runtime load.

The bundle training writes (:mod:`geoloc.bundle`) already holds the tokenizer, the policy,
the calibration outputs, the fused n-gram model and the model card; its weights leave the
backbone's frozen embedding table out (22 MB instead of ~470 MB for the 3-layer default).
The export copies it and adds (DESIGN.md, "A deployed model is"):

- ``config.json`` with ``id2label`` and ``model.safetensors`` holding the *whole* network
  (plain ``transformers`` cannot rebuild the table from geoloc's bundled backbone), and
  ``modeling_geoloc.py`` (the model class and the ``text-classification`` pipeline that
  applies the fusion and the temperature);
- on request ``model.onnx`` (and ``model.int8.onnx``, int8 dynamic quantisation) for ONNX
  Runtime;

and writes a new manifest and model card, so the export folder is itself a bundle that
every geoloc command takes. The folder is built beside its destination and renamed into
place, so a killed export never leaves a folder that looks complete.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import onnx
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.optimizer import optimize_model

from geoloc.bundle import Bundle, is_export, open_model, unlisted_files
from geoloc.bundle.card import model_card
from geoloc.bundle.files import (
    CARD_FILE,
    FUSION_FILE,
    MANIFEST,
    MODELING_FILE,
    ONNX_FILE,
    ONNX_INT8_FILE,
    THRESHOLDS_FILE,
)
from geoloc.errors import ExportError
from geoloc.inference.modeling_geoloc import GeolocConfig, GeolocForSequenceClassification
from geoloc.io import PathLike, write_text_atomic

log = logging.getLogger("geoloc")

#: ``config.json``'s ``geoloc.format``: what ``modeling_geoloc.py`` reads.
EXPORT_FORMAT = "geoloc.export/v1"
#: ONNX opset of the exported graph (supported by every current ONNX Runtime).
ONNX_OPSET = 18


def hf_model_from_module(module: Any) -> GeolocForSequenceClassification:
    """The trained network as :class:`GeolocForSequenceClassification` with identical
    weights (strict state-dict load: a missing or extra tensor fails here)."""
    encoder = module.net.encoder
    if encoder.config.model_type != "bert":
        raise ExportError(
            f"backbone {module.hparams.backbone!r} is a {encoder.config.model_type!r} model; "
            "the export supports BERT-architecture backbones (me5_small, minilm_en)")
    names = list(module.class_names)
    table = encoder.get_input_embeddings().weight.detach()
    config = GeolocConfig(
        **{k: v for k, v in encoder.config.to_dict().items()
           if k not in ("architectures", "model_type", "transformers_version", "id2label",
                        "label2id", "auto_map", "dtype", "torch_dtype")},
        pooling=module.net.pooling,
        text_pooling=module.net.text_pooling,
    )
    config.vocab_size = int(table.shape[0])
    config.num_labels = len(names)
    config.id2label = dict(enumerate(names))
    config.label2id = {n: i for i, n in enumerate(names)}
    model = GeolocForSequenceClassification(config)
    state: dict[str, torch.Tensor] = {}
    for key, value in encoder.state_dict().items():
        if key.startswith("embeddings.word_embeddings."):
            continue  # frozen + trainable rows of PartiallyFrozenEmbedding, joined below
        state[f"bert.{key}"] = value
    state["bert.embeddings.word_embeddings.weight"] = table
    if module.net.text_attention is not None:
        for key, value in module.net.text_attention.state_dict().items():
            state[f"text_attention.{key}"] = value
    state["classifier.weight"] = module.net.head.weight.detach()
    state["classifier.bias"] = module.net.head.bias.detach()
    missing, unexpected = model.load_state_dict(state, strict=False)
    # position_ids / token_type_ids buffers are rebuilt by the class; nothing else may differ
    missing = [k for k in missing if not k.endswith(("position_ids", "token_type_ids"))]
    if missing or unexpected:
        raise ExportError(f"weights do not map onto the export class: missing {missing}, "
                          f"unexpected {unexpected}")
    return model.eval()


def export_onnx(model: GeolocForSequenceClassification, folder: Path, quantize: bool) -> None:
    """``model.onnx`` (fp32; batch and sequence axes dynamic) and, with ``quantize``,
    ``model.int8.onnx`` (int8 dynamic quantisation of the weights of MatMul/Gemm). Both
    graphs output ``logits`` and ``embedding`` (the pooled profile embedding, the head's
    input: asking for it costs no extra compute)."""

    class Logits(torch.nn.Module):  # ONNX wants tensors out, not a ModelOutput
        def __init__(self, inner: GeolocForSequenceClassification) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
            pooled = self.inner.embed(input_ids, attention_mask)
            return self.inner.classifier(pooled), pooled

    ids = torch.randint(5, 1000, (2, 16))
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0
    axes = {0: "batch", 1: "sequence"}
    if model.config.text_pooling:  # a whole-profile model: batch x texts x tokens
        ids, mask = ids.view(2, 1, 16).repeat(1, 3, 1), mask.view(2, 1, 16).repeat(1, 3, 1)
        mask[1, 2] = 0  # the second profile has two texts
        axes = {0: "batch", 1: "texts", 2: "sequence"}
    path = folder / ONNX_FILE
    # Traced with BERT's eager attention: that subgraph is what ONNX Runtime's transformer
    # optimizer recognises (the SDPA path traces to one it does not), so below it fuses
    # attention, embedding + LayerNorm, residual + LayerNorm and bias + GELU (about 20 %
    # faster on CPU; logits within 2e-5). The TorchScript-based exporter (dynamo=False)
    # handles BERT's data-dependent mask code with dynamic axes and needs no extra stack.
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        torch.onnx.export(
            Logits(model).eval(), (ids, mask), str(path),
            input_names=["input_ids", "attention_mask"], output_names=["logits", "embedding"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes,
                          "logits": {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=ONNX_OPSET, dynamo=False,
        )
    finally:
        model.set_attn_implementation(previous)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)  # the optimiser and quantiser log one line per node
    try:
        optimized = optimize_model(str(path), model_type="bert",
                                   num_heads=model.config.num_attention_heads,
                                   hidden_size=model.config.hidden_size)
        fused = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
        optimized.save_model_to_file(str(path))
        log.info("ONNX graph fused operators: %s", fused)
        if quantize:
            # the fused operators are outside the ONNX domain, so shape inference cannot
            # type their outputs: they are float
            quantize_dynamic(str(path), str(folder / ONNX_INT8_FILE),
                             weight_type=QuantType.QInt8,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.setLevel(level)


def export(model: PathLike | Bundle, out: PathLike, onnx: bool = False,
           quantize: bool = False, overwrite: bool = False) -> Path:
    """Write the export of the bundle ``model`` to ``out`` (see the module docstring)."""
    if quantize and not onnx:
        raise ExportError("quantize=true needs onnx=true (it quantises the ONNX graph)")
    bundle = model if isinstance(model, Bundle) else open_model(model)
    if bundle.thresholds().scored_with == "int8" and not quantize:
        # (dynamic quantisation of the same weights rebuilds the same int8 graph)
        raise ExportError(f"{bundle.folder}: its thresholds were fitted on int8 outputs "
                          "(geoloc-calibrate quantized=true); an export without the int8 "
                          "graph could not use them: export with onnx=true quantize=true")
    out = Path(out)
    if out.exists() and not overwrite:
        raise ExportError(f"output={out} exists; choose another folder or overwrite=true")
    if out.exists() and not is_export(out):
        raise ExportError(f"output={out} exists and is not a geoloc export: "
                          "overwrite=true only replaces an earlier export")
    if out.exists():
        # overwrite=true replaces what an earlier export wrote, and nothing else: a notes
        # file or a data folder put beside it would be deleted with the folder
        listed = json.loads((out / MANIFEST).read_text(encoding="utf-8"))["files"]
        foreign = [name + ("/" if (out / name).is_dir() else "")
                   for name in unlisted_files(out, listed, ignored=frozenset())]
        if foreign:
            raise ExportError(f"output={out} holds files the export did not write "
                              f"({', '.join(foreign[:5])}{' …' if len(foreign) > 5 else ''}); "
                              "move them out, or choose another folder")
    if out.resolve() == bundle.folder.resolve():
        raise ExportError(f"output={out} is the model folder itself; choose another folder")
    return export_bundle(bundle, bundle.load_module(), out, onnx, quantize)


def export_bundle(bundle: Bundle, module: Any, out: Path, onnx: bool, quantize: bool
                  ) -> Path:
    """:func:`export` of a bundle whose network is already built (the benchmark exports
    an untrained one: speed does not depend on the weights' values)."""
    model = hf_model_from_module(module)
    model.config.auto_map = {
        "AutoConfig": "modeling_geoloc.GeolocConfig",
        "AutoModelForSequenceClassification":
            "modeling_geoloc.GeolocForSequenceClassification",
    }
    # pipeline("text-classification") then applies the fusion and the temperature
    model.config.custom_pipelines = {"text-classification": {
        "impl": "modeling_geoloc.GeolocTextClassificationPipeline",
        "pt": ["AutoModelForSequenceClassification"], "tf": [], "type": "text"}}
    thresholds = bundle.thresholds()
    fusion = bundle.fusion()
    hp = bundle.hparams
    model.config.geoloc = {
        "format": EXPORT_FORMAT, "max_length": bundle.max_length,
        "temperature": thresholds.temperature, "thresholds": THRESHOLDS_FILE,
        "fusion": FUSION_FILE if fusion is not None else None,
        "backbone": hp["backbone"], "encoder_layers": hp["encoder_layers"],
        "tokenizer_variant": hp["tokenizer_variant"],
    }

    def add(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        shutil.copyfile(Path(__file__).with_name(MODELING_FILE), tmp / MODELING_FILE)
        if onnx:
            export_onnx(model, tmp, quantize)
        write_text_atomic(tmp / CARD_FILE, model_card(
            bundle.info, thresholds, fusion,
            export=True, onnx=onnx, quantized=quantize))

    folder = bundle.derive(out, add).folder
    log.info("exported %s -> %s", bundle.folder, folder)
    return folder
