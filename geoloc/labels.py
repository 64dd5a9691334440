"""The label set: which countries the classifier names, and the catch-all OTHER.

Labels are ISO 3166-1 alpha-2 codes kept in config so that "more countries" is a config
change. Codes are validated against ``pycountry`` at start-up, so a typo fails before any
work starts instead of silently becoming an always-empty class.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pycountry
import yaml

from geoloc.errors import LabelSetError

OTHER = "OTHER"
UNCERTAIN = "UNCERTAIN"

#: The config file of the default label set: the one place its 36 codes are written.
DEFAULT_LABELS_FILE = Path(__file__).resolve().parent / "conf" / "labels" / "default36.yaml"


def _load_default_countries() -> tuple[str, ...]:
    """The reference system's 36 countries, read from ``geoloc/conf/labels/default36.yaml``
    so that Python callers (generator CLI, benchmarks, tests) and Hydra runs share one
    list."""
    with open(DEFAULT_LABELS_FILE, encoding="utf-8") as fh:
        return tuple(str(c) for c in yaml.safe_load(fh)["countries"])


DEFAULT_COUNTRIES: tuple[str, ...] = _load_default_countries()


def normalize_code(code: str) -> str | None:
    """Upper-case a country code and map the common ``UK`` alias to ``GB``.

    Returns None for empty input. Does not validate; see :func:`is_valid_code`.
    """
    if code is None:
        return None
    code = str(code).strip().upper()
    if not code:
        return None
    return {"UK": "GB"}.get(code, code)


def is_valid_code(code: str) -> bool:
    """True when ``code`` is an ISO 3166-1 alpha-2 code known to pycountry."""
    return pycountry.countries.get(alpha_2=code) is not None


def country_name(code: str) -> str:
    """English short name of an ISO code (the code itself when unknown, e.g. OTHER)."""
    c = pycountry.countries.get(alpha_2=code)
    return c.name if c is not None else code


@dataclass(frozen=True)
class LabelSet:
    """An ordered set of countries plus OTHER; class index = position in :attr:`names`."""

    countries: tuple[str, ...]

    @classmethod
    def from_codes(cls, codes: Iterable[str], option: str = "labels.countries") -> LabelSet:
        """Validate codes (ISO alpha-2, no duplicates) and build the label set.

        ``option`` is the config key named in the error message.
        """
        seen: list[str] = []
        for raw in codes:
            code = normalize_code(raw)
            if code is None or not is_valid_code(code):
                raise LabelSetError(
                    f"{option}: {raw!r} is not an ISO 3166-1 alpha-2 country code "
                    "(e.g. US, BR, GB)"
                )
            if code in seen:
                raise LabelSetError(f"{option}: {code} is listed twice")
            seen.append(code)
        if not seen:
            raise LabelSetError(f"{option}: the label set needs at least one country")
        return cls(tuple(seen))

    @classmethod
    def default(cls) -> LabelSet:
        return cls(DEFAULT_COUNTRIES)

    @property
    def names(self) -> tuple[str, ...]:
        """Class names in index order: the countries, then OTHER."""
        return (*self.countries, OTHER)

    @property
    def num_classes(self) -> int:
        return len(self.countries) + 1

    @property
    def other_index(self) -> int:
        return len(self.countries)

    def index(self, code: str | None) -> int:
        """Class index of a country code; anything outside the set (or None) is OTHER."""
        code = normalize_code(code) if code is not None else None
        try:
            return self.countries.index(code)  # type: ignore[arg-type]
        except ValueError:
            return self.other_index

    def label(self, code: str | None) -> str:
        """The class name a country code falls into (the code itself or OTHER)."""
        return self.names[self.index(code)]

    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    def label2id(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.names)}


def flag_emoji(code: str) -> str:
    """The regional-indicator flag of an ISO alpha-2 code (e.g. 'FR' -> '🇫🇷')."""
    return "".join(chr(0x1F1E6 + ord(ch) - ord("A")) for ch in code.upper())


def label_set_from_config(countries: Sequence[str]) -> LabelSet:
    """Build the label set from the ``labels.countries`` config list."""
    return LabelSet.from_codes(countries)
