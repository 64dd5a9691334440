"""Bad training input and bad options fail early and clearly (issue: hardening).

Each test plants one defect a new user hit and checks the outcome: a one-line error
naming the file, line and field (or the option), a documented skip that is counted and
listed, never a silent change of every row.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import compose


def _rows(n: int = 60) -> list[dict]:
    from geoloc.synthetic import generate_profiles

    return [{k: r[k] for k in ("id", "bio", "captions", "stated_location", "country")}
            for r in generate_profiles(n, seed=11)]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def _copy(path: Path) -> list[dict]:
    from geoloc.data.sources import CanonicalJsonlSource
    from geoloc.io import read_jsonl

    return list(read_jsonl(CanonicalJsonlSource(str(path)).canonical_jsonl()))


@pytest.mark.parametrize("field,value,problem", [
    ("country", 840, "country must be a string code, got int"),
    ("country", "usa", "'usa' is not an ISO 3166-1 alpha-2 country code"),
    ("country", "XX", "'XX' is not an ISO 3166-1 alpha-2 country code"),
    ("captions", "one caption as a string", None),  # a string is one caption: accepted
    ("captions", {"a": 1}, "expected a list of strings, got dict"),
    ("bio", ["a", "list"], "expected text, got list"),
    ("id", None, "id is missing or empty"),
])
def test_one_bad_value_fails_the_training_file_naming_line_and_field(tmp_path, field, value,
                                                                     problem):
    """A mistyped value on line 7 used to turn its whole column into JSON text (every
    country became OTHER, test accuracy 1.0); now the read names line 7 and the field, and
    lists every bad row in the rejects file."""
    from geoloc.errors import InputFileError

    rows = _rows()
    rows[5][field] = value  # line 6 of the file
    src = _write(tmp_path / "train.jsonl", rows)
    if problem is None:
        assert len(_copy(src)) == len(rows)
        return
    with pytest.raises(InputFileError) as err:
        _copy(src)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{src}:6: field '{field}': {problem}")
    assert "1 bad row(s) in all" in message
    rejects = Path(message.rsplit("listed in ", 1)[1].rstrip(")"))
    assert rejects.name.endswith(".rejects.jsonl")
    assert [json.loads(x)["line"] for x in rejects.read_text().splitlines()] == [6]


def test_one_integer_id_or_bio_changes_only_its_own_row(tmp_path):
    """``datasets`` used to re-type a whole column after one integer (every id, and so
    every split, changed; every bio got JSON-escaped); the validated copy keeps each row
    as written, with the integer read as text."""
    rows = _rows()
    rows[3]["id"] = 123456
    rows[4]["bio"] = 2024
    got = _copy(_write(tmp_path / "train.jsonl", rows))
    assert [r["id"] for r in got] == [str(r["id"]) for r in rows]
    assert got[4]["bio"] == "2024"
    assert [r["bio"] for i, r in enumerate(got) if i != 4] == [
        r["bio"] for i, r in enumerate(rows) if i != 4]
    assert all(isinstance(r["country"], str) and len(r["country"]) == 2 for r in got)


def test_rows_without_a_country_are_skipped_and_counted_never_other(tmp_path, caplog):
    """Missing countries used to become OTHER silently; a file with no labels trained a
    'perfect' model. Now unlabelled rows are skipped with a warning and listed, and a file
    with none labelled fails."""
    from geoloc.data.sources import CanonicalJsonlSource, rejects_path
    from geoloc.errors import InputFileError

    rows = _rows()
    for i in (2, 9, 30):
        rows[i]["country"] = None
    rows[40].pop("country")
    src = _write(tmp_path / "train.jsonl", rows)
    with caplog.at_level("WARNING", logger="geoloc"):
        got = _copy(src)
    assert len(got) == len(rows) - 4 and all(r["country"] for r in got)
    assert "4 of 60 rows have no country and are skipped" in caplog.text
    rejects = rejects_path(CanonicalJsonlSource(str(src)).canonical_jsonl())
    assert [json.loads(x)["line"] for x in rejects.read_text().splitlines()] == [3, 10, 31, 41]

    for r in rows:
        r["country"] = None
    empty = _write(tmp_path / "unlabelled.jsonl", rows)
    with pytest.raises(InputFileError, match="no row with a country .60 row.s. without one"):
        _copy(empty)


def test_split_column_is_validated(tmp_path):
    from geoloc.errors import InputFileError

    rows = _rows()
    rows[0]["split"] = "train"
    rows[1]["split"] = "training"
    with pytest.raises(InputFileError, match=r":2: field 'split': split must be one of"):
        _copy(_write(tmp_path / "train.jsonl", rows))
    rows[1]["split"] = None
    got = _copy(_write(tmp_path / "ok.jsonl", rows))
    assert got[0]["split"] == "train" and got[1]["split"] is None


def test_missing_path_or_directory_is_named(tmp_path):
    from geoloc.data.sources import CanonicalJsonlSource
    from geoloc.errors import InputFileError

    with pytest.raises(InputFileError, match="does not exist"):
        CanonicalJsonlSource(str(tmp_path / "nope.jsonl")).canonical_jsonl()
    with pytest.raises(InputFileError, match="is a directory, not a JSONL file"):
        CanonicalJsonlSource(str(tmp_path)).canonical_jsonl()


@pytest.mark.parametrize("override,message", [
    ("model.optimizer.lr=abc", "model.optimizer.lr='abc': expected a number >= 0"),
    ("model.optimizer.lr=0", "model.optimizer.lr=0: a learning rate must be > 0"),
    ("model.optimizer.lr=-1e-4", "model.optimizer.lr=-0.0001: expected a number >= 0"),
    ("trainer.max_epochs=-1", "trainer.max_epochs=-1: expected an integer >= 1"),
    ("trainer.max_epochs=1.5", "trainer.max_epochs=1.5: expected an integer >= 1"),
    ("model.warmup_ratio=2", "model.warmup_ratio=2: expected a number in [0, 1]"),
    ("data.splits={train: 0.7, val: 0.15, calib: 0.0, test: 0.15}",
     "data.splits.calib=0: the thresholds are fitted on the calib split"),
    ("data.splits={train: 0.0, val: 0.3, calib: 0.4, test: 0.3}",
     "data.splits.train=0: training needs a train split"),
])
def test_bad_training_options_fail_at_start_up_naming_the_option(override, message):
    """Each used to fail minutes in (inside the optimiser, an OverflowError, a TypeError
    after training); now validate_config refuses it before anything is built."""
    from geoloc.config import validate_config
    from geoloc.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        validate_config(compose([override]))
    assert str(err.value).startswith(message)


def test_calib_zero_is_fine_with_crossfit():
    from geoloc.config import validate_config

    validate_config(compose(["data.splits={train: 0.7, val: 0.15, calib: 0.0, test: 0.15}",
                             "crossfit.folds=3"]))


@pytest.mark.slow
@pytest.mark.parametrize("case", ["three_rows", "one_class"])
def test_a_file_too_small_or_with_one_class_fails_before_training(tmp_path, me5_dir, case):
    """A 3-row file used to train, then crash predicting an empty calib split; a file whose
    countries are all outside the label set trained a one-class 'perfect' model."""
    from geoloc.cli.common import run_task
    from geoloc.cli.train import train
    from geoloc.errors import DataConfigError

    rows = _rows(3) if case == "three_rows" else _rows(60)
    if case == "one_class":
        for r in rows:
            r["country"] = "AQ"  # Antarctica: valid, outside the label set -> OTHER
    src = _write(tmp_path / "data.jsonl", rows)
    cfg = compose(["data=jsonl", f"data.source.path={src}", "model.encoder_layers=1",
                   "trainer=debug", "logger=none", f"paths.output_dir={tmp_path / 'out'}"])
    match = "split has no rows" if case == "three_rows" else "every train row is OTHER"
    with pytest.raises(DataConfigError, match=match):
        run_task(train, cfg)
    assert not list((tmp_path / "out").rglob("*.ckpt"))


@pytest.mark.slow
def test_geoloc_train_prints_one_line_and_exits_2_on_a_bad_row(tmp_path, me5_dir):
    """From the command line: exit status 2, one line naming file, line and field, no
    traceback."""

    rows = _rows()
    rows[6]["country"] = 840
    src = _write(tmp_path / "data.jsonl", rows)
    cmd = [sys.executable, "-m", "geoloc.cli.train", "data=jsonl", f"data.source.path={src}",
           "model.encoder_layers=1", "trainer=debug", "logger=none",
           f"hydra.run.dir={tmp_path / 'run'}"]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [x for x in done.stderr.splitlines() if x.startswith("geoloc-train:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert lines[0].startswith(f"geoloc-train: bad input: {src}:7: field 'country': "
                               "country must be a string code, got int")


def test_a_broken_csv_record_costs_its_own_lines_not_the_rest_of_the_file(tmp_path):
    """A stray quote used to end the read (2 rows of 5 read, exit 0); now the reader
    resumes on the next line, and an unclosed quote names every line it swallowed."""
    from geoloc.data.readers import iter_numbered_results
    from geoloc.data.schema import ColumnMapping
    from geoloc.errors import RecordError

    src = tmp_path / "in.csv"
    src.write_text('id,bio,captions,country\n1,hello,,US\n2,"abc"x,,FR\n3,fine,,DE\n'
                   f'4,{"y" * (1 << 25)},,GB\n5,after the big one,,BR\n'
                   '6,"never closed,,GB\n7,swallowed,,BR\n', encoding="utf-8")
    mapping = ColumnMapping(stated_location=None)
    out = list(iter_numbered_results(src, mapping))
    good = [(line, r["id"]) for line, r in out if not isinstance(r, RecordError)]
    bad = [(line, r.field, r.problem) for line, r in out if isinstance(r, RecordError)]
    assert good == [(2, "1"), (4, "3"), (6, "5")]
    assert [b[:2] for b in bad] == [(3, "csv"), (5, "csv"), (7, "csv")]
    assert "(line 3)" in bad[0][2] and "field larger than field limit" in bad[1][2]
    assert "(lines 7-8)" in bad[2][2]


def test_an_oversized_quoted_field_over_several_lines_yields_no_spurious_rows(tmp_path):
    """A quoted field over the reader's size limit spanning lines: its remaining lines
    used to come out as records of their own; now the error covers the whole record."""
    from geoloc.data.readers import iter_numbered_results
    from geoloc.data.schema import ColumnMapping
    from geoloc.errors import RecordError

    src = tmp_path / "in.csv"
    src.write_text('id,bio,captions,country\n1,hello,,US\n'
                   f'2,"first line\n{"y" * (1 << 25)}\n3,looks,,FR\n""quoted"" end",,GB\n'
                   '4,after,,BR\n', encoding="utf-8")
    out = list(iter_numbered_results(src, ColumnMapping(stated_location=None)))
    good = [(line, r["id"]) for line, r in out if not isinstance(r, RecordError)]
    bad = [(line, r.field, r.problem) for line, r in out if isinstance(r, RecordError)]
    assert good == [(2, "1"), (7, "4")]
    assert len(bad) == 1 and bad[0][:2] == (3, "csv")
    assert "(lines 3-6)" in bad[0][2] and "field larger than field limit" in bad[0][2]


def test_a_stray_quote_in_a_broken_record_costs_only_that_record(tmp_path):
    """An odd quote count after an ordinary parse error (a stray quote, not an open
    field) must not make the reader skip the good lines that follow."""
    from geoloc.data.readers import iter_numbered_results
    from geoloc.data.schema import ColumnMapping
    from geoloc.errors import RecordError

    src = tmp_path / "in.csv"
    src.write_text('id,bio,captions\n1,"a"b 5" tall,x\n2,ok,ok\n3,ok,ok\n', encoding="utf-8")
    out = list(iter_numbered_results(src, ColumnMapping(stated_location=None, country=None)))
    assert [(line, isinstance(r, RecordError)) for line, r in out] == [
        (2, True), (3, False), (4, False)]


@pytest.mark.parametrize("corrupt,problem", [
    (lambda text: text[: len(text) // 2], "not valid JSON (line"),
    (lambda text: "[1, 2]", "expected a JSON object, got list"),
    (lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "thresholds"}),
     "thresholds file lacks the field 'thresholds'"),
    (lambda text: text.replace('"US": 0.9', '"US": -3'), "threshold of 'US' is -3.0"),
    (lambda text: text.replace('"US": 0.9', '"US": NaN'), "threshold of 'US' is nan"),
    (lambda text: text.replace('"temperature": 1.5', '"temperature": 0'), "temperature 0.0"),
])
def test_a_corrupt_thresholds_file_is_refused_naming_the_file(tmp_path, corrupt, problem):
    """A truncated or hand-edited policy used to give a traceback that never named the
    file, and thresholds of -3 or NaN were accepted silently."""
    import math

    from geoloc.errors import InputFileError
    from geoloc.evaluation.abstention import PolicyConfig, Thresholds

    good = Thresholds(class_names=["US", "OTHER"], thresholds={"US": 0.9, "OTHER": math.inf},
                      policy=PolicyConfig(target=0.9, delta=0.05, start_counts=(40,),
                                          guarantee="per_class"), temperature=1.5)
    path = good.to_json(tmp_path / "policy.thresholds.json")
    assert Thresholds.from_json(path).thresholds == good.thresholds
    path.write_text(corrupt(path.read_text()))
    with pytest.raises(InputFileError) as err:
        Thresholds.from_json(path)
    assert str(err.value).startswith(f"{path}: ") and problem in str(err.value)


def test_the_gazetteer_cache_is_plain_json_never_a_pickle(geoloc_home):
    """The location index used to be cached with pickle.load, so a planted cache file
    could run code; it is JSON now, and a corrupt cache is rebuilt, not trusted."""
    from geoloc.location.gazetteer import Gazetteer, get_gazetteer

    gz = get_gazetteer()
    files = list((geoloc_home / "gazetteer").glob("index_*"))
    assert files and all(f.suffix == ".json" for f in files)
    assert Gazetteer.from_dict(json.loads(files[0].read_text(encoding="utf-8"))) == gz


def test_the_suite_cannot_reach_the_network():
    """pytest-socket (pyproject addopts) blocks every connection that leaves the machine,
    so a test that would download something fails instead of passing on a connected CI."""
    import socket

    from pytest_socket import SocketBlockedError, SocketConnectBlockedError

    with pytest.raises((SocketBlockedError, SocketConnectBlockedError)):
        socket.create_connection(("93.184.216.34", 80), timeout=1)


def test_importing_geoloc_puts_datasets_offline():
    """Without the offline variables `load_dataset("json", ...)` made one Hub request;
    importing geoloc now sets HF_DATASETS_OFFLINE unless the user chose otherwise."""

    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    code = ("import geoloc, datasets.config as c, os; "
            "print(os.environ['HF_DATASETS_OFFLINE'], c.HF_DATASETS_OFFLINE)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=120, check=True).stdout.split()
    assert out == ["1", "True"]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**env, "HF_DATASETS_OFFLINE": "0"}, timeout=120,
                         check=True).stdout.split()
    assert out == ["0", "False"]


@pytest.mark.parametrize("override,where", [
    ("model.optimizer._target_=os.system", "model.optimizer._target_='os.system'"),
    ("data.source._target_=subprocess.run", "data.source._target_='subprocess.run'"),
    ("+callbacks.evil._target_=builtins.exec", "callbacks.evil._target_='builtins.exec'"),
])
def test_a_config_cannot_name_code_outside_geoloc_lightning_and_torch_optim(override, where):
    """Hydra imports and calls any dotted name; an override or config file could run
    arbitrary code through it. validate_config refuses such targets before anything."""
    from geoloc.config import validate_config
    from geoloc.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(where)):
        validate_config(compose([override]))


def test_a_crafted_checkpoints_hyper_parameters_cannot_run_code(tmp_path):
    """The optimiser is instantiated from a checkpoint's saved hyper-parameters on resume;
    a crafted file naming another callable is refused instead of called."""
    from geoloc.errors import ConfigError
    from geoloc.instantiate import instantiate

    flag = tmp_path / "ran"
    with pytest.raises(ConfigError, match="os.system"):
        instantiate({"_target_": "os.system", "command": f"touch {flag}"})
    assert not flag.exists()
    assert instantiate({"_target_": "geoloc.evaluation.abstention.PolicyConfig",
                        "target": 0.9, "delta": 0.05, "start_counts": [40],
                        "guarantee": "per_class"}).target == 0.9


@pytest.mark.parametrize("case,message", [
    ("missing", "INPUT {src}: no such file"),
    ("input_dir", "INPUT {tmp}: is a directory, not a file"),
    ("out_dir", "--out {tmp}: is a directory; give a file name"),
    ("errors_is_out", "--errors {out}: is the --out file; the error rows would replace the "
                      "labelled rows"),
    ("out_is_input", "--out {src}: is the input file"),
    ("empty", "{src}: no data rows (an empty file, or a header only); nothing labelled"),
    ("header_only", "{src}: no data rows (an empty file, or a header only); nothing labelled"),
])
def test_geoloc_label_refuses_paths_that_would_lose_rows(tmp_path, capsys, case, message):
    """Each used to end in a bare path, a stray temporary file, lost error rows, or
    'rows read: 0' with exit status 0; now one line and exit status 2, as the Hydra
    commands answer bad input."""
    from geoloc.cli.label import main

    src = tmp_path / "in.csv"
    src.write_text("id,bio,captions,location\n1,hi,,Paris\n" if case != "empty" else "")
    if case == "header_only":
        src.write_text("id,bio,captions,location\n")
    out = tmp_path / "out.jsonl"
    args = {"missing": [str(tmp_path / "nope.csv"), "--out", str(out)],
            "input_dir": [str(tmp_path), "--out", str(out)],
            "out_dir": [str(src), "--out", str(tmp_path)],
            "errors_is_out": [str(src), "--out", str(out), "--errors", str(out)],
            "out_is_input": [str(src), "--out", str(src)],
            }.get(case, [str(src), "--out", str(out)])
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main([*args, "--id", "id", "--bio", "bio", "--location", "location"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "geoloc-label: bad input: " + message.format(src=src if case != "missing" else
                                                    tmp_path / "nope.csv", tmp=tmp_path, out=out)
    if case not in ("empty", "header_only"):
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_a_killed_writer_leaves_no_temporary_file_forever(tmp_path):
    """SIGKILL runs no cleanup: geoloc-synth killed mid-write used to leave a hidden
    temporary beside its output for ever. The next write of the same file removes
    temporaries whose writer is dead, and never a live writer's."""
    import signal

    from geoloc.io import _HOST, write_text_atomic

    code = ("import sys, time; from geoloc.io import atomic_write\n"
            "with atomic_write(sys.argv[1]) as fh:\n"
            "    fh.write('half'); fh.flush(); print('writing', flush=True); time.sleep(60)\n")
    target = tmp_path / "profiles.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "writing"
    live = tmp_path / f".{target.name}.{_HOST}-{os.getppid()}.keep1234.tmp"  # a live writer's
    other_host = tmp_path / f".{target.name}.elsewhere-999999.abcd1234.tmp"  # never judged
    live.write_text("x")
    other_host.write_text("x")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not target.exists() and len(list(tmp_path.glob(".profiles.jsonl.*.tmp"))) == 3
    write_text_atomic(target, "whole\n")
    assert target.read_text() == "whole\n"
    assert sorted(tmp_path.glob(".profiles.jsonl.*.tmp")) == sorted([live, other_host])


