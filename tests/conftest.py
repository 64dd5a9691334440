"""Test setup: offline, temp caches, and one materialised backbone per session.

The environment is set at import time, before any Hugging Face, datasets or W&B module
is imported, so nothing in the suite can reach the network or write to the user's caches.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_TMP = Path(tempfile.mkdtemp(prefix="geoloc-tests-"))
os.environ.update(
    {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(_TMP / "wandb"),
        "WANDB_CACHE_DIR": str(_TMP / "wandb-cache"),
        "WANDB_CONFIG_DIR": str(_TMP / "wandb-config"),
        "HF_HOME": str(_TMP / "hf"),
        "HF_DATASETS_CACHE": str(_TMP / "hf" / "datasets"),
        "TOKENIZERS_PARALLELISM": "false",
        "MPLBACKEND": "Agg",
        "GEOLOC_HOME": os.environ.get("GEOLOC_TEST_HOME", str(_TMP / "geoloc-home")),
    }
)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def me5_dir() -> Path:
    """The mE5-small Hugging Face folder, materialised once for the whole session."""
    from geoloc.backbones import materialize_backbone

    return materialize_backbone("me5_small")


@pytest.fixture(scope="session")
def geoloc_home() -> Path:
    return Path(os.environ["GEOLOC_HOME"])


def compose(overrides: list[str] | None = None, config_name: str = "train"):
    """Compose a real config from ``geoloc/conf/`` (as the entry points do), with overrides."""
    from geoloc.config import compose_config

    return compose_config(overrides or [], config_name)


def wandb_summary(run_dir: Path) -> dict:
    """What an offline W&B run recorded, read back from its transaction log."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--summary", "--json", str(run_dir)],
        capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def run_notebook(name: str, cwd: Path, env: dict[str, str], timeout: int = 600):
    """Execute ``notebooks/<name>.ipynb`` in a kernel of this interpreter, in ``cwd``,
    with ``env`` added to the kernel's environment; returns the executed notebook."""
    import nbformat
    from nbclient import NotebookClient

    notebook = Path(__file__).resolve().parents[1] / "notebooks" / f"{name}.ipynb"
    saved = {k: os.environ.get(k) for k in [*env, "MPLBACKEND"]}
    os.environ.update(env)
    os.environ.pop("MPLBACKEND", None)  # the kernel's own inline backend
    try:
        nb = nbformat.read(notebook, as_version=4)
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(cwd)}}).execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def notebook_images(nb) -> int:
    """How many PNG figures an executed notebook shows."""
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


def pytest_sessionfinish(session, exitstatus):  # noqa: ARG001
    """Remove the session's temp caches (a materialised backbone is ~470 MB)."""
    import shutil

    shutil.rmtree(_TMP, ignore_errors=True)


TEXTS = ["Bom dia São Paulo 🇧🇷", "howdy y'all from Texas", "東京 今日は", "Merhaba İstanbul"]


def save_tiny_bundle(folder: Path, seed: int) -> Path:
    """A whole bundle of real pieces without training (mE5 cut to 1 layer, a policy fitted
    on planted logits, a char n-gram fusion, calibration outputs, a population record):
    what the bundle, calibrate and population tests read."""
    import numpy as np
    import torch

    from geoloc.bundle import Bundle
    from geoloc.evaluation import PolicyConfig, SplitOutputs, fit_policy, softmax
    from geoloc.inference.population import PopulationProfile
    from geoloc.model.module import GeolocModule
    from geoloc.model.ngram import CharNgramLR, Fusion

    torch.manual_seed(seed)
    module = GeolocModule(backbone="me5_small", encoder_layers=1, pooling="mean",
                          dropout=0.1, tokenizer_variant="location_emoji",
                          countries=["BR", "US", "JP", "TR"], freeze_word_embeddings=True,
                          optimizer={"_target_": "torch.optim.AdamW", "_partial_": True,
                                     "lr": 1e-4},
                          warmup_ratio=0.1, compile=False).eval()
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, 400)
    logits = rng.normal(size=(400, 5)).astype(np.float32)
    logits[np.arange(400), labels] += 3.0
    names = list(module.class_names)
    policy = fit_policy(logits, labels, names, PolicyConfig(
        target=0.6, delta=0.1, start_counts=(20, 50), guarantee="per_class", pool_below=20))
    ngram = CharNgramLR(n_classes=5, C=1.0).fit(TEXTS * 5, [0, 1, 2, 3] * 5)
    return Bundle.save(folder, module, policy, data={"max_length": 64, "source": "test"},
                       calibration=SplitOutputs(logits, labels),
                       fusion=Fusion(model=ngram, weight=0.5),
                       metrics={"eval/accuracy": 0.5},
                       population=PopulationProfile.of(
                           softmax(logits, policy.temperature), ["hello there"] * 400,
                           names, source="test")).folder


@pytest.fixture(scope="session")
def tiny_bundles(tmp_path_factory) -> tuple[Path, Path]:
    """Two tiny bundles (seeds 0 and 1), built once per session; read, never changed."""
    root = tmp_path_factory.mktemp("bundles")
    return save_tiny_bundle(root / "a", seed=0), save_tiny_bundle(root / "b", seed=1)
