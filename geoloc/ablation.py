"""Ablations: Hydra multiruns that summarise themselves.

A sweep is one command (``geoloc-train -m experiment=depth_ablation``): the experiment
config lists the values its sweeper varies and pins the sweep folder. Each run keeps its
own bookkeeping (``metrics.json``, ``failed.json``, its W&B group: :mod:`geoloc.runs`);
when the multirun ends, :class:`SweepSummary` (a Hydra callback) tabulates its runs: the
knobs that varied; accuracy, macro-F1, share assigned the correct country, countries
certified; training time and predict throughput, repeated seeds as mean ± std. It writes
``results.md``, ``results.csv`` and a PNG per knob to the sweep folder and to
``sweep.results_dir`` (``experiments/<name>/``), and logs them to W&B. Titles name the
runs' own precision target (:func:`summary_metrics`).

Analysts in notebooks want the same runs as a DataFrame: :func:`geoloc.cli.grid.run_grid`
trains a grid from Python, :func:`collect_runs` reads back any folder of finished runs and
:func:`summarize_runs` tabulates them as the callback does.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from hydra.experimental.callback import Callback
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf

from geoloc.evaluation.result import metric_key
from geoloc.io import markdown_table, write_text_atomic
from geoloc.runs import RUN_FAILED, RUN_METRICS, split_overrides, sweep_group

log = logging.getLogger(__name__)

HEADLINE_COLUMNS = ("test/acc", "test/macro_f1", "abstain/correct_country_rate",
                    "abstain/uncertain_rate", "abstain/countries_meeting_target")


def target_label(target: float | None) -> str:
    """``0.9`` -> ``"90 %"``: how the precision target appears in a summary's titles;
    ``None`` (runs at several targets, or none recorded) -> ``"the target"``."""
    return "the target" if target is None else f"{100 * target:g} %"


def summary_metrics(target: float | None = None) -> dict[str, str]:
    """What a sweep summary reports per run, and the column title each gets; the titles
    name the runs' precision target (``abstain/target_precision``), never a literal."""
    at = target_label(target)
    return {
        # the transformer alone (Lightning's test loop), and the model as deployed (fused
        # with the char n-gram model when fusion is on), before abstention
        "test/acc": "accuracy (transformer)",
        "test/macro_f1": "macro-F1 (transformer)",
        "eval/accuracy": "accuracy (deployed)",
        "eval/macro_f1": "macro-F1 (deployed)",
        "abstain/correct_country_rate": f"correct country at {at}",
        "abstain/countries_meeting_target": "countries certified",
        "cost/train_minutes": "training min",
        "cost/predict_profiles_per_s": "predict profiles/s",
    }


def runs_target(runs: pd.DataFrame) -> float | None:
    """The precision target the runs were evaluated at, when they share one."""
    if "abstain/target_precision" not in runs:
        return None
    values = pd.to_numeric(runs["abstain/target_precision"], errors="coerce").dropna().unique()
    return float(values[0]) if len(values) == 1 else None


#: The summary's metrics with target-neutral titles (:func:`summary_metrics` names it).
SUMMARY_METRICS = summary_metrics(None)
#: Overrides that name a run's setup rather than vary a knob.
_NOT_KNOBS = ("experiment", "seed", "hydra", "paths", "threads", "logger", "skip_finished",
              "sweep", "task_name", "tags")

__all__ = ["HEADLINE_COLUMNS", "SUMMARY_METRICS", "SweepSummary", "collect_runs",
           "failed_runs", "format_summary", "grid_overrides", "plot_metric", "plot_sweep",
           "runs_target", "summarize_runs", "summary_metrics", "target_label",
           "varying_knobs", "write_sweep_summary"]


def grid_overrides(grid: Mapping[str, Sequence[object]]) -> list[list[str]]:
    """Cartesian product of ``{option: [values]}`` as Hydra override lists."""
    keys = list(grid)
    return [[f"{k}={v}" for k, v in zip(keys, combo, strict=True)]
            for combo in itertools.product(*(grid[k] for k in keys))]


