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
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


def measure(overrides: list[str], batches: int, warmup: int, threads: int) -> dict[str, Any]:
    """Train ``batches`` batches of the first fold model of ``experiment=real_umass`` +
    ``overrides`` with the real trainer; samples/s over the batches after ``warmup``."""
    import pytorch_lightning as pl
    import torch

    from geoloc.config import compose_config
    from geoloc.data.splits import CrossFitFold
    from geoloc.instantiate import instantiate
    from geoloc.training.build import build_datamodule, build_trainer

    torch.set_num_threads(threads)
    out = tempfile.mkdtemp(prefix="geoloc-train-speed-")  # the trainer's root; removed below
    cfg = compose_config(["experiment=real_umass", "logger=none", f"paths.output_dir={out}",
                          *overrides])
    pl.seed_everything(int(cfg.seed), workers=True)
    folds = int(cfg.crossfit.folds)
    module = instantiate(cfg.model)
    dm = build_datamodule(cfg, module.tokenizer, module.metadata, fold=CrossFitFold(folds, 0))

    class Clock(pl.Callback):
        """Samples and seconds of the timed batches (after the warm-up)."""

        def __init__(self) -> None:
            self.samples, self.start, self.end = 0, 0.0, 0.0

        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any,
                                 batch_idx: int) -> None:
            if batch_idx == warmup:
                self.start = time.perf_counter()

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                               batch_idx: int) -> None:
            if batch_idx >= warmup:
                self.samples += int(batch["labels"].shape[0])
                self.end = time.perf_counter()

    clock = Clock()
    trainer = build_trainer(cfg, [], [clock], max_epochs=1, limit_train_batches=batches,
                            limit_val_batches=0, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, datamodule=dm)
    fold_rows = len(dm.datasets["train"])
    refit = build_datamodule(cfg, module.tokenizer, module.metadata,
                             fold=CrossFitFold(folds, None))
    refit.prepare_data()
    refit.setup("fit")
    shutil.rmtree(out, ignore_errors=True)
    return {"samples_per_s": clock.samples / (clock.end - clock.start),
            "epochs": int(cfg.trainer.max_epochs),
            "recipe_samples": int(cfg.trainer.max_epochs) * (
                folds * fold_rows + len(refit.datasets["train"]))}


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a row, in its own process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(json.loads(args.one), args.batches, args.warmup,
                                 args.threads)))
        return
    from tqdm import tqdm

    results = []
    for label, overrides, env in tqdm(ROWS, desc="train speed"):
        cmd = [sys.executable, "-m", "geoloc.training.speed", "--one", json.dumps(overrides),
               "--batches", str(args.batches), "--warmup", str(args.warmup),
               "--threads", str(args.threads)]
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
        f"{_torch_version()}, {platform.processor() or platform.machine()}, every row in "
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


def _torch_version() -> str:
    import torch

    return torch.__version__


if __name__ == "__main__":
    main()
