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
    from geoloc.inference.predictor import Predictor

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
    rows = Predictor.load(folder).predict_texts(TEXTS)
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