def collect_runs(root: str | Path, reports: bool = True) -> pd.DataFrame:
    """One row per finished run below ``root``: ``run`` (its folder), its overrides
    and its metrics: ``metrics.json`` when the run wrote one (every metric, costs
    included); with ``reports``, for folders without one (runs older than it,
    ``geoloc-eval`` runs), the evaluation report's scalars (``report/summary.json``).
    A sweep summary passes ``reports=False``: a run that died after its report is not
    finished."""
    rows: dict[Path, dict[str, object]] = {}
    knobs: dict[str, None] = {}  # override keys, in order of first appearance
    for path in sorted(Path(root).rglob(RUN_METRICS)):
        saved = json.loads(path.read_text(encoding="utf-8"))
        if "fingerprint" not in saved:  # not a run's metrics file
            continue
        overrides = split_overrides(saved.get("overrides") or _hydra_overrides(path.parent))
        knobs.update(dict.fromkeys(overrides))
        rows[path.parent] = {"run": str(path.parent), **overrides, **saved["metrics"]}
    for summary in sorted(Path(root).rglob("report/summary.json")) if reports else []:
        run = summary.parent.parent
        if run in rows or (run / RUN_FAILED).exists():
            continue
        overrides = split_overrides(_hydra_overrides(run))
        knobs.update(dict.fromkeys(overrides))
        scalars = json.loads(summary.read_text(encoding="utf-8")).get("scalars", {})
        rows[run] = {"run": str(run), **overrides,
                     **{metric_key(k): v for k, v in scalars.items()}}
    df = pd.DataFrame(list(rows.values()))
    df.attrs["knobs"] = list(knobs)  # which columns are overrides, not metrics
    return df


def _hydra_overrides(run: Path) -> list[str]:
    path = run / ".hydra" / "overrides.yaml"
    return list(yaml.safe_load(path.read_text(encoding="utf-8")) or []) if path.exists() else []


def varying_knobs(runs: pd.DataFrame) -> list[str]:
    """The override columns (``runs.attrs["knobs"]``, as :func:`collect_runs` and
    :func:`run_grid` set it) that take more than one value across ``runs``, seed and
    setup keys excluded, in their order; all of them when none varies."""
    overrides = runs.attrs.get("knobs") or [c for c in runs.columns
                                            if c != "run" and "/" not in c and c != "minutes"]
    columns = [c for c in overrides if c in runs and c.split(".")[0] not in _NOT_KNOBS
               and not c.startswith("hydra")]
    varying = [c for c in columns if _knob_values(runs[c]).nunique() > 1]
    return varying or columns


def _knob_values(values: pd.Series) -> pd.Series:
    """A knob's values as text; a run that did not override it has the config's
    default (``default``), which is a setting of its own, not a missing value."""
    return values.map(lambda v: "default" if pd.isna(v) else str(v))


def _numeric_order(values: pd.Series) -> pd.Series:
    """Sort key: numbers numerically, anything else as text after them."""
    num = pd.to_numeric(values, errors="coerce")
    return num.fillna(math.inf) if num.notna().any() else values.astype(str)


def summarize_runs(runs: pd.DataFrame, knobs: Sequence[str] | None = None,
                   metrics: Mapping[str, str] = SUMMARY_METRICS) -> pd.DataFrame:
    """One row per knob setting: ``runs`` (how many: repeated seeds), and per metric
    ``<name> mean`` and ``<name> std`` (NaN with one run). Sorted by the knobs, numbers
    numerically."""
    knobs = list(knobs if knobs is not None else varying_knobs(runs))
    data = runs.copy()
    for k in knobs:
        data[k] = _knob_values(data[k])
    present = [m for m in metrics if m in data]
    rows = []
    for key, g in (data.groupby(knobs, sort=False) if knobs else [((), data)]):
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, Any] = dict(zip(knobs, key, strict=True))
        row["runs"] = len(g)
        for m in present:
            values = pd.to_numeric(g[m], errors="coerce").dropna()
            row[f"{m} mean"] = values.mean() if len(values) else math.nan
            row[f"{m} std"] = values.std(ddof=1) if len(values) > 1 else math.nan
        rows.append(row)
    out = pd.DataFrame(rows)
    if knobs and len(out):
        out = out.sort_values(knobs, key=_numeric_order, kind="stable").reset_index(drop=True)
    return out


def _mean_std(mean: float, std: float, digits: int) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f}" + ("" if math.isnan(std) else f" ± {std:.{digits}f}")


def format_summary(summary: pd.DataFrame, metrics: Mapping[str, str] = SUMMARY_METRICS
                   ) -> pd.DataFrame:
    """The summary for people: one column per metric as ``mean ± std`` (rates and
    scores with 3 decimals, counts and costs with 1)."""
    out = summary[[c for c in summary.columns if not c.endswith((" mean", " std"))]].copy()
    for m, title in metrics.items():
        if f"{m} mean" not in summary:
            continue
        digits = 1 if m.startswith("cost/") or m.endswith("countries_meeting_target") else 3
        out[title] = [_mean_std(a, b, digits) for a, b in
                      zip(summary[f"{m} mean"], summary[f"{m} std"], strict=True)]
    return out


