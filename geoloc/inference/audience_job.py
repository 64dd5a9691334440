"""``geoloc-audience``'s file job: rows of profiles (or of ``geoloc-predict`` output) with
a group column -> per group, each country's estimated share with its interval.

Streaming in bounded memory, for groups of any size in any order: rows are read once and
each row's probability vector and decision are appended to one of ``buckets`` Arrow files
chosen by a hash of its group (``OUTPUT.parts/``); then each bucket is read alone, split
by group and estimated (:func:`geoloc.inference.audience.estimate_audience`). Memory is
one input chunk plus the largest bucket (a group's rows never span buckets).

Every input row ends up counted in its group or as an error row in ``OUTPUT.errors.jsonl``
(file, line, field, problem). The output and errors file are written atomically at the
end; a killed run leaves no output, and the same command run again starts over (the parts
of a killed run are removed). An existing output is never overwritten unless
``overwrite=True``.

Output: one row per group, method and class (the label set's countries and OTHER):
``group, method, country, share, low, high, level, profiles, assigned`` (``assigned``:
the group's rows the policy assigned a country, what naive counting uses).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from geoloc.bundle.files import THRESHOLDS_FILE
from geoloc.data.formats import detect_format, iter_raw_rows
from geoloc.data.readers import error_to_dict, iter_numbered_results
from geoloc.data.schema import ColumnMapping, profile_text
from geoloc.errors import InputFileError, RecordError
from geoloc.inference.audience import (
    Calibration,
    CalibrationReplicates,
    check_methods,
    check_options,
    estimate_audience,
)
from geoloc.inference.job import (
    PROVENANCE_KEY,
    _chunks,
    check_paths,
    errors_path,
    output_table_writer,
    parts_path,
)
from geoloc.inference.population import PopulationCounter, meta_path
from geoloc.inference.predictor import GROUP_COLUMN, PROBABILITIES_COLUMN
from geoloc.io import PathLike
from geoloc.labels import UNCERTAIN

log = logging.getLogger("geoloc")

OUTPUT_COLUMNS = ("group", "method", "country", "share", "low", "high", "level",
                  "profiles", "assigned")


@dataclass
class AudienceSummary:
    """What a run did (printed by ``geoloc-audience``)."""

    rows: int
    errors: int
    groups: int
    output: Path
    errors_file: Path


def output_schema() -> Any:
    import pyarrow as pa

    return pa.schema([
        ("group", pa.string()), ("method", pa.string()), ("country", pa.string()),
        ("share", pa.float64()), ("low", pa.float64()), ("high", pa.float64()),
        ("level", pa.float64()), ("profiles", pa.int64()), ("assigned", pa.int64()),
    ])


def _bucket_schema(n_classes: int) -> Any:
    import pyarrow as pa

    return pa.schema([("group", pa.string()), ("decision", pa.int32()),
                      ("probabilities", pa.list_(pa.float32(), n_classes))])


def _bucket(group: str, buckets: int) -> int:
    """A stable bucket for a group (Python's ``hash`` of a string changes per process)."""
    return zlib.crc32(group.encode("utf-8")) % buckets


# -- the two kinds of input -------------------------------------------------------------


def profile_batches(predictor: Any, input_path: Path, mapping: ColumnMapping,
                    fmt: str | None, chunk_rows: int, counter: PopulationCounter | None = None
                    ) -> Iterator[tuple[list[str], np.ndarray, np.ndarray, list[dict]]]:
    """Raw profiles through the predictor: (groups, probabilities, decisions, error rows)
    per chunk of input rows; ``counter`` also sees each chunk's probabilities and texts
    (the population check)."""
    items = iter_numbered_results(input_path, mapping, fmt=fmt)
    for chunk in _chunks(items, chunk_rows):
        good = [r for _, r in chunk if not isinstance(r, RecordError)]
        errors = [error_to_dict(e) for _, e in chunk if isinstance(e, RecordError)]
        if good:
            texts = [profile_text(r["bio"], r["captions"]) for r in good]
            p = predictor.predict_texts(texts)
            if counter is not None:
                counter.add(p.probabilities, texts)
            yield [r["group"] for r in good], p.probabilities, p.decisions, errors
        else:
            yield [], np.zeros((0, len(predictor.class_names))), np.zeros(0, int), errors


def predictions_provenance(input_path: Path) -> tuple[dict[str, Any] | None, Path]:
    """The record of the model a ``geoloc-predict`` output was written by, and where it
    was read: a Parquet file's schema metadata, else the ``INPUT.meta.json`` beside it
    (of a file written before the record existed: its class names and policy hash).
    None when it has neither (written by hand)."""
    import pyarrow.parquet as pq

    if detect_format(input_path, None) == "parquet":
        try:
            meta = pq.read_schema(str(input_path)).metadata or {}
        except (OSError, ValueError):  # unreadable: the row reader names the problem
            meta = {}
        if PROVENANCE_KEY.encode() in meta:
            return _record(meta[PROVENANCE_KEY.encode()], input_path), input_path
    side = meta_path(input_path)
    if not side.is_file():
        return None, side
    data = _record(side.read_bytes(), side)
    record = data.get("provenance")
    if record is None and isinstance(data.get("predictor"), dict):
        # written before the record: its class names and the policy's SHA-256 (in the
        # predictor's fingerprint) identify the model; the weights go unchecked
        old = data["predictor"]
        record = {"class_names": data.get("class_names"),
                  "policy": (old.get("sha256") or {}).get(THRESHOLDS_FILE),
                  "max_length": old.get("max_length"),
                  "precision": "int8" if old.get("quantized") else "fp32"}
    return (record if isinstance(record, dict) else None), side


def _record(raw: bytes, where: Path) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        raise InputFileError(f"{where}: unreadable record of the model that wrote the "
                             "predictions (not the JSON object geoloc-predict writes)")
    return data


def check_predictions_model(input_path: Path, model: dict[str, Any], model_dir: Path,
                            allow_unrecorded: bool = False) -> None:
    """Refuse predictions written by another model than ``model_dir`` (``model``: its
    :meth:`~geoloc.bundle.Bundle.provenance`), with one line naming both: their
    probabilities are in another model's class order or on another model's scale, and
    the audience estimators correct them with ``model_dir``'s calibration outputs (18
    points off on one share, measured). A file with no record is refused unless
    ``allow_unrecorded``; predictions cut at another ``max_length`` are warned about."""
    found, source = predictions_provenance(input_path)
    if found is None:
        if allow_unrecorded:
            log.warning("%s: no record of the model that wrote it (read as %s's, as "
                        "allow_unrecorded=true asks)", input_path, model_dir)
            return
        raise InputFileError(
            f"{input_path}: no record of the model that wrote it (neither Parquet metadata "
            f"nor {source.name}); predict it again with geoloc-predict model_dir={model_dir} "
            "probabilities=true, or pass allow_unrecorded=true if you know it is this "
            "model's")
    if list(found.get("class_names") or []) != list(model["class_names"]):
        raise InputFileError(
            f"{source}: predicted with the classes {found.get('class_names')}, not "
            f"{model_dir}'s {model['class_names']} (in that order); use the model that "
            "wrote it")
    for key, what in (("weights", "another model's weights"),
                      ("policy", "another policy (temperature and thresholds)")):
        if key == "weights" and found.get(key) is None:
            continue  # a file written before the weights were recorded: its policy decides
        if found.get(key) != model[key]:
            raise InputFileError(
                f"{source}: predicted by {what} ({str(found.get(key))[:12]}…) than "
                f"{model_dir} ({str(model[key])[:12]}…); its probabilities are on another "
                "scale than the calibration outputs the estimators correct with: use the "
                "model folder that wrote it")
    if found.get("precision", model["precision"]) != model["precision"]:
        raise InputFileError(
            f"{source}: predicted with the {found['precision']} graph, and {model_dir}'s "
            f"policy and calibration outputs are {model['precision']}; predict again with "
            "the graph the policy was fitted on")
    trained = model.get("max_length")
    if found.get("max_length") not in (None, trained):
        log.warning("%s: predicted with max_length=%s, not the %s the policy and its "
                    "calibration outputs were measured at; the shares' correction assumes "
                    "the trained length", source, found.get("max_length"), trained)


def prediction_batches(input_path: Path, class_names: list[str], chunk_rows: int
                       ) -> Iterator[tuple[list[str], np.ndarray, np.ndarray, list[dict]]]:
    """Rows of ``geoloc-predict`` output (Parquet, JSONL or CSV/TSV, written with
    ``probabilities=true`` and a ``columns.group``): the same batches, read back."""
    index = {name: i for i, name in enumerate(class_names)}
    path = str(input_path)
    needed = (GROUP_COLUMN, PROBABILITIES_COLUMN, "country")

    def parse(row: dict[str, Any], line: int) -> tuple[str, np.ndarray, int]:
        for col in needed:
            if row.get(col) in (None, ""):
                raise RecordError(path, line, col, f"no {col!r} value")
        probs = row[PROBABILITIES_COLUMN]
        if isinstance(probs, str):
            try:
                probs = json.loads(probs)
            except json.JSONDecodeError as err:
                raise RecordError(path, line, PROBABILITIES_COLUMN,
                                  f"not a JSON array ({err.msg})") from None
        try:
            vec = np.asarray(probs, dtype=np.float64)
        except (TypeError, ValueError):
            vec = np.full(1, np.nan)
        if (vec.shape != (len(class_names),) or not np.all(np.isfinite(vec))
                or vec.min() < 0 or abs(vec.sum() - 1) > 1e-3):
            raise RecordError(path, line, PROBABILITIES_COLUMN,
                              f"expected {len(class_names)} probabilities (the model's "
                              "classes, >= 0, summing to 1)")
        if not isinstance(row["group"], (str, int)) or isinstance(row["group"], bool):
            raise RecordError(path, line, GROUP_COLUMN, "group must be text or an integer")
        country = str(row["country"])
        if country != UNCERTAIN and country not in index:
            raise RecordError(path, line, "country",
                              f"{country!r} is not one of the model's classes")
        for name, p in _top(row):
            if name in index and abs(vec[index[name]] - p) > 1e-4:
                # the row's own top-k columns name classes with their probabilities:
                # a vector that disagrees is not in the model's class order
                raise RecordError(path, line, PROBABILITIES_COLUMN,
                                  f"gives {name} {vec[index[name]]:.4f}, the row's top "
                                  f"columns {p:.4f}: not in the model's class order "
                                  f"({', '.join(class_names)})")
        return str(row[GROUP_COLUMN]), vec, index.get(country, -1)

    def rows() -> Iterator[tuple[int, dict[str, Any] | RecordError]]:
        """The readers' rows, with the missing-column error telling how to make them."""
        checked = False
        try:
            for line, row in iter_raw_rows(path, None, needed + _optional(input_path)):
                if not checked and isinstance(row, dict):  # JSONL has no header
                    missing = [c for c in needed if c not in row]
                    if missing:  # written without probabilities=true or a group
                        raise RecordError(path, line, missing[0], _missing_hint(missing[0]))
                    checked = True
                yield line, row
        except RecordError as err:
            if err.line == 1 and err.field in needed:  # a CSV header or Parquet schema
                raise RecordError(path, 1, err.field, _missing_hint(err.field)) from None
            raise

    for chunk in _chunks(rows(), chunk_rows):
        groups, vecs, decisions, errors = [], [], [], []
        for line, row in chunk:
            try:
                if isinstance(row, RecordError):
                    raise row
                g, v, d = parse(row, line)
            except RecordError as err:
                errors.append(error_to_dict(err))
                continue
            groups.append(g)
            vecs.append(v)
            decisions.append(d)
        probs = np.stack(vecs) if vecs else np.zeros((0, len(class_names)))
        yield groups, probs, np.asarray(decisions, dtype=np.int64), errors


#: The columns checked when present: each row's top classes and their probabilities.
TOP_COLUMNS = ("top_countries", "top_probabilities")


def _optional(path: Path) -> tuple[str, ...]:
    """The :data:`TOP_COLUMNS` a Parquet file has (Parquet is read column by column; the
    other formats yield every column)."""
    import pyarrow.parquet as pq

    if detect_format(path, None) != "parquet":
        return ()
    try:
        names = pq.read_schema(str(path)).names
    except (OSError, ValueError):  # unreadable: the row reader names the problem
        return ()
    return tuple(c for c in TOP_COLUMNS if c in names)


def _top(row: dict[str, Any]) -> list[tuple[str, float]]:
    """(class, probability) pairs of a row's top-k columns (JSON arrays in CSV cells);
    none when they are absent or unreadable (the check is a bonus, not a requirement)."""
    cells = []
    for col in TOP_COLUMNS:
        value = row.get(col)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                return []
        if not isinstance(value, list):
            return []
        cells.append(value)
    names, probs = cells
    if len(names) != len(probs) or not all(isinstance(p, int | float) for p in probs):
        return []
    return [(str(n), float(p)) for n, p in zip(names, probs, strict=True)]


def _missing_hint(column: str) -> str:
    return (f"column not in the predictions; run geoloc-predict with probabilities=true "
            f"and columns.group=<the group column> (missing: {column})")


# -- the job ----------------------------------------------------------------------------


def audience_file(batches: Iterator[tuple[list[str], np.ndarray, np.ndarray, list[dict]]],
                  calibration: Calibration, input_path: PathLike, output: PathLike,
                  methods: list[str], bootstrap: int = 200, level: float = 0.9,
                  seed: int = 0, buckets: int = 64, overwrite: bool = False,
                  progress: bool = True, total: int | None = None) -> AudienceSummary:
    """Estimate every group's country mix from ``batches`` (:func:`profile_batches` or
    :func:`prediction_batches`) into ``output``; see the module docstring."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    methods = check_methods(methods)
    check_options(bootstrap=bootstrap, level=level, buckets=buckets)  # before reading
    output = Path(output)
    out_format = check_paths(input_path, output, overwrite)
    parts = parts_path(output)
    if parts.exists():  # a killed run's: it starts over
        shutil.rmtree(parts)
    parts.mkdir(parents=True)
    names = list(calibration.class_names)
    schema = _bucket_schema(len(names))
    writers: dict[int, Any] = {}
    n_rows = n_err = 0
    err_file = errors_path(output)
    try:
        # the errors go to the parts folder and beside the output only once the output
        # is written: a run that fails or is killed leaves neither (a rerun is not refused)
        with open(parts / "errors.jsonl", "w", encoding="utf-8") as efh:
            bar = tqdm(total=total, unit="row", desc="geoloc-audience: read",
                       disable=not progress)
            for groups, probs, decisions, errors in batches:
                efh.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in errors)
                n_err += len(errors)
                n_rows += len(groups) + len(errors)
                bar.update(len(groups) + len(errors))
                if not groups:
                    continue
                keys = np.array([_bucket(g, buckets) for g in groups])
                for b in np.unique(keys):
                    sel = np.flatnonzero(keys == b)
                    table = pa.table({
                        "group": pa.array([groups[i] for i in sel], pa.string()),
                        "decision": pa.array(decisions[sel].astype(np.int32)),
                        "probabilities": pa.FixedSizeListArray.from_arrays(
                            pa.array(probs[sel].astype(np.float32).ravel()), len(names)),
                    }, schema=schema)
                    if b not in writers:
                        writers[b] = ipc.new_file(str(parts / f"bucket-{b:04d}.arrow"), schema)
                    writers[b].write_table(table)
            bar.close()
        for w in writers.values():
            w.close()
        writers.clear()
        replicates = CalibrationReplicates(calibration, bootstrap, seed, level, methods)
        n_groups = _estimate_buckets(parts, replicates, names, output, out_format, methods,
                                     level, seed, progress)
        os.replace(parts / "errors.jsonl", err_file)
    finally:
        for w in writers.values():
            w.close()
        shutil.rmtree(parts, ignore_errors=True)
    return AudienceSummary(rows=n_rows, errors=n_err, groups=n_groups, output=output,
                           errors_file=err_file)


def _estimate_buckets(parts: Path, replicates: CalibrationReplicates, names: list[str],
                      output: Path, out_format: str, methods: list[str], level: float,
                      seed: int, progress: bool) -> int:
    """Read each bucket alone, estimate its groups and write them (bucket by bucket, by
    name within a bucket); returns the number of groups."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    schema = output_schema()
    n_groups = 0
    with output_table_writer(output, out_format, schema) as write:
        for path in tqdm(sorted(parts.glob("bucket-*.arrow")), desc="geoloc-audience: estimate",
                         unit="bucket", disable=not progress):
            with ipc.open_file(str(path)) as reader:
                table = reader.read_all()
            groups = np.asarray(table.column("group").to_pylist(), dtype=object)
            decisions = table.column("decision").to_numpy()
            probs = (table.column("probabilities").combine_chunks().flatten()
                     .to_numpy().reshape(-1, len(names)).astype(np.float64))
            order = np.argsort(groups, kind="stable")
            uniq, starts = np.unique(groups[order], return_index=True)
            bounds = [*starts[1:], len(order)]
            rows = []
            for g, lo, hi in zip(uniq, starts, bounds, strict=True):
                idx = order[lo:hi]
                # each group's own stream of random draws: its interval does not depend
                # on which other groups the file holds
                group_seed = (seed * 1_000_003 + zlib.crc32(str(g).encode())) % (1 << 32)
                assigned = int((decisions[idx] >= 0).sum())
                for est in estimate_audience(probs[idx], decisions[idx], replicates,
                                             methods, level=level, seed=group_seed):
                    rows.extend({
                        "group": str(g), "method": est.method, "country": names[c],
                        "share": _num(est.share[c]), "low": _num(est.low[c]),
                        "high": _num(est.high[c]), "level": level,
                        "profiles": int(len(idx)), "assigned": assigned,
                    } for c in range(len(names)))
                n_groups += 1
            write(pa.Table.from_pylist(rows, schema=schema))
    return n_groups


def _num(x: float) -> float | None:
    return None if np.isnan(x) else float(x)
