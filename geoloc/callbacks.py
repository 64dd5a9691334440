"""Lightning extensions of geoloc's own (the other callbacks in ``geoloc/conf/callbacks`` are
Lightning's): :class:`RngState` and :class:`AtomicCheckpointIO`.

:class:`RngState` makes a resumed run continue as the killed one would have. Lightning
restores the weights, optimiser, schedulers and loop counters from a checkpoint, but not
the random number generators, so after ``ckpt_path=…/resume/last.ckpt`` the next epoch
would shuffle the training rows and draw dropout masks from the freshly seeded generators
instead of where the killed run had got to, and end with other metrics. Lightning has the
collect/set helpers (``lightning_fabric.utilities.seed``) but only uses them to hand states
to spawned processes; this callback puts the states in the full (resume) checkpoint and
back on load, as plain tensors and ints so ``torch.load(weights_only=True)`` reads them.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from geoloc.io import atomic_write

KEY = "geoloc_rng_state"


def collect() -> dict[str, Any]:
    """The global generators' states (torch CPU and CUDA, numpy, Python) as tensors,
    ints, floats and lists: nothing ``weights_only`` loading refuses (Lightning's own
    ``_collect_rng_states`` keeps numpy's state as an array tuple, which it does)."""
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(np_kind), "keys": torch.from_numpy(np_keys.astype(np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss),
                  "gauss": float(np_gauss)},
        "python": {"version": int(py_version), "state": list(py_state), "gauss": py_gauss},
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore(states: dict[str, Any]) -> None:
    """Inverse of :func:`collect`."""
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    p = states["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if states.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class RngState(pl.Callback):
    """Save the generators' states in full checkpoints and restore them on resume."""

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        checkpoint[KEY] = collect()

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        if KEY in checkpoint:
            restore(checkpoint[KEY])


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file, flushed to disk and renamed into place.

    Lightning's own writer streams the bytes straight into the final path, so a run killed
    while saving (SIGKILL, a full disk) leaves a truncated ``last.ckpt`` in place of the
    good one from the epoch before: the resume state would be lost exactly when it is
    needed. Here a reader only ever sees the previous complete file or the new one.
    Lightning has no option for it; ``CheckpointIO`` is its extension point for this.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any,
                        storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        with atomic_write(Path(path), "wb", fsync=True) as fh:
            torch.save(checkpoint, fh)
