"""Profile sources: where the canonical JSONL a datamodule reads comes from.

Every source turns its input (the synthetic generator, a user's file, the real tweet set)
into one canonical JSONL file of :class:`geoloc.data.schema.ProfileRecord` rows, cached
under ``GEOLOC_HOME``. The datamodule only ever reads that file, so adding a source never
touches splitting, tokenisation or training.

Binding. Some sources need options that belong to the run, not to the source: the label
set (the synthetic generator draws profiles for its countries) and the split rule (a
mixture sizes its synthetic part by the number of real *training* rows). Rather than
interpolating the same values into several config nodes, such fields default to None and
the consumer fills them in through :meth:`ProfileSource.bind`::

    source = source.bind(label_set=metadata.label_set, splits=fractions, split_seed=seed)

:class:`geoloc.data.datamodule.ProfileDataModule` and
:func:`geoloc.data.datamodule.labelled_splits` both bind the source they are given, so a
config names each value once (``labels.countries``, ``data.splits``, ``data.split_seed``).
``bind`` returns a copy (sources are plain dataclasses) and keeps a value that was set
explicitly, e.g. a synthetic source may generate profiles for a different country list
than the model's label set; countries outside the label set then become OTHER. A source
that needs none of these returns itself. Using an unbound source raises
:class:`~geoloc.data.splits.DataConfigError` naming the missing field.

This module imports the split rules from :mod:`geoloc.data.splits`, never the datamodule.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from geoloc.data.readers import ColumnMapping, error_to_dict, iter_numbered_results
from geoloc.data.splits import record_split, validate_splits
from geoloc.errors import DataConfigError, InputFileError, RecordError
from geoloc.io import file_sha256, read_jsonl, write_jsonl
from geoloc.labels import LabelSet
from geoloc.paths import cache_dir
from geoloc.resources import umass_dev_path
from geoloc.synthetic import SyntheticConfig, ensure_synthetic

log = logging.getLogger("geoloc")

#: Hex digits of a file's SHA-256 kept in source fingerprints (and so in cache names).
_DIGEST_CHARS = 16


class ProfileSource(Protocol):
    """Anything that can produce a canonical profile JSONL file."""

    def canonical_jsonl(self) -> Path:
        """The canonical JSONL file (built and cached on first call)."""
        ...

    def fingerprint(self) -> str:
        """A short key of everything that determines the file's content."""
        ...

    def bind(self, *, label_set: LabelSet, splits: Mapping[str, float],
             split_seed: int) -> ProfileSource:
        """This source with the run's label set and split rule filled in where unset."""
        ...


def rejects_path(canonical: Path) -> Path:
    """Where :func:`validated_copy` lists the rows it did not keep, beside the copy."""
    return canonical.with_name(canonical.stem + ".rejects.jsonl")


def validated_copy(src: Path, mapping: ColumnMapping, out: Path, fmt: str | None = None
                   ) -> Path:
    """Read a user's labelled file through :mod:`geoloc.data.readers` into the canonical
    JSONL at ``out`` that training loads, checking every row's types, id, country code
    and split on the way.

    Why not hand the file to ``datasets`` directly: its JSON reader infers one type per
    column, so a single ``"country": 840`` turns the whole column into JSON text and every
    row silently becomes OTHER. Here any bad row fails the read with a one-line message
    naming file, line and field (all of them listed in :func:`rejects_path`). Rows without
    a country are not training data: they are skipped, counted in a warning and listed in
    the same rejects file, never turned into OTHER. A file with no labelled row fails.
    """
    bad: list[RecordError] = []
    unlabelled: list[RecordError] = []
    field = mapping.country or "country"

    def rows():
        for line, item in iter_numbered_results(src, mapping, fmt=fmt):
            if isinstance(item, RecordError):
                bad.append(item)
            elif item["country"] is None:
                unlabelled.append(RecordError(str(src), line, field,
                                              "no country: not usable for training, skipped"))
            else:
                yield item

    # written under another name and renamed only when every row passed: a concurrent
    # run sharing the cache never sees (and trusts) a copy that is about to be refused
    staged = out.with_name(f".{out.name}.{os.getpid()}.staged")
    try:
        n = write_jsonl(staged, rows())
        rejects = rejects_path(out)
        if bad or unlabelled:
            write_jsonl(rejects, (error_to_dict(e) for e in [*bad, *unlabelled]))
        if bad:
            raise InputFileError(f"{bad[0]} ({len(bad)} bad row(s) in all, each listed in "
                                 f"{rejects})")
        if n > 0:
            staged.replace(out)
    finally:
        staged.unlink(missing_ok=True)
    if n == 0:
        raise InputFileError(f"{src}: no row with a country ({len(unlabelled)} row(s) "
                             "without one): nothing to train or evaluate on")
    if unlabelled:
        log.warning(
            "%s: %d of %d rows have no country and are skipped (listed in %s)",
            src, len(unlabelled), n + len(unlabelled), rejects)
    return out


