"""``geoloc-export``: a trained checkpoint -> one self-contained Hugging Face folder.

The folder is the deployed model (DESIGN.md, "A deployed model is"): what plain
``transformers`` needs (``config.json`` with ``id2label``, ``model.safetensors``, the
tokenizer with the added flag and location-emoji tokens, ``modeling_geoloc.py``), and what
the 90 % promise needs (``geoloc_thresholds.json``: temperature, per-country thresholds
and guarantee kinds; ``geoloc_fusion.json`` + ``.npz`` when the run fused a char n-gram
model), a model card (``README.md``) and, on request, ``model.onnx`` (and
``model.int8.onnx``, int8 dynamic quantisation) for ONNX Runtime.

Layout::

    EXPORT/
      config.json  model.safetensors  modeling_geoloc.py
      tokenizer.json  tokenizer_config.json  special_tokens_map.json
      geoloc_thresholds.json  [geoloc_fusion.json geoloc_fusion.npz]
      [model.onnx  model.int8.onnx]  README.md

The safetensors file holds the *whole* embedding table (plain ``transformers`` cannot
rebuild it from geoloc's bundled backbone); checkpoints stay small, exports are the
portable artefact. The folder is built beside its destination and renamed into place,
so a killed export never leaves a folder that looks complete.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from geoloc.evaluation.runner import calibration_path
from geoloc.inference.modeling_geoloc import GeolocConfig, GeolocForSequenceClassification
from geoloc.io import PathLike, umask, write_json_atomic, write_text_atomic

log = logging.getLogger("geoloc")

EXPORT_FORMAT = "geoloc.export/v1"
THRESHOLDS_FILE = "geoloc_thresholds.json"
FUSION_FILE = "geoloc_fusion.json"
#: The calibration outputs the policy was fitted on (``geoloc-audience`` reads them).
CALIBRATION_FILE = "geoloc_calibration.npz"
ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model.int8.onnx"
MODELING_FILE = "modeling_geoloc.py"
#: ONNX opset of the exported graph (supported by every current ONNX Runtime).
ONNX_OPSET = 18


class ExportError(ValueError):
    """A checkpoint that cannot be exported, or a destination that would be overwritten."""


@dataclass
class Checkpoint:
    """Everything a trained run left beside its checkpoint, loaded once.

    ``thresholds`` is the saved policy (required: a model without it has no promise to
    keep); ``fusion`` the fused n-gram model, if the run had one; ``max_length`` and
    ``data`` come from the datamodule's hyper-parameters stored in the checkpoint.
    """

    path: Path
    module: Any
    thresholds: Any
    thresholds_file: Path
    fusion: Any
    fusion_file: Path | None
    max_length: int
    data: dict[str, Any]

    @classmethod
    def load(cls, path: PathLike) -> Checkpoint:
        from geoloc.evaluation import Thresholds, thresholds_path
        from geoloc.model.module import GeolocModule, read_checkpoint
        from geoloc.model.ngram import Fusion, check_pairing, fusion_path

        path = Path(path)
        # the datamodule's hyper-parameters first: a cheap read that fails before the
        # module is built (seconds: backbone, tokenizer, frozen-table hash); a missing,
        # truncated or foreign file raises CheckpointError naming it
        raw = read_checkpoint(path)
        saved = thresholds_path(path)
        if not saved.is_file():
            raise ExportError(
                f"{path}: no saved policy beside it ({saved.name}); geoloc-train saves one, "
                "geoloc-eval fits one when missing")
        data = dict(raw.get("datamodule_hyper_parameters") or {})
        del raw
        if "max_length" not in data:
            raise ExportError(f"{path}: the checkpoint does not record the datamodule's "
                              "max_length (saved by an older geoloc?)")
        fusion, ffile = None, fusion_path(path)
        if ffile.exists():
            fusion = Fusion.load(ffile)
        check_pairing(fusion, saved, ffile)
        module = GeolocModule.load(path).eval()
        return cls(path, module, Thresholds.from_json(saved), saved, fusion,
                   ffile if fusion is not None else None, int(data["max_length"]), data)


def is_export(path: Path) -> bool:
    """Whether ``path`` is a folder that :func:`export` wrote."""
    config = path / "config.json"
    if not (path.is_dir() and config.is_file()):
        return False
    try:
        meta = json.loads(config.read_text(encoding="utf-8")).get("geoloc") or {}
    except (ValueError, AttributeError):
        return False
    return meta.get("format") == EXPORT_FORMAT


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
            dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                          "attention_mask": {0: "batch", 1: "sequence"},
                          "logits": {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=ONNX_OPSET, dynamo=False,
        )
    finally:
        model.set_attn_implementation(previous)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)  # the optimiser and quantiser log one line per node
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        optimized = optimize_model(str(path), model_type="bert",
                                   num_heads=model.config.num_attention_heads,
                                   hidden_size=model.config.hidden_size)
        fused = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
        optimized.save_model_to_file(str(path))
        log.info("ONNX graph fused operators: %s", fused)
        if quantize:
            import onnx
            from onnxruntime.quantization import QuantType, quantize_dynamic

            # the fused operators are outside the ONNX domain, so shape inference cannot
            # type their outputs: they are float
            quantize_dynamic(str(path), str(folder / ONNX_INT8_FILE),
                             weight_type=QuantType.QInt8,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.setLevel(level)


def _run_summary(ckpt: Path) -> dict[str, Any]:
    """The run's ``report/summary.json`` (metrics of the evaluated split), when the
    checkpoint still sits in its run folder."""
    summary = ckpt.parent.parent / "report" / "summary.json"
    if ckpt.is_file() and summary.is_file():
        return json.loads(summary.read_text(encoding="utf-8"))
    return {}


def model_card(ck: Checkpoint, onnx: bool, quantized: bool) -> str:
    """The export's README.md: what it is, the data, the metrics, the guarantee, usage."""
    from geoloc.evaluation import metric_key

    th = ck.thresholds
    hp = ck.module.hparams
    # summary.json keeps the result's short scalar names; the card uses the full ones
    summary = {metric_key(k): v for k, v in _run_summary(ck.path).get("scalars", {}).items()}
    metric_names = {
        "eval/accuracy": "accuracy, no abstention", "eval/macro_f1": "macro-F1, no abstention",
        "abstain/correct_country_rate": "profiles assigned their correct country",
        "abstain/uncertain_rate": "profiles UNCERTAIN",
        "abstain/country_precision": "precision of assigned countries",
        "abstain/countries_with_threshold": "countries with a threshold",
    }
    metrics = "\n".join(f"| {label} | {summary[k]:.4g} |" for k, label in metric_names.items()
                        if isinstance(summary.get(k), (int, float)))
    metrics = ("| metric | value |\n|---|---|\n" + metrics) if metrics else (
        "No run report was found beside the checkpoint; see the run's W&B page.")
    rows = []
    for name in th.class_names:
        t = th.thresholds[name]
        cal = th.calibration.get(name)
        rows.append(f"| {name} | {th.guarantee(name)} | "
                    f"{'never assigned' if t == float('inf') else f'{t:.4f}'}"
                    f" | {cal.n_support if cal else ''} |")
    fusion_note = (
        f"\n**Fused model.** The thresholds apply to the transformer fused with a char "
        f"n-gram model (`{FUSION_FILE}`, weight {ck.fusion.weight:g} on the transformer). "
        "The folder's `text-classification` pipeline applies both (it needs "
        "scikit-learn); `AutoModelForSequenceClassification` alone returns the "
        "transformer's part.\n"
        if ck.fusion is not None else "")
    onnx_note = ""
    if onnx:
        onnx_note = (f"\n`{ONNX_FILE}` (fp32)" + (f" and `{ONNX_INT8_FILE}` (int8 dynamic "
                     "quantisation)" if quantized else "") +
                     " take `input_ids` and `attention_mask` (right-padded) and return "
                     "`logits` and `embedding` (the pooled profile embedding); "
                     "`geoloc-predict ckpt_path=THIS_FOLDER backend=onnx` uses them. They "
                     "use ONNX Runtime's fused transformer operators (`com.microsoft` "
                     "domain), so they run in ONNX Runtime.\n")
    return f"""---
library_name: transformers
pipeline_tag: text-classification
tags: [geoloc, geolocation, country, abstention]
---

# geoloc country classifier

Predicts the country of a social-media profile from its bio and most recent post captions
(joined with ` | `), and abstains (UNCERTAIN) unless the country's calibrated probability
reaches a threshold certified to keep that country's precision >= {th.target:.0%}.

- Backbone: `{hp.backbone}` cut to {hp.encoder_layers} layers, `{hp.pooling}` pooling,
  tokenizer variant `{hp.tokenizer_variant}` ({len(ck.module.added_tokens)} added flag and
  location-emoji tokens), maximum {ck.max_length} tokens.
- Classes: {len(th.class_names)} ({', '.join(th.class_names)}).
- Training data: `{ck.data.get('source', 'unknown')}`, splits {ck.data.get('splits')}.
- Checkpoint: `{ck.path.name}`; exported {datetime.now(UTC).isoformat(timespec='seconds')}.

## Metrics (evaluated split: `{ck.data.get('eval_split', '?')}`)

{metrics}

## The guarantee

Calibrated probabilities are `softmax(logits / T)` with T = {th.temperature:.4f}. A
profile gets its top country c when that probability is >= the threshold t_c below, else
UNCERTAIN. Method: {th.method}, target {th.target:.0%}, delta {th.delta:g}, fitted on
{th.n_calibration} calibration profiles. Guarantee kind `class`: with probability
>= 1 - delta, country c alone keeps precision >= target on data like the calibration data;
`pooled`: the same statement for all `pooled` countries together; `none`: never assigned.
{fusion_note}
| class | guarantee | threshold | calibration support |
|---|---|---|---|
{chr(10).join(rows)}

## Use

```python
from transformers import pipeline
clf = pipeline("text-classification", model="THIS_FOLDER", trust_remote_code=True,
               top_k=3)
clf("Bom dia! ☀️ | Praia hoje 🇧🇷", truncation=True)
```

`trust_remote_code=True` runs `{MODELING_FILE}` from this folder (mean pooling + a
linear head on a BERT encoder, and the pipeline that fuses the n-gram model, if any, and
applies the temperature; read it). The pipeline's scores are the calibrated probabilities
and its top class is `geoloc-predict`'s `argmax`; the thresholds (UNCERTAIN) are applied
by `geoloc-predict ckpt_path=THIS_FOLDER input=profiles.parquet output=labels.parquet`.
{onnx_note}"""


