"""Readers: every format round-trips, bad rows name file, line and field, real data reads."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from geoloc.data.formats import detect_format
from geoloc.data.readers import (
    ColumnMapping,
    iter_profiles,
    iter_results,
    read_profiles,
    read_profiles_to_jsonl,
    require_file,
)
from geoloc.data.schema import MAX_CAPTIONS
from geoloc.errors import InputFileError, RecordError

ROWS = [
    {"id": "a1", "bio": "Fotógrafa 📷", "captions": ["praia hoje", "açaí"],
     "stated_location": "Rio", "country": "BR"},
    {"id": "a2", "bio": "", "captions": ["tea time"], "stated_location": None, "country": "uk"},
]
EXPECTED = [
    {"id": "a1", "bio": "Fotógrafa 📷", "captions": ["praia hoje", "açaí"],
     "stated_location": "Rio", "country": "BR"},
    {"id": "a2", "bio": "", "captions": ["tea time"], "stated_location": None, "country": "GB"},
]
REAL_TSV = Path(__file__).resolve().parents[1] / "shared" / "data" / "umass_global_english" / "dev.tsv"
if not REAL_TSV.exists():  # shared/ sits beside the checkout in some layouts
    REAL_TSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "umass_global_english" / "dev.tsv"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[dict], delimiter: str = ",") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter=delimiter)
        w.writerow(["id", "bio", "captions", "stated_location", "country"])
        for r in rows:
            w.writerow([r["id"], r["bio"], json.dumps(r["captions"], ensure_ascii=False),
                        r["stated_location"] or "", r["country"] or ""])
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


# -- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "tsv", "parquet"])
def test_each_format_round_trips(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"profiles.{fmt}"
    if fmt == "jsonl":
        write_jsonl(path, ROWS)
    elif fmt == "parquet":
        write_parquet(path, ROWS)
    else:
        write_csv(path, ROWS, "\t" if fmt == "tsv" else ",")
    assert detect_format(path) == fmt
    got = list(iter_profiles(path, ColumnMapping(), require_country=True))
    assert got == EXPECTED


def test_read_profiles_to_jsonl_writes_canonical_file(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", ROWS)
    out = tmp_path / "out" / "canon.jsonl"
    errs_path = tmp_path / "out" / "errors.jsonl"
    n, errors = read_profiles_to_jsonl(src, ColumnMapping(), out, errors_path=errs_path)
    assert (n, errors) == (2, [])
    back = list(iter_profiles(out, ColumnMapping()))
    assert back == EXPECTED
    assert errs_path.read_text() == ""
    assert not list(out.parent.glob(".*.tmp"))  # the atomic writer cleaned up


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", ROWS)
    out = tmp_path / "canon.jsonl"
    out.write_text("previous\n")
    with pytest.raises(ValueError):
        read_profiles_to_jsonl(src, ColumnMapping(), out, fmt="nonsense")
    assert out.read_text() == "previous\n"


def test_an_unknown_extension_or_a_stream_is_named_for_what_it_is(tmp_path: Path) -> None:
    """A file without a known extension: the message names the option the commands have
    (format=, --format for geoloc-label), not an internal one. A pipe: refused as one."""
    with pytest.raises(ValueError, match=r"format= \(jsonl, csv, tsv or parquet; "
                                         r"geoloc-label: --format\)"):
        detect_format(tmp_path / "profiles.txt")
    # a FIFO is refused as what it is, before a byte of it is read
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputFileError, match=r"in\.fifo: not a regular file"):
        require_file(fifo, "input=")
    with pytest.raises(InputFileError, match="no such file"):
        require_file(tmp_path / "gone.jsonl", "input=")


def test_format_can_be_forced(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "profiles.txt", ROWS)
    with pytest.raises(ValueError, match="extension"):
        list(iter_profiles(path, ColumnMapping()))
    assert len(list(iter_profiles(path, ColumnMapping(), fmt="jsonl"))) == 2


def test_json_array_file_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps(ROWS, ensure_ascii=False), encoding="utf-8")
    assert list(iter_profiles(path, ColumnMapping())) == EXPECTED


# -- bad rows: file, line, field ---------------------------------------------------------


def test_csv_bad_country_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("id,bio,captions,stated_location,country\n"
                    'a,hi,"[""x""]",,BR\n'
                    'b,hi,"[""y""]",,ZZ\n', encoding="utf-8")
    with pytest.raises(RecordError) as exc:
        list(iter_profiles(path, ColumnMapping()))
    err = exc.value
    assert (err.path, err.line, err.field) == (str(path), 3, "country")
    assert "bad.csv:3" in str(err) and "'country'" in str(err) and "ZZ" in str(err)


def test_csv_line_numbers_count_physical_lines_of_multiline_records(tmp_path: Path) -> None:
    path = tmp_path / "multi.csv"
    path.write_text("id,captions,country\n"
                    'a,"line one\nline two",US\n'
                    "b,ok,XX\n", encoding="utf-8")
    m = ColumnMapping(bio=None, stated_location=None, captions_mode="text")
    results = list(iter_results(path, m))
    assert results[0]["captions"] == ["line one\nline two"]
    assert isinstance(results[1], RecordError) and results[1].line == 4


def test_jsonl_malformed_json_on_line_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n{not json\n" + json.dumps(ROWS[1]) + "\n")
    with pytest.raises(RecordError) as exc:
        list(iter_profiles(path, ColumnMapping()))
    assert (exc.value.line, exc.value.field) == (2, "json")
    assert "bad.jsonl:2" in str(exc.value)
    errors: list[RecordError] = []
    good = list(iter_profiles(path, ColumnMapping(), on_error="collect", errors=errors))
    assert [r["id"] for r in good] == ["a1", "a2"] and [e.line for e in errors] == [2]


def test_parquet_missing_id_in_row_2(tmp_path: Path) -> None:
    rows = [dict(ROWS[0]), dict(ROWS[1], id=None)]
    path = write_parquet(tmp_path / "bad.parquet", rows)
    with pytest.raises(RecordError) as exc:
        list(iter_profiles(path, ColumnMapping()))
    err = exc.value
    assert (err.line, err.field) == (3, "id")  # row 2 -> line = row + 1
    assert "row 2" in str(err) and "bad.parquet" in str(err)


@pytest.mark.parametrize("row, field", [
    ({"id": "x", "captions": "not a list"}, "captions"),
    ({"id": "x", "captions": ["ok", 3]}, "captions"),
    ({"id": "", "captions": []}, "id"),
    ({"id": "x", "captions": [], "country": "Brazil"}, "country"),
    ({"id": "x", "captions": [], "country": 76}, "country"),
    ({"id": ["x"], "captions": []}, "id"),
])
def test_jsonl_invalid_fields(tmp_path: Path, row: dict, field: str) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [row])
    m = ColumnMapping(captions_mode="list")
    (res,) = list(iter_results(path, m))
    assert isinstance(res, RecordError) and res.field == field and res.line == 1


def test_required_country_and_duplicate_ids(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"id": 1, "captions": ["a"], "country": "US"},
        {"id": 2, "captions": ["b"]},
        {"id": "1", "captions": ["c"], "country": "US"},
    ])
    records, errors = read_profiles(path, ColumnMapping(), require_country=True)
    assert [r["id"] for r in records] == ["1"]
    assert [(e.line, e.field) for e in errors] == [(2, "country"), (3, "id")]
    assert "duplicate" in errors[1].problem and "line 1" in errors[1].problem


def test_csv_header_missing_mapped_column_is_fatal(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("id,text\n1,hello\n")
    with pytest.raises(RecordError, match="column not in header") as exc:
        list(iter_profiles(path, ColumnMapping(captions="caption")))
    assert exc.value.line == 1


def test_csv_wrong_field_count(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("id,text\n1,hello\n2,a,b\n3,fine\n")
    m = ColumnMapping(bio=None, captions="text", stated_location=None, country=None)
    results = list(iter_results(path, m))
    assert [getattr(r, "line", None) for r in results] == [None, 3, None]
    assert results[1].field == "row"


def test_invalid_utf8_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "\xff"}\n')
    results = list(iter_results(path, ColumnMapping()))
    assert results[0]["id"] == "a"
    assert isinstance(results[1], RecordError) and results[1].line == 2


# -- captions: list column, several columns, one text column -------------------------


def test_captions_from_a_list_column_are_capped(tmp_path: Path) -> None:
    caps = [f"c{i}" for i in range(MAX_CAPTIONS + 3)]
    path = write_parquet(tmp_path / "p.parquet", [{"uid": "u", "posts": caps}])
    m = ColumnMapping(id="uid", bio=None, captions="posts", stated_location=None, country=None)
    (rec,) = list(iter_profiles(path, m))
    assert rec["captions"] == caps[:MAX_CAPTIONS] and rec["bio"] == ""


def test_captions_from_several_columns(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("user,about,cap1,cap2,cap3,where\n"
                    "u1,Chef,first,,third,Lima\n", encoding="utf-8")
    m = ColumnMapping(id="user", bio="about", captions=["cap1", "cap2", "cap3"],
                      stated_location="where", country=None)
    (rec,) = list(iter_profiles(path, m))
    assert rec == {"id": "u1", "bio": "Chef", "captions": ["first", "third"],
                   "stated_location": "Lima", "country": None}


def test_captions_from_one_text_column(tmp_path: Path) -> None:
    path = tmp_path / "p.tsv"
    path.write_text("ID\tText\n7\t[brackets] are just text\n8\t\n", encoding="utf-8")
    m = ColumnMapping(id="ID", bio=None, captions="Text", stated_location=None, country=None)
    recs = list(iter_profiles(path, m))
    assert recs[0]["captions"] == ["[brackets] are just text"] and recs[1]["captions"] == []


def test_mapping_from_dict_rejects_unknown_keys() -> None:
    m = ColumnMapping.from_dict({"id": "uid", "captions": ["a", "b"]})
    assert m.captions == ("a", "b") and m.columns()[:3] == ["uid", "bio", "a"]
    with pytest.raises(ValueError, match="unknown"):
        ColumnMapping.from_dict({"identifier": "uid"})


# -- the real tweet file -------------------------------------------------------------


@pytest.mark.skipif(not REAL_TSV.exists(), reason="shared data not present")
def test_real_dev_tsv_reads_every_row() -> None:
    m = ColumnMapping(id="Tweet ID", captions="Tweet", country="Country", bio=None,
                      stated_location=None)
    records, errors = read_profiles(REAL_TSV, m, require_country=True)
    assert errors == []
    assert len(records) == 5174
    assert all(len(r["captions"]) == 1 and r["bio"] == "" for r in records)
    assert {"US", "BR", "TR", "GB", "XK"} <= {r["country"] for r in records}
    assert list(iter_profiles(REAL_TSV, ColumnMapping.tweets(), require_country=True))[0] == records[0]


def test_model_text_undoes_storage_artefacts():
    """HTML entities and line breaks stored as backslash-n (as in the real tweet set)
    become plain text in every model input; clean text is unchanged."""
    from geoloc.data.schema import normalize_text, profile_text

    assert normalize_text("Bed &amp; Breakfast &lt;3") == "Bed & Breakfast <3"
    assert normalize_text("line one\\nline two") == "line one\nline two"
    assert normalize_text("Bom dia 🇧🇷 São Paulo") == "Bom dia 🇧🇷 São Paulo"
    assert profile_text("me &amp; you", ["a\\nb", ""]) == "me & you | a\nb"


def test_groups_differing_only_in_spaces_are_one_group_and_that_is_said(
        tmp_path: Path, caplog) -> None:
    """Issue 23: ``acme`` and ``acme `` were merged without a word. They still are (a
    spreadsheet's stray space is not a second audience), but the first such row of a file
    is named in a warning, once."""
    src = tmp_path / "followers.csv"
    src.write_text("id,bio,influencer\n1,a,acme\n2,b,acme \n3,c, acme\n4,d,other\n",
                   encoding="utf-8")
    mapping = ColumnMapping(id="id", bio="bio", captions=(), stated_location=None,
                            country=None, group="influencer")
    with caplog.at_level("WARNING", logger="geoloc"):
        rows = list(iter_results(src, mapping))
    assert [r["group"] for r in rows] == ["acme", "acme", "acme", "other"]
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and f"{src}: line 3: group 'acme ' has spaces" in said[0]
