"""A file of profiles -> a file of predictions: bounded memory, resumable, nothing lost.

The input is read with :func:`geoloc.data.readers.iter_results` (the readers of training
and ``geoloc-label``), which yields a record *or* an error for every input row, in file
order. Rows are cut into fixed chunks of ``chunk_rows`` rows (chunk k = rows
k*chunk_rows ... (k+1)*chunk_rows - 1, a function of the input alone) and each chunk
is written, atomically, as two part files in ``OUTPUT.parts/``: its errors, then its
predictions. A chunk whose prediction part exists is done; so

- memory is one chunk, whatever the file size;
- a run killed at any moment leaves only whole parts, and the same command run again
  skips the chunks already done and writes each remaining row once: no gaps, no
  duplicate ids (duplicate ids *in the input* are error rows, as in training);
- the parts carry a manifest (input size and mtime, model files' SHA-256, options); a
  rerun with other arguments is refused instead of mixing two runs' rows.

When every chunk is done the parts are merged into OUTPUT (Parquet, JSONL or CSV/TSV,
chosen by its extension) and the error rows into ``OUTPUT.errors.jsonl`` (file,
line, field, problem), both atomically; then the parts folder is removed. An existing
OUTPUT (or its errors file) is never overwritten unless ``overwrite=True``.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from tqdm import tqdm

from geoloc.data.formats import detect_format
from geoloc.data.readers import (
    error_to_dict,
    iter_numbered_results,
    require_file,
)
from geoloc.data.schema import ColumnMapping, ProfileRecord, profile_text
from geoloc.errors import JobError, RecordError
from geoloc.inference.population import (
    PopulationCounter,
    PopulationProfile,
    meta_path,
    script_of,
)
from geoloc.inference.predictor import (
    EMBEDDING_COLUMN,
    GROUP_COLUMN,
    PROBABILITIES_COLUMN,
    Predictor,
)
from geoloc.io import PathLike, atomic_write, write_json_atomic

#: The Parquet schema-metadata key of a prediction file's provenance (the model's
#: classes, weights digest, policy hash and max_length; JSONL and CSV carry it in
#: ``OUTPUT.meta.json``).
PROVENANCE_KEY = "geoloc.provenance"
OUTPUT_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
                  ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv"}
MANIFEST = "manifest.json"


def output_schema(embeddings: bool = False, group: bool = False,
                  probabilities: bool = False) -> Any:
    """The Arrow schema of prediction rows (parts and Parquet output): the columns of
    :data:`~geoloc.inference.predictor.OUTPUT_COLUMNS`, then the group (when the mapping
    has one), every class's probability and the embedding, when asked for."""
    import pyarrow as pa

    fields = [
        ("id", pa.string()), ("line", pa.int64()), ("country", pa.string()),
        ("guarantee", pa.string()), ("probability", pa.float64()), ("argmax", pa.string()),
        ("top_countries", pa.list_(pa.string())),
        ("top_probabilities", pa.list_(pa.float64())),
    ]
    if group:
        fields.append((GROUP_COLUMN, pa.string()))
    if probabilities:
        fields.append((PROBABILITIES_COLUMN, pa.list_(pa.float32())))
    if embeddings:
        fields.append((EMBEDDING_COLUMN, pa.list_(pa.float32())))
    return pa.schema(fields)


def output_format(path: PathLike) -> str:
    """parquet / jsonl / csv / tsv from the output's extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise JobError(f"output={path}: unknown extension {suffix!r}; use one of "
                       f"{', '.join(sorted(OUTPUT_FORMATS))}")
    return OUTPUT_FORMATS[suffix]


def errors_path(output: PathLike) -> Path:
    """Where the error rows of ``output`` go: ``OUTPUT.errors.jsonl`` (the full name, so
    ``out.parquet`` and ``out.csv`` never share one)."""
    out = Path(output)
    return out.with_name(out.name + ".errors.jsonl")


def parts_path(output: PathLike) -> Path:
    """The folder of the resumable parts of ``output``: ``OUTPUT.parts``."""
    out = Path(output)
    return out.with_name(out.name + ".parts")


def _part(parts: Path, k: int, kind: str) -> Path:
    """Chunk ``k``'s part: ``kind`` is ``parquet`` (predictions) or ``errors.jsonl``."""
    return parts / f"part-{k:06d}.{kind}"