def export(ckpt_path: PathLike, out: PathLike, onnx: bool = False, quantize: bool = False,
           overwrite: bool = False) -> Path:
    """Write the export folder of ``ckpt_path`` to ``out`` (see the module docstring)."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise ExportError(f"output={out} exists; choose another folder or overwrite=true")
    if out.exists() and not is_export(out):
        raise ExportError(f"output={out} exists and is not a geoloc export folder: "
                          "overwrite=true only replaces an earlier export")
    if quantize and not onnx:
        raise ExportError("quantize=true needs onnx=true (it quantises the ONNX graph)")
    return export_checkpoint(Checkpoint.load(ckpt_path), out, onnx, quantize)


def export_checkpoint(ck: Checkpoint, out: Path, onnx: bool, quantize: bool) -> Path:
    """:func:`export` of an already loaded :class:`Checkpoint` (the benchmark builds one
    from an untrained model: speed does not depend on the weights' values)."""
    model = hf_model_from_module(ck.module)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.config.auto_map = {
            "AutoConfig": "modeling_geoloc.GeolocConfig",
            "AutoModelForSequenceClassification":
                "modeling_geoloc.GeolocForSequenceClassification",
        }
        # pipeline("text-classification") then applies the fusion and the temperature
        model.config.custom_pipelines = {"text-classification": {
            "impl": "modeling_geoloc.GeolocTextClassificationPipeline",
            "pt": ["AutoModelForSequenceClassification"], "tf": [], "type": "text"}}
        model.config.geoloc = {
            "format": EXPORT_FORMAT, "max_length": ck.max_length,
            "temperature": ck.thresholds.temperature, "thresholds": THRESHOLDS_FILE,
            "fusion": FUSION_FILE if ck.fusion is not None else None,
            "backbone": ck.module.hparams.backbone,
            "encoder_layers": ck.module.hparams.encoder_layers,
            "tokenizer_variant": ck.module.hparams.tokenizer_variant,
            "checkpoint": ck.path.name,
        }
        model.save_pretrained(tmp, safe_serialization=True)
        tok = ck.module.tokenizer
        tok.model_max_length = ck.max_length
        tok.save_pretrained(tmp)
        # AutoTokenizer must build the fast tokenizer from tokenizer.json as it is; the
        # XLM-R slow class would rebuild (and under transformers 5, damage) its normaliser.
        tc_path = tmp / "tokenizer_config.json"
        tc = json.loads(tc_path.read_text(encoding="utf-8"))
        tc["tokenizer_class"] = "PreTrainedTokenizerFast"
        for key in ("is_local", "local_files_only"):  # facts of this load, not the model's
            tc.pop(key, None)
        write_json_atomic(tc_path, tc)
        shutil.copyfile(Path(__file__).with_name(MODELING_FILE), tmp / MODELING_FILE)
        # byte copies: the fusion file records the SHA-256 of this very thresholds file
        shutil.copyfile(ck.thresholds_file, tmp / THRESHOLDS_FILE)
        if ck.fusion is not None:
            assert ck.fusion_file is not None
            shutil.copyfile(ck.fusion_file, tmp / FUSION_FILE)
            shutil.copyfile(ck.fusion_file.with_suffix(".npz"),
                            (tmp / FUSION_FILE).with_suffix(".npz"))
        calibration = calibration_path(ck.path)
        if calibration.is_file():  # checkpoints of older runs have none
            shutil.copyfile(calibration, tmp / CALIBRATION_FILE)
        if onnx:
            export_onnx(model, tmp, quantize)
        write_text_atomic(tmp / "README.md", model_card(ck, onnx, quantize))
        # mkdtemp and the atomic writers create owner-only entries; an export is to share
        for entry in [tmp, *tmp.iterdir()]:
            entry.chmod((0o777 if entry.is_dir() else 0o666) & ~umask())
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("exported %s -> %s", ck.path, out)
    return out
