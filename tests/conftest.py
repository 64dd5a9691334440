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
    """Compose a real config from ``conf/`` (as the entry points do), with overrides."""
    from geoloc.config import compose_config

    return compose_config(overrides or [], config_name)


def pytest_sessionfinish(session, exitstatus):  # noqa: ARG001
    """Remove the session's temp caches (a materialised backbone is ~470 MB)."""
    import shutil

    shutil.rmtree(_TMP, ignore_errors=True)
