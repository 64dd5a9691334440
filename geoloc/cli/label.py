"""``geoloc-label``: turn raw profiles with a stated location into labelled canonical JSONL.

The few profiles that say where they live are the training data; this command reads them
from any supported file (JSONL, CSV/TSV, Parquet, with a column mapping), labels each one
with the country its location field resolves to, and writes:

- OUT.jsonl: canonical records (id, bio, captions, stated_location, country) for the rows
  whose location resolved;
- ERR.jsonl: one line per bad input row (file, line, field, problem), so a batch job has a
  result or an error for every input row; rows without a location or whose location does
  not resolve are counted, not errors.

Example::

    geoloc-label profiles.csv --id user_id --bio bio --captions c1 c2 c3 \\
        --location location --out labelled.jsonl --errors bad_rows.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geoloc.data.readers import ColumnMapping, error_to_dict, iter_results, require_file
from geoloc.errors import RecordError, all_rows_rejected
from geoloc.io import atomic_write
from geoloc.location import DEFAULT_MIN_CONFIDENCE, resolve_location

_CACHE_LIMIT = 500_000  # location strings repeat a lot ("London", "NYC"): memoise them


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="geoloc-label",
        description="Label profiles with the country of their stated location.",
    )
    p.add_argument("input", metavar="INPUT", help="profiles file (.jsonl/.json, .csv, .tsv, .parquet)")
    p.add_argument("--format", choices=["jsonl", "csv", "tsv", "parquet"],
                   help="input format (default: from the extension)")
    p.add_argument("--mapping-json", metavar="JSON_OR_FILE",
                   help="column mapping as JSON text or a JSON file, keys: id, bio, captions, "
                        "stated_location, captions_mode; the flags below override it")
    p.add_argument("--id", dest="id_col", metavar="COL", help="id column")
    p.add_argument("--bio", metavar="COL", help="bio column")
    p.add_argument("--captions", nargs="+", metavar="COL",
                   help="one list/text column, or several columns with one caption each")
    p.add_argument("--location", metavar="COL", help="stated-location column")
    p.add_argument("--out", required=True, metavar="OUT.jsonl", help="labelled canonical JSONL")
    p.add_argument("--errors", metavar="ERR.jsonl",
                   help="one JSON line per bad row (default: OUT with .errors.jsonl)")
    p.add_argument("--min-confidence", type=float, default=DEFAULT_MIN_CONFIDENCE,
                   help="resolver confidence needed to keep a label (default %(default)s)")
    return p


def mapping_from_args(args: argparse.Namespace) -> ColumnMapping:
    """The column mapping: --mapping-json first, then the per-column flags on top.

    The country column is never read: the label comes from the resolver.
    """
    data: dict[str, Any] = {}
    if args.mapping_json:
        src = args.mapping_json
        text = Path(src).read_text(encoding="utf-8") if Path(src).is_file() else src
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"geoloc-label: --mapping-json is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise SystemExit("geoloc-label: --mapping-json must be a JSON object")
        data.pop("country", None)
    if args.id_col:
        data["id"] = args.id_col
    if args.bio:
        data["bio"] = args.bio
    if args.captions:
        data["captions"] = args.captions[0] if len(args.captions) == 1 else list(args.captions)
    if args.location:
        data["stated_location"] = args.location
    data["country"] = None
    try:
        mapping = ColumnMapping.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"geoloc-label: bad column mapping: {exc}") from None
    if mapping.stated_location is None:
        raise SystemExit("geoloc-label: no location column (use --location or the mapping)")
    return mapping


def label_file(input_path: str, mapping: ColumnMapping, out: str, errors_out: str,
               fmt: str | None = None, min_confidence: float = DEFAULT_MIN_CONFIDENCE
               ) -> Counter:
    """Label every row of ``input_path``; returns the counts printed by :func:`main`."""
    counts: Counter = Counter()
    cache: dict[str, str | None] = {}
    with atomic_write(out) as fh, atomic_write(errors_out) as efh:
        for item in iter_results(input_path, mapping, fmt=fmt):
            counts["rows"] += 1
            if isinstance(item, RecordError):
                counts["errors"] += 1
                efh.write(json.dumps(error_to_dict(item), ensure_ascii=False) + "\n")
                continue
            loc = item["stated_location"]
            if not loc:
                counts["no_location"] += 1
                continue
            if loc in cache:
                country = cache[loc]
            else:
                m = resolve_location(loc, min_confidence)
                country = m.country if m else None
                if len(cache) < _CACHE_LIMIT:
                    cache[loc] = country
            if country is None:
                counts["unresolved"] += 1
                continue
            item["country"] = country
            counts["labelled"] += 1
            counts[f"country:{country}"] += 1
            fh.write(json.dumps(item, ensure_ascii=False) + "\n")
    return counts


def check_paths(input_path: str, out: str, errors_out: str) -> None:
    """Refuse, before reading anything, paths that would fail late or lose rows: a
    missing input or a folder, an output that is a folder (the write would leave a stray
    temporary file), errors written over the output, either written over the input."""
    src, dst, err = Path(input_path), Path(out), Path(errors_out)
    require_file(src, "INPUT ")
    for flag, path in (("--out", dst), ("--errors", err)):
        if path.is_dir():
            raise ValueError(f"{flag} {path}: is a directory; give a file name")
        if path.resolve() == src.resolve():
            raise ValueError(f"{flag} {path}: is the input file")
    if dst.resolve() == err.resolve():
        raise ValueError(f"--errors {err}: is the --out file; the error rows would replace "
                         "the labelled rows")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``geoloc-label``; returns the process exit code."""
    args = build_parser().parse_args(argv)
    mapping = mapping_from_args(args)
    errors_out = args.errors or str(Path(args.out).with_suffix("")) + ".errors.jsonl"
    try:
        check_paths(args.input, args.out, errors_out)
        counts = label_file(args.input, mapping, args.out, errors_out, args.format,
                            args.min_confidence)
    except (FileNotFoundError, ValueError) as exc:  # RecordError is a ValueError
        return _bad_input(str(exc))
    rows = counts["rows"]
    if rows == 0:
        return _bad_input(f"{args.input}: no data rows (an empty file, or a header only); "
                          "nothing labelled")
    print(f"rows read:        {rows}")
    print(f"labelled:         {counts['labelled']}  -> {args.out}")
    print(f"bad rows:         {counts['errors']}  -> {errors_out}")
    print(f"no location:      {counts['no_location']}")
    print(f"unresolved:       {counts['unresolved']}")
    top = sorted(((k[8:], v) for k, v in counts.items() if k.startswith("country:")),
                 key=lambda kv: -kv[1])[:15]
    if top:
        print("top countries:    " + ", ".join(f"{c} {n}" for c, n in top))
    if counts["errors"] == rows:  # the files are written, but the run did nothing
        return _bad_input(str(all_rows_rejected(args.input, rows, errors_out)))
    return 0


def _bad_input(message: str) -> int:
    """The Hydra commands' contract (:func:`geoloc.cli.common.hydra_task`): one line,
    ``bad input:`` and the file, exit status 2."""
    print(f"geoloc-label: bad input: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
