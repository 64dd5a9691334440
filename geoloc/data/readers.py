"""Read user profile files (JSONL, CSV/TSV, Parquet) into canonical :class:`ProfileRecord` s.

Every source the project meets names its columns differently (the real tweet set has
``Tweet ID``/``Tweet``/``Country`` and no bio; a platform export has ``bio`` and five
``caption_N`` columns), so a :class:`ColumnMapping` says which column feeds which canonical
field, and one reader per format turns rows into the same record shape.

Design choices and why:

- rows are *streamed* (line iteration for JSONL, the ``csv`` module for CSV/TSV, pyarrow
  record batches for Parquet) so a file of millions of profiles never sits in memory;
- every row is validated on the way in and a bad row becomes a :class:`RecordError` that
  names the file, the 1-based line (CSV: the physical line where the record starts,
  counting the header as line 1; Parquet: row number + 1, and the problem says "row") and
  the field, because "row 812,113 is broken" is useless without them;
- :func:`iter_results` yields *a record or an error for every input row*, which is what a
  batch job needs to write one output line per input line; :func:`iter_profiles` is the
  convenient raise-or-collect view on top of it.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from geoloc.data.schema import (
    MAX_CAPTIONS,
    ColumnMapping,
    InputFileError,
    ProfileRecord,
    RecordError,
)
from geoloc.data.splits import SPLITS
from geoloc.io import write_jsonl
from geoloc.labels import is_valid_code, normalize_code

log = logging.getLogger("geoloc")

Format = Literal["jsonl", "csv", "tsv", "parquet"]
OnError = Literal["raise", "collect"]

_EXTENSIONS: dict[str, Format] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}

# ISO 3166-1 has no code for Kosovo, but "XK" is the user-assigned code that GeoNames,
# the EU and Twitter geotags use (the real tweet set contains it). pycountry rejects it,
# so it is accepted here explicitly rather than turning real rows into errors.
_EXTRA_COUNTRY_CODES = frozenset({"XK"})

# Python's csv module refuses fields over 128 KiB by default; a profile with long captions
# (or a captions column holding a JSON list) can exceed that.
_CSV_FIELD_LIMIT = 1 << 24

_PARQUET_BATCH_ROWS = 4096


def detect_format(path: str | os.PathLike[str], fmt: str | None = None) -> Format:
    """The reader to use: ``fmt`` when given, else the file extension (``.gz`` not supported)."""
    if fmt is not None:
        f = fmt.lower().lstrip(".")
        f = {"json": "jsonl", "ndjson": "jsonl", "pq": "parquet", "tab": "tsv"}.get(f, f)
        if f not in ("jsonl", "csv", "tsv", "parquet"):
            raise ValueError(f"unknown format {fmt!r}; use jsonl, csv, tsv or parquet")
        return f  # type: ignore[return-value]
    suffix = Path(path).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise ValueError(
            f"{path}: cannot tell the format from the extension {suffix!r}; "
            "pass fmt= (jsonl, csv, tsv or parquet)"
        )
    return _EXTENSIONS[suffix]


# ----------------------------------------------------------------------------------------
# Row -> record validation (shared by every format)
# ----------------------------------------------------------------------------------------


class _Validator:
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
                where = f"row {first - 1}" if self.row_word else f"line {first}"
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


# ----------------------------------------------------------------------------------------
# Format readers: each yields (line_number, raw_row_dict) or (line_number, RecordError)
# ----------------------------------------------------------------------------------------


def _decoded_lines(fh: Iterable[bytes], path: str, first_line: int = 1) -> Iterator[str]:
    """Decode a binary file line by line so a bad byte is reported with its line number."""
    for n, raw in enumerate(fh, start=first_line):
        try:
            yield raw.decode("utf-8-sig" if n == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise RecordError(path, n, "encoding", f"not valid UTF-8 ({exc.reason})") from None


def _jsonl_rows(path: str) -> Iterator[tuple[int, dict[str, Any] | RecordError]]:
    with open(path, "rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
        fh.seek(0)
        if head.startswith(b"["):
            yield from _json_array_rows(path, fh.read())
            return
        for n, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield n, RecordError(path, n, "encoding", f"not valid UTF-8 ({exc.reason})")
                continue
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield n, RecordError(path, n, "json", f"malformed JSON: {exc.msg} (column {exc.colno})")
                continue
            if not isinstance(obj, dict):
                yield n, RecordError(path, n, "row", f"expected a JSON object, got {type(obj).__name__}")
                continue
            yield n, obj


def _json_array_rows(path: str, data: bytes) -> Iterator[tuple[int, dict[str, Any] | RecordError]]:
    # A ``.json`` file holding one array cannot be streamed with the standard library; it
    # is parsed whole (such files are small exports). Elements have no line of their own,
    # so each is numbered by its 1-based position in the array.
    try:
        items = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line = getattr(exc, "lineno", 1)
        raise RecordError(path, line, "json", f"malformed JSON array: {exc}") from None
    for n, obj in enumerate(items, start=1):
        if not isinstance(obj, dict):
            yield n, RecordError(path, n, "row", f"array item {n} is not a JSON object")
        else:
            yield n, obj


class _QuoteCountingLines:
    """The lines fed to ``csv.reader``, counting the quote characters read since
    :attr:`quotes` was last reset (at each record's start): an odd count after a parse
    error means the error struck inside a quoted field. No library resynchronises a CSV
    reader after an error, so this small helper does it by hand."""

    def __init__(self, lines: Iterator[str]) -> None:
        self.lines = lines
        self.quotes = 0

    def __iter__(self) -> _QuoteCountingLines:
        return self

    def __next__(self) -> str:
        line = next(self.lines)
        self.quotes += line.count('"')
        return line

    def skip_quoted_rest(self) -> int:
        """Skip lines up to the one that closes the open quoted field (an odd number of
        quotes: escaped quotes come in pairs); returns how many lines were skipped."""
        skipped = 0
        for line in self.lines:
            skipped += 1
            if line.count('"') % 2:
                break
        return skipped


def _csv_rows(path: str, delimiter: str, columns: Sequence[str]) -> Iterator[tuple[int, dict[str, Any] | RecordError]]:
    if csv.field_size_limit() < _CSV_FIELD_LIMIT:
        csv.field_size_limit(min(_CSV_FIELD_LIMIT, sys.maxsize))
    with open(path, "rb") as fh:
        lines = _QuoteCountingLines(_decoded_lines(fh, path))
        reader = csv.reader(lines, delimiter=delimiter, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise RecordError(path, 1, "header", f"unreadable header: {exc}") from None
        header = [h.strip() for h in header]
        missing = [c for c in columns if c not in header]
        if missing:
            # A mapped column absent from the header is a mapping mistake that would make
            # every row wrong, so it stops the read instead of producing N identical errors.
            raise RecordError(path, 1, missing[0],
                              f"column not in header (header has: {', '.join(header)})")
        width = len(header)
        prev_end = reader.line_num
        skipped = 0  # lines skipped past the reader (its line_num does not count them)
        while True:
            start = prev_end + 1
            lines.quotes = 0
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                # The csv reader starts afresh on the next physical line after an error, so
                # one broken record costs its own lines, not the rest of the file; an
                # unclosed quote may swallow several lines: the error names them all. A
                # field over the size limit inside quotes (an odd quote count so far) would
                # make its remaining lines look like records: skip to its end first. Only
                # that error: after any other, a stray quote in an unquoted cell (5" tall)
                # would make the skip swallow good lines.
                if "field larger than field limit" in str(exc) and lines.quotes % 2:
                    skipped += lines.skip_quoted_rest()
                end = reader.line_num + skipped
                span = f"line {start}" if end <= start else f"lines {start}-{end}"
                kind = "TSV" if delimiter == "\t" else "CSV"
                yield start, RecordError(path, start, "csv",
                                         f"malformed {kind} record ({span}): {exc}")
                prev_end = max(end, start)
                continue
            prev_end = reader.line_num + skipped
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # blank line
            if len(cells) != width:
                yield start, RecordError(path, start, "row", f"expected {width} fields, got {len(cells)}")
                continue
            # Empty cells are "missing" in CSV, so they become None like a JSON null.
            yield start, {h: (c if c != "" else None) for h, c in zip(header, cells, strict=True)}


def _parquet_rows(path: str, columns: Sequence[str]) -> Iterator[tuple[int, dict[str, Any] | RecordError]]:
    import pyarrow.parquet as pq  # imported lazily: pyarrow is slow to import

    pf = pq.ParquetFile(path)
    names = set(pf.schema_arrow.names)
    cols = list(columns)
    missing = [c for c in cols if c not in names]
    if missing:
        raise RecordError(path, 1, missing[0],
                          f"column not in the Parquet schema (has: {', '.join(sorted(names))})")
    n = 0
    for batch in pf.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=cols):
        for row in batch.to_pylist():
            n += 1
            yield n + 1, row  # line = row number + 1, as promised in the error messages


# ----------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------


def row_validator(path: str, mapping: ColumnMapping, max_captions: int = MAX_CAPTIONS
                  ) -> Any:
    """``validate(row, line) -> ProfileRecord`` (raising :class:`RecordError`) for rows
    that arrive without a file reader: the batches of a distributed job (Ray Data), which
    cannot check id uniqueness across workers."""
    return _Validator(str(path), mapping, require_country=False, max_captions=max_captions,
                      check_unique=False, row_word=False)


def require_file(path: str | os.PathLike[str], name: str = "") -> None:
    """Refuse a command's input that is a folder or not a file, before any work: the
    check ``geoloc-predict`` and ``geoloc-label`` run on their input (``name`` is the
    option it came from, e.g. ``input=``, prefixed to the path in the message)."""
    p = Path(path)
    if p.is_dir():
        raise InputFileError(f"{name}{p}: is a directory, not a file")
    if not p.is_file():
        raise InputFileError(f"{name}{p}: no such file")


def iter_raw_rows(path: str | os.PathLike[str], fmt: str | None, columns: Sequence[str]
                  ) -> Iterator[tuple[int, dict[str, Any] | RecordError]]:
    """Every data row as read (a dict of column -> value; empty CSV cells are None), or a
    :class:`RecordError`, with its line: the readers' decoding, CSV resynchronisation and
    line numbering without the profile schema, for tables geoloc itself wrote (e.g.
    ``geoloc-predict`` output). A CSV/TSV header or Parquet schema lacking one of
    ``columns`` raises a :class:`RecordError` naming it; Parquet reads only ``columns``."""
    spath = str(path)
    f = detect_format(spath, fmt)
    if f == "jsonl":
        return _jsonl_rows(spath)
    if f in ("csv", "tsv"):
        return _csv_rows(spath, "\t" if f == "tsv" else ",", columns)
    return _parquet_rows(spath, columns)


def iter_numbered_results(
    path: str | os.PathLike[str],
    mapping: ColumnMapping,
    fmt: str | None = None,
    require_country: bool = False,
    max_captions: int = MAX_CAPTIONS,
    check_unique: bool = True,
) -> Iterator[tuple[int, ProfileRecord | RecordError]]:
    """Yield ``(line, record or RecordError)`` for every data row, in file order.

    ``line`` is where the row is (JSONL: its line; CSV/TSV: the physical line where the
    record starts, the header being line 1; Parquet: row number + 1), the number error
    messages use, so a batch job can point every output row back at its input. Problems
    that concern the whole file (unknown format, missing file, a mapped column that the
    header lacks, a broken CSV quote after which nothing can be read) are *raised*.
    """
    spath = str(path)
    if Path(spath).is_dir():
        raise InputFileError(f"{spath}: is a directory, not a file")
    if not Path(spath).exists():
        raise InputFileError(f"{spath}: no such file")
    f = detect_format(spath, fmt)
    validate = _Validator(spath, mapping, require_country, max_captions, check_unique,
                          row_word=(f == "parquet"))
    rows = iter_raw_rows(spath, f, mapping.columns())
    # JSONL objects may omit optional keys, so a misspelled mapped key cannot be refused up
    # front as CSV/Parquet headers are; a key that no row holds is reported at the end
    # (the text fields only: stated_location, country and split are often absent on purpose)
    text_keys = ColumnMapping(id=mapping.id, bio=mapping.bio, captions=mapping.captions,
                              stated_location=None, country=None).columns()
    unseen = set(text_keys) if f == "jsonl" else set()
    n_rows = 0
    for line, row in rows:
        if isinstance(row, RecordError):
            yield line, row
            continue
        n_rows += 1
        if unseen:
            unseen -= row.keys()
        try:
            yield line, validate(row, line)
        except RecordError as exc:
            yield line, exc
    if unseen and n_rows:
        log.warning("%s: mapped key(s) %s appear in none of its %d rows, so every row read "
                    "them as empty; check the column mapping", spath,
                    ", ".join(repr(k) for k in sorted(unseen)), n_rows)


def iter_results(
    path: str | os.PathLike[str],
    mapping: ColumnMapping,
    fmt: str | None = None,
    require_country: bool = False,
    max_captions: int = MAX_CAPTIONS,
    check_unique: bool = True,
) -> Iterator[ProfileRecord | RecordError]:
    """Yield a record or a :class:`RecordError` for every data row, in file order.

    This is the primitive for batch jobs that must answer every input row;
    :func:`iter_numbered_results` adds each row's line.
    """
    for _, item in iter_numbered_results(path, mapping, fmt, require_country, max_captions,
                                         check_unique):
        yield item


def iter_profiles(
    path: str | os.PathLike[str],
    mapping: ColumnMapping,
    fmt: str | None = None,
    require_country: bool = False,
    on_error: OnError = "raise",
    errors: list[RecordError] | None = None,
    max_captions: int = MAX_CAPTIONS,
    check_unique: bool = True,
) -> Iterator[ProfileRecord]:
    """Stream valid :class:`ProfileRecord` s from a JSONL, CSV/TSV or Parquet file.

    ``on_error="raise"`` stops at the first bad row (the error names file, line, field).
    ``on_error="collect"`` skips bad rows and appends their errors to ``errors`` (pass a
    list; it is filled as the iterator advances).
    """
    if on_error not in ("raise", "collect"):
        raise ValueError(f"on_error must be 'raise' or 'collect', not {on_error!r}")
    if on_error == "collect" and errors is None:
        raise ValueError("on_error='collect' needs an errors=[] list to collect into")
    for item in iter_results(path, mapping, fmt, require_country, max_captions, check_unique):
        if isinstance(item, RecordError):
            if on_error == "raise":
                raise item
            assert errors is not None
            errors.append(item)
        else:
            yield item


def read_profiles(
    path: str | os.PathLike[str],
    mapping: ColumnMapping,
    fmt: str | None = None,
    require_country: bool = False,
    **kwargs: Any,
) -> tuple[list[ProfileRecord], list[RecordError]]:
    """Read a whole (small) file: all valid records and all row errors."""
    errors: list[RecordError] = []
    records = list(iter_profiles(path, mapping, fmt, require_country, "collect", errors, **kwargs))
    return records, errors


def error_to_dict(err: RecordError) -> dict[str, Any]:
    """The JSON form of a row error written to error files."""
    return {"path": err.path, "line": err.line, "field": err.field, "problem": err.problem,
            "message": str(err)}


def read_profiles_to_jsonl(
    path: str | os.PathLike[str],
    mapping: ColumnMapping,
    out_path: str | os.PathLike[str],
    fmt: str | None = None,
    require_country: bool = False,
    errors_path: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> tuple[int, list[RecordError]]:
    """Convert a profile file to canonical JSONL; returns (rows written, row errors).

    The output (and the optional error file, one JSON object per bad row) is written
    atomically, so a reader never sees a half-written file. Rows are streamed; only the
    errors are kept in memory.
    """
    errors: list[RecordError] = []
    n_ok = write_jsonl(out_path, iter_profiles(path, mapping, fmt, require_country, "collect",
                                               errors, **kwargs))
    if errors_path is not None:
        write_jsonl(errors_path, (error_to_dict(e) for e in errors))
    return n_ok, errors


__all__ = [
    "ColumnMapping",
    "detect_format",
    "error_to_dict",
    "iter_numbered_results",
    "iter_profiles",
    "iter_results",
    "read_profiles",
    "read_profiles_to_jsonl",
    "require_file",
    "row_validator",
]
