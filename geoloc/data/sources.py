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


def _atomic_jsonl(path: Path, rows) -> int:
    from geoloc.data.readers import write_jsonl

    return write_jsonl(path, rows)


@dataclass
class UmassTweetsSource:
    """Real geotagged tweets: UMass Global English on Twitter (Blodgett et al., W-NUT 2017).

    Each tweet becomes one profile with an empty bio and the tweet as its single caption;
    the geotag's ISO code is kept as ``country`` (the datamodule maps codes outside the
    label set to OTHER). ``path=None`` reads the bundled development half
    (``geoloc/resources/umass_global_english/dev.tsv``, CC BY 4.0); any file with the same
    columns (``Tweet ID``, ``Tweet``, ``Country``) works, e.g. the held-out half.

    The canonical JSONL is written once under ``GEOLOC_HOME/data/umass`` (keyed by the
    input file's digest). A row the reader rejects stops the conversion with its line.
    """

    path: str | None = None

    def input_path(self) -> Path:
        if self.path is None:
            from geoloc.resources import umass_dev_path

            return umass_dev_path()
        path = Path(self.path).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"data.source.path: {path} does not exist")
        return path

    def canonical_jsonl(self) -> Path:
        from geoloc.data.readers import ColumnMapping, read_profiles_to_jsonl
        from geoloc.paths import cache_dir

        src = self.input_path()
        out = cache_dir("data", "umass") / f"{src.stem}-{self.fingerprint()}.jsonl"
        if not out.exists():
            n, errors = read_profiles_to_jsonl(src, ColumnMapping.tweets(), out, fmt="tsv",
                                               require_country=True)
            if errors:
                out.unlink(missing_ok=True)
                raise errors[0]
            if n == 0:
                out.unlink(missing_ok=True)
                raise ValueError(f"{src}: no tweets read")
        return out

    def fingerprint(self) -> str:
        return _hash({"kind": "umass_tweets", "digest": _file_digest(self.input_path()),
                      "mapping": "tweets-v1"})


@dataclass
class MixtureSource:
    """Real profiles plus synthetic profiles that may only ever be *training* rows.

    Writes one canonical JSONL (cached under ``GEOLOC_HOME/data/mixture``): every row of
    ``real`` unchanged (so it lands in exactly the split it has without the mixture: same
    id, same keyed hash), followed by ``round(synthetic_ratio * n_real_train)`` synthetic
    profiles that carry ``"split": "train"``, which the datamodule honours instead of the
    id hash. ``n_real_train`` is the number of real rows the datamodule will put in train
    under ``splits``/``split_seed`` (pass the data config's own values; the data configs
    interpolate them), so ``synthetic_ratio`` is "synthetic rows per real training row".
    Synthetic ids are prefixed with ``synthetic:`` so they can never collide with real ids.
    """

    real: ProfileSource
    synthetic_ratio: float = 1.0
    synthetic_seed: int = 0
    countries: Sequence[str] = DEFAULT_COUNTRIES
    generator: dict[str, Any] = field(default_factory=dict)
    splits: dict[str, float] | None = None
    split_seed: int = 0

    SYNTHETIC_PREFIX = "synthetic:"

    def __post_init__(self) -> None:
        ratio = float(self.synthetic_ratio)
        if not ratio >= 0:
            raise ValueError(f"data.source.synthetic_ratio={self.synthetic_ratio!r}: must be >= 0")
        self.synthetic_ratio = ratio
        self.countries = [str(c) for c in self.countries]
        self.generator = dict(self.generator or {})
        self.splits = dict(self.splits) if self.splits is not None else None

    def _fractions(self) -> dict[str, float]:
        from geoloc.data.datamodule import DEFAULT_SPLITS, validate_splits

        return validate_splits(self.splits or DEFAULT_SPLITS)

    def n_synthetic(self, n_real_train: int) -> int:
        return int(round(self.synthetic_ratio * n_real_train))

    def canonical_jsonl(self) -> Path:
        from geoloc.data.datamodule import record_split
        from geoloc.paths import cache_dir

        out = cache_dir("data", "mixture") / f"mixture-{self.fingerprint()}.jsonl"
        if out.exists():
            return out
        fractions, seed = self._fractions(), int(self.split_seed)
        real_rows = []
        with open(self.real.canonical_jsonl(), encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    real_rows.append(json.loads(line))
        n_train = sum(record_split(r, seed, fractions) == "train" for r in real_rows)
        n_syn = self.n_synthetic(n_train)
        syn_rows = []
        if n_syn:
            syn = SyntheticSource(n=n_syn, seed=int(self.synthetic_seed),
                                  countries=list(self.countries), generator=self.generator)
            with open(syn.canonical_jsonl(), encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        row = json.loads(line)
                        row["id"] = f"{self.SYNTHETIC_PREFIX}{row['id']}"
                        row["split"] = "train"
                        syn_rows.append(row)
        _atomic_jsonl(out, [*real_rows, *syn_rows])
        return out

    def fingerprint(self) -> str:
        return _hash({
            "kind": "mixture-v1", "real": self.real.fingerprint(),
            "synthetic_ratio": self.synthetic_ratio, "synthetic_seed": int(self.synthetic_seed),
            "countries": list(self.countries), "generator": self.generator,
            "splits": self._fractions(), "split_seed": int(self.split_seed),
        })
