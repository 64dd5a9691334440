"""Profile sources: where the canonical JSONL a datamodule reads comes from.

Every source turns its input (the synthetic generator, a user's file, the real tweet set)
into one canonical JSONL file of :class:`geoloc.data.schema.ProfileRecord` rows, cached
under ``GEOLOC_HOME``. The datamodule only ever reads that file, so adding a source never
touches splitting, tokenisation or training.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from geoloc.labels import DEFAULT_COUNTRIES


class ProfileSource(Protocol):
    """Anything that can produce a canonical profile JSONL file."""

    def canonical_jsonl(self) -> Path: ...

    def fingerprint(self) -> str: ...


def _hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


@dataclass
class SyntheticSource:
    """The embedded default: profiles from the synthetic generator (not a benchmark)."""

    n: int = 9000
    seed: int = 0
    countries: Sequence[str] = DEFAULT_COUNTRIES
    generator: dict[str, Any] = field(default_factory=dict)

    def _config(self):
        from geoloc.data.synthetic import SyntheticConfig

        return SyntheticConfig(**dict(self.generator)) if self.generator else None

    def canonical_jsonl(self) -> Path:
        from geoloc.data.synthetic import ensure_synthetic

        return ensure_synthetic(self.n, self.seed, list(self.countries), self._config())

    def fingerprint(self) -> str:
        return _hash({"kind": "synthetic", **asdict(self), "countries": list(self.countries)})


@dataclass
class CanonicalJsonlSource:
    """A JSONL file already in the canonical schema (e.g. written by ``geoloc-label``)."""

    path: str

    def canonical_jsonl(self) -> Path:
        path = Path(self.path).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"data.source.path: {path} does not exist")
        return path

    def fingerprint(self) -> str:
        return _hash({"kind": "jsonl", "digest": _file_digest(self.canonical_jsonl())})
