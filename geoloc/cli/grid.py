"""Train a grid of configs from Python (notebooks): the sweep a multirun launches, one
point after another in this process, read back as one DataFrame.

It lives with the entry points because it *is* one: it composes the real configs and
calls ``geoloc-train``'s task (:func:`geoloc.cli.train.train`) from above; the sweep
summary it shares with multiruns (:mod:`geoloc.ablation`) knows nothing of training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from geoloc.ablation import grid_overrides
from geoloc.cli.common import run_task
from geoloc.cli.train import train
from geoloc.config import compose_config
from geoloc.runs import run_dirname, save_run_metrics, split_overrides


def run_grid(
    grid: Mapping[str, Sequence[object]], base: Sequence[str] = (),
    out_root: str | Path = "outputs/ablation", skip_finished: bool = True,
) -> pd.DataFrame:
    """Train one model per grid point (sequentially, in this process); one row each.
    A point writes to ``out_root/<its overrides>`` (:func:`geoloc.runs.run_dirname`), so a
    grid reordered or extended later finds its finished points; with ``skip_finished`` a
    point whose folder holds a finished run of the same config is read back, not
    trained again."""
    rows = []
    for overrides in grid_overrides(grid):
        out = Path(out_root) / run_dirname(",".join(overrides))  # as a multirun names it
        # quoted: the folder name holds '=' and ',', which Hydra's grammar would parse
        cfg = compose_config([*base, *overrides, f"paths.output_dir='{out}'",
                              f"skip_finished={str(skip_finished).lower()}"])
        metrics, _ = run_task(train, cfg)
        save_run_metrics(cfg, metrics, overrides=[*base, *overrides])
        rows.append({"run": str(out), **split_overrides(overrides), **metrics})
    df = pd.DataFrame(rows)
    df.attrs["knobs"] = list(grid)
    return df
