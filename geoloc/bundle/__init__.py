"""The model bundle: one folder holding everything a trained model needs to be used.

Training ends by writing it (``<run>/model/``); ``geoloc-eval``, ``geoloc-predict``,
``geoloc-audience`` and ``geoloc-export`` take it as ``model_dir=<folder>``. This module is
the only code that knows its file names::

    model/
      geoloc_bundle.json         manifest: format, every file's SHA-256 and size
      geoloc_model.json          module hyper-parameters (backbone, depth, pooling,
                                 tokenizer variant, countries), id2label, the data
                                 options (max_length, source, splits), the SHA-256 of
                                 each frozen backbone tensor left out, the run's metrics
      geoloc_weights.safetensors what training changed (frozen embedding rows left out)
      tokenizer.json  tokenizer_config.json   the tokenizer with its added tokens
      geoloc_thresholds.json     temperature, per-country thresholds, guarantee kinds
      geoloc_calibration.npz     the outputs the policy was fitted on (audience shares)
      geoloc_fusion.json + .npz  the char n-gram model fused with the transformer, if any
      README.md                  the model card

``geoloc-export`` writes the same folder plus what plain ``transformers`` and ONNX
Runtime need (``config.json``, ``model.safetensors`` with the whole embedding table,
``modeling_geoloc.py``, ``model.onnx``, ``model.int8.onnx``); its manifest lists them
too, so an export folder is a bundle and every command takes it.

**Whole or refused.** :meth:`Bundle.open` checks the folder against its manifest before
anything reads it: a file missing, a file the manifest does not list, or a file whose
bytes differ from the recorded hash is refused with one line naming the file
(:class:`~geoloc.errors.BundleError`, reported as bad input). A policy swapped in from
another model, or a fusion file dropped, can no longer go unnoticed. Files are written
to a sibling folder and renamed into place, so a killed save never leaves a folder that
looks complete.

A training checkpoint with the files earlier versions wrote beside it (``<ckpt>.ckpt``,
``.thresholds.json``, ``.calibration.npz``, ``.fusion.json``/``.npz``) is converted into
a temporary bundle by :func:`bundle_from_checkpoint` (``ckpt_path=``, deprecated).
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers import PreTrainedTokenizerFast

from geoloc.bundle.card import model_card
from geoloc.bundle.files import (
    BUNDLE_FORMAT,
    CALIBRATION_FILE,
    CARD_FILE,
    EXPORT_FILES,
    FUSION_ARRAYS,
    FUSION_FILE,
    HF_CONFIG_FILE,
    HF_WEIGHTS_FILE,
    IGNORED,
    KINDS,
    LEGACY_EXPORT_FORMAT,
    MANIFEST,
    MODEL_FILE,
    POPULATION_FILE,
    REQUIRED,
    THRESHOLDS_FILE,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
)
from geoloc.errors import BundleError, CheckpointError, ConfigError
from geoloc.evaluation import SplitOutputs, Thresholds, metric_key, save_calibration_outputs
from geoloc.inference.population import PopulationProfile
from geoloc.io import PathLike, file_sha256, umask, write_json_atomic, write_text_atomic
from geoloc.model.ngram import Fusion, check_pairing

log = logging.getLogger("geoloc")

def _kind(name: str) -> str:
    return KINDS.get(name, "file")


def is_bundle(path: PathLike) -> bool:
    """Whether ``path`` is a folder with a bundle manifest (whole or not)."""
    return (Path(path) / MANIFEST).is_file()


def is_export(path: PathLike) -> bool:
    """Whether ``path`` is a bundle folder whose manifest lists an export's files."""
    try:
        files = json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return isinstance(files, dict) and _lists_export(files)


def unlisted_files(folder: Path, listed: Iterable[str], ignored: frozenset[str] = IGNORED
                   ) -> list[str]:
    """The names in ``folder`` that its manifest does not list (nor is the manifest), less
    ``ignored``: what opening a bundle refuses, and what an export's ``overwrite=true``
    would delete (it ignores nothing)."""
    return sorted({p.name for p in folder.iterdir()} - set(listed) - {MANIFEST} - ignored)


