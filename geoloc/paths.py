"""Where geoloc keeps things that are too large or too derived to live in the repo.

Backbone folders materialised from pip packages and generated synthetic corpora are
cached under ``GEOLOC_HOME`` (default ``~/.cache/geoloc``) so that every run, test and
notebook reuses them instead of rebuilding them, and so that a user can move the cache
to a bigger disk with one environment variable.
"""

from __future__ import annotations

import os
from pathlib import Path


def geoloc_home() -> Path:
    """Root of the geoloc cache (``$GEOLOC_HOME`` or ``~/.cache/geoloc``)."""
    home = os.environ.get("GEOLOC_HOME")
    root = Path(home).expanduser() if home else Path.home() / ".cache" / "geoloc"
    return root


def cache_dir(*parts: str) -> Path:
    """A sub-folder of the cache, created on demand."""
    path = geoloc_home().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
