"""Issue 22's lever table: the real recipe (``experiment=real_umass``) with one lever
changed per row, every row under the same protocol (3-fold cross-fit, settings chosen out
of fold, ``val`` only to report).

    python experiments/real_data/levers.py [NAME ...] [--out outputs/real_data/levers]

Without names every lever is run; a lever whose run folder already holds ``metrics.json``
is read, not trained again (a cut-off sweep resumes). Each run is ``geoloc-train`` in its
own process. Writes ``experiments/real_data/levers.md`` with every lever that has a run,
the recipe's row first: accuracy and macro-F1 of the fused model, the share of tweets
assigned their correct country under the 90 % policy (own thresholds and pool), the
countries certified on their own, the countries assigned >= 20 times on ``val`` below
90 % precision (the done-criterion's check), and the run's minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "outputs" / "real_data" / "levers"
TABLE = Path(__file__).with_name("levers.md")

#: name -> (what it changes, overrides of experiment=real_umass); "recipe" is the baseline
LEVERS: dict[str, tuple[str, list[str]]] = {
    "recipe": ("the recipe the levers start from (5 epochs, length-grouped, bf16 training, "
               "location_emoji tokenizer)", []),
    "epochs8": ("8 epochs, with the speed settings (the out-of-fold loss was lowest at 5)",
                ["trainer.max_epochs=8"]),
    "before": ("the recipe before issue 22: fp32, random batches, 8 epochs",
               ["trainer.precision=32-true", "data.group_by_length=false",
                "trainer.max_epochs=8"]),
    "layers6": ("6 encoder layers instead of 3", ["model.encoder_layers=6"]),
    "layers4": ("4 encoder layers instead of 3", ["model.encoder_layers=4"]),
    "no_fusion": ("transformer alone (no char n-gram fusion)", ["~fusion"]),
    "class_balance": ("class-balanced loss, weights count^-0.5",
                      ["model.class_balance=0.5"]),
    "focal": ("focal loss, gamma 2", ["model.focal_gamma=2.0"]),
    "synthetic_mix": ("synthetic profiles in train, 0.25 per real row",
                      ["data=umass_mix", "data.source.synthetic_ratio=0.25"]),
    "unfrozen": ("word embeddings trained too (not frozen)",
                 ["model.freeze_word_embeddings=false"]),
    "whole_profile": ("whole-profile encoding (attention over texts, 64 tokens each; a "
                      "tweet is one text)", ["model.text_pooling=attention"]),
    "language_balance": ("language-balanced loss: rows weighted P(country given language)^-0.5",
                         ["model.language_balance=0.5"]),
    "tweet_normalisation": ("tweet normalisation in the tokenizer: links, @handles, "
                            "elongations (tokenizer=tweet)",
                            ["tokenizer=tweet"]),
    "layers6_folds2": ("6 encoder layers, 2 folds instead of 3 (fold models on half the "
                       "rows; the same training time as 3 folds of 3 layers)",
                       ["model.encoder_layers=6", "crossfit.folds=2"]),
    "soup": ("the fold models' weights averaged (a model soup) deployed instead of a refit",
             ["crossfit.deploy=soup"]),
    "layers6_soup": ("6 encoder layers, the fold models' averaged weights deployed (no refit)",
                     ["model.encoder_layers=6", "crossfit.deploy=soup"]),
    "mix_soup": ("synthetic profiles in train (0.25 per real row), the fold models' averaged "
                 "weights deployed (no refit)",
                 ["data=umass_mix", "data.source.synthetic_ratio=0.25", "crossfit.deploy=soup"]),
    "places": ("place evidence as a third fusion expert: the countries of the places a "
               "tweet names (the location resolver's gazetteer), weight chosen out of fold "
               "in 0-6; on the tweet tokenizer (the recommended recipe now)", ["tokenizer=tweet",
                                                  "fusion.place_weights=[0,0.5,1,2,3,4,6]"]),
    "top_rows": ("the unfrozen top of the embeddings: a trained correction of the frozen "
                 "rows of the 2,000 tokens most frequent in each model's train rows; on the "
                 "recipe (tweet tokenizer, place expert)",
                 ["tokenizer=tweet", "fusion.place_weights=[0,0.5,1,2,3,4,6]",
                  "model.tune_top_rows=2000"]),
}

#: The recipe the rows changed one lever of: experiment=real_umass as it was before the
#: table chose the tweet tokenizer and then the place expert (row places is the recipe now).
BASE = ["tokenizer=location_emoji", "fusion.place_weights=[0]"]

#: Rows whose run shared the 2 cores with tests for a few minutes: their minutes are high.
DISTURBED = {"focal", "synthetic_mix", "tweet_normalisation"}


def run(name: str, out: Path) -> Path:
    """The run folder of lever ``name``, trained unless it already holds its metrics."""
    folder = out / name
    if (folder / "metrics.json").is_file():
        return folder
    overrides = LEVERS[name][1]
    # the base every row ran on; a lever that sets one of its keys replaces it
    base = [b for b in BASE if b.split("=")[0] not in {o.split("=")[0] for o in overrides}]
    cmd = [str(Path(sys.executable).with_name("geoloc-train")), "experiment=real_umass",
           *base, *overrides, f"hydra.run.dir={folder}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": os.environ.get("WANDB_MODE", "offline")}
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(out / f"{name}.log", "w", encoding="utf-8") as log:
        done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    if done.returncode:
        raise SystemExit(f"{name}: geoloc-train failed (rc {done.returncode}); see "
                         f"{out / (name + '.log')}")
    (folder / "wall_seconds.txt").write_text(f"{time.perf_counter() - start:.0f}\n")
    return folder


def row(name: str, folder: Path) -> dict:
    """One table row from a run's report (summary.json, per_class.csv)."""
    s = json.loads((folder / "report" / "summary.json").read_text())["scalars"]
    pc = pd.read_csv(folder / "report" / "per_class.csv")
    low = pc[(pc["is_country"]) & (pc["assigned"] >= 20) & (pc["precision_abstain"] < 0.9)]
    oof_acc, oof_loss, oof_correct = _out_of_fold(folder)
    wall = folder / "wall_seconds.txt"
    m = json.loads((folder / "metrics.json").read_text())
    minutes = float(wall.read_text()) / 60 if wall.is_file() else m.get("minutes", float("nan"))
    fused_loss = m["metrics"].get("fusion/calib_nll")
    return {
        "lever": name, "what": LEVERS[name][0],
        "accuracy": f"{100 * s['accuracy']:.1f} ± {100 * s['accuracy_se']:.1f}",
        "macro-F1": f"{100 * s['macro_f1']:.1f} ± {100 * s['macro_f1_se']:.1f}",
        "correct country": (f"{100 * s['correct_country_rate']:.1f} ± "
                            f"{100 * s['correct_country_rate_se']:.1f}"),
        "precision": (f"{100 * s['country_precision']:.1f}"
                      if s.get("country_precision") is not None else "–"),
        "certified alone": int(s["countries_certified_own"]),
        "≥ 20 assigned, < 90 %": ", ".join(low["class"]) or "none",
        "out-of-fold: accuracy / loss / correct country": f"{oof_acc} / {oof_loss} / {oof_correct}",
        "fused out-of-fold loss": f"{fused_loss:.3f}" if fused_loss is not None else "–",
        "minutes": f"{minutes:.1f}" + ("*" if name in DISTURBED else ""),
    }