def _hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _unbound(cls: str, name: str) -> DataConfigError:
    return DataConfigError(
        f"{cls}.{name} is unset: bind the source to the run's label set and split rule "
        f"(source.bind(...); ProfileDataModule and labelled_splits do this) or pass {name}="
    )


@dataclass
class SyntheticSource:
    """The embedded default: profiles from the synthetic generator (not a benchmark).

    ``n`` and ``seed`` have no code default: ``geoloc/conf/data/synthetic.yaml`` is the one place
    the corpus size is written (and ``seed`` follows the run's ``${seed}``), so a Python
    caller states them instead of silently getting a different corpus than a run would.
    ``countries=None`` is filled by :meth:`bind` with the model's label set.
    """

    n: int
    seed: int
    countries: Sequence[str] | None = None
    generator: dict[str, Any] = field(default_factory=dict)

    def bind(self, *, label_set: LabelSet, splits: Mapping[str, float],
             split_seed: int) -> SyntheticSource:
        """Fill ``countries`` from the label set when unset (splits do not matter here)."""
        if self.countries is not None:
            return self
        return replace(self, countries=list(label_set.countries))

    def _countries(self) -> list[str]:
        if self.countries is None:
            raise _unbound("SyntheticSource", "countries")
        return [str(c) for c in self.countries]

    def _config(self) -> Any:
        """The generator's ``SyntheticConfig`` (None: its defaults)."""
        return SyntheticConfig(**dict(self.generator)) if self.generator else None

    def canonical_jsonl(self) -> Path:
        return ensure_synthetic(self.n, self.seed, self._countries(), self._config())

    def fingerprint(self) -> str:
        return _hash({"kind": "synthetic", **asdict(self), "countries": self._countries()})


@dataclass
class CanonicalJsonlSource:
    """A JSONL file in the canonical schema (e.g. written by ``geoloc-label``), read
    through the validating readers into a cached copy (:func:`validated_copy`)."""

    path: str

    def bind(self, *, label_set: LabelSet, splits: Mapping[str, float],
             split_seed: int) -> CanonicalJsonlSource:
        """Nothing to bind: the file is what it is."""
        return self

    def input_path(self) -> Path:
        path = Path(self.path).expanduser()
        if path.is_dir():
            raise InputFileError(f"data.source.path: {path} is a directory, not a JSONL file")
        if not path.exists():
            raise InputFileError(f"data.source.path: {path} does not exist")
        return path

    def canonical_jsonl(self) -> Path:
        src = self.input_path()
        out = cache_dir("data", "jsonl") / f"{src.stem}-{self.fingerprint()}.jsonl"
        if not out.exists():
            validated_copy(src, ColumnMapping(split="split"), out, fmt="jsonl")
        return out

    def fingerprint(self) -> str:
        # "reader": the copy is the validating reader's output (v2), not the file itself
        return _hash({"kind": "jsonl", "reader": 2,
                      "digest": file_sha256(self.input_path(), _DIGEST_CHARS)})


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

    def bind(self, *, label_set: LabelSet, splits: Mapping[str, float],
             split_seed: int) -> UmassTweetsSource:
        """Nothing to bind: tweets keep their own country codes."""
        return self

    def input_path(self) -> Path:
        """The TSV read: the bundled development half, or ``path``."""
        if self.path is None:
            return umass_dev_path()
        path = Path(self.path).expanduser()
        if not path.is_file():
            raise InputFileError(f"data.source.path: {path} "
                                 + ("is a directory, not a TSV file" if path.is_dir()
                                    else "does not exist"))
        return path

    def canonical_jsonl(self) -> Path:
        src = self.input_path()
        out = cache_dir("data", "umass") / f"{src.stem}-{self.fingerprint()}.jsonl"
        if not out.exists():
            validated_copy(src, ColumnMapping.tweets(), out, fmt="tsv")
        return out

    def fingerprint(self) -> str:
        return _hash({"kind": "umass_tweets",
                      "digest": file_sha256(self.input_path(), _DIGEST_CHARS),
                      "mapping": "tweets-v1"})


