"""The notebook's example: two made-up influencers whose followers are real tweets the
deployed model never trained on (the real recipe's validation split), run through
``geoloc-audience`` as a user would run it.

- ``us_brand``: 150 validation tweets drawn at random (the tweet set's own mix, 28 % US);
- ``asia_creator``: every validation tweet from Indonesia, Malaysia, Japan, the
  Philippines and Thailand (a mix far from the training prior).

    python experiments/audience/example.py MODEL_DIR

(``MODEL_DIR``: the real recipe's model folder, e.g. ``outputs/real_data/real_only/model``.)

writes ``example_followers.tsv`` (the input: tweet id, tweet, influencer),
``example_shares.csv`` (the output) and ``example_truth.csv`` (each group's true
country shares, from the tweets' geotags) beside this file.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import pandas as pd

from geoloc.cli.audience import audience
from geoloc.cli.common import run_task
from geoloc.config import compose_config
from geoloc.data.datamodule import labelled_splits
from geoloc.data.sources import UmassTweetsSource
from geoloc.resources import umass_dev_path

HERE = Path(__file__).resolve().parent
ASIA = {"ID", "MY", "JP", "PH", "TH"}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir", type=Path,
                   help="model folder of geoloc-train experiment=real_umass (<run>/model, "
                        "e.g. outputs/real_data/real_only/model)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    cfg = compose_config(["experiment=real_umass"], "train")
    splits = labelled_splits(UmassTweetsSource(), list(cfg.labels.countries),
                             dict(cfg.data.splits), cfg.data.split_seed)
    val = set(splits["val"]["id"])
    tweets = pd.read_csv(umass_dev_path(), sep="\t", dtype=str, quoting=csv.QUOTE_NONE,
                         usecols=["Tweet ID", "Tweet", "Country"])
    tweets = tweets[tweets["Tweet ID"].isin(val)]
    rng = np.random.default_rng(a.seed)
    brand = tweets.iloc[rng.choice(len(tweets), size=150, replace=False)]
    creator = tweets[tweets["Country"].isin(ASIA)]
    followers = pd.concat([brand.assign(influencer="us_brand"),
                           creator.assign(influencer="asia_creator")])
    followers_file = HERE / "example_followers.tsv"
    followers[["Tweet ID", "Tweet", "influencer"]].to_csv(followers_file, sep="\t",
                                                          index=False)
    names = [*cfg.labels.countries, "OTHER"]
    truth = (followers.assign(country=followers["Country"].where(
                 followers["Country"].isin(names), "OTHER"))
             .groupby("influencer")["country"].value_counts(normalize=True)
             .rename("share").reset_index())
    truth.to_csv(HERE / "example_truth.csv", index=False)
    out = HERE / "example_shares.csv"
    run_task(audience, compose_config(
        [f"model_dir={a.model_dir}", f"input={followers_file}", f"output={out}",
         "columns=tweets", "columns.group=influencer", "overwrite=true",
         "paths.output_dir=outputs/audience_example"], "audience"))
    shares = pd.read_csv(out)
    for group, g in truth.groupby("influencer"):
        true = dict(zip(g["country"], g["share"], strict=True))
        for method in ("naive", "em"):
            s = shares[(shares["group"] == group) & (shares["method"] == method)]
            err = np.mean([abs(s.set_index("country").loc[c, "share"] - true.get(c, 0.0))
                           for c in names])
            print(f"{group:14s} {method:6s} MAE x100 {100 * err:.2f}")


if __name__ == "__main__":
    main()