def plot_sweep(summary: pd.DataFrame, knob: str, path: str | Path | None = None,
               title: str = "", target: float | None = None) -> Figure:
    """Four panels against one knob: quality (the transformer's accuracy, the deployed
    model's accuracy and macro-F1, the share assigned the correct country at the
    precision target), countries certified, training minutes and predict throughput;
    error bars are the std over seeds, one line per setting of the other knobs. Saved as
    a PNG when ``path`` is given."""
    titles = summary_metrics(target)
    fig = Figure(figsize=(18, 4), dpi=110)
    axes = fig.subplots(1, 4)
    others = [c for c in summary.columns
              if c not in (knob, "runs") and not c.endswith((" mean", " std"))]
    groups = summary.groupby(others, sort=False) if others else [((), summary)]
    panels = [(axes[0], ["test/acc", "eval/accuracy", "eval/macro_f1",
                         "abstain/correct_country_rate"]),
              (axes[1], ["abstain/countries_meeting_target"]),
              (axes[2], ["cost/train_minutes"]),
              (axes[3], ["cost/predict_profiles_per_s"])]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        suffix = ", ".join(f"{o}={v}" for o, v in zip(others, key, strict=True))
        numbers = pd.to_numeric(g[knob], errors="coerce")  # depth: a numeric axis
        x = numbers.tolist() if numbers.notna().all() else g[knob].astype(str).tolist()
        for ax, metric_names in panels:
            for m in metric_names:
                if f"{m} mean" not in g:
                    continue
                label = titles.get(m, m) + (f" ({suffix})" if suffix else "")
                ax.errorbar(x, g[f"{m} mean"], yerr=g[f"{m} std"].fillna(0), marker="o",
                            capsize=3, label=label)
    axes[0].set(ylabel="share", ylim=(0, 1), title="quality")
    axes[1].set(ylabel="countries",
                title=f"countries certified at {target_label(target)} precision")
    axes[1].yaxis.get_major_locator().set_params(integer=True)
    axes[2].set(ylabel="minutes", title="training time (cost)")
    axes[3].set(ylabel="profiles/s", title="predict throughput (cost)")
    for ax in axes[1:]:
        ax.set_ylim(bottom=0)  # counts and costs from zero: their ratios are what matter
    for ax in axes:
        ax.set_xlabel(knob)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
    return fig


def write_sweep_summary(sweep_dir: str | Path, name: str,
                        results_dir: str | Path | None = None, command: str = "",
                        wall_minutes: float | None = None,
                        wandb: Mapping[str, Any] | None = None) -> pd.DataFrame | None:
    """Tabulate the finished runs under ``sweep_dir`` (:func:`collect_runs`,
    :func:`summarize_runs`) and write ``results.md`` (failed runs named),
    ``results.csv`` (one row per knob setting), ``runs.csv`` (one per run) and
    ``<knob>.png`` to ``sweep_dir`` and to ``results_dir``; log them to W&B when
    ``wandb`` gives the run's ``project``, ``group`` and ``mode``. Returns the summary
    (None when no run finished)."""
    runs = collect_runs(sweep_dir, reports=False)
    failed = failed_runs(sweep_dir)
    for _, row in failed.iterrows():
        log.warning("sweep %s: %s failed: %s", name, row["run"], row["error"])
    if runs.empty:
        log.warning("sweep %s: no finished run under %s", name, sweep_dir)
        return None
    knobs = varying_knobs(runs)
    summary = summarize_runs(runs, knobs)
    target = runs_target(runs)
    table = format_summary(summary, summary_metrics(target))
    folders = [Path(sweep_dir)] + ([Path(results_dir)] if results_dir else [])
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        for knob in knobs:
            plot_sweep(summary, knob, folder / f"{_slug(knob)}.png",
                       title=f"{name}: by {knob}", target=target)
        summary.to_csv(folder / "results.csv", index=False)
        runs.to_csv(folder / "runs.csv", index=False)
        write_text_atomic(folder / "results.md", _summary_markdown(
            name, table, runs, knobs, command, wall_minutes, failed, target))
    if wandb is not None:  # the W&B files stay in the sweep folder, beside its runs'
        _log_summary_to_wandb(wandb, name, table, runs, folders[0], knobs)
    return summary


def failed_runs(root: str | Path) -> pd.DataFrame:
    """The runs below ``root`` that failed inside a multirun (``failed.json``): ``run``,
    ``kind`` and ``error``."""
    rows = [{"run": str(path.parent), **json.loads(path.read_text(encoding="utf-8"))}
            for path in sorted(Path(root).rglob(RUN_FAILED))]
    return pd.DataFrame(rows, columns=["run", "kind", "error", "overrides", "failed_at"])


def _slug(knob: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in knob).strip("_")