def _lists_export(files: Mapping[str, Any]) -> bool:
    """Whether a manifest's files are an export's: what plain ``transformers`` loads."""
    return HF_CONFIG_FILE in files and HF_WEIGHTS_FILE in files


@dataclass(frozen=True)
class Bundle:
    """An opened, verified bundle folder. Cheap to open (hashes and two small JSON files);
    the network is built only by :meth:`load_module`, the policy and fusion read on
    demand."""

    folder: Path
    manifest: dict[str, Any]
    info: dict[str, Any]
    #: where the model came from when not from this folder (a converted checkpoint): what
    #: a resumable job records as the model's identity
    source: Path | None = None

    # ------------------------------------------------------------------ reading
    @classmethod
    def open(cls, folder: PathLike) -> Bundle:
        """Verify ``folder`` against its manifest and read its model description; raise
        :class:`BundleError` naming the file that is missing, extra or changed."""
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise BundleError(f"model_dir={folder}: no such model folder"
                              + (" (a file: a training checkpoint is given as "
                                 "ckpt_path=, deprecated)" if folder.is_file() else ""))
        if not (folder / MANIFEST).is_file() and _legacy_export(folder):
            raise BundleError(f"{folder}: an export written before model folders (no "
                              f"{MANIFEST}); export again from its checkpoint: geoloc-export "
                              "ckpt_path=<checkpoint> output=<folder>")
        manifest = _read_json(folder / MANIFEST, "manifest")
        if manifest.get("format") != BUNDLE_FORMAT or not isinstance(manifest.get("files"),
                                                                     dict):
            raise BundleError(f"{folder / MANIFEST}: not a {BUNDLE_FORMAT} manifest "
                              f"(format={manifest.get('format')!r})")
        files: dict[str, Any] = manifest["files"]
        for name in REQUIRED:
            if name not in files:
                raise BundleError(f"{folder / MANIFEST}: lists no {_kind(name)} file "
                                  f"({name}); not a whole bundle")
        present = {p.name for p in folder.iterdir()}
        for name, entry in files.items():
            path = folder / name
            if not isinstance(entry, dict):
                raise BundleError(f"{folder / MANIFEST}: unreadable entry for {name!r}")
            if name not in present:
                raise BundleError(f"{path}: missing ({_kind(name)} file of the bundle)")
            if not path.is_file():
                raise BundleError(f"{path}: not a file ({_kind(name)} of the bundle)")
            size = path.stat().st_size
            if size != entry.get("size") or file_sha256(path) != entry.get("sha256"):
                raise BundleError(f"{path}: differs from the bundle's manifest (the "
                                  f"{_kind(name)} file was changed or swapped)")
        extra = unlisted_files(folder, files)
        if extra:
            raise BundleError(f"{folder / extra[0]}: not part of the bundle (its manifest "
                              "does not list it); remove it or save the model again")
        info = _read_json(folder / MODEL_FILE, "model description")
        for key in ("module", "data", "id2label", "restored_from_backbone", "fused"):
            if key not in info:
                raise BundleError(f"{folder / MODEL_FILE}: no {key!r} entry")
        fusion_files = {FUSION_FILE, FUSION_ARRAYS} & set(files)
        if len(fusion_files) == 1 or bool(fusion_files) != bool(info["fused"]):
            missing = ({FUSION_FILE, FUSION_ARRAYS} - fusion_files) if info["fused"] else \
                fusion_files
            raise BundleError(f"{folder / sorted(missing)[0]}: the model was "
                              f"{'' if info['fused'] else 'not '}trained with a fused n-gram "
                              "model, and its policy certifies only that; not a whole bundle")
        return cls(folder, manifest, info)

    def path(self, name: str) -> Path:
        return self.folder / name

    def has(self, name: str) -> bool:
        return name in self.manifest["files"]

    def sha256(self, name: str) -> str:
        """The SHA-256 of file ``name`` as the manifest records it (verified on open)."""
        return str(self.manifest["files"][name]["sha256"])

    @property
    def class_names(self) -> list[str]:
        return [self.info["id2label"][str(i)] for i in range(len(self.info["id2label"]))]

    @property
    def max_length(self) -> int:
        return int(self.info["data"]["max_length"])

    @property
    def data(self) -> dict[str, Any]:
        return dict(self.info["data"])

    @property
    def hparams(self) -> dict[str, Any]:
        return dict(self.info["module"])

    @property
    def is_export(self) -> bool:
        """Whether plain ``transformers`` can load the folder (``geoloc-export`` wrote it)."""
        return _lists_export(self.manifest["files"])

    def thresholds(self) -> Thresholds:
        policy = Thresholds.from_json(self.path(THRESHOLDS_FILE))
        if list(policy.class_names) != self.class_names:
            raise BundleError(f"{self.path(THRESHOLDS_FILE)}: its classes differ from the "
                              f"model's ({self.path(MODEL_FILE)})")
        return policy

    def fusion(self, thresholds_file: PathLike | None = None) -> Fusion | None:
        """The fused n-gram model (None when the run had none), checked to be the one the
        thresholds (the bundle's, or ``thresholds_file``) were fitted with: a fused
        policy on unfused logits, or the reverse, would certify nothing it claims."""
        if not self.has(FUSION_FILE):
            return None
        fusion = Fusion.load(self.path(FUSION_FILE))
        check_pairing(fusion, thresholds_file or self.path(THRESHOLDS_FILE),
                      self.path(FUSION_FILE))
        if fusion.class_names is not None and list(fusion.class_names) != self.class_names:
            # the place evidence would be laid on the wrong columns
            raise BundleError(f"{self.path(FUSION_FILE)}: its place expert's classes differ "
                              f"from the model's ({self.path(MODEL_FILE)})")
        return fusion

    def population(self) -> PopulationProfile | None:
        """The record of the population the policy was calibrated on (None for a model
        saved before it existed: its inputs cannot be checked against it)."""
        if not self.has(POPULATION_FILE):
            return None
        try:
            return PopulationProfile.load(self.path(POPULATION_FILE))
        except (ValueError, TypeError, KeyError) as err:
            raise BundleError(f"{self.path(POPULATION_FILE)}: unreadable population "
                              f"record ({err})") from None

    def calibration_file(self) -> Path | None:
        """The calibration outputs (logits, labels, class names) the policy was fitted on."""
        return self.path(CALIBRATION_FILE) if self.has(CALIBRATION_FILE) else None

    def tokenizer(self) -> PreTrainedTokenizerFast:
        return PreTrainedTokenizerFast.from_pretrained(str(self.folder))

    def load_module(self) -> Any:
        """The Lightning module with the bundle's weights: the network is rebuilt from
        the bundled backbone, its frozen tensors checked against the recorded hashes
        (:class:`~geoloc.errors.BackboneMismatchError`) and the trained ones loaded
        strictly (a missing or extra tensor fails)."""
        module_lib = _module_lib()
        module = module_lib.GeolocModule(**self.hparams)
        try:
            state = load_file(str(self.path(WEIGHTS_FILE)))
        except (SafetensorError, OSError) as err:
            raise BundleError(f"{self.path(WEIGHTS_FILE)}: unreadable weights ({err})"
                              ) from None
        module.on_load_checkpoint({"state_dict": state,
                                   module_lib.RESTORED_KEY: self.info["restored_from_backbone"]})
        module.load_state_dict(state, strict=True)
        tokens = json.loads(self.path(TOKENIZER_FILE).read_text(encoding="utf-8"))
        added = {t["content"] for t in tokens.get("added_tokens", [])}
        if not set(module.added_tokens) <= added:
            raise BundleError(f"{self.path(TOKENIZER_FILE)}: lacks tokens the model was "
                              f"trained with ({sorted(set(module.added_tokens) - added)[:5]})")
        return module.eval()

    # ------------------------------------------------------------------ writing
    @classmethod
    def save(cls, folder: PathLike, module: Any, thresholds: Thresholds, *,
             data: Mapping[str, Any], calibration: SplitOutputs | None = None,
             fusion: Fusion | None = None, metrics: Mapping[str, float] | None = None,
             population: PopulationProfile | None = None) -> Bundle:
        """Write the bundle of a trained ``module`` to ``folder`` (replacing an earlier
        bundle there): its weights without the frozen backbone tensors, the
        tokenizer, the policy, the calibration outputs it was fitted on, the fusion and
        the model card. ``data`` are the datamodule's options (``max_length`` at least);
        ``metrics`` the run's evaluation scalars for the card; ``population`` the record
        of the calibration population inputs are later compared with."""
        if "max_length" not in data:
            raise ValueError("Bundle.save: data must record max_length")
        folder = Path(folder)

        def write(tmp: Path) -> None:
            frozen = set(module.frozen_parameter_names())
            state = module.state_dict()
            restored = {name: _module_lib().tensor_sha256(state[name]) for name in frozen
                        if name in state}
            save_file({k: v.detach().contiguous() for k, v in state.items()
                       if k not in frozen}, str(tmp / WEIGHTS_FILE),
                      metadata={"format": "pt", "bundle": BUNDLE_FORMAT})
            names = list(module.class_names)
            info = {"module": _plain(dict(module.hparams)), "data": _plain(dict(data)),
                    "id2label": {str(i): n for i, n in enumerate(names)},
                    "added_tokens": list(module.added_tokens),
                    "restored_from_backbone": restored, "fused": fusion is not None,
                    "metrics": {k: float(v) for k, v in (metrics or {}).items()
                                if isinstance(v, int | float)}}
            write_json_atomic(tmp / MODEL_FILE, info)
            save_tokenizer(module.tokenizer, tmp, int(data["max_length"]))
            thresholds.to_json(tmp / THRESHOLDS_FILE)
            if calibration is not None:
                save_calibration_outputs(calibration, names, tmp / CALIBRATION_FILE)
            if population is not None:
                population.save(tmp / POPULATION_FILE)
            if fusion is not None:
                fusion.thresholds_sha256 = file_sha256(tmp / THRESHOLDS_FILE)
                fusion.save(tmp / FUSION_FILE)
            write_text_atomic(tmp / CARD_FILE, model_card(
                info, thresholds, fusion))

        return cls._write(folder, write)

    @classmethod
    def _write(cls, folder: Path, write: Any) -> Bundle:
        """Run ``write(tmp)`` into a sibling temporary folder, add the manifest, make the
        files shareable and rename the folder over ``folder``."""
        if folder.exists() and not is_bundle(folder) and (
                not folder.is_dir() or any(folder.iterdir())):
            # only a model folder (or nothing) is replaced: never a run folder, never a
            # folder of the user's (paths.model_dir is an ordinary option)
            raise ConfigError(f"{folder}: exists and is not a model folder (no {MANIFEST}); "
                              "choose another folder for the model")
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            write(tmp)
            write_manifest(tmp)
            # mkdtemp and the atomic writers create owner-only entries; a model is to share
            for entry in [tmp, *tmp.iterdir()]:
                entry.chmod((0o777 if entry.is_dir() else 0o666) & ~umask())
            if folder.exists():
                shutil.rmtree(folder)
            tmp.rename(folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls.open(folder)

    def derive(self, folder: PathLike, add: Any, keep_export: bool = False) -> Bundle:
        """A copy of this bundle's own files (an earlier export's are left behind unless
        ``keep_export``: a recalibrated export keeps its graphs) at ``folder`` with the
        files ``add(tmp)`` writes (the export's, or a new policy), under a new manifest
        listing them all. The caller decides whether ``folder`` may be replaced."""

        def write(tmp: Path) -> None:
            for name in self.manifest["files"]:
                if keep_export or name not in EXPORT_FILES:
                    shutil.copyfile(self.path(name), tmp / name)
            add(tmp)

        return self._write(folder, write)


def save_tokenizer(tokenizer: Any, folder: Path, max_length: int) -> None:
    """Save the tokenizer so that ``AutoTokenizer`` builds the fast tokenizer from
    ``tokenizer.json`` as it is: the XLM-R slow class would rebuild (and under
    transformers 5, damage) its normaliser."""
    tokenizer.model_max_length = max_length
    tokenizer.save_pretrained(folder)
    tc_path = folder / "tokenizer_config.json"
    tc = json.loads(tc_path.read_text(encoding="utf-8"))
    tc["tokenizer_class"] = "PreTrainedTokenizerFast"
    for key in ("is_local", "local_files_only"):  # facts of this load, not the model's
        tc.pop(key, None)
    write_json_atomic(tc_path, tc)


def write_manifest(folder: Path) -> None:
    """List every file of ``folder`` with its SHA-256 and size."""
    files = {p.name: {"sha256": file_sha256(p), "size": p.stat().st_size, "kind": _kind(p.name)}
             for p in sorted(folder.iterdir()) if p.name != MANIFEST}
    write_json_atomic(folder / MANIFEST, {
        "format": BUNDLE_FORMAT, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": files})


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise BundleError(f"{path}: missing (the bundle's {what}); not a geoloc model folder")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise BundleError(f"{path}: unreadable {what} ({err})") from None
    if not isinstance(data, dict):
        raise BundleError(f"{path}: unreadable {what} (not a JSON object)")
    return data


def _module_lib() -> Any:
    """:mod:`geoloc.model.module`, imported when a network is built or saved: it imports
    PyTorch Lightning (~10 s per process, see DESIGN.md), which serving an export or
    reading a bundle's policy (``geoloc-audience``) does without."""
    import geoloc.model.module as module_lib  # ~10 s: Lightning (see the docstring)

    return module_lib


def _legacy_export(folder: Path) -> bool:
    try:
        config = json.loads((folder / HF_CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and (config.get("geoloc") or {}).get(
        "format") == LEGACY_EXPORT_FORMAT


def _plain(value: Any) -> Any:
    """JSON-safe copy of hyper-parameters (tuples as lists, other objects as text)."""
    return json.loads(json.dumps(value, default=str))


# ---------------------------------------------------------------------- legacy checkpoints
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
    module_lib = _module_lib()
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
    module = module_lib.GeolocModule.load(ckpt).eval()
    calibration = None
    if legacy_file(ckpt, CALIBRATION_FILE).is_file():
        with np.load(legacy_file(ckpt, CALIBRATION_FILE), allow_pickle=False) as arrays:
            calibration = SplitOutputs(arrays["logits"], arrays["labels"])
    summary = ckpt.parent.parent / "report" / "summary.json"
    scalars = (json.loads(summary.read_text(encoding="utf-8")).get("scalars", {})
               if summary.is_file() else {})
    metrics = {metric_key(k): v for k, v in scalars.items()}
    folder = Path(tempfile.mkdtemp(prefix="geoloc-bundle-")) / "model"
    atexit.register(shutil.rmtree, folder.parent, ignore_errors=True)
    bundle = Bundle.save(folder, module, Thresholds.from_json(saved), data=data,
                         calibration=calibration, fusion=fusion, metrics=metrics)
    log.warning("%s: a checkpoint with its files beside it is deprecated (read for one more "
                "release): training now writes one model folder, <run>/model; pass "
                "model_dir=<folder>", ckpt)
    return dataclasses.replace(bundle, source=ckpt)


def open_model(path: PathLike) -> Bundle:
    """A bundle or export folder, or (deprecated) a training checkpoint file with the
    files earlier versions saved beside it (converted by :func:`bundle_from_checkpoint`)."""
    path = Path(path).expanduser()
    if path.is_file():
        return bundle_from_checkpoint(path)
    return Bundle.open(path)
