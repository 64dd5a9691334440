"""What ``max_length`` other than the trained one does to the certified decisions: the
real validation tweets predicted by the deployed model, its saved policy unchanged, with
inputs cut at several lengths.

    python experiments/real_data/max_length.py [MODEL_DIR]

``MODEL_DIR``: the recipe's deployed model (default
``outputs/real_data/levers/places/model``). Writes ``max_length.md`` beside this file;
the predictor's warning for another ``max_length`` quotes it
(:data:`geoloc.inference.predictor.MAX_LENGTH_MEASURED`). Reads only ``val``, to
report: nothing here chooses a setting.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LENGTHS = (8, 16, 32, 48, 64, 128)


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?",
                   default=str(ROOT / "outputs/real_data/levers/places/model"))
    a = p.parse_args(argv)
    from geoloc.config import compose_config
    from geoloc.data.datamodule import labelled_splits
    from geoloc.data.sources import UmassTweetsSource
    from geoloc.inference.predictor import Predictor
    from geoloc.io import markdown_table
    from geoloc.labels import OTHER
    from geoloc.model.tokenization import encode_texts, token_count

    logging.getLogger("geoloc").setLevel(logging.ERROR)  # the warning this measures
    cfg = compose_config(["experiment=real_umass"])
    val = labelled_splits(UmassTweetsSource(), list(cfg.labels.countries),
                          dict(cfg.data.splits), cfg.data.split_seed)[cfg.data.eval_split]
    texts, labels = val["text"], np.asarray(val["labels"])
    rows = []
    trained = None
    for length in LENGTHS:
        predictor = Predictor.load(a.model, threads=2, max_length=length)
        trained = trained or Predictor.load(a.model, threads=2).max_length
        names = list(predictor.class_names)
        other = names.index(OTHER)
        pred = predictor.predict_texts(texts)
        dec = pred.decisions
        country = (dec >= 0) & (dec != other)
        tokens = np.array([token_count(x) for x in encode_texts(
            predictor.tokenizer, texts, 4096, predictor.per_text)])
        rows.append({
            "max_length": length, "trained": "yes" if length == trained else "",
            "tweets cut": f"{100 * np.mean(tokens > length):.0f} %",
            "accuracy": f"{100 * np.mean(pred.probabilities.argmax(1) == labels):.1f} %",
            "assigned a country": f"{100 * country.mean():.1f} %",
            "precision of assigned countries": (
                f"{100 * np.mean(dec[country] == labels[country]):.1f} %"
                if country.any() else "–"),
            "correct country": f"{100 * np.mean(country & (dec == labels)):.1f} %",
        })
    table = pd.DataFrame(rows)
    text = "\n".join([
        f"# Another max_length than the trained one ({len(texts)} validation tweets)",
        "",
        f"`python experiments/real_data/max_length.py` on `{Path(a.model).parent.name}/"
        f"{Path(a.model).name}` (trained at {trained} tokens), its saved policy "
        "unchanged. *tweets cut*: tweets longer than the length; *precision of assigned "
        "countries*: what the 90 % promise is about (the policy's target).",
        "",
        markdown_table(table), "",
        "The policy's thresholds were certified on probabilities of inputs cut at the "
        "trained length; at another length the predictor warns with these figures "
        "(`geoloc.inference.predictor.MAX_LENGTH_MEASURED`).", "",
    ])
    (HERE / "max_length.md").write_text(text, encoding="utf-8")
    print(text)
    return text


if __name__ == "__main__":
    main()
