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
