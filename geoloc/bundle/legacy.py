"""Training checkpoints with the files earlier versions wrote beside them
(``<ckpt>.ckpt``, ``.thresholds.json``, ``.calibration.npz``, ``.fusion.json``/``.npz``),
converted into a temporary bundle (``ckpt_path=``, deprecated for one release), and
:func:`open_model`, which takes either.

Nothing but the file names ties such files together, so what can be checked is: a
policy that records its model (``Thresholds.fitted_with``) must name this checkpoint's
weights and fusion; one written before the record existed is checked against the run's
config (fused or not) and the calibration outputs beside it, and warned about.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from geoloc.bundle.core import Bundle, check_policy, module_library
from geoloc.bundle.files import (
    CALIBRATION_FILE,
    FUSION_ARRAYS,
    FUSION_FILE,
    THRESHOLDS_FILE,
)
from geoloc.errors import BundleError, CheckpointError
from geoloc.evaluation import SplitOutputs, Thresholds, metric_key
from geoloc.evaluation.render import THRESHOLDS_FILE as REPORT_THRESHOLDS
from geoloc.io import PathLike
from geoloc.model.ngram import Fusion, check_pairing

log = logging.getLogger("geoloc")

_LEGACY_SUFFIXES = {THRESHOLDS_FILE: ".thresholds.json", CALIBRATION_FILE: ".calibration.npz",
                    FUSION_FILE: ".fusion.json", FUSION_ARRAYS: ".fusion.npz"}


def legacy_file(ckpt: PathLike, name: str) -> Path:
    """Where geoloc before the bundle kept file ``name`` of a checkpoint (beside it)."""
    ckpt = Path(ckpt)
    return ckpt.with_name(ckpt.stem + _LEGACY_SUFFIXES[name])


def bundle_from_checkpoint(ckpt: PathLike) -> Bundle:
    """A temporary bundle (removed at exit) of a training checkpoint and the files earlier
    versions saved beside it: ``ckpt_path=`` keeps working for one release."""
    ckpt = Path(ckpt).expanduser()
    module_lib = module_library()
    raw = module_lib.read_checkpoint(ckpt)  # CheckpointError naming the file
    data = dict(raw.get("datamodule_hyper_parameters") or {})
    del raw
    if "max_length" not in data:
        raise CheckpointError(f"{ckpt}: the checkpoint does not record the datamodule's "
                              "max_length (saved by an older geoloc?)")
    saved = legacy_file(ckpt, THRESHOLDS_FILE)
    if not saved.is_file():
        raise BundleError(f"{ckpt}: no saved policy beside it ({saved.name}); train again "
                          "to get a model folder (<run>/model)")
    fusion = None
    if legacy_file(ckpt, FUSION_FILE).is_file():
        try:
            fusion = Fusion.load(legacy_file(ckpt, FUSION_FILE))
            check_pairing(fusion, saved, legacy_file(ckpt, FUSION_FILE))
        except (ValueError, OSError) as err:  # a bad or foreign file beside it: bad input
            raise BundleError(str(err)) from None
    calibration = None
    if legacy_file(ckpt, CALIBRATION_FILE).is_file():
        with np.load(legacy_file(ckpt, CALIBRATION_FILE), allow_pickle=False) as arrays:
            calibration = SplitOutputs(arrays["logits"], arrays["labels"])
    policy = Thresholds.from_json(saved)
    if not policy.fitted_with:
        _check_legacy_policy(ckpt, saved, policy, fusion, calibration)
    check_policy(policy, None, fusion, saved, ckpt)  # before building a network
    module = module_lib.GeolocModule.load(ckpt).eval()
    summary = ckpt.parent.parent / "report" / "summary.json"
    scalars = (json.loads(summary.read_text(encoding="utf-8")).get("scalars", {})
               if summary.is_file() else {})
    metrics = {metric_key(k): v for k, v in scalars.items()}
    folder = Path(tempfile.mkdtemp(prefix="geoloc-bundle-")) / "model"
    atexit.register(shutil.rmtree, folder.parent, ignore_errors=True)
    bundle = Bundle.save(folder, module, policy, data=data,
                         calibration=calibration, fusion=fusion, metrics=metrics)
    # the copy Bundle.save wrote is stamped with this checkpoint's weights; the file
    # beside the checkpoint says which model it was fitted on
    check_policy(policy, bundle.info["weights_digest"], fusion, saved, ckpt)
    log.warning("%s: a checkpoint with its files beside it is deprecated (read for one more "
                "release): training now writes one model folder, <run>/model; pass "
                "model_dir=<folder>", ckpt)
    return dataclasses.replace(bundle, source=ckpt)


def _check_legacy_policy(ckpt: Path, saved: Path, policy: Thresholds, fusion: Fusion | None,
                         calibration: SplitOutputs | None) -> None:
    """What can be checked of a policy written before policies recorded their model:
    the run's own config says whether it fused an n-gram model (its files must then be
    beside the checkpoint), the policy its report kept (``<run>/report/thresholds.json``)
    must be this one, and the calibration outputs beside it must be as many rows as the
    policy was fitted on. The rest is said in a warning."""
    run_config = ckpt.parent.parent / ".hydra" / "config.yaml"
    try:
        fused_run = fusion is None and run_config.is_file() and bool(
            OmegaConf.select(OmegaConf.load(run_config), "fusion", default=None))
    except Exception:  # noqa: BLE001 - an unreadable config tells nothing: not checked
        fused_run = False
    if fused_run:
        raise BundleError(f"{legacy_file(ckpt, FUSION_FILE)}: missing; the run "
                          f"({run_config}) fused a char n-gram model, and {saved.name} "
                          "was fitted on the fused outputs")
    own = ckpt.parent.parent / "report" / REPORT_THRESHOLDS  # what the run itself fitted
    if own.is_file() and _policy_content(own) != _policy_content(saved):
        raise BundleError(f"{saved}: not the policy this checkpoint's run fitted ({own}); "
                          "a policy certifies only the model it was fitted on")
    if calibration is not None and policy.n_calibration and \
            len(calibration.labels) != policy.n_calibration:
        raise BundleError(f"{saved}: fitted on {policy.n_calibration} rows, but "
                          f"{legacy_file(ckpt, CALIBRATION_FILE).name} holds "
                          f"{len(calibration.labels)}: they are not from the same run")
    log.warning("%s: written before policies recorded the weights they were fitted on, "
                "so whether it belongs to %s cannot be checked (%s). A policy from another "
                "model would decide with thresholds that certify nothing: train again to "
                "get a model folder", saved, ckpt.name,
                "its run's report policy matches" if own.is_file() else
                "no run report beside it to compare with")


def _policy_content(path: Path) -> dict:
    """A policy file's content without its record and creation time (a copy written by
    another geoloc version still compares equal)."""
    data = Thresholds.from_json(path).to_dict()
    for key in ("fitted_with", "created_at"):
        data.pop(key, None)
    return data


def open_model(path: PathLike) -> Bundle:
    """A bundle or export folder, or (deprecated) a training checkpoint file with the
    files earlier versions saved beside it (converted by :func:`bundle_from_checkpoint`)."""
    path = Path(path).expanduser()
    if path.is_file():
        return bundle_from_checkpoint(path)
    return Bundle.open(path)
