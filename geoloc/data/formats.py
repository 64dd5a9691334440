"""File formats: every data row of a JSONL, CSV/TSV or Parquet file, with its line.

The layer under :mod:`geoloc.data.readers` that knows files and nothing of profiles: it
finds the format (:func:`detect_format`), decodes, parses and numbers the rows, and turns a
row that cannot be read at all into a :class:`RecordError` naming the file and the 1-based
line (CSV: the physical line where the record starts, counting the header as line 1;
Parquet: row number + 1). Rows are *streamed* (line iteration for JSONL, the ``csv``
module for CSV/TSV, pyarrow record batches for Parquet) so a file of millions of profiles
never sits in memory. :func:`iter_raw_rows` is the entry point; what the row means is
:mod:`geoloc.data.validation`'s business.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from geoloc.errors import RecordError

Format = Literal["jsonl", "csv", "tsv", "parquet"]

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
            "name it with format= (jsonl, csv, tsv or parquet; geoloc-label: --format)"
        )
    return _EXTENSIONS[suffix]


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


def _check_utf8(path: str, head: bytes) -> None:
    """Refuse a UTF-16 or UTF-32 file at once, saying so: read as UTF-8 it fails on every
    line (with a BOM), or its NUL bytes between characters surface as an "unreadable
    header ... universal-newline mode" or malformed JSON, which names no cause."""
    boms = {b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32",
            b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16"}
    found = next((name for bom, name in boms.items() if head.startswith(bom)), None)
    codec = found
    if found is None and head.count(b"\x00") * 4 >= len(head) > 0:
        # ASCII text in UTF-16: every other byte is 0 (the odd ones in little-endian); in
        # UTF-32 three bytes of four
        width = 32 if head.count(b"\x00") * 3 >= len(head) * 2 else 16
        little = head[1::2].count(0) >= head[0::2].count(0) if width == 16 else head[0] != 0
        codec = f"UTF-{width}{'LE' if little else 'BE'}"
        found = f"{codec} without a byte-order mark"
    if found:
        raise RecordError(path, 1, "encoding", f"the file is {found}, not UTF-8; save it as "
                          f"UTF-8 (e.g. iconv -f {codec} -t UTF-8)")


def _jsonl_rows(path: str) -> Iterator[tuple[int, dict[str, Any] | RecordError]]:
    with open(path, "rb") as fh:
        head = fh.read(4096)
        _check_utf8(path, head)
        head = head.lstrip(b"\xef\xbb\xbf \t\r\n")
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
        _check_utf8(path, fh.read(4096))
        fh.seek(0)
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
