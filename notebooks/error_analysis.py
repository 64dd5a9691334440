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
# # Error analysis of one evaluated run
#
# `geoloc-train` and `geoloc-eval` write, beside the aggregate report, every evaluated
# profile's prediction: `report/predictions.csv` (text, true country, most probable
# class, calibrated confidence, the policy's decision). This notebook reads it and shows
#
# 1. **per-country errors**: for each true country, the shares assigned correctly,
#    assigned wrongly and left UNCERTAIN, and how often the top class was right anyway;
# 2. **typical UNCERTAIN profiles**: what the policy declines to label;
# 3. **the most confused pairs**, with an example each.
#
# Set `GEOLOC_RUN` to a run folder (the one holding `report/`), e.g. the real-data
# recipe's `outputs/real_data/real_only`.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from geoloc.evaluation.error_analysis import (
    confused_pairs,
    country_errors,
    load_predictions,
    uncertain_examples,
    uncertain_summary,
)
from geoloc.io import markdown_table

root = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
RUN = Path(os.environ.get("GEOLOC_RUN", root / "outputs/real_data/real_only"))
pred = load_predictions(RUN / "report")
print(f"{len(pred)} evaluated profiles, {pred['true'].nunique()} true classes")

# %% [markdown]
# ## 1. Per-country errors

# %%
errors = country_errors(pred)
display(Markdown(markdown_table(errors.head(20), floatfmt=".2f")))

# %%
top = errors.head(15).iloc[::-1]
fig, ax = plt.subplots(figsize=(7, 0.35 * len(top) + 1))
left = 0
for column, color in (("correct", "tab:green"), ("wrong", "tab:red"),
                      ("uncertain", "tab:gray")):
    ax.barh(top["country"], top[column], left=left, color=color, label=column)
    left = left + top[column]
ax.set_xlabel("share of the country's profiles")
ax.set_title("what the policy did with each country's profiles (most profiles on top)")
ax.legend(loc="lower right", fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## 2. Typical UNCERTAIN profiles

# %%
summary = uncertain_summary(pred)
print(f"UNCERTAIN: {summary['uncertain_share']:.1%} of profiles; their top class was "
      f"right for {summary['uncertain_top_right']:.1%} of them; median confidence "
      f"{summary['uncertain_median_confidence']:.2f} against "
      f"{summary['assigned_median_confidence']:.2f} for assigned profiles")
display(Markdown(markdown_table(uncertain_examples(pred, n=10), floatfmt=".2f")))

# %% [markdown]
# ## 3. The most confused pairs
#
# By the most probable class (abstention aside), then among the policy's own wrong
# assignments (what users would see).

# %%
display(Markdown(markdown_table(confused_pairs(pred, top=10), floatfmt=".2f")))
display(Markdown(markdown_table(confused_pairs(pred, top=10, assigned_only=True),
                                floatfmt=".2f")))