GOOD = {"id": "1", "bio": "hi", "captions": ["a"], "country": "US"}
BAD_INPUTS = {
    # name: (file name, bytes, expected: ("ok", records) or ("error", line, field))
    "malformed JSON": ("in.jsonl", b'{"id": "1", "bio": \n', ("error", 1, "json")),
    "wrong type": ("in.jsonl", b'{"id": "1", "captions": 7}\n', ("error", 1, "captions")),
    "missing id": ("in.jsonl", b'{"bio": "hi"}\n', ("error", 1, "id")),
    "invalid UTF-8": ("in.jsonl", b'{"id": "1", "bio": "\xff\xfe"}\n', ("error", 1, "encoding")),
    "byte-order mark, JSONL": ("in.jsonl", b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n",
                               ("ok", 1)),
    "byte-order mark, CSV": ("in.csv", b"\xef\xbb\xbfid,bio,captions,country\n1,hi,,US\n",
                             ("ok", 1)),
    "NUL byte in a JSON string": ("in.jsonl", b'{"id": "1", "bio": "a\x00b"}\n',
                                  ("error", 1, "json")),
    "escaped NUL in JSON": ("in.jsonl", b'{"id": "1", "bio": "a\\u0000b"}\n', ("ok", 1)),
    "NUL byte in a CSV cell": ("in.csv", b"id,bio,captions,country\n1,a\x00b,,US\n", ("ok", 1)),
    "1 MB bio": ("in.jsonl", json.dumps({**GOOD, "bio": "x" * (1 << 20)}).encode() + b"\n",
                 ("ok", 1)),
    "zero-width and right-to-left marks": (
        "in.jsonl", json.dumps({**GOOD, "bio": "Lon\u200bdon \u202eمرحبا\u202c"}).encode()
        + b"\n", ("ok", 1)),
    "emoji-only and empty text": (
        "in.jsonl", json.dumps({"id": "1", "bio": "🇧🇷🌴", "captions": []}).encode() + b"\n"
        + json.dumps({"id": "2", "bio": "", "captions": [""]}).encode() + b"\n", ("ok", 2)),
    "unknown country code": ("in.jsonl", json.dumps({**GOOD, "country": "XX"}).encode() + b"\n",
                             ("error", 1, "country")),
    "three-letter country code": ("in.jsonl", json.dumps({**GOOD, "country": "usa"}).encode()
                                  + b"\n", ("error", 1, "country")),
    "lower-case country code": ("in.jsonl", json.dumps({**GOOD, "country": "br"}).encode()
                                + b"\n", ("ok", 1)),
    "duplicate ids": ("in.jsonl", (json.dumps(GOOD) + "\n" + json.dumps(GOOD) + "\n").encode(),
                      ("error", 2, "id")),
    "empty file": ("in.csv", b"", ("ok", 0)),
    "header-only CSV": ("in.csv", b"id,bio,captions,country\n", ("ok", 0)),
    "CSV with quoted newlines": ("in.csv", b'id,bio,captions,country\n1,"two\nlines",,US\n',
                                 ("ok", 1)),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_every_bad_input_gets_a_named_error_or_a_counted_outcome(tmp_path, name):
    """The issue's list of bad inputs, through the one reader every command uses: each
    either reads (and what it reads is right) or yields an error naming file, line and
    field; nothing raises anything else and no row goes missing."""
    from geoloc.data.readers import iter_numbered_results
    from geoloc.data.schema import ColumnMapping
    from geoloc.errors import RecordError

    filename, data, expected = BAD_INPUTS[name]
    path = tmp_path / filename
    path.write_bytes(data)
    out = list(iter_numbered_results(path, ColumnMapping(stated_location=None)))
    errors = [r for _, r in out if isinstance(r, RecordError)]
    records = [r for _, r in out if not isinstance(r, RecordError)]
    if expected[0] == "ok":
        assert not errors and len(records) == expected[1], errors
    else:
        assert [(e.line, e.field) for e in errors] == [expected[1:]]
        assert str(errors[0]).startswith(f"{path}:{expected[1]}: field '{expected[2]}':")
    if name == "lower-case country code":
        assert records[0]["country"] == "BR"
    if name == "zero-width and right-to-left marks":
        assert records[0]["bio"] == "Lon\u200bdon \u202eمرحبا\u202c"  # kept as written


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_a_missing_path_or_a_directory_is_named_by_every_reader(tmp_path, kind):
    from geoloc.data.readers import iter_numbered_results
    from geoloc.data.schema import ColumnMapping
    from geoloc.errors import InputFileError

    path = tmp_path / "nope.jsonl" if kind == "missing" else tmp_path
    problem = "no such file" if kind == "missing" else "is a directory, not a file"
    with pytest.raises(InputFileError, match=f"^{re.escape(str(path))}: {problem}$"):
        list(iter_numbered_results(path, ColumnMapping(), fmt="jsonl"))


def test_hydra_full_error_shows_the_traceback(monkeypatch, capsys):
    """The one-line errors hide the traceback; HYDRA_FULL_ERROR=1 (Hydra's own switch)
    re-raises it instead."""
    from geoloc.cli.common import _exit_with
    from geoloc.errors import InputFileError

    err = InputFileError("data.jsonl:3: field 'id': id is missing or empty")
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as done:
        _exit_with("geoloc-train", "bad input", err)
    assert done.value.code == 2
    assert capsys.readouterr().err == f"geoloc-train: bad input: {err}\n"
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(InputFileError):
        _exit_with("geoloc-train", "bad input", err)


def test_a_mapped_jsonl_key_that_no_row_holds_is_reported(tmp_path, caplog):
    """JSONL objects may omit optional keys, so a misspelled mapping ('caption') used to
    blank that field in every row silently; the reader now warns once at the end."""
    from geoloc.data.readers import iter_numbered_results
    from geoloc.data.schema import ColumnMapping

    path = _write(tmp_path / "in.jsonl", _rows(5))
    with caplog.at_level("WARNING", logger="geoloc"):
        out = list(iter_numbered_results(path, ColumnMapping(captions="caption")))
    assert len(out) == 5 and all(r["captions"] == [] for _, r in out)
    assert "mapped key(s) 'caption' appear in none of its 5 rows" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="geoloc"):
        list(iter_numbered_results(path, ColumnMapping()))
    assert "mapped key" not in caplog.text


