# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Where does one influencer's audience live?
#
# `geoloc-audience` turns the profiles of an influencer's followers into country shares
# with 90 % intervals. This notebook loads its output for one group and puts what a user
# of the labels would count (**naive**: the assigned labels, UNCERTAIN dropped) beside the
# **corrected** estimate (EM prior adjustment of the calibrated probabilities), with their
# intervals.
#
# Make the shares file with, for example:
#
# ```bash
# # MODEL: a model folder, e.g. outputs/real_data/real_only/model (or its export)
# geoloc-audience model_dir=MODEL input=followers.csv columns.group=influencer \
#     output=shares.parquet
# # or from geoloc-predict output written with probabilities=true columns.group=influencer:
# geoloc-audience model_dir=MODEL kind=predictions input=predictions.parquet \
#     output=shares.parquet
# ```
#
# By default the notebook reads `experiments/audience/example_shares.csv`: two made-up
# influencers whose followers are real tweets the deployed model never trained on
# (`experiments/audience/README.md`). Set `GEOLOC_SHARES` and `GEOLOC_GROUP` to read
# your own.

# %%
import os
from pathlib import Path

import pandas as pd

from geoloc.inference.audience import RECOMMENDED, plot_group

root = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
SHARES = Path(os.environ.get("GEOLOC_SHARES", root / "experiments/audience/example_shares.csv"))
shares = (pd.read_parquet(SHARES) if SHARES.suffix == ".parquet"
          else pd.read_csv(SHARES, keep_default_na=False, na_values=[""]))
GROUP = os.environ.get("GEOLOC_GROUP", str(shares["group"].iloc[0]))
shares.groupby(["group", "method"])["profiles"].first().unstack()

# %% [markdown]
# ## Naive and corrected shares side by side

# %%
ax = plot_group(shares, GROUP, methods=("naive", RECOMMENDED), top=10)
ax.figure.tight_layout()

# %%
one = shares[(shares["group"].astype(str) == GROUP)
             & shares["method"].isin(["naive", RECOMMENDED])]
table = one.pivot(index="country", columns="method", values="share").fillna(0)
table["difference"] = table[RECOMMENDED] - table["naive"]
table.sort_values(RECOMMENDED, ascending=False).head(10).round(3)

# %% [markdown]
# ## Why they differ
#
# Naive counting only sees the profiles the model dared to label: countries whose
# followers write distinctively (a local language, place names, flags) survive the 90 %
# precision bar, while followers from hard-to-tell countries become UNCERTAIN and vanish
# from the count, so easy countries are over-counted. The corrected estimate uses every
# profile's calibrated probabilities and re-weights them for this audience's own mix
# (EM), so profiles that are merely uncertain still count, as fractions, for the
# countries they probably come from.