def check_paths(input_path: PathLike, output: PathLike, overwrite: bool) -> str:
    """Refuse, before any model is loaded, an output that would overwrite a file (the
    output, its errors file, or the input itself) or that has an unknown extension;
    returns the output format."""
    input_path, output = Path(input_path), Path(output)
    out_format = output_format(output)
    require_file(input_path, "input=")
    folder = output.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():  # the write would fail at the end, after the whole run
        raise JobError(f"output={output}: {folder} is a file, not a folder")
    for path in (output, errors_path(output), meta_path(output)):
        if path.resolve() == input_path.resolve():
            raise JobError(f"output={output}: {path} would be the input file")
        if path.exists() and not overwrite:
            leftover = parts_path(output)
            hint = (f" ({leftover} beside it means the run finished before its cleanup: "
                    "delete it)") if leftover.exists() else ""
            raise JobError(f"{path} exists; choose another output or overwrite=true{hint}")
    return out_format


@dataclass
class JobSummary:
    """What a run did (printed by ``geoloc-predict``)."""

    rows: int
    predicted: int
    errors: int
    chunks: int
    chunks_resumed: int
    output: Path
    errors_file: Path
    countries: Counter
    population: PopulationProfile | None = None
    """The input as the model saw it (predicted mix, confidence, scripts), every row."""

    @property
    def uncertain(self) -> int:
        return self.countries.get("UNCERTAIN", 0)


def _chunks(items: Iterator[tuple[int, ProfileRecord | RecordError]], size: int
            ) -> Iterator[list[tuple[int, ProfileRecord | RecordError]]]:
    while chunk := list(islice(items, size)):
        yield chunk


def _manifest(predictor: Predictor, input_path: Path, mapping: ColumnMapping,
              fmt: str | None, chunk_rows: int) -> dict[str, Any]:
    stat = input_path.stat()
    return {"input": str(input_path.resolve()), "input_size": stat.st_size,
            "input_mtime_ns": stat.st_mtime_ns, "format": fmt,
            "mapping": {k: (list(v) if isinstance(v, tuple) else v)
                        for k, v in mapping.__dict__.items()},
            "chunk_rows": chunk_rows, "predictor": predictor.fingerprint()}


def predict_file(predictor: Predictor, input_path: PathLike, output: PathLike,
                 mapping: ColumnMapping, fmt: str | None = None, chunk_rows: int = 4096,
                 overwrite: bool = False, progress: bool = True) -> JobSummary:
    """Predict every row of ``input_path`` into ``output`` (see the module docstring)."""
    import pyarrow.parquet as pq

    input_path, output = Path(input_path), Path(output)
    if chunk_rows < 1:
        raise JobError(f"chunk_rows={chunk_rows}: must be >= 1")
    out_format = check_paths(input_path, output, overwrite)
    parts = parts_path(output)
    manifest = _manifest(predictor, input_path, mapping, fmt, chunk_rows)
    if parts.exists():
        saved = (json.loads((parts / MANIFEST).read_text(encoding="utf-8"))
                 if (parts / MANIFEST).is_file() else None)
        if not any(parts.glob("part-*")):
            # stopped before its first chunk (killed, or an error on it): nothing to mix
            # up, so a corrected command starts afresh
            saved = manifest
        if saved != manifest:
            if not overwrite:
                differ = sorted(k for k in manifest if saved is None or saved.get(k) != manifest[k])
                raise JobError(
                    f"{parts} holds parts of a run with other {', '.join(differ)}; rerun "
                    "with the same arguments to resume it, or overwrite=true to start over")
            shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    write_json_atomic(parts / MANIFEST, manifest)

    total = (pq.ParquetFile(input_path).metadata.num_rows
             if detect_format(input_path, fmt) == "parquet" else None)
    schema = output_schema(predictor.embeddings, mapping.group is not None,
                           predictor.probabilities)
    # the output carries its model (the parts need not: their manifest does)
    out_schema = (schema.with_metadata({PROVENANCE_KEY: json.dumps(predictor.provenance)})
                  if predictor.provenance else schema)
    bar = tqdm(total=total, unit="profile", desc="geoloc-predict", disable=not progress)
    items = iter_numbered_results(input_path, mapping, fmt=fmt)
    try:
        chunks, resumed = _predict_chunks(predictor, items, parts, chunk_rows, schema, bar)
    except BaseException:
        if not any(parts.glob("part-*")):  # failed before its first chunk: leave nothing
            shutil.rmtree(parts, ignore_errors=True)
        raise
    finally:
        bar.close()
    summary = _merge(parts, chunks, output, out_format, out_schema)
    summary.chunks_resumed = resumed
    shutil.rmtree(parts)
    return summary


