"""One group's country shares by method, side by side with their intervals (the
notebook ``notebooks/audience.ipynb``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from geoloc.inference.audience.estimators import DESCRIPTIONS, RECOMMENDED, AudienceError


def plot_group(shares: Any, group: str, methods: Sequence[str] = ("naive", RECOMMENDED),
               top: int = 12, ax: Any = None) -> Any:
    """Bar chart of one group's country shares by ``methods`` side by side, with their
    intervals as error bars: the ``top`` countries by the last method's share. ``shares``
    is ``geoloc-audience`` output as a DataFrame. Returns the matplotlib Axes."""
    import matplotlib.pyplot as plt

    g = shares[shares["group"].astype(str) == str(group)]
    if g.empty:
        raise AudienceError(f"group {group!r} is not in the shares "
                            f"(groups: {sorted(map(str, shares['group'].unique()))[:10]})")
    methods = [m for m in methods if m in set(g["method"])]
    if not methods:
        raise AudienceError(f"none of the methods {list(methods)} is in the shares")
    ranked = (g[g["method"] == methods[-1]].sort_values("share", ascending=False)
              ["country"].head(top).tolist())
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6, 0.6 * len(ranked) * len(methods)), 4))
    width = 0.8 / len(methods)
    x = np.arange(len(ranked))
    for j, m in enumerate(methods):
        rows = g[g["method"] == m].set_index("country").reindex(ranked)
        share = rows["share"].astype(float).to_numpy()
        err = np.vstack([share - rows["low"].astype(float), rows["high"].astype(float) - share])
        ax.bar(x + (j - (len(methods) - 1) / 2) * width, share, width, yerr=np.clip(err, 0, None),
               capsize=2, label=f"{m}: {DESCRIPTIONS[m].split(' (')[0]}")
    level = float(g["level"].iloc[0])
    n = int(g["profiles"].iloc[0])
    ax.set_xticks(x, ranked)
    ax.set_ylabel("share of the audience")
    ax.set_title(f"{group}: {n} profiles, {100 * level:g} % intervals")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return ax
