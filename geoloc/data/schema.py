"""The canonical profile record every source is turned into.

One shape for all sources (synthetic generator, user files, the real tweet set) keeps the
datamodule, the evaluation and the batch predictor source-agnostic.

A record is a dict with:

- ``id`` (str): unique within a data set;
- ``bio`` (str): may be empty;
- ``captions`` (list[str]): the most recent post captions, at most ``MAX_CAPTIONS``;
- ``stated_location`` (str | None): the free-text location field, often missing;
- ``country`` (str | None): ISO 3166-1 alpha-2 code of the true country, None if unknown;
- ``split`` (optional, str | None): pins the record to a split (e.g. synthetic rows mixed
  into real data go to train only); absent or None means the keyed id hash decides.

A :class:`ColumnMapping` says which column of an input file feeds which of these fields.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal, NotRequired, TypedDict

MAX_CAPTIONS = 5
CAPTION_SEPARATOR = " | "


class ProfileRecord(TypedDict):
    id: str
    bio: str
    captions: list[str]
    stated_location: str | None
    country: str | None
    split: NotRequired[str | None]
    group: NotRequired[str]


def normalize_text(text: str) -> str:
    """Undo storage artefacts of scraped text: HTML entities (``&amp;`` -> ``&``, as the
    tweet API delivers them) and line breaks stored as the two characters ``\\n``.

    Applied to every model input (training, evaluation, prediction), so a model never
    learns that ``amp`` or a literal backslash is a cue; clean text passes unchanged.
    """
    if "&" in text:
        text = html.unescape(text)
    if "\\n" in text:
        text = text.replace("\\n", "\n")
    return text


def profile_text(bio: str, captions: list[str], sep: str = CAPTION_SEPARATOR) -> str:
    """Join bio and captions into the single model input (empty parts are skipped), after
    :func:`normalize_text`."""
    parts = [p.strip() for p in [bio, *captions[:MAX_CAPTIONS]] if p and p.strip()]
    return normalize_text(sep.join(parts))


@dataclass(frozen=True)
class ColumnMapping:
    """Which input column feeds which canonical field.

    A field set to None is not read: ``bio`` becomes "", ``captions`` [], and
    ``stated_location``/``country`` None. ``id=None`` makes ids from the file name and the
    line/row number (for files that have no id column).

    CSV/TSV and Parquet files must have every mapped column (a typo in the mapping would
    otherwise silently blank a field in every row); a JSONL object may omit optional keys.

    ``captions`` is either one column or a list of columns:

    - one column holding a list (JSON/Parquet list, or a JSON array string in a CSV cell);
    - several columns, one caption each (empty cells skipped);
    - one text column, which becomes a single caption (e.g. a tweet).

    ``captions_mode`` settles the one-column case: ``"auto"`` takes a real list as a list
    and parses a CSV string that looks like a JSON array (starts with ``[``) as one,
    otherwise the text is one caption; ``"list"`` demands a list; ``"text"`` never parses.

    ``split`` (None by default: not read) names a column that pins a record to a split
    (``train``, ``val``, ``calib``, ``test`` or empty); the records then carry ``split``.

    ``group`` (None by default: not read) names a column that says which set a profile
    belongs to (the influencer whose audience it is, for ``geoloc-audience``); the records
    then carry ``group`` (a non-empty string), and ids need only be unique within a group
    (one follower may follow several influencers).
    """

    id: str | None = "id"
    bio: str | None = "bio"
    captions: str | Sequence[str] | None = "captions"
    stated_location: str | None = "stated_location"
    country: str | None = "country"
    captions_mode: Literal["auto", "list", "text"] = "auto"
    split: str | None = None
    group: str | None = None

    def __post_init__(self) -> None:
        # A list given for captions (e.g. from JSON) is frozen to a tuple so the mapping
        # stays hashable and cannot change while a file is being read.
        if self.captions is not None and not isinstance(self.captions, str):
            object.__setattr__(self, "captions", tuple(self.captions))
        if self.captions_mode not in ("auto", "list", "text"):
            raise ValueError(
                f"captions_mode must be 'auto', 'list' or 'text', not {self.captions_mode!r}"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnMapping:
        """Build a mapping from a dict (e.g. parsed ``--mapping-json``); unknown keys fail."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown column-mapping keys {unknown}; expected some of {sorted(known)}"
            )
        return cls(**dict(data))

    @classmethod
    def tweets(cls) -> ColumnMapping:
        """The mapping of the real tweet set (``umass_global_english``): one tweet, no bio."""
        return cls(id="Tweet ID", bio=None, captions="Tweet", stated_location=None,
                   country="Country", captions_mode="text")

    def columns(self) -> list[str]:
        """Every input column this mapping reads, in canonical-field order."""
        cols: list[str] = []
        for name in (self.id, self.bio):
            if name is not None:
                cols.append(name)
        if isinstance(self.captions, str):
            cols.append(self.captions)
        elif self.captions is not None:
            cols.extend(self.captions)
        for name in (self.stated_location, self.country, self.split, self.group):
            if name is not None:
                cols.append(name)
        return list(dict.fromkeys(cols))
