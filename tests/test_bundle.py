"""The model bundle: one folder a trained model lives in, whole or refused.

Built from real pieces (mE5 cut to 1 layer, the real tokenizer, a policy fitted on
logits, a fitted char n-gram fusion, calibration outputs) without training: what is
tested is the folder, not the model's quality. Every file kind is deleted, changed and
swapped for another model's copy, and an unknown file is added; each time the bundle is
refused with one line naming the file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TEXTS, compose

pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def bundles(tiny_bundles) -> tuple[Path, Path]:
    return tiny_bundles


def test_a_saved_bundle_opens_and_rebuilds_the_same_network(bundles):
    from geoloc.bundle import Bundle
    from geoloc.bundle.files import (
        CALIBRATION_FILE,
        FUSION_ARRAYS,
        FUSION_FILE,
        MANIFEST,
        REQUIRED,
    )
    from geoloc.inference.predictor import Predictor, TorchScorer

    folder, _ = bundles
    bundle = Bundle.open(folder)
    assert set(bundle.manifest["files"]) >= {*REQUIRED, CALIBRATION_FILE, FUSION_FILE,
                                             FUSION_ARRAYS}
    assert MANIFEST not in bundle.manifest["files"]
    assert bundle.class_names == ["BR", "US", "JP", "TR", "OTHER"]
    assert bundle.max_length == 64 and bundle.fusion().weight == 0.5
    # the frozen embedding table is left out, its hash recorded (22 MB, not ~470 MB)
    assert bundle.info["restored_from_backbone"]
    assert bundle.path("geoloc_weights.safetensors").stat().st_size < 60e6
    module = bundle.load_module()
    again = Bundle.open(folder).load_module()
    enc = module.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(module(enc["input_ids"], enc["attention_mask"]),
                                   again(enc["input_ids"], enc["attention_mask"]))
    # the predictor over the rebuilt network (Predictor.load builds it the same way)
    rows = Predictor(module.tokenizer, TorchScorer(again.net), bundle.thresholds(),
                     bundle.max_length, fusion=bundle.fusion()).predict_texts(TEXTS)
    assert rows.probabilities.shape == (4, 5)


def _kinds(folder: Path) -> list[str]:
    from geoloc.bundle import Bundle

    return sorted(Bundle.open(folder).manifest["files"])


@pytest.mark.parametrize("fault", ["missing", "changed", "swapped"])
def test_every_file_kind_missing_changed_or_swapped_is_refused_naming_it(bundles, tmp_path,
                                                                         fault):
    """For each file of the bundle: deleted, one byte changed, or replaced by the same
    file of another model (a policy from another run, another fusion...): one line that
    names the file."""
    from geoloc.bundle import Bundle
    from geoloc.errors import BundleError

    good, other = bundles
    names = _kinds(good)
    assert len(names) >= 8
    for name in names:
        folder = tmp_path / f"{fault}-{name}"
        shutil.copytree(good, folder)
        target = folder / name
        if fault == "missing":
            target.unlink()
        elif fault == "changed":
            data = bytearray(target.read_bytes())
            data[len(data) // 2] ^= 0x01
            target.write_bytes(bytes(data))
        else:
            if (other / name).read_bytes() == target.read_bytes():
                continue  # the same bytes in both models (e.g. the tokenizer)
            shutil.copyfile(other / name, target)
        with pytest.raises(BundleError) as caught:
            Bundle.open(folder)
        text = str(caught.value)
        assert str(target) in text and "\n" not in text, (fault, name, text)


def test_an_unlisted_file_or_a_broken_manifest_is_refused(bundles, tmp_path):
    from geoloc.bundle import Bundle
    from geoloc.bundle.files import MANIFEST
    from geoloc.errors import BundleError

    good, _ = bundles
    folder = tmp_path / "extra"
    shutil.copytree(good, folder)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(BundleError, match=r"notes\.txt: not part of the bundle"):
        Bundle.open(folder)
    (folder / "notes.txt").unlink()
    manifest = json.loads((folder / MANIFEST).read_text())
    del manifest["files"]["geoloc_thresholds.json"]
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="lists no thresholds file"):
        Bundle.open(folder)
    (folder / MANIFEST).write_text("{not json")
    with pytest.raises(BundleError, match="unreadable manifest"):
        Bundle.open(folder)
    (folder / MANIFEST).unlink()
    with pytest.raises(BundleError, match="not a geoloc model folder"):
        Bundle.open(folder)


def test_every_command_refuses_a_broken_bundle_in_one_line(bundles, tmp_path, capsys):
    """geoloc-eval, -predict, -export and -audience all take model_dir= and report a bundle
    whose policy was swapped as bad input: exit 2, one line naming the file, nothing
    written (in-process through each entry point's hydra_task, and geoloc-predict once
    as a real process)."""
    from geoloc.cli.audience import audience
    from geoloc.cli.common import hydra_task
    from geoloc.cli.evaluate import evaluate
    from geoloc.cli.export import export_task
    from geoloc.cli.predict import predict

    good, other = bundles
    folder = tmp_path / "swapped"
    shutil.copytree(good, folder)
    shutil.copyfile(other / "geoloc_thresholds.json", folder / "geoloc_thresholds.json")
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "1", "bio": "hi", "captions": [], "group": "g"}) + "\n")
    commands = {
        "predict": (predict, [f"input={src}", f"output={tmp_path / 'p.jsonl'}"]),
        "export": (export_task, [f"output={tmp_path / 'export'}"]),
        "audience": (audience, [f"input={src}", f"output={tmp_path / 'a.csv'}",
                                "columns.group=group"]),
        "eval": (evaluate, ["logger=none"]),
    }
    for name, (task, args) in commands.items():
        cfg = compose([f"model_dir={folder}", *args, f"paths.output_dir={tmp_path}"],
                      config_name=name)
        with pytest.raises(SystemExit) as code:
            hydra_task(f"geoloc-{name}", task, cfg, None)
        assert code.value.code == 2, name
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"geoloc-{name}: bad input: "), (name, err)
        assert str(folder / "geoloc_thresholds.json") in err[0], (name, err)
    cmd = [sys.executable, "-m", "geoloc.cli.predict", f"model_dir={folder}",
           *commands["predict"][1], f"hydra.run.dir={tmp_path / 'run'}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith("geoloc-predict: bad input: ")
    assert not (tmp_path / "p.jsonl").exists() and not (tmp_path / "export").exists()
    assert not (tmp_path / "a.csv").exists()


def test_ckpt_path_still_works_for_a_release_with_a_deprecation_message(bundles, tmp_path,
                                                                       caplog):
    """A bundle folder given as ckpt_path= opens (with a warning); model_dir= and ckpt_path=
    together are refused."""
    from geoloc.cli.common import model_bundle
    from geoloc.errors import ConfigError

    good, _ = bundles
    with caplog.at_level("WARNING", logger="geoloc"):
        bundle = model_bundle(compose([f"ckpt_path={good}"], config_name="predict"))
    assert bundle.folder == good and "deprecated" in caplog.text
    with pytest.raises(ConfigError, match="give one"):
        model_bundle(compose([f"ckpt_path={good}", f"model_dir={good}"],
                             config_name="predict"))
    with pytest.raises(ConfigError, match="model_dir=<folder>"):
        model_bundle(compose([], config_name="predict"))


def test_a_fused_model_without_its_fusion_files_is_refused_even_with_an_edited_manifest(
        bundles, tmp_path):
    """The model description (hashed) records that the policy was fitted on fused outputs:
    dropping both fusion files *and* their manifest entries is still caught."""
    from geoloc.bundle import Bundle
    from geoloc.bundle.files import FUSION_ARRAYS, FUSION_FILE, MANIFEST
    from geoloc.errors import BundleError

    good, _ = bundles
    folder = tmp_path / "unfused"
    shutil.copytree(good, folder)
    manifest = json.loads((folder / MANIFEST).read_text())
    for name in (FUSION_FILE, FUSION_ARRAYS):
        (folder / name).unlink()
        del manifest["files"][name]
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="trained with a fused n-gram model"):
        Bundle.open(folder)


def test_saving_never_replaces_a_folder_that_is_not_a_model(bundles, tmp_path):
    """paths.model_dir is an ordinary option: pointed at a run folder or a folder of the
    user's, saving refuses instead of deleting it; an earlier bundle is replaced."""
    from geoloc.bundle import Bundle
    from geoloc.errors import ConfigError

    good, _ = bundles
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    bundle = Bundle.open(good)
    with pytest.raises(ConfigError, match="exists and is not a model folder"):
        bundle.derive(mine, lambda tmp: None)
    assert (mine / "notes.txt").read_text() == "keep me"
    copy = bundle.derive(tmp_path / "copy", lambda tmp: None)
    again = Bundle.open(copy.folder).derive(copy.folder, lambda tmp: None)  # a bundle: replaced
    assert sorted(again.manifest["files"]) == sorted(bundle.manifest["files"])


