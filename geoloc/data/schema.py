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
"""

from __future__ import annotations

from typing import TypedDict

MAX_CAPTIONS = 5
CAPTION_SEPARATOR = " | "


class ProfileRecord(TypedDict):
    id: str
    bio: str
    captions: list[str]
    stated_location: str | None
    country: str | None


class RecordError(ValueError):
    """A bad input row. The message names the file, the line and the field."""

    def __init__(self, path: str, line: int, field: str, problem: str) -> None:
        self.path, self.line, self.field, self.problem = str(path), line, field, problem
        super().__init__(f"{path}:{line}: field '{field}': {problem}")


def profile_text(bio: str, captions: list[str], sep: str = CAPTION_SEPARATOR) -> str:
    """Join bio and captions into the single model input (empty parts are skipped)."""
    parts = [p.strip() for p in [bio, *captions[:MAX_CAPTIONS]] if p and p.strip()]
    return sep.join(parts)
