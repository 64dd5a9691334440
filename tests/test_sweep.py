"""Ablations as one command: the experiment configs and launchers compose, a real
multirun summarises itself (files and W&B) and a rerun skips the runs it finished, the
label set can be counted from data, and the 2-process DDP trainer runs on CPU."""

from __future__ import annotations

import ast
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import compose

ROOT = Path(__file__).resolve().parents[1]
ABLATIONS = {
    "depth_ablation": ("model.encoder_layers", "1,2,3,4,6,12"),
    "tokenizer_ablation": ("tokenizer", "base,location_emoji"),
    "backbone_ablation": ("backbone", "me5_small,minilm_en"),
    "label_set_ablation": ("labels", "default36,frequent"),
}
TINY = ["trainer=debug", "trainer.limit_train_batches=3", "data.source.n=400",
        "data.batch_size=8", "data.eval_batch_size=32"]


def _with_hydra(overrides: list[str]):
    """The composed config with its ``hydra`` node, as a multirun job sees it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from geoloc.config import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return hydra_compose(config_name="train", overrides=overrides,
                             return_hydra_config=True)


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_each_ablation_is_the_replica_recipe_with_one_knob_swept(name):
    knob, values = ABLATIONS[name]
    cfg = _with_hydra([f"experiment={name}"])
    assert dict(cfg.hydra.sweeper.params) == {knob: values}
    # the real-data recipe of seed_replica, one sweep folder per ablation (reruns find it)
    assert cfg.data.source._target_.endswith("UmassTweetsSource")
    assert cfg.crossfit.folds == 3 and cfg.fusion is not None
    assert cfg.trainer.max_epochs == 3 and cfg.model.encoder_layers == 3
    assert cfg.skip_finished is True and cfg.sweep.group == name
    assert cfg.hydra.sweep.dir == f"outputs/{name}/multirun"
    assert cfg.sweep.results_dir == f"./experiments/{name}"
    assert "geoloc.ablation.SweepSummary" in str(cfg.hydra.callbacks)


def test_seed_replica_is_the_reference_recipe():
    cfg = compose(["experiment=seed_replica"])
    assert (cfg.model.encoder_layers, cfg.tokenizer.variant, cfg.backbone.name,
            cfg.trainer.max_epochs, len(cfg.model.countries)) == (
        3, "location_emoji", "me5_small", 3, 36)


def test_launchers_and_ddp_trainer_compose():
    parallel = _with_hydra(["hydra/launcher=parallel"]).hydra.launcher
    assert parallel._target_.endswith("JoblibLauncher") and parallel.n_jobs == 2
    slurm = _with_hydra(["hydra/launcher=slurm", "hydra.launcher.partition=cpu"]).hydra.launcher
    assert slurm._target_.endswith("SlurmLauncher")
    assert (slurm.partition, slurm.cpus_per_task, slurm.nodes) == ("cpu", 8, 1)
    assert slurm.submitit_folder.endswith("/.submitit/%j")  # inside the sweep folder
    ddp = compose(["trainer=ddp_cpu"]).trainer
    assert (ddp.accelerator, ddp.devices, ddp.strategy) == ("cpu", 2, "ddp")


@pytest.fixture
def hydra_job():
    """Set a composed config as the current Hydra job's (as a launcher does); reset
    after the test, so no later test sees a job that is not there."""
    from hydra.core.hydra_config import HydraConfig

    def set_job(cfg):
        HydraConfig.instance().set_config(cfg)
        return cfg

    yield set_job
    HydraConfig.instance().cfg = None


def test_parallel_jobs_share_the_cores_out(monkeypatch, hydra_job):
    from geoloc.cli.common import job_threads

    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    for n_jobs, cpus, expected in ((2, 8, 4), (3, 2, 1), (-1, 16, 1), (1, 8, None)):
        cfg = hydra_job(_with_hydra(["hydra/launcher=parallel",
                                     f"hydra.launcher.n_jobs={n_jobs}"]))
        assert job_threads(cfg, cpus=cpus) == expected, n_jobs
        cfg.threads = 3  # an explicit choice wins
        assert job_threads(cfg, cpus=cpus) == 3
    # the ablations leave threads to the launcher (real_umass fixes 2)
    assert compose(["experiment=depth_ablation"]).threads is None
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")
    assert job_threads(compose([]), cpus=64) == 6


def test_ddp_in_a_multirun_is_refused(hydra_job):
    from hydra.types import RunMode

    from geoloc.config import validate_config
    from geoloc.errors import ConfigError

    cfg = _with_hydra(["trainer=ddp_cpu"])
    cfg.hydra.mode = RunMode.MULTIRUN
    hydra_job(cfg)
    with pytest.raises(ConfigError, match="in a multirun"):
        validate_config(compose(["trainer=ddp_cpu"]))


def test_run_dirname_is_one_safe_path_component():
    from geoloc.runs import run_dirname

    assert run_dirname("crossfit.folds=null,model.encoder_layers=3") == \
        "crossfit.folds=null,model.encoder_layers=3"  # ordinary names are kept
    assert run_dirname("backbone=hf,backbone.name=/models/xlmr") == \
        "backbone=hf,backbone.name=%models%xlmr"
    long_a, long_b = "labels.countries=[" + "US," * 100 + "FR]", "labels.countries=[" + "US," * 100 + "DE]"
    assert len(run_dirname(long_a)) == 200 and run_dirname(long_a) != run_dirname(long_b)


def test_ddp_with_crossfit_is_refused_in_seconds():
    from geoloc.config import validate_config
    from geoloc.errors import ConfigError

    with pytest.raises(ConfigError, match="crossfit.folds with trainer.strategy=ddp"):
        validate_config(compose(["trainer=ddp_cpu", "crossfit.folds=3"]))


def test_fingerprint_ignores_setup_but_not_knobs():
    from geoloc.runs import config_fingerprint

    base = config_fingerprint(compose(["paths.output_dir=/x"]))
    assert config_fingerprint(compose(["paths.output_dir=/x", "threads=1",
                                       "logger=none"])) == base
    assert config_fingerprint(compose(["paths.output_dir=/x", "model.optimizer.lr=1e-3"])) != base
    assert config_fingerprint(compose(["paths.output_dir=/x", "seed=7"])) != base


def test_frequent_label_set_counts_train_rows_only(tmp_path):
    """labels=frequent counts the train split: neither the evaluated split nor the calib
    rows (which test the policy) choose the label set."""
    from geoloc.config import validate_config
    from geoloc.errors import ConfigError

    rows = []
    for code, splits in {"FR": {"train": 20}, "KE": {"train": 10, "calib": 30},
                         "NZ": {"train": 12}, "IS": {"train": 3, "val": 40, "test": 40}}.items():
        for split, n in splits.items():
            rows += [{"id": f"{code}-{split}-{i}", "bio": "", "split": split,
                      "captions": [f"hello {code} {i}"], "country": code} for i in range(n)]
    data = tmp_path / "p.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = ["data=jsonl", f"data.source.path={data}", "labels=frequent"]
    # KE's 30 calib rows and IS's 80 evaluated rows are not counted
    assert list(compose([*common, "labels.min_profiles=8"]).model.countries) == \
        ["FR", "NZ", "KE"]
    assert list(compose([*common, "labels.min_profiles=11"]).labels.countries) == \
        ["FR", "NZ"]
    with pytest.raises(ConfigError, match="min_profiles=1000: no country"):
        validate_config(compose([*common, "labels.min_profiles=1000"]))
    with pytest.raises(ConfigError, match="min_profiles=0: expected an integer >= 1"):
        validate_config(compose([*common, "labels.min_profiles=0"]))
    with pytest.raises(ConfigError, match="generates rows for a given label set"):
        validate_config(compose(["labels=frequent"]))


def _runs() -> pd.DataFrame:
    rows = []
    for depth, accs in ((1, (0.5, 0.6)), (3, (0.7, 0.7)), (12, (0.8,))):
        for seed, acc in enumerate(accs):
            rows.append({"run": f"r{depth}{seed}", "model.encoder_layers": str(depth),
                         "seed": str(seed), "test/acc": acc, "cost/train_minutes": depth,
                         "minutes": 1.0})
    df = pd.DataFrame(rows)
    df.attrs["knobs"] = ["model.encoder_layers", "seed"]
    return df


def test_a_knob_only_some_runs_override_is_a_setting_of_its_own():
    """labels=frequent labels.min_profiles=5 launched into a sweep whose other runs kept
    the default N: three settings, not two with one averaged over N."""
    from geoloc.ablation import summarize_runs, varying_knobs

    runs = pd.DataFrame({"labels": ["default36", "frequent", "frequent"],
                         "labels.min_profiles": [None, None, "5"],
                         "test/acc": [0.6, 0.7, 0.5]})
    runs.attrs["knobs"] = ["labels", "labels.min_profiles"]
    assert varying_knobs(runs) == ["labels", "labels.min_profiles"]
    summary = summarize_runs(runs)
    assert list(summary["runs"]) == [1, 1, 1]
    assert list(summary["labels.min_profiles"]) == ["default", "5", "default"]  # N sorted


def test_summary_reports_seeds_as_mean_and_std_and_sorts_depth_numerically(tmp_path):
    from geoloc.ablation import format_summary, plot_sweep, summarize_runs, varying_knobs

    runs = _runs()
    assert varying_knobs(runs) == ["model.encoder_layers"]  # seeds are repeats, not knobs
    summary = summarize_runs(runs)
    assert list(summary["model.encoder_layers"]) == ["1", "3", "12"]
    assert list(summary["runs"]) == [2, 2, 1]
    assert summary.loc[0, "test/acc mean"] == pytest.approx(0.55)
    assert summary.loc[0, "test/acc std"] == pytest.approx(0.0707, abs=1e-4)
    assert math.isnan(summary.loc[2, "test/acc std"])
    table = format_summary(summary)
    assert list(table["accuracy (transformer)"]) == ["0.550 ± 0.071", "0.700 ± 0.000", "0.800"]
    fig = plot_sweep(summary, "model.encoder_layers", tmp_path / "depth.png")
    assert (tmp_path / "depth.png").stat().st_size > 0
    assert list(fig.axes[0].lines[0].get_xdata()) == [1, 3, 12]  # a numeric axis


def _wandb_run(folder: Path) -> dict:
    """The run record (group, job type, name) of the one offline run under ``folder``."""
    (run,) = folder.glob("offline-run-*")
    out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json",
                          str(run)], capture_output=True, text=True, timeout=120, check=True)
    records = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    return next(r["run"] for r in records if r.get("type") == "run")


@pytest.mark.slow
def test_multirun_summarises_itself_and_a_rerun_skips_finished_runs(tmp_path, me5_dir):
    """Two depths in parallel (joblib launcher), a summary in the sweep folder, the
    results folder and W&B; the rerun skips the finished runs and tries again the one
    with no metrics.json (a failed run here; a killed one leaves none either)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sweep = tmp_path / "tiny_sweep" / "multirun"
    command = [sys.executable, "-m", "geoloc.cli.train", "-m", "experiment=_ablation",
               "task_name=tiny_sweep", "model.encoder_layers=1,2,13", *TINY,
               f"paths.log_dir={tmp_path}", f"sweep.results_dir={tmp_path / 'results'}"]

    def launch(*extra: str) -> str:
        done = subprocess.run([*command, *extra], capture_output=True, text=True, env=env,
                              timeout=900, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout + done.stderr

    log = launch("hydra/launcher=parallel")
    runs = sorted(p.parent for p in sweep.glob("*/metrics.json"))
    assert [p.name.split("model.encoder_layers=")[1][0] for p in runs] == ["1", "2"]
    # 13 layers (mE5 has 12) fails in seconds; the sweep goes on and names it
    (failed,) = sweep.glob("*/failed.json")
    assert "model.encoder_layers=13" in str(failed) and "invalid config" in failed.read_text()
    assert "model.encoder_layers=13" in log
    for folder in (sweep, tmp_path / "results"):
        table = pd.read_csv(folder / "results.csv")
        assert list(table["model.encoder_layers"]) == [1, 2]
        assert table["cost/predict_profiles_per_s mean"].gt(0).all()
        assert table["cost/train_minutes mean"].gt(0).all()
        assert "abstain/countries_meeting_target mean" in table
        markdown = (folder / "results.md").read_text()
        assert "-m experiment=_ablation task_name=tiny_sweep" in markdown  # the command
        assert "2 finished runs; knobs: model.encoder_layers;" in markdown
        assert "**1 runs failed**" in markdown and "model.encoder_layers=13" in markdown
        assert (folder / "model_encoder_layers.png").stat().st_size > 0
    # every run and the summary in one W&B group
    for run in runs:
        assert _wandb_run(run / "wandb")["run_group"] == "tiny_sweep"
    summary_run = _wandb_run(sweep / "wandb")
    assert (summary_run["run_group"], summary_run["job_type"]) == ("tiny_sweep",
                                                                    "sweep-summary")
    first = {p: json.loads((p / "metrics.json").read_text()) for p in runs}

    # the rerun: the finished runs are skipped; the one that left no metrics.json (as a
    # run killed before its end does; here, the failed one) is run again
    log = launch()
    assert log.count("already holds this run's metrics") == 2
    for run in runs:
        assert json.loads((run / "metrics.json").read_text()) == first[run]
    assert "model.encoder_layers=13" in log  # tried again, and failed again
    assert len(pd.read_csv(sweep / "results.csv")) == 2


@pytest.mark.slow
def test_ddp_trains_in_two_processes_on_cpu_and_evaluates_every_row(tmp_path, me5_dir):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "ddp"
    done = subprocess.run(
        [sys.executable, "-m", "geoloc.cli.train", "trainer=ddp_cpu", "trainer.max_epochs=1",
         "+trainer.limit_train_batches=4", "+trainer.limit_val_batches=2",
         "data.source.n=400", "data.batch_size=8", "model.encoder_layers=1", "threads=1",
         "logger=csv", f"hydra.run.dir={out}"],
        capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stdout + done.stderr
    assert "distributed_backend=gloo" in log and "Starting with 2 processes" in log
    assert log.count("geoloc-train: test metrics") == 1  # the first process evaluates
    assert (out / "train_ddp_process_1.log").is_file()  # the second process ran
    summary = json.loads((out / "report" / "summary.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    # the whole test split, not one process's shard
    sizes = ast.literal_eval(re.search(r"split sizes: (\{.*\})", log).group(1))
    assert summary["scalars"]["n_samples"] == metrics["eval/n_samples"] == sizes["test"] > 0
    assert len(list((out / "checkpoints").glob("*.ckpt"))) == 1