def ensemble_row(name: str, folder: Path) -> dict | None:
    """The fold ensemble's figures next to the deployed model's (None for runs made
    before the ensemble was measured)."""
    m = json.loads((folder / "metrics.json").read_text())["metrics"]
    if "ensemble/accuracy" not in m:
        return None
    keys = {"accuracy": ("eval/accuracy", "ensemble/accuracy"),
            "macro-F1": ("eval/macro_f1", "ensemble/macro_f1"),
            "correct country": ("abstain/correct_country_rate",
                                "ensemble/correct_country_rate"),
            "precision": ("abstain/country_precision", "ensemble/country_precision")}
    out = {"lever": name}
    for label, (deployed, ensemble) in keys.items():
        pair = [m.get(deployed), m.get(ensemble)]
        out[f"{label}: deployed → ensemble"] = " → ".join(
            "–" if v is None else f"{100 * v:.1f}" for v in pair)
    return out


def _out_of_fold(folder: Path) -> tuple[str, str, str]:
    """What a lever is chosen on, without ``val``: the fold models' mean accuracy and
    last-epoch loss on their held-out folds (runs with ``crossfit.validate=heldout``), and
    the share of the out-of-fold rows the saved policy assigns their correct country
    (the fused calibration outputs the policy was fitted on: in-sample for the
    thresholds, so optimistic, but the same for every lever)."""
    import numpy as np

    from geoloc.evaluation import Thresholds
    from geoloc.evaluation.calibration import softmax

    m = json.loads((folder / "metrics.json").read_text())["metrics"]
    accs = [v for k, v in m.items() if k.startswith("crossfit/fold") and k.endswith("oof_acc")]
    losses = sorted((int(k.rsplit("epoch", 1)[1]), v) for k, v in m.items()
                    if k.startswith("crossfit/oof_loss/epoch"))
    th = Thresholds.from_json(folder / "model" / "geoloc_thresholds.json")
    with np.load(folder / "model" / "geoloc_calibration.npz", allow_pickle=False) as cal:
        decisions = th.apply(softmax(cal["logits"].astype(np.float64), th.temperature))
        labels = cal["labels"]
    other = th.class_names.index("OTHER") if "OTHER" in th.class_names else -1
    correct = np.mean((decisions == labels) & (decisions >= 0) & (decisions != other))
    return (f"{100 * np.mean(accs):.1f}" if accs else "–",
            f"{losses[-1][1]:.3f}" if losses else "–", f"{100 * correct:.1f}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help=f"levers to run (default all: {', '.join(LEVERS)})")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--table-only", action="store_true", help="write the table of the runs "
                   "that exist, train nothing")
    a = p.parse_args(argv)
    unknown = [n for n in a.names if n not in LEVERS]
    if unknown:
        raise SystemExit(f"unknown lever(s) {unknown}; known: {', '.join(LEVERS)}")
    if not a.table_only:
        for name in a.names or list(LEVERS):
            run(name, a.out)
    done = [n for n in LEVERS if (a.out / n / "metrics.json").is_file()]
    table = pd.DataFrame([row(n, a.out / n) for n in done]).to_markdown(index=False)
    ensembles = [r for r in (ensemble_row(n, a.out / n) for n in done) if r]
    if ensembles:
        table += ("\n\n## The fold models' ensemble beside the deployed model\n\n"
                  "Runs since the fold ensemble was measured (`ensemble/*` metrics): the K "
                  "fold models' mean log-probabilities on `val`, fused and thresholded like "
                  "the deployed model (which is a refit, or the soup where the row says "
                  "so). K networks to serve instead of one.\n\n"
                  + pd.DataFrame(ensembles).to_markdown(index=False))
    text = ("# Levers on the real recipe (validation split, 777 tweets)\n\n"
            "`python experiments/real_data/levers.py` (see its docstring). One lever per row "
            "against the recommended recipe; ± one standard error. *correct country*: "
            "tweets assigned their true country under the saved 90 % policy; *certified "
            "alone*: countries with their own threshold; *≥ 20 assigned, < 90 %*: "
            "countries assigned at least 20 times on `val` below 90 % precision; "
            "*out-of-fold*: what a lever is chosen on without `val` (the fold models on "
            "their held-out folds; correct country: the saved policy on its own "
            "out-of-fold calibration rows, optimistic but alike for every lever; – for "
            "runs made before the fold models validated on their held-out folds); *fused "
            "out-of-fold loss*: the temperature-scaled log-loss of the fused outputs the "
            "policy is fitted on (what the fusion's weights are chosen by).\n\n"
            "**The choice rule** (written before the last rows ran; it chose the tweet "
            "tokenizer, then the place expert on top of it, the recipe of "
            "`experiment=real_umass` since): the recommended "
            "recipe is the row with the highest out-of-fold correct-country share whose "
            "out-of-fold loss is no worse than the recipe's and whose run takes at most "
            "13.5 minutes (so that `run.sh`, with its baselines, stays within 15); `val` "
            "only reports. Minutes of rows run beside other work are marked *.\n\n"
            + table + "\n")
    TABLE.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
