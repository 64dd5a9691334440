"""Free-text profile locations ("São Paulo, Brasil", "NYC", "東京", "🇫🇷 Paris") -> country.

:mod:`.resolver` matches a string against the index and lets the evidence vote (how and
why: its docstring); :mod:`.gazetteer` builds that index from pip-installed gazetteers and
the hand-written tables of ``geoloc/resources/location/resolver.yaml``. This package's
API is what ``geoloc-label``, the fusion's place expert and the experiments use.
"""

from geoloc.location.gazetteer import Gazetteer, build_gazetteer, get_gazetteer
from geoloc.location.resolver import (
    DEFAULT_MIN_CONFIDENCE,
    LocationMatch,
    explain,
    place_shares,
    resolve_country,
    resolve_location,
    resolve_many,
)

__all__ = [
    "DEFAULT_MIN_CONFIDENCE",
    "Gazetteer",
    "LocationMatch",
    "build_gazetteer",
    "explain",
    "get_gazetteer",
    "place_shares",
    "resolve_country",
    "resolve_location",
    "resolve_many",
]
