"""Row -> :class:`ProfileRecord` validation, shared by every file format and by rows that
arrive without a file (the batches of a distributed job).

A :class:`ColumnMapping` says which column feeds which canonical field; a
:class:`RowValidator` applies it to one raw row (a dict column -> value, as
:mod:`geoloc.data.formats` reads it) and checks every field on the way in. A bad row
becomes a :class:`RecordError` that names the file, the line and the field (Parquet: the
problem says "row"), because "row 812,113 is broken" is useless without them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from geoloc.data.schema import MAX_CAPTIONS, ColumnMapping, ProfileRecord
from geoloc.data.splits import SPLITS
from geoloc.errors import RecordError
from geoloc.labels import is_valid_code, normalize_code

# ISO 3166-1 has no code for Kosovo, but "XK" is the user-assigned code that GeoNames,
# the EU and Twitter geotags use (the real tweet set contains it). pycountry rejects it,
# so it is accepted here explicitly rather than turning real rows into errors.
_EXTRA_COUNTRY_CODES = frozenset({"XK"})

log = logging.getLogger("geoloc")


class RowValidator:
    """Turns one raw row (a dict column -> value) into a record, or raises RecordError."""

    def __init__(self, path: str, mapping: ColumnMapping, require_country: bool,
                 max_captions: int, check_unique: bool, row_word: bool) -> None:
        if require_country and mapping.country is None:
            raise ValueError("require_country=True needs a country column in the mapping")
        self.path = path
        self.mapping = mapping
        self.require_country = require_country
        self.max_captions = max_captions
        self.seen: dict[str, int] | None = {} if check_unique else None
        self.row_word = row_word  # Parquet: say "row N" because a row is not a line
        self.stem = Path(path).stem
        self.trimmed_group = False  # a group with surrounding spaces was met (and said)

    def where(self, line: int) -> str:
        """``line N``, or ``row N`` in a Parquet file (a row is not a line)."""
        return f"row {line - 1}" if self.row_word else f"line {line}"

    def error(self, line: int, field: str, problem: str) -> RecordError:
        if self.row_word:
            problem = f"row {line - 1}: {problem}"
        return RecordError(self.path, line, field, problem)

    def __call__(self, row: Mapping[str, Any], line: int) -> ProfileRecord:
        m = self.mapping
        # id
        if m.id is None:
            rid = f"{self.stem}-{line}"
        else:
            raw = row.get(m.id)
            if isinstance(raw, bool) or not isinstance(raw, (str, int)) and raw is not None:
                raise self.error(line, m.id, f"id must be a string or integer, got {type(raw).__name__}")
            rid = "" if raw is None else str(raw).strip()
            if not rid:
                raise self.error(line, m.id, "id is missing or empty")
        group = self._group(row, line) if m.group is not None else None
        if self.seen is not None:
            key = rid if group is None else f"{group}\x00{rid}"  # unique within a group
            first = self.seen.get(key)
            if first is not None:
                where = self.where(first)
                within = "" if group is None else f" in group {group!r}"
                raise self.error(line, m.id or "id",
                                 f"duplicate id {rid!r}{within} (first on {where})")
            self.seen[key] = line
        bio = self._text(row, m.bio, line, default="")
        captions = self._captions(row, line)
        loc = self._text(row, m.stated_location, line, default="").strip() or None
        country = self._country(row, line)
        record = ProfileRecord(id=rid, bio=bio or "", captions=captions, stated_location=loc,
                               country=country)
        if m.split is not None:
            record["split"] = self._split(row, line)
        if group is not None:
            record["group"] = group
        return record

    def _group(self, row: Mapping[str, Any], line: int) -> str:
        v = row.get(self.mapping.group)
        if isinstance(v, float) and v.is_integer():  # an integer column with gaps (Parquet)
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            raise self.error(line, self.mapping.group,
                             "group is missing" if v is None else
                             f"group must be text or an integer, got {type(v).__name__}")
        text = str(v).strip()
        if not text:
            raise self.error(line, self.mapping.group, "group is empty")
        if text != str(v) and not self.trimmed_group:
            # "acme" and "acme " are one group (spaces a spreadsheet export added), but
            # not silently: said once per file, with the first row it happened on
            self.trimmed_group = True
            log.warning("%s: %s: group %r has spaces around it; groups are compared "
                        "without them, so it counts as %r (said once per file)",
                        self.path, self.where(line), str(v), text)
        return text

    def _split(self, row: Mapping[str, Any], line: int) -> str | None:
        v = row.get(self.mapping.split)
        if v is None or v == "":
            return None
        if not isinstance(v, str) or v not in SPLITS:
            raise self.error(line, self.mapping.split,
                             f"split must be one of {', '.join(SPLITS)} or empty, got {v!r}")
        return v

    def _text(self, row: Mapping[str, Any], col: str | None, line: int, default: str) -> str:
        if col is None:
            return default
        v = row.get(col)
        if v is None:
            return default
        if isinstance(v, str):
            return v
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return str(v)
        raise self.error(line, col, f"expected text, got {type(v).__name__}")

    def _captions(self, row: Mapping[str, Any], line: int) -> list[str]:
        m = self.mapping
        if m.captions is None:
            return []
        if not isinstance(m.captions, str):  # several columns, one caption each
            out = []
            for col in m.captions:
                t = self._text(row, col, line, default="")
                if t.strip():
                    out.append(t)
            return out[: self.max_captions]
        col = m.captions
        v = row.get(col)
        if v is None:
            return []
        if isinstance(v, str) and m.captions_mode != "text":
            s = v.strip()
            if m.captions_mode == "list" or s.startswith("["):
                try:
                    v = json.loads(s) if s else []
                except json.JSONDecodeError as exc:
                    if m.captions_mode == "list":
                        raise self.error(line, col, f"not a JSON list of strings: {exc.msg}") from None
                    # "auto": a caption that merely starts with "[" is just text
        if isinstance(v, str):
            if m.captions_mode == "list":
                raise self.error(line, col, "expected a list of strings, got a string")
            return [v] if v.strip() else []
        if isinstance(v, (int, float)) and not isinstance(v, bool) and m.captions_mode == "text":
            return [str(v)]
        if hasattr(v, "tolist") and not isinstance(v, list):  # numpy arrays from pandas
            v = v.tolist()
        if not isinstance(v, (list, tuple)):
            raise self.error(line, col, f"expected a list of strings, got {type(v).__name__}")
        out = []
        for i, item in enumerate(v):
            if item is None:
                continue
            if not isinstance(item, str):
                raise self.error(line, col, f"captions[{i}] is {type(item).__name__}, expected string")
            if item.strip():
                out.append(item)
        return out[: self.max_captions]

    def _country(self, row: Mapping[str, Any], line: int) -> str | None:
        col = self.mapping.country
        if col is None:
            return None
        v = row.get(col)
        if v is not None and not isinstance(v, str):
            raise self.error(line, col, f"country must be a string code, got {type(v).__name__}")
        code = normalize_code(v) if v is not None else None
        if code is None:
            if self.require_country:
                raise self.error(line, col, "country is required but missing")
            return None
        if not (is_valid_code(code) or code in _EXTRA_COUNTRY_CODES):
            raise self.error(line, col, f"{v!r} is not an ISO 3166-1 alpha-2 country code")
        return code


def row_validator(path: str, mapping: ColumnMapping, max_captions: int = MAX_CAPTIONS
                  ) -> RowValidator:
    """``validate(row, line) -> ProfileRecord`` (raising :class:`RecordError`) for rows
    that arrive without a file reader: the batches of a distributed job (Ray Data), which
    cannot check id uniqueness across workers."""
    return RowValidator(str(path), mapping, require_country=False, max_captions=max_captions,
                        check_unique=False, row_word=False)
