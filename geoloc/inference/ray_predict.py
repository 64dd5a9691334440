"""The same predictor on Ray Data: Parquet in, ``map_batches`` over an actor pool,
Parquet out, on a laptop or a cluster.

Each actor loads one :class:`~geoloc.inference.predictor.Predictor` (the model is loaded
once per actor, not per batch) and turns a batch of input rows into prediction rows with
the columns of ``geoloc-predict`` plus ``error``: a row that fails validation (wrong type,
missing id, ...) becomes a row with ``error`` set and no prediction, so every input row
yields one output row. Ids are not checked for uniqueness across workers.

    python -m geoloc.inference.ray_predict --model EXPORT_OR_CKPT --input profiles.parquet \\
        --output predictions/ [--actors 4 --threads-per-actor 2] [--address auto]

``--address`` (or ``RAY_ADDRESS``) attaches to an existing cluster (``auto`` on a node of
it, ``ray://HEAD:10001`` from outside); without it a local Ray instance is started. The
model path and the input must be readable from every node (a shared filesystem or object
store path that ``pyarrow`` understands).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from geoloc.data.schema import ColumnMapping
from geoloc.data.validation import row_validator
from geoloc.errors import RecordError
from geoloc.inference.job import output_schema
from geoloc.inference.predictor import Predictor

DEFAULT_COLUMNS = {"id": "id", "bio": "bio", "captions": "captions", "captions_mode": "auto"}


def ray_output_schema(embeddings: bool = False) -> Any:
    """Prediction columns of ``geoloc-predict`` (``line`` is null: a distributed batch
    has no file line) plus ``error``."""
    import pyarrow as pa

    return output_schema(embeddings).append(pa.field("error", pa.string()))


class RayPredictor:
    """The ``map_batches`` callable: one predictor per actor, pyarrow batches in and out."""

    def __init__(self, model: str, columns: dict | None = None, backend: str = "torch",
                 quantized: bool = False, batch_size: int = 64, top_k: int = 3,
                 threads: int | None = 1, embeddings: bool = False,
                 allow_precision_mismatch: bool = False) -> None:
        self.predictor = Predictor.load(model, backend=backend, quantized=quantized,
                                        batch_size=batch_size, top_k=top_k, threads=threads,
                                        embeddings=embeddings,
                                        allow_precision_mismatch=allow_precision_mismatch)
        self.mapping = ColumnMapping.from_dict({**(columns or DEFAULT_COLUMNS),
                                                "stated_location": None, "country": None})
        self.validate = row_validator("ray-batch", self.mapping)
        self.schema = ray_output_schema(embeddings)

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        records, errors = [], []
        for row in batch.to_pylist():
            try:
                records.append(self.validate(row, 0))
            except RecordError as err:
                raw = row.get(self.mapping.id) if self.mapping.id else None
                errors.append({"id": None if raw is None else str(raw),
                               "error": f"field '{err.field}': {err.problem}"})
        rows = self.predictor.predict_records(records, [None] * len(records))
        empty = dict.fromkeys(self.schema.names)
        out = [{**empty, **r} for r in rows] + [{**empty, **e} for e in errors]
        return pa.Table.from_pylist(out, schema=self.schema)


def predict_with_ray(model: str, input_path: str, output_dir: str,
                     columns: dict | None = None, actors: int = 2,
                     threads_per_actor: int = 1, batch_rows: int = 1024,
                     backend: str = "torch", quantized: bool = False,
                     address: str | None = None, embeddings: bool = False,
                     allow_precision_mismatch: bool = False) -> int:
    """Run the predictor over ``input_path`` (Parquet file or folder) with Ray Data and
    write Parquet files to ``output_dir``; returns the number of output rows."""
    import ray

    if Path(output_dir).exists() and any(Path(output_dir).iterdir()):
        # Ray writes uniquely named files: old and new rows would mix
        raise ValueError(f"output={output_dir} exists and is not empty; choose another folder")
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        return _run(input_path, output_dir, model, columns, actors, threads_per_actor,
                    batch_rows, backend, quantized, embeddings, allow_precision_mismatch)
    finally:
        if started:
            ray.shutdown()


def _run(input_path: str, output_dir: str, model: str, columns: dict | None, actors: int,
         threads_per_actor: int, batch_rows: int, backend: str, quantized: bool,
         embeddings: bool, allow_precision_mismatch: bool = False) -> int:
    import ray

    cpus = ray.cluster_resources().get("CPU", 0)
    if cpus < actors * threads_per_actor + 1:
        # the actors hold their CPUs for the whole job; with none left, Ray Data's read
        # and write tasks are never scheduled and the job waits forever
        raise ValueError(
            f"the Ray cluster has {cpus:g} CPUs: {actors} actors x {threads_per_actor} "
            "threads plus 1 for reading and writing are needed; use fewer actors")
    ds = ray.data.read_parquet(input_path)
    predictions = ds.map_batches(
        RayPredictor,
        fn_constructor_kwargs={"model": str(model), "columns": columns, "backend": backend,
                               "quantized": quantized, "threads": threads_per_actor,
                               "embeddings": embeddings,
                               "allow_precision_mismatch": allow_precision_mismatch},
        batch_size=batch_rows, batch_format="pyarrow", concurrency=actors,
        num_cpus=threads_per_actor)
    predictions.write_parquet(output_dir)
    return ray.data.read_parquet(output_dir).count()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="geoloc-ray-predict",
                                description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True,
                   help="model folder (<run>/model) or an export of it")
    p.add_argument("--input", required=True, help="Parquet file or folder")
    p.add_argument("--output", required=True, help="output folder (Parquet files)")
    p.add_argument("--actors", type=int, default=2)
    p.add_argument("--threads-per-actor", type=int, default=1)
    p.add_argument("--batch-rows", type=int, default=1024)
    p.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    p.add_argument("--quantized", action="store_true")
    p.add_argument("--allow-precision-mismatch", action="store_true",
                   help="score with thresholds fitted on the other precision's outputs "
                        "(fp32 thresholds on the int8 graph): no certificate")
    p.add_argument("--embeddings", action="store_true",
                   help="also write the pooled profile embedding (column 'embedding')")
    p.add_argument("--address", default=None, help="existing Ray cluster (or RAY_ADDRESS)")
    p.add_argument("--columns", type=json.loads, default=None,
                   help='column mapping as JSON, e.g. \'{"id": "Tweet ID", "bio": null, '
                        '"captions": "Tweet", "captions_mode": "text"}\'')
    a = p.parse_args(argv)
    n = predict_with_ray(a.model, a.input, a.output, columns=a.columns, actors=a.actors,
                         threads_per_actor=a.threads_per_actor, batch_rows=a.batch_rows,
                         backend=a.backend, quantized=a.quantized, address=a.address,
                         embeddings=a.embeddings,
                         allow_precision_mismatch=a.allow_precision_mismatch)
    print(f"{n} rows -> {a.output}")


if __name__ == "__main__":
    main()
