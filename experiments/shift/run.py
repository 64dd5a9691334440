"""Shift benchmark: what the 90 % promise does on populations unlike the calibration one,
with the shipped thresholds, with the floor and the population check, and after
``geoloc-calibrate`` on 100 / 300 / 1,000 labelled rows of each population.

    python experiments/shift/run.py [MODEL_DIR] [--repeats 5]

MODEL_DIR: the real recipe's model folder (``experiments/real_data/run.sh`` writes
``outputs/real_data/real_only/model``). Populations (labels known for every row):

- ``umass_val``: held-out tweets of the *training* population (the real tweets' ``val``
  split, never trained on): the control, where nothing should change or fire;
- ``afrisenti``: 6,754 tweets in 14 African languages (``data/``, CC BY 4.0, see its
  README): only NG is in the label set, every other row is OTHER;
- ``umass_reweighted``: the ``val`` tweets with the four largest countries (US, BR, ID,
  JP) cut to 15 % of their rows by a hash of the id: another country mix, same texts;
- ``synthetic_shift``: synthetic profiles from the generator with its population knobs
  turned (a flatter country mix, 20 % OTHER, 25 % diaspora writing in another country's
  language, 15 % travellers).

For each population: per-country precision and the share of rows assigned their correct
country under (1) the shipped thresholds, (2) the same with the floor, plus whether the
population check fires; (3) after recalibration (temperature and thresholds refitted
with the model's policy settings, its temperature and the floor, exactly what
``geoloc-calibrate`` fits by default)
on n labelled rows drawn at random, scored on all the other rows, repeated with
``--repeats`` draws. "Worst" is the lowest precision among countries assigned >= 20
times on the scored rows, with its 95 % Clopper-Pearson interval. False alarms of the
population check: 20 random halves of ``umass_val`` against the shipped model's record,
and, for each recalibrated model, its audit rows against its own calibration rows.

Writes ``results.md``, ``results.csv`` and ``results.png`` beside this file; the model's
outputs per population are cached under ``outputs/shift``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from geoloc.bundle import open_model  # noqa: E402
from geoloc.data.schema import profile_text  # noqa: E402
from geoloc.data.sources import UmassTweetsSource  # noqa: E402
from geoloc.data.splits import keyed_unit, record_split  # noqa: E402
from geoloc.evaluation.calibration import softmax  # noqa: E402
from geoloc.evaluation.certify import fit_policy  # noqa: E402
from geoloc.evaluation.stats import clopper_pearson  # noqa: E402
from geoloc.inference.population import PopulationProfile, check_population  # noqa: E402
from geoloc.inference.predictor import Predictor  # noqa: E402
from geoloc.io import read_jsonl  # noqa: E402
from geoloc.labels import OTHER  # noqa: E402
from geoloc.synthetic import SyntheticConfig, generate_profiles  # noqa: E402

HERE = Path(__file__).resolve().parent
MIN_ASSIGNED = 20
TARGET = 0.90


def populations(bundle) -> dict[str, dict]:
    """name -> {texts, codes} (codes: the true country codes)."""
    data = bundle.data
    fractions = {k: float(v) for k, v in data["splits"].items()}
    seed = int(data["split_seed"])
    rows = list(read_jsonl(UmassTweetsSource().canonical_jsonl()))
    split = [record_split(r, seed, fractions) for r in rows]
    text = [profile_text(r["bio"], r["captions"]) for r in rows]
    val = [i for i, s in enumerate(split) if s == "val"]
    pops = {"umass_val": {"texts": [text[i] for i in val],
                          "codes": [rows[i]["country"] for i in val],
                          "ids": [str(rows[i]["id"]) for i in val]}}
    afri = pd.read_csv(HERE / "data" / "afrisenti_sample.tsv", sep="\t", dtype=str,
                       keep_default_na=False, quoting=3)
    pops["afrisenti"] = {"texts": afri["text"].tolist(), "codes": afri["country"].tolist(),
                         "ids": afri["id"].tolist()}
    big = {"US", "BR", "ID", "JP"}
    keep = [i for i in val if rows[i]["country"] not in big
            or keyed_unit("reweight", rows[i]["id"]) < 0.15]
    pops["umass_reweighted"] = {"texts": [text[i] for i in keep],
                                "codes": [rows[i]["country"] for i in keep],
                                "ids": [str(rows[i]["id"]) for i in keep]}
    countries = bundle.class_names[:-1]
    config = SyntheticConfig(zipf_exponent=0.3, other_share=0.2, diaspora_share=0.25,
                             traveller_share=0.15)
    synth = list(generate_profiles(3000, seed=11, countries=countries, config=config))
    pops["synthetic_shift"] = {"texts": [profile_text(r["bio"], r["captions"]) for r in synth],
                               "codes": [r["country"] for r in synth],
                               "ids": [str(r["id"]) for r in synth]}
    pops["_reference_texts"] = {"texts": [text[i] for i, s in enumerate(split)
                                          if s in ("train", "calib")]}
    return pops


def scored(predictor: Predictor, name: str, texts: list[str], cache: Path) -> np.ndarray:
    key = hashlib.sha256(("\n".join(texts) + str(predictor.model_sha256)).encode()
                         ).hexdigest()[:16]
    path = cache / f"{name}-{key}.npy"
    if path.exists():
        return np.load(path)
    t = time.time()
    logits = predictor.logits(texts).astype(np.float64)
    print(f"  scored {name}: {len(texts)} rows in {time.time() - t:.0f} s", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, logits)
    return logits


def score_policy(th, logits: np.ndarray, labels: np.ndarray) -> dict:
    """Correct-country share, country precision and the worst country assigned >= 20
    times (precision, 95 % CI) on these rows under policy ``th``."""
    names = th.class_names
    other = names.index(OTHER)
    dec = th.apply(softmax(logits, th.temperature))
    country = (dec >= 0) & (dec != other)
    out = {"rows": len(labels), "correct_country": float((country & (dec == labels)).mean()),
           "assigned_country": float(country.mean()),
           "country_precision": float((dec[country] == labels[country]).mean())
           if country.any() else np.nan}
    worst, below = None, []
    for c, name in enumerate(names):
        k = int((dec == c).sum())
        if k < MIN_ASSIGNED:
            continue
        r = int(((dec == c) & (labels == c)).sum())
        p = r / k
        ci = (float(clopper_pearson(r, k, 0.025, "lower")),
              float(clopper_pearson(r, k, 0.025, "upper")))
        if p < TARGET:
            below.append(f"{name} {100 * p:.0f}% of {k}")
        if worst is None or p < worst[1]:
            worst = (name, p, ci, k)
    out["below_target"] = "; ".join(below)
    out["n_below"] = len(below)
    out["worst"] = (f"{worst[0]} {100 * worst[1]:.1f} % [{100 * worst[2][0]:.0f}–"
                    f"{100 * worst[2][1]:.0f}] of {worst[3]}") if worst else "–"
    out["worst_precision"] = worst[1] if worst else np.nan
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?", default="outputs/real_data/real_only/model")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    ap.add_argument("--floor", type=float, default=None,
                    help="floor (default: evaluation.policy.min_probability of the config)")
    ap.add_argument("--cache", default="outputs/shift")
    ap.add_argument("--out", default=str(HERE))
    args = ap.parse_args(argv)
    started = time.time()
    bundle = open_model(args.model)
    if args.floor is None:
        from geoloc.config import compose_config

        args.floor = float(compose_config().evaluation.policy.min_probability)
    predictor = Predictor.load(bundle, threads=2)
    names = bundle.class_names
    index = {n: i for i, n in enumerate(names)}
    shipped = bundle.thresholds()
    floored = replace(shipped, policy=replace(shipped.policy, min_probability=args.floor))
    recal_policy = floored.policy
    pops = populations(bundle)
    ref_texts = pops.pop("_reference_texts")["texts"]
    reference = bundle.population()
    if reference is None:  # a model saved before the record: rebuild it the same way
        cal = np.load(bundle.calibration_file(), allow_pickle=True)
        reference = PopulationProfile.of(softmax(cal["logits"], shipped.temperature),
                                         ref_texts[: len(cal["logits"])], names,
                                         source="out-of-fold outputs (rebuilt)")
        # the script mix of all train + calib texts (the rows the OOF outputs are of)
        reference.script_mix = PopulationProfile.of(
            np.ones((len(ref_texts), 1)), ref_texts, ["x"]).script_mix
    rows, alarms = [], []
    rng = np.random.default_rng(0)
    for name, pop in pops.items():
        logits = scored(predictor, name, pop["texts"], Path(args.cache))
        labels = np.array([index.get(str(c).upper(), index[OTHER]) for c in pop["codes"]])
        probs = softmax(logits, shipped.temperature)
        check = check_population(reference, PopulationProfile.of(probs, pop["texts"], names))
        base = {"population": name, "population_check": "fires" if check.fired else "silent",
                **{f"tv_{k}": round(v, 3) for k, v in check.distances.items()}}
        rows.append({**base, "policy": "shipped", **score_policy(shipped, logits, labels)})
        rows.append({**base, "policy": f"shipped + floor {args.floor:g}",
                     **score_policy(floored, logits, labels)})
        if name == "umass_val":
            n_half = len(labels) // 2
            fired = 0
            for _ in range(20):
                pick = rng.permutation(len(labels))[:n_half]
                obs = PopulationProfile.of(probs[pick], [pop["texts"][i] for i in pick], names)
                fired += check_population(reference, obs).fired
            alarms.append({"test": "umass_val halves vs the shipped record", "splits": 20,
                           "rows checked": n_half, "false alarms": fired})
        for n in args.sizes:
            if n > len(labels) - 100:
                continue
            results, fired = [], 0
            reps = max(args.repeats, 20 if n == max(args.sizes) else 0)
            for _ in range(reps):
                perm = rng.permutation(len(labels))
                cal, rest = perm[:n], perm[n:]
                th = fit_policy(logits[cal], labels[cal], names, recal_policy,
                                temperature=shipped.temperature)  # geoloc-calibrate's default
                results.append(score_policy(th, logits[rest], labels[rest]))
                p_after = softmax(logits, th.temperature)
                own = PopulationProfile.of(p_after[cal], [pop["texts"][i] for i in cal], names)
                obs = PopulationProfile.of(p_after[rest], [pop["texts"][i] for i in rest],
                                           names)
                fired += check_population(own, obs).fired
            worst_i = int(np.nanargmin([r["worst_precision"] if np.isfinite(
                r["worst_precision"]) else 2 for r in results]))
            rows.append({**base, "population_check": f"own record: fires {fired}/{reps}",
                         "policy": f"calibrated on {n}",
                         "rows": results[0]["rows"],
                         "correct_country": float(np.mean([r["correct_country"] for r in results])),
                         "assigned_country": float(np.mean([r["assigned_country"] for r in results])),
                         "country_precision": float(np.nanmean([r["country_precision"]
                                                                for r in results])),
                         "n_below": int(sum(r["n_below"] for r in results)),
                         "below_target": " | ".join(r["below_target"] for r in results
                                                    if r["below_target"]),
                         "worst": results[worst_i]["worst"],
                         "worst_precision": results[worst_i]["worst_precision"],
                         "repeats": reps})
            if n == max(s for s in args.sizes if s <= len(labels) - 100):
                alarms.append({"test": f"{name}: audit rows vs the record of a model "
                               f"calibrated on {n} of them", "splits": reps,
                               "rows checked": len(labels) - n, "false alarms": fired})
        print(f"  {name}: done ({time.time() - started:.0f} s)", flush=True)
    table = pd.DataFrame(rows)
    out = Path(args.out)
    table.to_csv(out / "results.csv", index=False)
    write_markdown(table, pd.DataFrame(alarms), out / "results.md", args, reference,
                   time.time() - started)
    figure(table, out / "results.png")
    print((out / "results.md").read_text(encoding="utf-8"))
    return 0


def write_markdown(table: pd.DataFrame, alarms: pd.DataFrame, path: Path, args, reference,
                   seconds: float) -> None:
    show = table.assign(
        correct_country=lambda d: (100 * d["correct_country"]).round(1),
        assigned_country=lambda d: (100 * d["assigned_country"]).round(1),
        country_precision=lambda d: (100 * d["country_precision"]).round(1))
    cols = ["population", "policy", "rows", "population_check", "correct_country",
            "assigned_country", "country_precision", "n_below", "worst"]
    lines = [
        "# Shift benchmark: the 90 % promise on populations unlike the calibration one",
        "",
        f"Model: `{args.model}` (the real recipe). Floor {args.floor:g}. Recalibration: "
        f"{', '.join(map(str, args.sizes))} labelled rows drawn at random, scored on all "
        f"other rows of the population, {args.repeats} draws (20 at the largest size); "
        "*correct country* = share of scored rows assigned their true country (%), "
        "*assigned* = share assigned any country, *country precision* over all country "
        f"assignments; *n below* = countries assigned ≥ {MIN_ASSIGNED} times below 90 % "
        "precision (summed over draws); *worst* = the lowest precision of a country assigned "
        f"≥ {MIN_ASSIGNED} times, with its 95 % Clopper–Pearson interval (over all draws). "
        f"Reference population of the check: {reference.source} ({reference.n} rows). "
        f"Run time {seconds / 60:.1f} min on 2 CPU cores.",
        "",
        show[cols].to_markdown(index=False),
        "",
        "## Population check: false alarms on rows of the calibration population",
        "",
        alarms.to_markdown(index=False),
        "",
        "Countries below target per draw (calibrated rows):",
        "",
    ]
    for _, r in table.iterrows():
        if r["n_below"]:
            lines.append(f"- {r['population']}, {r['policy']}: {r['below_target']}")
    lines += ["", "![results](results.png)", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def figure(table: pd.DataFrame, path: Path) -> None:
    pops = list(dict.fromkeys(table["population"]))
    policies = list(dict.fromkeys(table["policy"]))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    width = 0.8 / len(policies)
    for j, pol in enumerate(policies):
        sub = table[table["policy"] == pol].set_index("population").reindex(pops)
        x = np.arange(len(pops)) + j * width
        axes[0].bar(x, 100 * sub["correct_country"], width, label=pol)
        axes[1].bar(x, 100 * sub["worst_precision"].fillna(0), width, label=pol)
    for ax, title in ((axes[0], "rows assigned their correct country (%)"),
                      (axes[1], f"worst country precision (assigned ≥ {MIN_ASSIGNED}), %")):
        ax.set_xticks(np.arange(len(pops)) + 0.4 - width / 2, pops, rotation=15)
        ax.set_title(title)
    axes[1].axhline(100 * TARGET, color="red", ls="--", lw=1)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parents[1]))
    sys.exit(main())
