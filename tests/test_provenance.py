"""Files that belong together are checked together (issue 23): a prediction file records
the model that wrote it, and ``geoloc-audience kind=predictions`` refuses another
model's predictions, or probabilities not in the model's class order.

Real pieces: the two tiny bundles of ``conftest`` (mE5 cut to 1 layer, a fitted policy
and fusion), ``geoloc-predict`` and ``geoloc-audience`` run as the CLI runs them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import TEXTS, compose

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def predictions(tiny_bundles, tmp_path_factory) -> tuple[Path, Path, Path]:
    """Bundle ``a``'s predictions of 24 grouped profiles, as Parquet and as JSONL."""
    from geoloc.cli.common import run_task
    from geoloc.cli.predict import predict

    good, _ = tiny_bundles
    root = tmp_path_factory.mktemp("provenance")
    src = root / "followers.jsonl"
    src.write_text("".join(json.dumps({"id": f"p{i}", "bio": TEXTS[i % 4], "captions": [],
                                       "influencer": "shop" if i % 3 else "brand"}) + "\n"
                           for i in range(24)), encoding="utf-8")
    outs = []
    for name in ("preds.parquet", "preds.jsonl"):
        run_task(predict, compose([f"model_dir={good}", f"input={src}",
                                   f"output={root / name}", "columns.group=influencer",
                                   "probabilities=true", "progress=false",
                                   f"paths.output_dir={root}"], "predict"))
        outs.append(root / name)
    return src, outs[0], outs[1]


def _audience(model: Path, preds: Path, out: Path, *extra: str):
    from geoloc.cli.audience import audience
    from geoloc.cli.common import run_task

    return run_task(audience, compose([f"model_dir={model}", "kind=predictions",
                                       f"input={preds}", f"output={out}", "bootstrap=0",
                                       "progress=false", f"paths.output_dir={out.parent}",
                                       *extra], "audience"))


def test_prediction_files_record_their_model_and_another_models_are_refused(
        tiny_bundles, predictions, tmp_path):
    import pyarrow.parquet as pq

    from geoloc.bundle import Bundle
    from geoloc.errors import InputFileError
    from geoloc.inference.job import PROVENANCE_KEY
    from geoloc.inference.population import meta_path

    good, other = tiny_bundles
    _, parquet, jsonl = predictions
    record = Bundle.open(good).provenance()
    # the Parquet file carries the record itself; JSONL (and CSV) in OUTPUT.meta.json
    meta = pq.read_schema(parquet).metadata[PROVENANCE_KEY.encode()]
    assert json.loads(meta) == record
    assert json.loads(meta_path(jsonl).read_text())["provenance"] == record
    # the model that wrote them reads them
    for preds in (parquet, jsonl):
        _, objs = _audience(good, preds, tmp_path / f"ok-{preds.suffix[1:]}.csv")
        assert objs["summary"].errors == 0 and objs["summary"].groups == 2
    # another model's: refused, one line naming both files, nothing written
    for preds in (parquet, jsonl):
        out = tmp_path / f"other-{preds.suffix[1:]}.csv"
        with pytest.raises(InputFileError, match=r"predicted by another model's weights "
                                                 rf".* than {other}") as err:
            _audience(other, preds, out)
        assert "\n" not in str(err.value) and not out.exists()
    # a Parquet file copied without its sidecar still carries its record
    alone = tmp_path / "copied" / "preds.parquet"
    alone.parent.mkdir()
    shutil.copyfile(parquet, alone)
    with pytest.raises(InputFileError, match="another model's weights"):
        _audience(other, alone, tmp_path / "alone.csv")


def test_a_recalibrated_policy_or_other_classes_or_no_record_is_refused(
        tiny_bundles, predictions, tmp_path):
    """The same weights under another policy (another temperature): refused. A file that
    records other classes: refused. No record at all: refused unless allow_unrecorded."""
    from geoloc.bundle import Bundle
    from geoloc.errors import InputFileError
    from geoloc.inference.population import meta_path
    from geoloc.io import file_sha256

    good, _ = tiny_bundles
    _, _, jsonl = predictions
    bundle = Bundle.open(good)
    policy = bundle.thresholds()
    policy.temperature *= 2

    def new_policy(tmp: Path) -> None:
        policy.to_json(tmp / "geoloc_thresholds.json")
        fusion = bundle.fusion()  # re-paired with the new policy
        fusion.thresholds_sha256 = file_sha256(tmp / "geoloc_thresholds.json")
        fusion.save(tmp / "geoloc_fusion.json")

    recal = bundle.derive(tmp_path / "recal", new_policy).folder
    with pytest.raises(InputFileError, match=r"another policy \(temperature"):
        _audience(recal, jsonl, tmp_path / "recal.csv")
    # a record of other classes (here, reordered)
    copy = tmp_path / "reordered" / "preds.jsonl"
    copy.parent.mkdir()
    shutil.copyfile(jsonl, copy)
    meta = json.loads(meta_path(jsonl).read_text())
    meta["provenance"]["class_names"] = meta["provenance"]["class_names"][::-1]
    meta_path(copy).write_text(json.dumps(meta))
    with pytest.raises(InputFileError, match=r"predicted with the classes .*\(in that order\)"):
        _audience(good, copy, tmp_path / "reordered.csv")
    # a file written before the record: its meta's class names and policy hash decide
    meta = json.loads(meta_path(jsonl).read_text())
    del meta["provenance"]
    meta_path(copy).write_text(json.dumps(meta))
    _, objs = _audience(good, copy, tmp_path / "old.csv")
    assert objs["summary"].errors == 0
    with pytest.raises(InputFileError, match=r"another policy"):
        _audience(recal, copy, tmp_path / "old-recal.csv")
    # no record
    meta_path(copy).unlink()
    with pytest.raises(InputFileError, match="no record of the model that wrote it"):
        _audience(good, copy, tmp_path / "bare.csv")
    _, objs = _audience(good, copy, tmp_path / "bare.csv", "allow_unrecorded=true")
    assert objs["summary"].errors == 0


def test_probabilities_not_in_the_models_class_order_are_row_errors(
        tiny_bundles, predictions, tmp_path):
    """The issue's case: the ``probabilities`` column reversed (the record untouched).
    Each row's own top-k columns show the vector is not in the model's order: every row
    is an error row, and a run whose every row is rejected exits non-zero."""
    from geoloc.errors import InputFileError
    from geoloc.inference.population import meta_path

    good, _ = tiny_bundles
    _, _, jsonl = predictions
    rows = [json.loads(x) for x in jsonl.read_text().splitlines()]
    for r in rows:
        r["probabilities"] = r["probabilities"][::-1]
    bad = tmp_path / "reversed.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    shutil.copyfile(meta_path(jsonl), meta_path(bad))
    out = tmp_path / "reversed.csv"
    with pytest.raises(InputFileError, match="every one of its 24 row"):
        _audience(good, bad, out)
    errors = pd.read_json(tmp_path / "reversed.csv.errors.jsonl", lines=True)
    assert len(errors) == 24 and set(errors["field"]) == {"probabilities"}
    assert "not in the model's class order" in errors["problem"].iloc[0]