def test_tool_metadata_is_ignored_and_an_old_export_is_named(bundles, tmp_path):
    """Folders copied by git or downloaded from the Hugging Face Hub carry metadata the
    model never reads; an export written before model folders is named as such."""
    from geoloc.bundle import Bundle
    from geoloc.bundle.files import MANIFEST
    from geoloc.errors import BundleError

    good, _ = bundles
    folder = tmp_path / "downloaded"
    shutil.copytree(good, folder)
    (folder / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    (folder / ".cache").mkdir()
    assert Bundle.open(folder).folder == folder
    (folder / MANIFEST).unlink()
    (folder / "config.json").write_text(json.dumps({"geoloc": {"format": "geoloc.export/v1"}}))
    with pytest.raises(BundleError, match="an export written before model folders"):
        Bundle.open(folder)


def _checkpoint_of(folder: Path, ckpt: Path, policy_from: Path | None = None,
                   fusion: bool = True) -> Path:
    """A training checkpoint (as Lightning writes it) of the bundle in ``folder``, with the
    files earlier versions kept beside it: the policy and the fusion files (of
    ``policy_from``'s bundle when given; no fusion files when ``fusion`` is false). The
    checkpoint is written once per bundle and copied (building the network is slow)."""
    import pytorch_lightning as pl

    from geoloc.bundle import Bundle, legacy_file
    from geoloc.bundle.files import FUSION_ARRAYS, FUSION_FILE, THRESHOLDS_FILE
    from geoloc.model.module import RESTORED_KEY

    ckpt.parent.mkdir(parents=True, exist_ok=True)
    first = _CHECKPOINTS.get(folder)
    if first is None:
        bundle = Bundle.open(folder)
        module = bundle.load_module()
        frozen = set(module.frozen_parameter_names())
        torch.save({"state_dict": {k: v for k, v in module.state_dict().items()
                                   if k not in frozen},
                    RESTORED_KEY: bundle.info["restored_from_backbone"],
                    "hyper_parameters": dict(module.hparams),
                    "datamodule_hyper_parameters": bundle.data,
                    "pytorch-lightning_version": pl.__version__}, ckpt)
        _CHECKPOINTS[folder] = ckpt
    else:
        shutil.copyfile(first, ckpt)
    shutil.copyfile((policy_from or folder) / THRESHOLDS_FILE,
                    legacy_file(ckpt, THRESHOLDS_FILE))
    if fusion:
        for name in (FUSION_FILE, FUSION_ARRAYS):
            shutil.copyfile((policy_from or folder) / name, legacy_file(ckpt, name))
    return ckpt


_CHECKPOINTS: dict[Path, Path] = {}


def test_a_policy_records_its_model_and_a_checkpoint_with_another_models_is_refused(
        bundles, tmp_path, caplog):
    """Issue 23: a checkpoint with another model's ``.thresholds.json`` beside it, or a fused
    model's checkpoint without its ``.fusion.*`` files, used to predict without a word.
    The policy now records the weights and fusion it was fitted on; each is refused in
    one line naming the policy file."""
    import numpy as np

    from geoloc.bundle import Bundle, bundle_from_checkpoint, legacy_file
    from geoloc.bundle.files import THRESHOLDS_FILE
    from geoloc.bundle.legacy import _check_legacy_policy
    from geoloc.errors import BundleError
    from geoloc.evaluation import SplitOutputs, Thresholds

    good, other = bundles
    bundle = Bundle.open(good)
    policy = bundle.thresholds()
    assert policy.fitted_with == {"weights": bundle.info["weights_digest"],
                                  "fusion": bundle.fusion().digest()}
    # its own files: converted, and the copy's policy names the same weights and fusion
    ckpt = _checkpoint_of(good, tmp_path / "own" / "epoch01.ckpt")
    converted = bundle_from_checkpoint(ckpt)
    assert converted.thresholds().fitted_with == policy.fitted_with
    # another model's policy (and fusion) beside the checkpoint
    ckpt = _checkpoint_of(good, tmp_path / "foreign" / "epoch01.ckpt", policy_from=other)
    with pytest.raises(BundleError, match=r"thresholds.json: fitted on another model's "
                                          r"outputs .*epoch01.ckpt") as err:
        bundle_from_checkpoint(ckpt)
    assert "\n" not in str(err.value)
    # the fused model's policy without the fusion files
    ckpt = _checkpoint_of(good, tmp_path / "unfused" / "epoch01.ckpt", fusion=False)
    with pytest.raises(BundleError, match="fitted with a fused n-gram model"):
        bundle_from_checkpoint(ckpt)
    # a policy written before the record: the run's config says it fused
    run = tmp_path / "old-run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("fusion:\n  weights: [0.5]\n")
    ckpt = _checkpoint_of(good, run / "checkpoints" / "epoch01.ckpt", fusion=False)
    old = json.loads(legacy_file(ckpt, THRESHOLDS_FILE).read_text())
    del old["fitted_with"]
    legacy_file(ckpt, THRESHOLDS_FILE).write_text(json.dumps(old))
    with pytest.raises(BundleError, match=r"fusion.json: missing; the run .* fused"):
        bundle_from_checkpoint(ckpt)
    # ... the run's report kept another policy: refused (the case: another
    # model's policy copied beside a checkpoint of this run)
    (run / ".hydra" / "config.yaml").write_text("fusion: null\n")
    policy = Thresholds.from_json(legacy_file(ckpt, THRESHOLDS_FILE))
    (run / "report").mkdir()
    shutil.copyfile(other / THRESHOLDS_FILE, run / "report" / "thresholds.json")
    with pytest.raises(BundleError, match=r"not the policy this checkpoint's run fitted"):
        _check_legacy_policy(ckpt, legacy_file(ckpt, THRESHOLDS_FILE), policy, None, None)
    # ... and its own (another version's copy), read with a warning that the weights
    # cannot be checked (the check alone: the conversion after it is tested above)
    policy.to_json(run / "report" / "thresholds.json")
    with caplog.at_level("WARNING", logger="geoloc"):
        _check_legacy_policy(ckpt, legacy_file(ckpt, THRESHOLDS_FILE), policy, None, None)
    assert "written before policies recorded the weights" in caplog.text
    # calibration outputs of another run beside it: refused by their row count
    other_rows = SplitOutputs(np.zeros((3, 5), np.float32), np.zeros(3, np.int64))
    with pytest.raises(BundleError, match="fitted on 400 rows, but .* holds 3"):
        _check_legacy_policy(ckpt, legacy_file(ckpt, THRESHOLDS_FILE), policy, None,
                             other_rows)


def test_a_bundle_whose_weights_were_swapped_under_a_rewritten_manifest_is_refused(
        bundles, tmp_path):
    """Swapping the weights file and rewriting the manifest (what a hand-assembled folder
    does) is caught where the weights are read: they are not the ones the model
    description records, on which the policy was fitted. A policy naming other weights
    is refused when read."""
    from geoloc.bundle import Bundle, write_manifest
    from geoloc.bundle.files import MODEL_FILE, WEIGHTS_FILE
    from geoloc.errors import BundleError

    good, other = bundles
    folder = tmp_path / "mixed"
    shutil.copytree(good, folder)
    shutil.copyfile(other / WEIGHTS_FILE, folder / WEIGHTS_FILE)
    write_manifest(folder)
    with pytest.raises(BundleError, match="not the weights .*geoloc_model.json records"):
        Bundle.open(folder).load_module()
    info = json.loads((other / MODEL_FILE).read_text())
    (folder / MODEL_FILE).write_text(json.dumps(info))
    write_manifest(folder)
    with pytest.raises(BundleError, match="fitted on another model's outputs"):
        Bundle.open(folder).thresholds()


def test_a_bundle_saved_before_the_records_still_opens_and_predicts(bundles, tmp_path):
    """A model folder written before policies and model descriptions carried their
    digests (no ``weights_digest``, no ``fitted_with``) is read as before: what cannot be
    checked is not refused. Its predictions record the weights file's SHA-256 instead."""
    from geoloc.bundle import Bundle, write_manifest
    from geoloc.bundle.files import FUSION_FILE, MODEL_FILE, THRESHOLDS_FILE, WEIGHTS_FILE
    from geoloc.inference.predictor import Predictor
    from geoloc.io import file_sha256

    good, _ = bundles
    folder = tmp_path / "old"
    shutil.copytree(good, folder)
    info = json.loads((folder / MODEL_FILE).read_text())
    del info["weights_digest"]
    (folder / MODEL_FILE).write_text(json.dumps(info))
    policy = json.loads((folder / THRESHOLDS_FILE).read_text())
    del policy["fitted_with"]
    (folder / THRESHOLDS_FILE).write_text(json.dumps(policy))
    fusion = json.loads((folder / FUSION_FILE).read_text())
    fusion["thresholds_sha256"] = file_sha256(folder / THRESHOLDS_FILE)
    (folder / FUSION_FILE).write_text(json.dumps(fusion))
    write_manifest(folder)
    bundle = Bundle.open(folder)
    assert bundle.thresholds().fitted_with == {} and bundle.fusion() is not None
    assert bundle.provenance()["weights"] == bundle.sha256(WEIGHTS_FILE)
    assert Predictor.load(bundle).predict_texts(TEXTS).probabilities.shape == (4, 5)


def test_training_refuses_another_models_policy_and_eval_checks_one(bundles, tmp_path):
    """``evaluation.thresholds=`` names a policy applied as is: in training it would be
    saved in a bundle whose weights it was never fitted on (refused before training);
    ``geoloc-eval`` checks it against the model it evaluates."""
    from geoloc.bundle import Bundle
    from geoloc.bundle.files import THRESHOLDS_FILE
    from geoloc.cli.common import run_task
    from geoloc.cli.train import train
    from geoloc.errors import BundleError, ConfigError

    good, other = bundles
    policy = tmp_path / "policy.json"
    shutil.copyfile(other / THRESHOLDS_FILE, policy)
    cfg = compose([f"+evaluation.thresholds={policy}", f"paths.output_dir={tmp_path}",
                   "logger=none"])
    with pytest.raises(ConfigError, match="fitted on another model"):
        run_task(train, cfg)
    with pytest.raises(BundleError, match="fitted on another model's outputs"):
        Bundle.open(good).thresholds(policy)
