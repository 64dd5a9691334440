"""Crashes and determinism: a training killed with SIGKILL mid-run and resumed from its
resume state ends with exactly the metrics of an uninterrupted run with the same seed
(CPU), and no W&B key reaches the run's files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import compose

pytestmark = pytest.mark.slow

RUN = [
    "trainer=debug",
    "trainer.max_epochs=3",
    "trainer.limit_train_batches=5",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "data.source.n=300",
    "data.batch_size=8",
    "data.eval_batch_size=32",
    "model.encoder_layers=1",
    "threads=2",
]
#: What must agree: the Lightning test loop and the evaluation through the saved policy.
COMPARED = ("test/acc", "test/macro_f1", "eval/accuracy", "eval/macro_f1",
            "abstain/correct_country_rate", "abstain/uncertain_rate",
            "calibration/temperature")
SECRET = "geoloc-test-key-0123456789abcdef0123456789abcdef"


def test_a_killed_training_resumes_to_the_uninterrupted_metrics(tmp_path, me5_dir):
    import torch

    from geoloc.cli.common import run_task
    from geoloc.cli.train import train

    # 1. uninterrupted, in this process
    ref, _ = run_task(train, compose([*RUN, f"paths.output_dir={tmp_path / 'ref'}"]))

    # 2. the same run in another process, killed with SIGKILL once the first epoch's
    #    resume state exists (the kill lands in the second epoch)
    run_dir = tmp_path / "killed"
    resume = run_dir / "checkpoints" / "resume" / "last.ckpt"
    env = {**os.environ, "WANDB_API_KEY": SECRET}
    proc = subprocess.Popen([sys.executable, "-m", "geoloc.cli.train", *RUN,
                             f"hydra.run.dir={run_dir}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not resume.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the run ended before it was killed"
    state = torch.load(resume, map_location="cpu", weights_only=True)
    assert state["epoch"] == 0 and "geoloc_rng_state" in state

    # 3. resumed from the resume state, in this process again
    os.environ["WANDB_API_KEY"] = SECRET
    try:
        got, _ = run_task(train, compose([*RUN, f"paths.output_dir={run_dir}",
                                          f"ckpt_path={resume}"]))
    finally:
        del os.environ["WANDB_API_KEY"]
    # CPU kernels are deterministic: equal to the last bit, not within a tolerance
    assert {k: got[k] for k in COMPARED} == {k: ref[k] for k in COMPARED}
    assert not resume.exists()  # a finished fit removes its resume state

    # the key was in both processes' environment; it is in none of the run's files
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