@dataclass
class MixtureSource:
    """Real profiles plus synthetic profiles that may only ever be *training* rows.

    Writes one canonical JSONL (cached under ``GEOLOC_HOME/data/mixture``): every row of
    ``real`` unchanged (so it lands in exactly the split it has without the mixture: same
    id, same keyed hash), followed by ``round(synthetic_ratio * n_real_train)`` synthetic
    profiles that carry ``"split": "train"``, which the datamodule honours instead of the
    id hash. ``n_real_train`` is the number of real rows the datamodule will put in train,
    so ``synthetic_ratio`` is "synthetic rows per real training row". Synthetic ids are
    prefixed with ``synthetic:`` so they can never collide with real ids.

    ``synthetic_ratio`` and ``synthetic_seed`` have no code default (``geoloc/conf/data/umass_mix
    .yaml`` writes them). ``countries``, ``splits`` and ``split_seed`` are normally left
    unset and filled by :meth:`bind` from the datamodule: ``splits``/``split_seed`` *must*
    be the datamodule's own (otherwise the ratio counts the wrong training rows), so a
    value set here that differs from them is refused at bind time.
    """

    real: ProfileSource
    synthetic_ratio: float
    synthetic_seed: int
    countries: Sequence[str] | None = None
    generator: dict[str, Any] = field(default_factory=dict)
    splits: Mapping[str, float] | None = None
    split_seed: int | None = None

    SYNTHETIC_PREFIX = "synthetic:"

    def __post_init__(self) -> None:
        ratio = float(self.synthetic_ratio)
        if not ratio >= 0:
            raise ValueError(f"data.source.synthetic_ratio={self.synthetic_ratio!r}: must be >= 0")
        self.synthetic_ratio = ratio
        self.synthetic_seed = int(self.synthetic_seed)
        if self.countries is not None:
            self.countries = [str(c) for c in self.countries]
        self.generator = dict(self.generator or {})
        if self.splits is not None:
            self.splits = validate_splits(self.splits)
        if self.split_seed is not None:
            self.split_seed = int(self.split_seed)

    def bind(self, *, label_set: LabelSet, splits: Mapping[str, float],
             split_seed: int) -> MixtureSource:
        """Fill the label set and split rule from the consumer (and bind ``real`` too)."""
        fractions, seed = validate_splits(splits), int(split_seed)
        for name, mine, theirs in (("splits", self.splits, fractions),
                                   ("split_seed", self.split_seed, seed)):
            if mine is not None and mine != theirs:
                raise DataConfigError(
                    f"data.source.{name}={mine}: differs from data.{name}={theirs}; the "
                    "mixture must count the datamodule's own training rows, so leave it "
                    "unset (it is bound from the data config)"
                )
        return replace(
            self,
            real=self.real.bind(label_set=label_set, splits=fractions, split_seed=seed),
            countries=self.countries if self.countries is not None else list(label_set.countries),
            splits=fractions, split_seed=seed,
        )

    def _bound(self) -> tuple[list[str], dict[str, float], int]:
        if self.countries is None:
            raise _unbound("MixtureSource", "countries")
        if self.splits is None:
            raise _unbound("MixtureSource", "splits")
        if self.split_seed is None:
            raise _unbound("MixtureSource", "split_seed")
        return list(self.countries), dict(self.splits), int(self.split_seed)

    def n_synthetic(self, n_real_train: int) -> int:
        """Synthetic rows added for ``n_real_train`` real training rows."""
        return int(round(self.synthetic_ratio * n_real_train))

    def canonical_jsonl(self) -> Path:
        out = cache_dir("data", "mixture") / f"mixture-{self.fingerprint()}.jsonl"
        if out.exists():
            return out
        countries, fractions, seed = self._bound()
        real_path = self.real.canonical_jsonl()
        n_train = sum(record_split(r, seed, fractions) == "train" for r in read_jsonl(real_path))
        n_syn = self.n_synthetic(n_train)
        syn_path = None
        if n_syn:
            syn_path = SyntheticSource(n=n_syn, seed=self.synthetic_seed, countries=countries,
                                       generator=self.generator).canonical_jsonl()

        def rows() -> Iterator[dict[str, Any]]:
            yield from read_jsonl(real_path)
            if syn_path is not None:
                for row in read_jsonl(syn_path):
                    row["id"] = f"{self.SYNTHETIC_PREFIX}{row['id']}"
                    row["split"] = "train"
                    yield row

        write_jsonl(out, rows())
        return out

    def fingerprint(self) -> str:
        countries, fractions, seed = self._bound()
        return _hash({
            "kind": "mixture-v1", "real": self.real.fingerprint(),
            "synthetic_ratio": self.synthetic_ratio, "synthetic_seed": self.synthetic_seed,
            "countries": countries, "generator": self.generator,
            "splits": fractions, "split_seed": seed,
        })


__all__ = [
    "CanonicalJsonlSource",
    "MixtureSource",
    "ProfileSource",
    "SyntheticSource",
    "UmassTweetsSource",
]