def _predict_chunks(predictor: Predictor, items: Iterator, parts: Path, chunk_rows: int,
                    schema: Any, bar: Any) -> tuple[int, int]:
    """Write the parts of every chunk not done yet; returns (chunks, chunks done before)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    chunks = resumed = 0
    for chunks, chunk in enumerate(_chunks(items, chunk_rows), start=1):
        k = chunks - 1
        pred_part = _part(parts, k, "parquet")
        if pred_part.exists():
            resumed += 1
            bar.update(len(chunk))
            continue
        good = [(line, r) for line, r in chunk if not isinstance(r, RecordError)]
        errors = [error_to_dict(e) for _, e in chunk if isinstance(e, RecordError)]
        rows = predictor.predict_records([r for _, r in good], [line for line, _ in good])
        scripts = Counter(script_of(profile_text(r["bio"], r["captions"])) for _, r in good)
        with atomic_write(_part(parts, k, "scripts.json")) as fh:
            json.dump(scripts, fh)
        # fsync: after a power cut a "done" part must not be an empty file
        with atomic_write(_part(parts, k, "errors.jsonl"), fsync=True) as fh:
            fh.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in errors)
        with atomic_write(pred_part, "wb", fsync=True) as fh:  # last: marks the chunk done
            pq.write_table(pa.Table.from_pylist(rows, schema=schema), fh)
        bar.update(len(chunk))
    return chunks, resumed


def _merge(parts: Path, chunks: int, output: Path, out_format: str, schema: Any
           ) -> JobSummary:
    """Concatenate the parts in chunk order into the output and the errors file."""

    err_file = errors_path(output)
    n_err = 0
    with atomic_write(err_file) as efh:
        for k in range(chunks):
            with open(_part(parts, k, "errors.jsonl"), encoding="utf-8") as fh:
                for line in fh:
                    efh.write(line)
                    n_err += 1
    with output_table_writer(output, out_format, schema) as write:
        countries, population = _write_parts(parts, chunks, write, schema)
    n_pred = countries.total()
    return JobSummary(rows=n_pred + n_err, predicted=n_pred, errors=n_err, chunks=chunks,
                      chunks_resumed=0, output=output, errors_file=err_file,
                      countries=countries, population=population)


def _write_parts(parts: Path, chunks: int, write: Any, schema: Any
                 ) -> tuple[Counter, PopulationProfile]:
    """Stream the prediction parts into the output, in chunk order; returns how many
    rows went to each country (UNCERTAIN included) and the input's population summary
    (argmax and top probability from the parts, scripts from their counts files)."""
    import pyarrow.parquet as pq

    countries: Counter = Counter()
    population = PopulationCounter([])
    for k in range(chunks):
        table = pq.read_table(_part(parts, k, "parquet"), schema=schema)
        countries.update(table.column("country").to_pylist())
        population.add_top(table.column("argmax").to_pylist(),
                           table.column("probability").to_pylist())
        scripts_part = _part(parts, k, "scripts.json")
        if scripts_part.is_file():  # parts of a run before the check have none
            population.scripts.update(json.loads(scripts_part.read_text(encoding="utf-8")))
        write(table)
    return countries, population.profile()


@contextmanager
def output_table_writer(output: PathLike, out_format: str, schema: Any
                        ) -> Iterator[Callable[[Any], None]]:
    """``write(table)`` appending Arrow tables of ``schema`` to ``output`` as Parquet,
    JSONL or CSV/TSV (one header; list cells as JSON arrays), written atomically when the
    block ends: the output side of every geoloc batch job."""
    import pyarrow.parquet as pq

    sep = "\t" if out_format == "tsv" else ","
    with atomic_write(output, "wb" if out_format == "parquet" else "w") as fh:
        writer = pq.ParquetWriter(fh, schema) if out_format == "parquet" else None
        first = True

        def write(table: Any) -> None:
            nonlocal first
            if writer is not None:
                writer.write_table(table)
            elif out_format == "jsonl":
                fh.writelines(json.dumps(row, ensure_ascii=False) + "\n"
                              for row in table.to_pylist())
            else:
                _write_delimited(fh, table, first, sep)
            first = False

        try:
            yield write
            if first and out_format in ("csv", "tsv"):  # no rows: the header alone
                _write_delimited(fh, schema.empty_table(), True, sep)
        finally:
            if writer is not None:
                writer.close()


def _write_delimited(fh: Any, table: Any, header: bool, sep: str) -> None:
    """CSV/TSV rows; the top-k lists (and the embedding) become JSON arrays in their cells."""
    import csv

    writer = csv.writer(fh, delimiter=sep, lineterminator="\n")
    columns = table.schema.names
    if header:
        writer.writerow(columns)
    for row in table.to_pylist():
        writer.writerow([json.dumps(row[c], ensure_ascii=False) if isinstance(row[c], list)
                         else ("" if row[c] is None else row[c]) for c in columns])
