"""Does the model learn the language instead of the country? Per language group of the
real validation tweets: accuracy, how confident the wrong answers are, and whether a
language's most predicted country is predicted more often than it is true.

    python experiments/real_data/language_groups.py [MODEL_DIR]

``MODEL_DIR``: the deployed model of the recommended recipe (default
``outputs/real_data/real_only/model``, what ``run.sh`` writes). Groups: the writing system
(:func:`geoloc.inference.population.script_of`) and the language py3langid (a maintained
langid.py, its model inside the package) detects; languages with fewer than
``--min-tweets`` tweets are pooled as ``(other)``. Writes ``language_groups.md`` and
``language_groups.png`` beside this file. Reads only ``val``, to report: nothing here
chooses a setting.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def group_table(groups: list[str], names: list[str], labels: np.ndarray,
                probs: np.ndarray, decisions: np.ndarray) -> pd.DataFrame:
    """One row per group: tweets, accuracy (argmax), the wrong answers' mean top
    probability and share at >= 0.9, the share assigned its correct country under the
    policy and the precision of those assignments, and the group's most predicted
    country with its share of predictions against its share of the truth."""
    top, conf = probs.argmax(axis=1), probs.max(axis=1)
    rows = []
    frame = pd.DataFrame({"group": groups, "y": labels, "top": top, "conf": conf,
                          "dec": decisions})
    for group, g in frame.groupby("group", sort=False):
        wrong = g[g["top"] != g["y"]]
        assigned = g[g["dec"] >= 0]
        mode = int(g["top"].mode().iloc[0])
        rows.append({
            "group": group, "tweets": len(g),
            "accuracy": f"{100 * np.mean(g['top'] == g['y']):.1f} %",
            "wrong answers' mean top p": f"{wrong['conf'].mean():.2f}" if len(wrong) else "–",
            "wrong at p ≥ 0.9": (f"{100 * np.mean(wrong['conf'] >= 0.9):.0f} % of "
                                 f"{len(wrong)}" if len(wrong) else "–"),
            "assigned correct country": f"{100 * np.mean(g['dec'] == g['y']):.1f} %",
            "precision of assignments": (
                f"{100 * np.mean(assigned['dec'] == assigned['y']):.0f} % of {len(assigned)}"
                if len(assigned) else "–"),
            "most predicted: predicted / true share": (
                f"{names[mode]} {100 * np.mean(g['top'] == mode):.0f} % / "
                f"{100 * np.mean(g['y'] == mode):.0f} %"),
        })
    return pd.DataFrame(rows).sort_values("tweets", ascending=False)


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", default=str(ROOT / "outputs/real_data/real_only/model"))
    p.add_argument("--min-tweets", type=int, default=15)
    p.add_argument("--name", default="language_groups", help="stem of the .md and .png "
                   "written beside this file (another model: another name)")
    a = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from geoloc.config import compose_config
    from geoloc.data.datamodule import labelled_splits
    from geoloc.data.sources import UmassTweetsSource
    from geoloc.inference.population import script_of
    from geoloc.inference.predictor import Predictor
    from geoloc.io import markdown_table
    from geoloc.model.module import detect_languages

    cfg = compose_config(["experiment=real_umass"])
    val = labelled_splits(UmassTweetsSource(), list(cfg.labels.countries),
                          dict(cfg.data.splits), cfg.data.split_seed)[cfg.data.eval_split]
    texts, labels = val["text"], np.asarray(val["labels"])
    predictor = Predictor.load(a.model, threads=2)
    pred = predictor.predict_texts(texts)
    names = list(predictor.class_names)
    if names != [*cfg.labels.countries, names[-1]]:  # the labels index the recipe's classes
        raise SystemExit(f"{a.model}: its classes differ from experiment=real_umass's")
    langs = detect_languages(texts)  # what model.language_balance weights by
    counts = pd.Series(langs).value_counts()
    kept = set(counts[counts >= a.min_tweets].index)
    langs = [lang if lang in kept else "(other)" for lang in langs]
    scripts = [script_of(t) for t in texts]
    by_lang = group_table(langs, names, labels, pred.probabilities, pred.decisions)
    by_script = group_table(scripts, names, labels, pred.probabilities, pred.decisions)
    whole = group_table(["all"] * len(texts), names, labels, pred.probabilities,
                        pred.decisions)

    fig, ax = plt.subplots(1, 2, figsize=(12, 4))
    order = by_lang["group"].tolist()
    acc = [float(v.split()[0]) for v in by_lang["accuracy"]]
    conf = [float(v) if v != "–" else np.nan for v in by_lang["wrong answers' mean top p"]]
    ax[0].bar(order, acc)
    ax[0].set_ylabel("accuracy, %")
    ax[0].set_title("accuracy by detected language (val)")
    ax[1].bar(order, conf, color="tab:red")
    ax[1].set_ylabel("mean top probability of wrong answers")
    ax[1].set_title("how sure the wrong answers are")
    for axis in ax:
        axis.tick_params(axis="x", rotation=60)
    fig.tight_layout()
    fig.savefig(HERE / f"{a.name}.png", dpi=110)
    plt.close(fig)

    text = "\n".join([
        f"# Accuracy and confidence by language group ({len(texts)} validation tweets)",
        "",
        f"`python experiments/real_data/language_groups.py MODEL_DIR` on the model "
        f"`{Path(a.model).parent.name}/{Path(a.model).name}`; languages detected by "
        f"py3langid (fewer than {a.min_tweets} tweets: `(other)`). *most predicted: "
        "predicted / true share*: the group's most predicted country, the share of its "
        "tweets predicted as that country against the share that truly is: a predicted "
        "share well above the true one is the model reading the language as the "
        "country.",
        "",
        "## All tweets", "", markdown_table(whole), "",
        "## By detected language", "", markdown_table(by_lang), "",
        "## By writing system", "", markdown_table(by_script), "",
        f"![accuracy and wrong-answer confidence by language]({a.name}.png)", "",
    ])
    (HERE / f"{a.name}.md").write_text(text, encoding="utf-8")
    print(text)
    return text


if __name__ == "__main__":
    main()
