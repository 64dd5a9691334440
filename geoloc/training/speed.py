"""``geoloc-bench train`` (in ``make bench``): what the real-tweet recipe's training costs,
setting by setting, against today's recipe measured in the same run.

Each row is a list of Hydra overrides on top of ``experiment=real_umass`` (the baseline:
the recipe before issue 22, :data:`BEFORE`; the last row: the recipe as it is now). For each, a fresh process builds the module and the datamodule of the first
cross-fit fold exactly as ``geoloc-train`` does and runs the real Lightning trainer over
``--batches`` training batches (two of the length-grouped sampler's mega-batches of 50 by
default, so both orders see the same mix of lengths); the first ``--warmup`` batches are
not timed. One process per row: thread settings and environment variables
(``OMP_WAIT_POLICY``) apply from the start and nothing leaks from one row to the next.

*minutes per recipe* scales the measured samples/s to every training sample the recipe
sees: ``max_epochs x (K fold models x their train rows + the refit's rows)``; the
recipe's prediction, calibration, fusion and evaluation (about 3 minutes of the real
run) are not in it. ``experiments/real_data/README.md`` times the whole recipe.
Writes ``experiments/benchmarks/train_speed.md``. Speed is measured here, never in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from tqdm import tqdm

OUT = Path(__file__).resolve().parents[2] / "experiments" / "benchmarks" / "train_speed.md"

#: The recipe before issue 22 (random batches, fp32, 8 epochs): the baseline row.
BEFORE = ["data.group_by_length=false", "trainer.precision=32-true", "trainer.max_epochs=8"]
#: (label, Hydra overrides, extra environment) per row; the first is the baseline, the
#: last the recipe as ``experiment=real_umass`` now sets it
ROWS: list[tuple[str, list[str], dict[str, str]]] = [
    ("before: random batches, fp32, 8 epochs", BEFORE, {}),
    ("length-grouped batches", [*BEFORE, "data.group_by_length=true"], {}),
    ("length-grouped, OMP_WAIT_POLICY=PASSIVE", [*BEFORE, "data.group_by_length=true"],
     {"OMP_WAIT_POLICY": "PASSIVE"}),
    ("length-grouped, batch 64", [*BEFORE, "data.group_by_length=true",
                                  "data.batch_size=64"], {}),
    ("length-grouped, bf16 autocast", [*BEFORE, "data.group_by_length=true",
                                       "trainer.precision=bf16-mixed"], {}),
    ("the recipe now (experiment=real_umass)", [], {}),
]


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    results = []
    for label, overrides, env in tqdm(ROWS, desc="train speed"):
        cmd = [sys.executable, "-m", "geoloc.training.speed_row", json.dumps(overrides),
               str(args.batches), str(args.warmup), str(args.threads)]
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env},
                              check=False)
        if done.returncode:
            raise SystemExit(f"{label}: failed\n{done.stderr[-3000:]}")
        results.append((label, overrides, env, json.loads(done.stdout.strip().splitlines()[-1])))
    base = results[0][3]
    lines = [
        "# Training speed of the real-tweet recipe (CPU)",
        "",
        f"`geoloc-bench train` ({args.batches} batches of the first fold model of "
        f"`experiment=real_umass`, {args.warmup} untimed, {args.threads} threads, torch "
        f"{results[0][3]['torch']}, {platform.processor() or platform.machine()}, every row in "
        "the same run). *minutes per recipe*: every training sample of the cross-fit "
        "(3 fold models + the refit, `max_epochs` each) at the row's speed; prediction, "
        "calibration and evaluation are not in it.",
        "",
        "| setting | overrides | samples/s | vs baseline | epochs | minutes per recipe |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for label, overrides, env, r in results:
        what = " ".join([*(f"{k}={v}" for k, v in env.items()), *overrides]) or "(none)"
        minutes = r["recipe_samples"] / r["samples_per_s"] / 60
        lines.append(f"| {label} | `{what}` | {r['samples_per_s']:.1f} | "
                     f"{r['samples_per_s'] / base['samples_per_s']:.2f}x | {r['epochs']} | "
                     f"{minutes:.1f} |")
    table = "\n".join(lines) + "\n"
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table, encoding="utf-8")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
