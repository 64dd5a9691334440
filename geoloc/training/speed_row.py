"""One row of ``geoloc-bench train`` (:mod:`geoloc.training.speed`), in a process of its
own: ``python -m geoloc.training.speed_row OVERRIDES_JSON BATCHES WARMUP THREADS`` prints
the row's measurement as one JSON line. Its own module so that the driver (imported by
``geoloc-bench --help``) never loads PyTorch Lightning."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from typing import Any

import pytorch_lightning as pl
import torch

from geoloc.config import compose_config
from geoloc.data.splits import CrossFitFold
from geoloc.instantiate import instantiate
from geoloc.training.build import build_datamodule, build_trainer


def measure(overrides: list[str], batches: int, warmup: int, threads: int) -> dict[str, Any]:
    """Train ``batches`` batches of the first fold model of ``experiment=real_umass`` +
    ``overrides`` with the real trainer; samples/s over the batches after ``warmup``."""
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
            "torch": torch.__version__,
            "epochs": int(cfg.trainer.max_epochs),
            "recipe_samples": int(cfg.trainer.max_epochs) * (
                folds * fold_rows + len(refit.datasets["train"]))}




if __name__ == "__main__":
    overrides, batches, warmup, threads = sys.argv[1:5]
    print(json.dumps(measure(json.loads(overrides), int(batches), int(warmup), int(threads))))
