"""Ablations from Python: run a grid of overrides in-process, collect finished runs.

Hydra multiruns (``geoloc-train -m model.encoder_layers=1,3,6``) are the way to launch
sweeps from a shell or a cluster launcher; analysts in notebooks want the same runs as a
DataFrame. :func:`run_grid` composes the real configs exactly as the entry point does and
:func:`collect_runs` reads back any folder of finished runs (multirun or not), so a
notebook can both rerun an ablation and tabulate one that ran elsewhere.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import yaml
from matplotlib.figure import Figure

from geoloc.config import compose_config
from geoloc.evaluation.result import metric_key

HEADLINE_COLUMNS = ("test/acc", "test/macro_f1", "abstain/correct_country_rate",
                    "abstain/uncertain_rate", "abstain/countries_meeting_target")
__all__ = ["HEADLINE_COLUMNS", "collect_runs", "compose_config", "grid_overrides",
           "plot_metric", "run_grid"]


def grid_overrides(grid: Mapping[str, Sequence[object]]) -> list[list[str]]:
    """Cartesian product of ``{option: [values]}`` as Hydra override lists."""
    keys = list(grid)
    return [[f"{k}={v}" for k, v in zip(keys, combo, strict=True)]
            for combo in itertools.product(*(grid[k] for k in keys))]


def run_grid(
    grid: Mapping[str, Sequence[object]], base: Sequence[str] = (), out_root: str | Path = "outputs/ablation",
) -> pd.DataFrame:
    """Train one model per grid point (sequentially, in this process); one row each."""
    from geoloc.cli.common import run_task
    from geoloc.cli.train import train

    rows = []
    for i, overrides in enumerate(grid_overrides(grid)):
        out = Path(out_root) / f"{i:03d}"
        cfg = compose_config([*base, *overrides, f"paths.output_dir={out}"])
        metrics, _ = run_task(train, cfg)
        rows.append({"run": str(out), **dict(o.split("=", 1) for o in overrides), **metrics})
    return pd.DataFrame(rows)


def collect_runs(root: str | Path) -> pd.DataFrame:
    """One row per finished run below ``root``: its overrides and report scalars."""
    rows = []
    for summary in sorted(Path(root).rglob("report/summary.json")):
        run = summary.parent.parent
        row: dict[str, object] = {"run": str(run)}
        overrides = run / ".hydra" / "overrides.yaml"
        if overrides.exists():
            row.update(dict(o.split("=", 1) for o in yaml.safe_load(overrides.read_text()) or []))
        scalars = json.loads(summary.read_text()).get("scalars", {})
        row.update({metric_key(k): v for k, v in scalars.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def plot_metric(df: pd.DataFrame, x: str, ys: Sequence[str], title: str = "") -> Figure:
    """Line plot of metrics against one varied option (mean over repeats, e.g. seeds)."""
    fig = Figure(figsize=(6, 3.5), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    data = df.copy()
    try:  # numeric options (depth, lr) sort numerically; others stay as they are
        data[x] = pd.to_numeric(data[x])
    except (ValueError, TypeError):
        pass
    for y in ys:
        means = data.groupby(x)[y].mean().sort_index()
        ax.plot(means.index.astype(str), means.values, marker="o", label=y)
    ax.set_xlabel(x)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or f"{', '.join(ys)} by {x}")
    fig.tight_layout()
    return fig
