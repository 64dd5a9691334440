"""What the export and ONNX Runtime (fp32, int8) change, on the real validation tweets.

Runs the same :class:`~geoloc.inference.predictor.Predictor` from the model folder
training wrote (``<run>/model``, PyTorch), from its export folder (PyTorch, ONNX fp32,
ONNX int8) over the validation split of the real-tweet recipe, and reports accuracy and
macro-F1 without abstention, the share assigned its correct country and UNCERTAIN under
the saved policy, the share of decisions that differ from the model folder's, and the
throughput. Then whether plain
``transformers.pipeline("text-classification")`` on the export folder returns the same top
class as ``geoloc-predict``'s ``argmax`` on every row, and the same probability (the
export registers its own pipeline, which applies the fused n-gram model and the
temperature).

    geoloc-export model_dir=MODEL_DIR output=EXPORT onnx=true quantize=true
    python experiments/export/onnx_accuracy.py MODEL_DIR EXPORT > experiments/export/results.md

(``MODEL_DIR``: e.g. ``outputs/real_data/real_only/model``.)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from geoloc.config import compose_config
from geoloc.data.datamodule import labelled_splits
from geoloc.data.sources import UmassTweetsSource
from geoloc.inference.predictor import Predictor
from geoloc.io import markdown_table


def main(model_dir: str, export: str, threads: int = 2) -> str:
    cfg = compose_config(["experiment=real_umass"])
    split = labelled_splits(UmassTweetsSource(), list(cfg.labels.countries),
                            dict(cfg.data.splits), cfg.data.split_seed)[cfg.data.eval_split]
    texts, labels = split["text"], np.array(split["labels"])
    runs = [("model folder, PyTorch", model_dir, {}), ("export, PyTorch", export, {}),
            ("export, ONNX Runtime fp32", export, {"backend": "onnx"}),
            ("export, ONNX Runtime int8", export, {"backend": "onnx", "quantized": True,
                                                        # what the fp32 policy does on it
                                                        "allow_precision_mismatch": True})]
    rows, base, base_probs = [], None, None
    for name, path, kwargs in runs:
        predictor = Predictor.load(path, threads=threads, **kwargs)
        predictor.predict_texts(texts)  # warm-up: kernels per input shape
        start = time.perf_counter()
        pred = predictor.predict_texts(texts)
        seconds = time.perf_counter() - start
        argmax = pred.probabilities.argmax(axis=1)
        decided = pred.decisions >= 0
        if base is None:
            base, base_probs = pred.decisions, pred.probabilities
        rows.append({
            "model": name,
            "accuracy": f"{100 * np.mean(argmax == labels):.2f} %",
            "macro-F1": f"{100 * f1_score(labels, argmax, average='macro'):.2f} %",
            "correct country": f"{100 * np.mean(pred.decisions == labels):.2f} %",
            "UNCERTAIN": f"{100 * np.mean(~decided):.2f} %",
            "decisions differing from the model folder": f"{np.sum(pred.decisions != base)}",
            "max |Δp| vs model folder": f"{np.abs(pred.probabilities - base_probs).max():.1e}",
            "profiles/s": f"{len(texts) / seconds:.0f}",
        })
    from transformers import pipeline

    # the export's own text-classification pipeline (custom_pipelines in config.json):
    # it fuses the n-gram model, if any, and applies the temperature
    clf = pipeline("text-classification", model=export, trust_remote_code=True)
    out = clf(texts, batch_size=64, truncation=True)
    predictor = Predictor.load(export, threads=threads)
    probs = predictor.predict_texts(texts).probabilities
    names = predictor.class_names
    same = sum(r["label"] == names[i] for r, i in zip(out, probs.argmax(axis=1), strict=True))
    gap = max(abs(r["score"] - p) for r, p in zip(out, probs.max(axis=1), strict=True))
    agreement = (f"`pipeline(\"text-classification\", model=EXPORT, trust_remote_code=True)` "
                 f"returns geoloc-predict's top class (`argmax`) on {same} of {len(texts)} "
                 f"rows; its top score differs from geoloc-predict's calibrated probability "
                 f"by at most {gap:.1e}")
    return (f"# Export and ONNX Runtime on the real validation tweets ({len(texts)})\n\n"
            f"`python experiments/export/onnx_accuracy.py MODEL_DIR EXPORT` ({threads} threads, "
            "with the run's fused char n-gram model, if any, in every row).\n\n"
            + markdown_table(pd.DataFrame(rows)) + f"\n\n{agreement}.\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", help="the run's model folder (<run>/model, e.g. "
                        "outputs/real_data/real_only/model)")
    parser.add_argument("export", help="its geoloc-export folder (onnx=true quantize=true)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(main(args.model_dir, args.export, args.threads))