_SHARED_CACHE_RUN = r"""
import hashlib, json, sys, time
from pathlib import Path
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast
from geoloc.data.datamodule import ProfileDataModule
from geoloc.data.sources import CanonicalJsonlSource, MixtureSource
from geoloc.metadata import ModelMetadata

real, cache, go = (Path(a) for a in sys.argv[1:4])
countries = ["BR", "FR", "JP"]
vocab = {"[UNK]": 0, "[PAD]": 1, **{w: i + 2 for i, w in enumerate("a b c d e".split())}}
tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
tok = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")
source = MixtureSource(CanonicalJsonlSource(str(real)), synthetic_ratio=1.0, synthetic_seed=0)
dm = ProfileDataModule(source, tok, ModelMetadata.create(countries, "wordlevel", "base"),
                       max_length=32, batch_size=8, eval_batch_size=8,
                       splits={"train": 0.6, "val": 0.2, "calib": 0.2, "test": 0.0},
                       split_seed=0, num_workers=0, eval_split="val", cache=str(cache))
while not go.exists():  # both processes start the cache work at the same moment
    time.sleep(0.01)
dm.prepare_data()
dm.setup("fit")
digest = hashlib.sha256()
for name in ("train", "val", "calib"):
    ds = dm.datasets[name]
    digest.update(json.dumps([name, ds.select_columns(["id", "labels", "input_ids"]).to_dict()]).encode())
print("DIGEST", digest.hexdigest())
"""


