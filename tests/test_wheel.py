"""The package installs anywhere: the wheel built from the checkout carries its Hydra
configs (``geoloc/conf``), and installed into a fresh virtual environment its console
scripts run from a folder outside the checkout, where nothing of the checkout is
importable or readable.

The fresh environment has no pip and installs no dependencies: a ``.pth`` file holding the
project venv's site-packages folder as a plain path line reuses what is installed there
(plain path lines only extend ``sys.path``, so that folder's own ``.pth`` files, geoloc's
editable-install finder among them, are never executed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    """The test session's environment (its GEOLOC_HOME, HF and W&B cache folders), offline,
    with nothing that could put the checkout on ``sys.path``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "WANDB_MODE": "offline", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "PIP_NO_INPUT": "1", "PYTHONNOUSERSITE": "1"})
    return env


def _run(cmd: list, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel`` of the checkout, built from a copy of what the build reads (an in-tree
    build would leave ``build/`` in the checkout, and a stale ``build/lib`` ships files the
    checkout no longer has)."""
    src = tmp_path_factory.mktemp("wheel_src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "geoloc", src / "geoloc",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--no-index", "-q", "-w", out, src], cwd=src)
    (path,) = out.glob("geoloc-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv (no pip) with the wheel installed and the project's dependencies
    reused; returns its ``bin`` folder."""
    root = tmp_path_factory.mktemp("venv") / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", root], cwd=root.parent)
    python = root / "bin" / "python"
    # installed before the .pth exists, so pip sees an empty environment (and never the
    # project's editable geoloc); --python: the project's pip run by the new interpreter,
    # so the console scripts start that interpreter
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps",
          "--no-index", "-q", wheel], cwd=root.parent)
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     cwd=root.parent).stdout.strip())
    deps = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (site / "_geoloc_test_deps.pth").write_text("".join(f"{p}\n" for p in deps),
                                                encoding="utf-8")
    return root / "bin"


@pytest.fixture
def outside(tmp_path) -> Path:
    """A working folder outside the checkout (so ``''`` on ``sys.path`` is not the repo)."""
    assert not tmp_path.resolve().is_relative_to(REPO)
    return tmp_path


def test_wheel_carries_the_configs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"geoloc/conf/train.yaml", "geoloc/conf/labels/default36.yaml"} <= names
    # every config of the checkout, nested groups (hydra/launcher/) included
    configs = {p.relative_to(REPO).as_posix() for p in (REPO / "geoloc" / "conf").rglob("*.yaml")}
    assert "geoloc/conf/hydra/launcher/parallel.yaml" in configs
    assert configs <= names, sorted(configs - names)


def test_installed_package_composes_its_configs_and_labels(venv, outside):
    """geoloc and its configs come from the new venv; ``geoloc-train --cfg job`` composes
    the config; ``geoloc-label`` labels a tiny CSV."""
    where = _run([venv / "python", "-c", "import json, geoloc, geoloc.config as c; "
                  "print(json.dumps([geoloc.__file__, c.CONF_DIR]))"], outside).stdout
    module, conf_dir = (Path(p) for p in json.loads(where))
    env_root = venv.parent
    assert module.is_relative_to(env_root) and Path(conf_dir).is_relative_to(env_root)
    assert not module.resolve().is_relative_to(REPO)

    job = _run([venv / "geoloc-train", "--cfg", "job"], outside).stdout
    assert "task_name: train" in job and "countries:" in job and "model:" in job

    src = outside / "raw.csv"
    src.write_text("id,bio,caption,location\n1,hola,buen día,CDMX\n"
                   "2,hi,hello,somewhere over the rainbow\n,x,y,Paris\n", encoding="utf-8")
    out, err = outside / "labelled.jsonl", outside / "errors.jsonl"
    printed = _run([venv / "geoloc-label", src, "--captions", "caption", "--location",
                    "location", "--out", out, "--errors", err], outside).stdout
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["country"]) for r in rows] == [("1", "MX")]
    assert len(err.read_text(encoding="utf-8").splitlines()) == 1
    assert "unresolved:       1" in printed


@pytest.fixture(scope="module")
def tiny_model(tiny_bundles, me5_dir) -> Path:  # noqa: ARG001 (the backbone, built)
    """A tiny model bundle (mE5 cut to 1 layer, a fitted policy and fusion) saved by the
    checkout (conftest.save_tiny_bundle): what is tested is that the installed package
    reads a bundle, not the model's quality, so nothing is trained."""
    return tiny_bundles[0]


def test_installed_geoloc_predict_runs_a_trained_model(venv, tiny_model, outside):
    """``geoloc-predict`` of the installed package on a model trained by the checkout,
    with the session's GEOLOC_HOME (the backbone the tests built)."""
    src = outside / "in.jsonl"
    rows = [{"id": "a", "bio": "Bom dia 🇧🇷 São Paulo", "captions": ["praia hoje"]},
            {"id": "b", "bio": "howdy y'all", "captions": ["rodeo", "bbq"]},
            {"id": "c", "bio": "", "captions": []}]
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                   encoding="utf-8")
    out = outside / "pred.jsonl"
    printed = _run([venv / "geoloc-predict", f"model_dir={tiny_model}", f"input={src}",
                    f"output={out}", "progress=false", "threads=2"], outside).stdout
    assert "rows read:   3" in printed
    preds = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [p["id"] for p in preds] == ["a", "b", "c"]
    assert all(p["country"] for p in preds)
