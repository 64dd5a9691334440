"""Read user profile files (JSONL, CSV/TSV, Parquet) into canonical :class:`ProfileRecord` s.

Every source the project meets names its columns differently (the real tweet set has
``Tweet ID``/``Tweet``/``Country`` and no bio; a platform export has ``bio`` and five
``caption_N`` columns), so a :class:`ColumnMapping` says which column feeds which canonical
field, and one reader per format turns rows into the same record shape.

Layout: :mod:`geoloc.data.formats` streams and numbers the rows of each format,
:mod:`geoloc.data.validation` turns a row into a record or a :class:`RecordError` (file,
line, field); this module puts the two together:

- :func:`iter_results` yields *a record or an error for every input row*, which is what a
  batch job needs to write one output line per input line (:func:`iter_numbered_results`
  adds each row's line); :func:`iter_profiles` is the convenient raise-or-collect view on
  top of it, :func:`read_profiles` and :func:`read_profiles_to_jsonl` read a whole file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from geoloc.data.formats import detect_format, iter_raw_rows
from geoloc.data.schema import MAX_CAPTIONS, ColumnMapping, ProfileRecord
from geoloc.data.validation import RowValidator
from geoloc.errors import InputFileError, RecordError
from geoloc.io import write_jsonl

log = logging.getLogger("geoloc")

OnError = Literal["raise", "collect"]


def require_file(path: str | os.PathLike[str], name: str = "") -> None:
    """Refuse a command's input that is a folder or not a file, before any work: the
    check ``geoloc-predict`` and ``geoloc-label`` run on their input (``name`` is the
    option it came from, e.g. ``input=``, prefixed to the path in the message)."""
    p = Path(path)
    if p.is_dir():
        raise InputFileError(f"{name}{p}: is a directory, not a file")
    if p.exists() and not p.is_file():
        # a pipe, /dev/stdin or a device: read once, it cannot be checked first, resumed
        # after a kill or read again, which every command that takes a file does
        raise InputFileError(f"{name}{p}: not a regular file (a pipe, a stream or a "
                             "device); save it to a file and pass that")
    if not p.is_file():
        raise InputFileError(f"{name}{p}: no such file")


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
    validate = RowValidator(spath, mapping, require_country, max_captions, check_unique,
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
    "error_to_dict",
    "iter_numbered_results",
    "iter_profiles",
    "iter_results",
    "read_profiles",
    "read_profiles_to_jsonl",
    "require_file",
]
