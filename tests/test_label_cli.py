"""geoloc-label: every input row ends up labelled, counted as unresolved, or in the error
file with its file, line and field."""

from __future__ import annotations

import json

from geoloc.cli.label import main


def test_label_cli_writes_result_or_error_for_every_row(tmp_path, capsys):
    src = tmp_path / "raw.csv"
    src.write_text(
        "id,bio,caption,location\n"
        '1,hola,"buen día","CDMX"\n'
        "2,hi,hello,somewhere over the rainbow\n"
        ",x,y,Paris\n"
        "4,bonjour,salut,🇫🇷 Paris\n",
        encoding="utf-8",
    )
    out, err = tmp_path / "labelled.jsonl", tmp_path / "errors.jsonl"
    main([str(src), "--captions", "caption", "--location", "location", "--out", str(out),
          "--errors", str(err)])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["country"]) for r in rows] == [("1", "MX"), ("4", "FR")]
    errors = [json.loads(line) for line in err.read_text().splitlines()]
    assert len(errors) == 1
    assert errors[0]["line"] == 4 and errors[0]["field"] == "id"
    assert str(src) in errors[0]["message"]
    printed = capsys.readouterr().out
    assert "unresolved:       1" in printed


def test_a_run_whose_every_row_is_rejected_fails_in_one_line(tmp_path, capsys):
    """The files are written (an error for every row), but a run that labelled nothing
    because every row was bad exits 2, as the Hydra commands do on bad input."""
    src = tmp_path / "raw.csv"
    src.write_text("id,bio,caption,location\n,x,y,Paris\n,a,b,Lima\n", encoding="utf-8")
    out, err = tmp_path / "labelled.jsonl", tmp_path / "errors.jsonl"
    code = main([str(src), "--captions", "caption", "--location", "location", "--out",
                 str(out), "--errors", str(err)])
    assert code == 2
    assert out.read_text() == "" and len(err.read_text().splitlines()) == 2
    assert capsys.readouterr().err.strip() == (
        f"geoloc-label: bad input: {src}: every one of its 2 row(s) was rejected; the "
        f"reasons are in {err}")


def test_a_utf16_file_is_named_as_such_with_or_without_a_byte_order_mark(tmp_path, capsys):
    """Issue 23: UTF-16 without a BOM was "unreadable header ... universal-newline mode".
    Either way, and as JSONL too, the file's encoding is named with the way out, exit 2."""
    text = "id,bio,caption,location\n1,hola,buen día,CDMX\n"
    cases = {"le.csv": ("utf-16-le", "UTF-16LE without a byte-order mark"),
             "be.csv": ("utf-16-be", "UTF-16BE without a byte-order mark"),
             "bom.csv": ("utf-16", "UTF-16, not UTF-8"),
             "le.jsonl": ("utf-16-le", "UTF-16LE without a byte-order mark")}
    for name, (codec, said) in cases.items():
        src = tmp_path / name
        body = (text if name.endswith(".csv") else
                json.dumps({"id": "1", "bio": "hola", "captions": [], "location": "CDMX"}))
        src.write_bytes(body.encode(codec))
        out = tmp_path / f"{name}.out.jsonl"
        code = main([str(src), "--location", "location", "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and "\n" not in err, (name, err)
        assert err.startswith(f"geoloc-label: bad input: {src}:1: field 'encoding': the "
                              f"file is {said}"), (name, err)
        assert "save it as UTF-8" in err
