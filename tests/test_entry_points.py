"""Every command is a console script of pyproject.toml that names a callable, and
``geoloc-bench`` runs what ``make bench`` runs: both parts, or the one it is given."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import pytest

import geoloc.cli.bench as bench_cli

REPO = Path(__file__).resolve().parents[1]


def test_every_console_script_names_a_callable():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))[
        "project"]["scripts"]
    assert {"geoloc-baselines", "geoloc-bench"} <= set(scripts)
    for name, target in scripts.items():
        module, _, attr = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), name


def test_geoloc_bench_runs_every_part_or_the_one_named(monkeypatch, capsys):
    calls: list[tuple[str, list[str], str]] = []
    monkeypatch.setattr(bench_cli, "PARTS", {
        part: (lambda argv, prog, part=part: calls.append((part, argv, prog)), what)
        for part, (_, what) in bench_cli.PARTS.items()})
    bench_cli.main([])
    assert calls == [("model", [], "geoloc-bench model"),
                     ("train", [], "geoloc-bench train"),
                     ("predict", [], "geoloc-bench predict")]
    calls.clear()
    bench_cli.main(["predict", "--profiles", "10"])
    assert calls == [("predict", ["--profiles", "10"], "geoloc-bench predict")]
    calls.clear()
    with pytest.raises(SystemExit) as exc:  # options without a part: whose are they?
        bench_cli.main(["--threads", "2"])
    assert exc.value.code == 2 and not calls
    assert "unrecognized arguments: --threads 2" in capsys.readouterr().err