def test_two_runs_sharing_one_cache_folder_at_once_do_not_corrupt_it(tmp_path):
    """Two processes build the same caches at the same moment from empty folders: the
    validated copy of the training file, the synthetic corpus, the mixture and the
    tokenised datasets. Both finish with identical data, a third run reads the same
    data from the cache, and no half-written or staged file is left behind."""
    home, cache, go = tmp_path / "home", tmp_path / "hf", tmp_path / "go"
    real = tmp_path / "real.jsonl"
    real.write_text("".join(
        json.dumps({"id": str(i), "bio": "a b", "captions": ["c " * (i % 5) + "d"],
                    "country": ["BR", "FR", "JP", "VE"][i % 4]}) + "\n" for i in range(200)))
    env = {**os.environ, "GEOLOC_HOME": str(home)}
    cmd = [sys.executable, "-c", _SHARED_CACHE_RUN, str(real), str(cache), str(go)]

    def start() -> subprocess.Popen:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    def digest(proc: subprocess.Popen) -> str:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        return next(x for x in out.splitlines() if x.startswith("DIGEST")).split()[1]

    first, second = start(), start()
    go.touch()
    together = {digest(first), digest(second)}
    assert len(together) == 1
    assert {digest(start())} == together  # read back from the cache the two runs left
    built = sorted(p.relative_to(home) for p in (home / "data").rglob("*.jsonl"))
    assert [p.parts[1] for p in built] == ["jsonl", "mixture", "synthetic"]
    leftovers = [p for p in [*home.rglob("*"), *cache.rglob("*")]
                 if p.name.endswith((".tmp", ".staged")) or ".tmp-" in p.name]
    assert leftovers == []


