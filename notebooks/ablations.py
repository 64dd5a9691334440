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
# # Ablations: rerun a sweep, read any sweep back, replot it
#
# Every ablation is one Hydra multirun (`geoloc-train -m experiment=depth_ablation`, and
# `tokenizer_ablation`, `backbone_ablation`, `label_set_ablation`); when it ends it writes
# its summary to `experiments/<name>/results.md` and W&B. This notebook does the same
# from Python:
#
# 1. **rerun a small sweep** through the Hydra compose API (`geoloc.cli.grid.run_grid`:
#    the real configs, composed exactly as `geoloc-train` composes them, one run after
#    another in this kernel; runs already finished in the output folder are read back);
# 2. **load any sweep** from its local run folders (`collect_runs`: a multirun folder,
#    the folder of step 1, a folder copied from a cluster), tabulate it as the sweep
#    summary does (mean ± std over seeds: `summarize_runs`) and replot it.
#
# `GEOLOC_NOTEBOOK_SMOKE=1` (what `make test` sets) shrinks step 1 to a few training
# steps on synthetic data; `GEOLOC_SWEEP=outputs/depth_ablation/multirun` makes step 2
# read a sweep of your own.

# %%
# %matplotlib inline
import os
from pathlib import Path

from IPython.display import Markdown, display

from geoloc.ablation import (
    collect_runs,
    format_summary,
    plot_sweep,
    summarize_runs,
    varying_knobs,
)
from geoloc.cli.grid import run_grid
from geoloc.io import markdown_table

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
root = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
SMOKE = os.environ.get("GEOLOC_NOTEBOOK_SMOKE") == "1"

# %% [markdown]
# ## 1. Rerun a small sweep
#
# Encoder depth × seed on the real tweets without cross-fitting (the calib split fits
# the policy), 1 epoch: a few minutes per run on a laptop. Any override of
# `geoloc-train` works in `BASE` and as a grid key.

# %%
if SMOKE:
    BASE = ["trainer=debug", "trainer.limit_train_batches=3", "data.source.n=400",
            "data.batch_size=8", "logger=none", "threads=2"]
    GRID = {"model.encoder_layers": [1, 2], "seed": [1]}
else:
    BASE = ["experiment=seed_replica", "crossfit.folds=null", "fusion=null",
            "trainer.max_epochs=1", "logger=none"]
    GRID = {"model.encoder_layers": [1, 3], "seed": [1, 2]}
OUT = root / "outputs" / "notebook_ablation"
runs = run_grid(GRID, base=BASE, out_root=OUT)
runs[["run", *GRID, "test/acc", "abstain/correct_country_rate"]]

# %% [markdown]
# ## 2. Load any sweep from its run folders and replot it

# %%
SWEEP = Path(os.environ.get("GEOLOC_SWEEP", OUT))
collected = collect_runs(SWEEP)
knobs = varying_knobs(collected)
summary = summarize_runs(collected, knobs)
display(Markdown(markdown_table(format_summary(summary))))

# %%
for knob in knobs:
    display(plot_sweep(summary, knob, title=f"{SWEEP.name}: by {knob}"))

# %% [markdown]
# Reading the plots: accuracy and macro-F1 score the most probable class; *correct
# country at 90 %* and *countries certified* score what users get, the labels the
# abstention policy keeps at >= 90 % precision. Depth can change the second pair more
# than the first, because it changes how well the confidences separate right from
# wrong, not only how often the top class is right.