def _summary_markdown(name: str, table: pd.DataFrame, runs: pd.DataFrame,
                      knobs: Sequence[str], command: str, wall_minutes: float | None,
                      failed: pd.DataFrame, target: float | None = None) -> str:
    at = target_label(target)
    repeats = table["runs"] if "runs" in table else pd.Series([1])
    seeds = (str(repeats.min()) if repeats.min() == repeats.max()
             else f"{repeats.min()}–{repeats.max()}")
    trained = pd.to_numeric(runs.get("minutes"), errors="coerce").sum() \
        if "minutes" in runs else math.nan
    lines = [f"# Sweep `{name}`", ""]
    if command:
        lines += [f"`{command}`", ""]
    facts = [f"{len(runs)} finished runs", f"knobs: {', '.join(knobs) or 'none'}",
             f"seeds per setting: {seeds}"]
    if not math.isnan(trained):
        facts.append(f"training and evaluation summed over runs: {trained:.1f} min")
    if wall_minutes is not None:
        facts.append(f"wall time of the last launch: {wall_minutes:.1f} min")
    lines += ["; ".join(facts) + ".", "",
              "Mean ± std over seeds, on the evaluated split. *Accuracy, macro-F1*: the "
              "most probable class, of the transformer alone and of the model as deployed "
              "(fused with the char n-gram model when fusion is on). "
              f"*Correct country at {at}*: the share of evaluated "
              "profiles assigned their true country by the abstention policy that keeps "
              f"every assigned country at >= {at} precision; *countries certified*: "
              "countries whose precision the policy certifies; *predict profiles/s*: the "
              "evaluation split through the Lightning predict loop on this machine.", "",
              markdown_table(table), "",
              *[f"![{k}]({_slug(k)}.png)" for k in knobs], ""]
    if len(failed):
        lines += [f"**{len(failed)} runs failed** (their `failed.json`):", "",
                  *[f"- `{' '.join(r['overrides'] or [])}`: {r['kind']}: {r['error']}"
                    for _, r in failed.iterrows()], ""]
    return "\n".join(lines)


def _log_summary_to_wandb(where: Mapping[str, Any], name: str, table: pd.DataFrame,
                          runs: pd.DataFrame, folder: Path, knobs: Sequence[str]) -> None:
    """One W&B run of job type ``sweep-summary`` in the sweep's project and group (and
    mode: offline when the runs' logger is): the summary and per-run tables and the
    plots. A W&B failure is logged, not raised: the files are written already."""
    import wandb

    try:
        run = wandb.init(project=where.get("project") or "geoloc", group=where["group"],
                         mode=where.get("mode"), job_type="sweep-summary",
                         name=f"{name}-summary", dir=str(folder), reinit="finish_previous")
    except Exception as err:  # noqa: BLE001 - the summary files exist regardless
        log.warning("sweep %s: W&B summary not logged: %s", name, err)
        return
    try:
        run.log({"sweep/summary": wandb.Table(dataframe=table.astype(str)),
                 "sweep/runs": wandb.Table(dataframe=runs.astype(str)),
                 **{f"sweep/{_slug(k)}": wandb.Image(str(folder / f"{_slug(k)}.png"))
                    for k in knobs}})
    finally:
        run.finish()


class SweepSummary(Callback):
    """Hydra callback (``geoloc/conf/train.yaml``): when a multirun ends, summarise its finished
    runs (:func:`write_sweep_summary`) into the sweep folder and ``sweep.results_dir``,
    and log the summary to the sweep's W&B group. Runs that failed (``failed.json``,
    written by :func:`geoloc.cli.common.hydra_task`) are absent from the table and named
    under it and in the log; the launch's own wall time is reported."""

    def __init__(self) -> None:
        self._started = time.time()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._started = time.time()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_dir():
            return
        name = str(config.get("task_name") or sweep_dir.name)
        overrides = " ".join(config.hydra.overrides.task)
        command = f"{Path(sys.argv[0]).name} -m {overrides}".strip()
        results_dir = OmegaConf.select(config, "sweep.results_dir")
        wandb = None
        for lg in (config.get("logger") or {}).values():
            if isinstance(lg, DictConfig) and "WandbLogger" in str(lg.get("_target_")):
                wandb = {"project": lg.get("project"), "group": sweep_group(config, config.hydra),
                         "mode": "offline" if lg.get("offline") else None}
        summary = write_sweep_summary(sweep_dir, name, results_dir, command,
                                      (time.time() - self._started) / 60, wandb)
        if summary is not None:
            log.info("sweep %s: %d settings summarised in %s%s", name, len(summary),
                     sweep_dir, f" and {results_dir}" if results_dir else "")


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
