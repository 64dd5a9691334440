"""The model card (``README.md`` of a bundle and of an export): what the model is, the
data, the metrics of its run, the guarantee it keeps, and how to use it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from geoloc.bundle.files import FUSION_FILE, MODELING_FILE, ONNX_FILE, ONNX_INT8_FILE
from geoloc.evaluation import Thresholds
from geoloc.model.ngram import Fusion

#: The run metrics the card shows (full metric names), with their labels.
CARD_METRICS = {
    "eval/accuracy": "accuracy, no abstention", "eval/macro_f1": "macro-F1, no abstention",
    "abstain/correct_country_rate": "profiles assigned their correct country",
    "abstain/uncertain_rate": "profiles UNCERTAIN",
    "abstain/country_precision": "precision of assigned countries",
    "abstain/countries_with_threshold": "countries with a threshold",
}


def model_card(info: dict[str, Any], th: Thresholds, fusion: Fusion | None,
               export: bool = False, onnx: bool = False, quantized: bool = False) -> str:
    """The card of a bundle whose model description is ``info`` (see
    :mod:`geoloc.bundle`), policy ``th`` and fusion ``fusion``; ``export`` when the folder also holds what
    plain ``transformers`` loads, ``onnx``/``quantized`` when it holds the graphs."""
    hp, data, summary = info["module"], info["data"], info.get("metrics") or {}
    metrics = "\n".join(f"| {label} | {summary[k]:.4g} |" for k, label in CARD_METRICS.items()
                        if isinstance(summary.get(k), (int, float)))
    metrics = ("| metric | value |\n|---|---|\n" + metrics) if metrics else (
        "The run recorded no evaluation metrics; see the run's W&B page.")
    rows = []
    for name in th.class_names:
        t = th.thresholds[name]
        cal = th.calibration.get(name)
        rows.append(f"| {name} | {th.guarantee(name)} | "
                    f"{'never assigned' if t == float('inf') else f'{t:.4f}'}"
                    f" | {cal.n_support if cal else ''} |")
    fusion_note = ""
    if fusion is not None:
        places = (f" and with place evidence (weight {fusion.place_weight:g}: the countries "
                  "of the places a text names, from geoloc's gazetteer)"
                  if fusion.place_weight else "")
        needs = ("all three (it needs scikit-learn, and geoloc for the places)" if places
                 else "both (it needs scikit-learn)")
        fusion_note = (
            f"\n**Fused model.** The thresholds apply to the transformer fused with a char "
            f"n-gram model (`{FUSION_FILE}`, weight {fusion.weight:g} on the transformer)"
            f"{places}. An export's `text-classification` pipeline applies {needs}; "
            "`AutoModelForSequenceClassification` alone returns the transformer's part.\n")
    onnx_note = ""
    if onnx:
        onnx_note = (f"\n`{ONNX_FILE}` (fp32)" + (f" and `{ONNX_INT8_FILE}` (int8 dynamic "
                     "quantisation)" if quantized else "") +
                     " take `input_ids` and `attention_mask` (right-padded) and return "
                     "`logits` and `embedding` (the pooled profile embedding); "
                     "`geoloc-predict model_dir=THIS_FOLDER backend=onnx` uses them. They "
                     "use ONNX Runtime's fused transformer operators (`com.microsoft` "
                     "domain), so they run in ONNX Runtime.\n")
        if quantized:
            onnx_note += (
                f"\nThis folder's thresholds were fitted on {th.scored_with} outputs. The "
                "certificate is about the graph it was fitted on: `geoloc-predict` pairs "
                "fp32 thresholds only with PyTorch or the fp32 graph, int8 ones only with "
                "`backend=onnx quantized=true`, and refuses the rest. For the int8 graph, fit "
                "them on a labelled sample with `geoloc-calibrate model_dir=THIS_FOLDER "
                "backend=onnx quantized=true input=LABELLED output=NEW_FOLDER`.\n")
    transformers_use = f"""
```python
from transformers import pipeline
clf = pipeline("text-classification", model="THIS_FOLDER", trust_remote_code=True,
               top_k=3)
clf("Bom dia! ☀️ | Praia hoje 🇧🇷", truncation=True)
```

`trust_remote_code=True` runs `{MODELING_FILE}` from this folder (mean pooling + a
linear head on a BERT encoder, and the pipeline that fuses the n-gram model, if any, and
applies the temperature; read it). The pipeline's scores are the calibrated probabilities
and its top class is `geoloc-predict`'s `argmax`.
""" if export else ""
    reading = (f"the bio and each caption read as their own sequences of up to "
               f"{data['max_length']} tokens, pooled by {hp['text_pooling']}"
               if hp.get("text_pooling") else f"maximum {data['max_length']} tokens")
    recal = info.get("recalibrated")
    recal = (f" of the population of `{Path(recal['input']).name}` (geoloc-calibrate)"
             if recal else " (training)")
    joint = (" — for all certified countries at once" if th.policy.simultaneous else
             " — for each country separately")
    return f"""---
library_name: transformers
pipeline_tag: text-classification
tags: [geoloc, geolocation, country, abstention]
---

# geoloc country classifier

Predicts the country of a social-media profile from its bio and most recent post captions
(joined with ` | `), and abstains (UNCERTAIN) unless the country's calibrated probability
reaches a threshold certified to keep that country's precision >= {th.target:.0%}.

- Backbone: `{hp['backbone']}` cut to {hp['encoder_layers']} layers, `{hp['pooling']}`
  pooling, tokenizer variant `{hp['tokenizer_variant']}` ({len(info.get('added_tokens', []))}
  added flag and location-emoji tokens), {reading}.
- Classes: {len(th.class_names)} ({', '.join(th.class_names)}).
- Training data: `{data.get('source', 'unknown')}`, splits {data.get('splits')}.
- Written {datetime.now(UTC).isoformat(timespec='seconds')}.

## Metrics (evaluated split: `{data.get('eval_split', '?')}`)

{metrics}

## The guarantee

Calibrated probabilities are `softmax(logits / T)` with T = {th.temperature:.4f}. A
profile gets its top country c when that probability is >= the threshold t_c below, else
UNCERTAIN; no threshold is below the floor {th.policy.min_probability:g}. Method:
{th.method}, target {th.target:.0%}, delta {th.delta:g} ({th.policy.guarantee}), fitted on
{th.n_calibration} calibration profiles{recal}, scored by the {th.scored_with} graph.
What is guaranteed is a PAC statement, not a promise about any one assignment: kind
`class`: with probability >= 1 - delta over the draw of the calibration sample, country
c's precision on new profiles drawn like the calibration population is >=
target{joint}; `pooled`: the same statement for all `pooled`
countries together, none for each alone; `none`: never assigned. On another population
it holds only after `geoloc-calibrate` on a labelled sample of that population.
{fusion_note}
| class | guarantee | threshold | calibration support |
|---|---|---|---|
{chr(10).join(rows)}

## Use

`geoloc-predict model_dir=THIS_FOLDER input=profiles.parquet output=labels.parquet` applies
the thresholds (UNCERTAIN); `geoloc-eval model_dir=THIS_FOLDER` evaluates on labelled data;
`geoloc-export model_dir=THIS_FOLDER output=EXPORT` adds what plain `transformers` and ONNX
Runtime load. Every command checks the folder against `geoloc_bundle.json` (each file's
SHA-256) and refuses it if a file is missing, extra or changed.
{transformers_use}{onnx_note}"""
