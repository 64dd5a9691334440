"""Every config group composes; bad options fail early with a message naming them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import compose
from omegaconf import OmegaConf

from geoloc.config import CONF_DIR, validate_config
from geoloc.errors import ConfigError
from geoloc.metadata import ModelMetadata

GROUPS = ["backbone", "tokenizer", "model", "data", "trainer", "callbacks", "logger",
          "labels", "evaluation", "paths"]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "override",
    [f"{g}={o}" for g in GROUPS for o in _options(g)]
    + [f"experiment={o}" for o in _options("experiment")],
)
def test_every_config_option_composes(override, tmp_path, monkeypatch):
    import torch

    # the GPU trainers are checked as on a machine that has one
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    # Options with a mandatory value get one, as a user would give it.
    extra = {
        "backbone=hf": ["backbone.name=bert-base-multilingual-cased"],
        "data=jsonl": [f"data.source.path={tmp_path / 'profiles.jsonl'}"],
        # counted from real labelled rows (synthetic data is generated for a label set)
        "labels=frequent": ["data=umass"],
    }.get(override, [])
    cfg = compose([override, *extra, f"paths.output_dir={tmp_path}"])
    container = OmegaConf.to_container(cfg, resolve=True)
    assert container["backbone"]["name"]
    assert "encoder_layers" in container["model"]
    if override != "backbone=hf":  # a hub id: its depth is only known with the hub
        validate_config(cfg)


def test_default_is_three_layers_of_me5_with_location_emoji(tmp_path):
    cfg = compose([f"paths.output_dir={tmp_path}"])
    assert cfg.backbone.name == "me5_small"
    assert cfg.model.encoder_layers == 3
    assert cfg.tokenizer.variant == "location_emoji"
    assert len(cfg.labels.countries) == 36
    validate_config(cfg)


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("model.encoder_layers=13", r"model\.encoder_layers=13.*1 to 12"),
        ("model.encoder_layers=0", r"model\.encoder_layers=0"),
        ("model.pooling=max", r"model\.pooling='max'.*cls, mean"),
        ("tokenizer.variant=bpe", r"tokenizer\.variant='bpe'.*base, location_emoji, tweet"),
        ("labels.countries=[US,XX]", r"labels\.countries: 'XX'"),
        ("backbone.name=./no/such/folder", r"backbone\.name=.*no such folder"),
        ("backbone.name=me5_large", r"backbone\.name=me5_large: expected me5_small"),
        ("evaluation.policy.target=1.5", r"evaluation\.policy\.target=1\.5"),
        ("evaluation.policy.delta=0", r"evaluation\.policy\.delta=0"),
        ("evaluation.policy.guarantee=pooled", r"evaluation\.policy\.guarantee='pooled'"),
        ("data.eval_split=nope", r"data\.eval_split='nope'"),
        ("data.splits.train=0.9", r"data\.splits"),
        ("fusion=char_ngram fusion.weights=[0.5,2]", r"fusion\.weights=\[0\.5, 2\]: values in \[0, 1\]"),
        ("fusion=char_ngram fusion.C_grid=[-1]", r"fusion\.C_grid"),
        ("fusion=char_ngram +evaluation.thresholds=t.json", r"fusion.*saved policy"),
        ("model.class_balance=1.5", r"model\.class_balance=1\.5"),
        ("model.focal_gamma=-1", r"model\.focal_gamma"),
        ("model.language_balance=2", r"model\.language_balance=2"),
        ("model.text_pooling=max", r"model\.text_pooling='max'"),
        ("trainer.precision=bf16-true", r"trainer\.precision=bf16-true.*bf16-mixed"),
        ("crossfit.validate=oof", r"crossfit\.validate='oof'"),
        ("crossfit.deploy=soup", r"crossfit\.deploy=soup.*crossfit\.folds=K"),
        ("crossfit.folds=3 crossfit.deploy=soup model.tune_top_rows=10",
         r"crossfit\.deploy=soup with model\.tune_top_rows"),
        ("model.tune_top_rows=-5", r"model\.tune_top_rows=-5: expected an integer"),
        ("model.tune_top_rows=10 model.freeze_word_embeddings=false",
         r"model\.tune_top_rows corrects frozen rows"),
        ("crossfit.folds=3 crossfit.deploy=ensemble", r"crossfit\.deploy='ensemble'"),
        ("crossfit.validate=heldout", r"crossfit\.validate=heldout: only fold models"),
        # each fold model would pick its checkpoint on the rows it calibrates on
        ("crossfit.folds=3 crossfit.validate=heldout",
         r"callbacks\.model_checkpoint choosing on val/macro_f1"),
    ],
)
def test_bad_options_fail_naming_the_option(override, pattern, tmp_path):
    cfg = compose([*override.split(), f"paths.output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=pattern):
        validate_config(cfg)


@pytest.mark.parametrize("threads", ["-1", "0", "two"])
def test_a_bad_thread_count_fails_in_one_line_not_in_torch(threads, tmp_path):
    from geoloc.cli.common import setup_runtime

    cfg = compose([f"threads={threads}", f"paths.output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=r"threads='?" + threads + r"'?: expected a positive"):
        setup_runtime(cfg)


def test_progress_false_silences_the_libraries_bars_too(tmp_path):
    from transformers.utils import logging as hf_logging

    from geoloc.cli.common import setup_runtime

    try:
        setup_runtime(compose([f"model_dir={tmp_path}", "input=x.jsonl", "output=y.jsonl",
                               "progress=false", f"paths.output_dir={tmp_path}"],
                              config_name="predict"))
        assert not hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.enable_progress_bar()


def test_trainer_gpu_without_a_gpu_fails_naming_the_option(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = compose(["trainer=gpu", f"paths.output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=r"trainer\.accelerator=gpu .*no CUDA GPU"):
        validate_config(cfg)


def test_online_wandb_without_a_server_fails_naming_the_option(tmp_path, monkeypatch):
    """Issue 23: ``logger.wandb.offline=false`` with no network waited 100 s, then ended
    in a traceback. The server is now tried first (a closed port stands for it here);
    ``WANDB_MODE=offline`` still wins over the option, as in W&B itself."""
    from geoloc.cli.common import check_wandb_reachable, run_task

    cfg = compose(["logger.wandb.offline=false", f"paths.output_dir={tmp_path}"])
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("no_proxy", "127.0.0.1")  # a proxy in the environment stays out
    check_wandb_reachable(cfg)  # the tests' WANDB_MODE=offline: nothing to reach
    monkeypatch.delenv("WANDB_MODE")
    with pytest.raises(ConfigError, match=r"logger\.wandb\.offline=false: the W&B server "
                                          r"http://127\.0\.0\.1:9 cannot be reached"):
        run_task(lambda cfg: pytest.fail("the task ran"), cfg)
    check_wandb_reachable(compose([f"paths.output_dir={tmp_path}"]))  # offline: true


@pytest.mark.slow
def test_geoloc_train_rejects_depth_beyond_backbone_within_seconds(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "GEOLOC_HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, "-m", "geoloc.cli.train", "model.encoder_layers=13",
         f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 2
    assert "model.encoder_layers=13" in proc.stderr and "1 to 12" in proc.stderr
    assert "Traceback" not in proc.stderr
    # It failed at validation: no backbone was materialised, no data generated.
    assert not (home / "backbones").exists() and not (home / "data").exists()


@pytest.mark.parametrize("data", ["synthetic", "jsonl", "umass", "umass_mix"])
def test_every_data_source_instantiates(data, tmp_path):
    from geoloc.training.build import build_datamodule

    path = tmp_path / "profiles.jsonl"
    path.write_text('{"id": "1", "bio": "", "captions": ["hi"], "stated_location": null, '
                    '"country": "US"}\n')
    cfg = compose([f"data={data}", f"data.source.path={path}"] if data == "jsonl"
                  else [f"data={data}"])
    # The datamodule binds its source to the model's label set and the split rule.
    meta = ModelMetadata.create(cfg.labels.countries, cfg.backbone.name, cfg.tokenizer.variant)
    source = build_datamodule(cfg, None, meta).source
    assert source.fingerprint()
    if data == "jsonl":  # the validated copy the datamodule loads, not the file itself
        from geoloc.io import read_jsonl

        assert source.input_path() == path and source.canonical_jsonl() != path
        assert list(read_jsonl(source.canonical_jsonl())) == [
            {"id": "1", "bio": "", "captions": ["hi"], "stated_location": None,
             "country": "US", "split": None}]


def test_experiment_configs_override_the_root_keys(tmp_path):
    """An experiment's own top-level keys (threads, task_name, crossfit) win over the root
    config's defaults: the root's _self_ comes first in its defaults list."""
    cfg = compose(["experiment=real_umass", f"paths.output_dir={tmp_path}"])
    assert cfg.threads == 2 and cfg.task_name == "real_umass"
    assert cfg.crossfit.folds == 3 and cfg.evaluation.policy.pool_below == 100
    assert cfg.fusion._target_.endswith("FusionConfig")
    default = compose([f"paths.output_dir={tmp_path}"])
    assert default.crossfit.folds is None and default.get("fusion") is None
    synthetic = compose(["experiment=synthetic_crossfit", f"paths.output_dir={tmp_path}"])
    assert synthetic.data.source._target_.endswith("SyntheticSource")
    assert synthetic.crossfit.folds == 3 and synthetic.fusion is not None


def test_a_non_ascii_path_needs_the_quoting_the_readme_gives(tmp_path):
    """Issue 23: Hydra's override grammar takes unquoted values in ASCII only; the
    README's "When things go wrong" row gives the quoting that works. Both halves are
    checked here, on the parser every entry point uses."""
    from hydra.errors import OverrideParseException

    path = tmp_path / "données" / "in.jsonl"
    with pytest.raises(OverrideParseException, match="LexerNoViableAltException"):
        compose([f"input={path}", "output=o.jsonl"], config_name="predict")
    cfg = compose([f"input='{path}'", "output=o.jsonl"], config_name="predict")
    assert cfg.input == str(path)
