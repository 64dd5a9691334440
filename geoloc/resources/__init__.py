"""Package data shipped with geoloc (read with :mod:`importlib.resources`).

- ``umass_global_english/``: the development half of the UMass Global English on Twitter
  data set (Blodgett, Wei & O'Connor, W-NUT 2017; CC BY 4.0). See its README.md and
  NOTICE.md; the held-out half is not in this repository.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

UMASS_DIR = "umass_global_english"
UMASS_DEV_FILE = "dev.tsv"
#: Rows of the bundled development half (10 rows without a country were dropped upstream).
UMASS_DEV_ROWS = 5174


def resource_path(*parts: str) -> Path:
    """Filesystem path of a bundled resource (works in editable and regular installs)."""
    return Path(str(resources.files(__name__).joinpath(*parts)))


def umass_dev_path() -> Path:
    """The bundled ``dev.tsv`` of UMass Global English on Twitter (development half)."""
    return resource_path(UMASS_DIR, UMASS_DEV_FILE)