class _RunsCode:
    """Unpickling this runs ``touch <flag>``: what a crafted checkpoint would do."""

    def __init__(self, flag: Path) -> None:
        self.flag = flag

    def __reduce__(self):
        return (os.system, (f"touch {self.flag}",))


def _bad_checkpoints(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file given as ckpt_path, what the one-line error must say). Each has a
    policy file beside it, so the export and predict paths reach the checkpoint itself."""
    import torch

    made = tmp_path / "bad"
    made.mkdir()
    good = made / "good.ckpt"
    torch.save({"state_dict": {"w": torch.ones(64, 64)}}, good)
    files = {
        "truncated": (made / "truncated.ckpt", good.read_bytes()[:1000],
                      "not a readable checkpoint"),
        "text": (made / "text.ckpt", b"hello\n", "not a readable checkpoint"),
        "empty": (made / "empty.ckpt", b"", "not a readable checkpoint"),
        "runs code": (made / "evil.ckpt", None, "refused: it holds a reference to "),
        "no state_dict": (made / "plain.ckpt", None, "not a "),  # Lightning or readable
    }
    out = {}
    for name, (path, data, message) in files.items():
        if name == "runs code":
            torch.save({"state_dict": {}, "x": _RunsCode(tmp_path / "ran")}, path)
        elif name == "no state_dict":
            torch.save({"w": torch.ones(2)}, path)
        else:
            path.write_bytes(data)
        path.with_suffix(".thresholds.json").write_text("{}")
        out[name] = (path, message)
    # a folder is taken as a model bundle, and a missing path is named as a model folder
    out["directory"] = (made, "not a geoloc model folder")
    out["missing"] = (made / "none.ckpt", "no such model folder")
    return out


def test_a_bad_checkpoint_is_named_by_eval_export_and_predict(tmp_path):
    """A truncated, empty, foreign or code-carrying checkpoint, a folder or a missing
    path: geoloc-eval, geoloc-export and geoloc-predict each say which file and what is
    wrong, and nothing in the file is ever run."""
    from geoloc.cli.common import run_task
    from geoloc.cli.evaluate import evaluate
    from geoloc.cli.export import export_task
    from geoloc.cli.predict import predict
    from geoloc.errors import BundleError, CheckpointError

    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "1", "bio": "hi", "captions": []}) + "\n")
    for name, (path, message) in _bad_checkpoints(tmp_path).items():
        for command, task, args in [
            ("eval", evaluate, ["logger=none"]),
            ("export", export_task, [f"output={tmp_path / 'export'}"]),
            ("predict", predict, [f"input={src}", f"output={tmp_path / 'out.jsonl'}"]),
        ]:
            cfg = compose([f"ckpt_path={path}", *args, f"paths.output_dir={tmp_path}"],
                          config_name=command)
            expected = BundleError if name in ("directory", "missing") else CheckpointError
            with pytest.raises(expected) as caught:
                run_task(task, cfg)
            text = str(caught.value)
            assert message in text and str(path) in text and "\n" not in text, (name, command)
    assert not (tmp_path / "ran").exists()
    assert not (tmp_path / "export").exists() and not (tmp_path / "out.jsonl").exists()


def test_geoloc_eval_reports_a_bad_checkpoint_in_one_line(tmp_path):
    """From the command line: exit 2, one line naming the file, no traceback, no code run."""
    path, message = _bad_checkpoints(tmp_path)["runs code"]
    cmd = [sys.executable, "-m", "geoloc.cli.evaluate", f"ckpt_path={path}", "logger=none",
           f"hydra.run.dir={tmp_path / 'run'}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(f"geoloc-eval: bad input: {path}: {message}posix.system"), lines
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "ran").exists()
