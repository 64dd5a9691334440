"""The model bundle folder: :class:`Bundle` opens and verifies one, and writes one.

The folder's layout and contract are described in :mod:`geoloc.bundle`; a training
checkpoint of earlier versions is converted by :mod:`geoloc.bundle.legacy`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
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
from geoloc.errors import BundleError, ConfigError
from geoloc.evaluation import SplitOutputs, Thresholds, save_calibration_outputs
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

    def thresholds(self, path: PathLike | None = None) -> Thresholds:
        """The saved policy (or the policy file ``path``, ``geoloc-eval
        evaluation.thresholds=``), checked to be about this model: its classes, and the
        weights and fusion its ``fitted_with`` record names."""
        path = Path(path) if path else self.path(THRESHOLDS_FILE)
        policy = Thresholds.from_json(path)
        if list(policy.class_names) != self.class_names:
            raise BundleError(f"{path}: its classes differ from the model's "
                              f"({self.path(MODEL_FILE)})")
        check_policy(policy, self.info.get("weights_digest"), self.has(FUSION_FILE), path,
                     self.path(WEIGHTS_FILE))
        return policy

    def fitted_with(self, fusion: Fusion | None) -> dict[str, str | None]:
        """The ``Thresholds.fitted_with`` record of a policy fitted on this model's
        outputs (fused by ``fusion``): what a recalibrated policy is stamped with."""
        return fitted_record(self.info.get("weights_digest"), fusion)

    def provenance(self) -> dict[str, Any]:
        """What identifies this model's outputs to a later reader (prediction files carry
        it): its classes in order, the digest of its trained weights, the SHA-256 of its
        policy file (which names the fusion it was fitted with) and the length it was
        trained at, and the graph precision the policy was fitted on (a predictor
        records the length and precision it used). An export keeps the training bundle's
        files and a recalibrated copy has a new policy, so two records that agree mean
        the same network and the same temperature (within the backends' float noise)."""
        return {"class_names": self.class_names,
                "weights": self.info.get("weights_digest") or self.sha256(WEIGHTS_FILE),
                "policy": self.sha256(THRESHOLDS_FILE), "max_length": self.max_length,
                "precision": self.thresholds().scored_with}

    def fusion(self, thresholds_file: PathLike | None = None) -> Fusion | None:
        """The fused n-gram model (None when the run had none), checked to be the one the
        thresholds (the bundle's, or ``thresholds_file``) were fitted with: a fused
        policy on unfused logits, or the reverse, would certify nothing it claims."""
        if not self.has(FUSION_FILE):
            return None
        fusion = Fusion.load(self.path(FUSION_FILE))
        policy_file = Path(thresholds_file or self.path(THRESHOLDS_FILE))
        check_pairing(fusion, policy_file, self.path(FUSION_FILE))
        check_policy(Thresholds.from_json(policy_file), self.info.get("weights_digest"),
                     fusion, policy_file, self.path(WEIGHTS_FILE))
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
        module_lib = module_library()
        module = module_lib.GeolocModule(**self.hparams)
        try:
            state = load_file(str(self.path(WEIGHTS_FILE)))
        except (SafetensorError, OSError) as err:
            raise BundleError(f"{self.path(WEIGHTS_FILE)}: unreadable weights ({err})"
                              ) from None
        recorded = self.info.get("weights_digest")
        if recorded and weights_digest(state) != recorded:
            # the manifest was rewritten around other weights: the policy, fitted on the
            # recorded ones, would certify nothing about these
            raise BundleError(f"{self.path(WEIGHTS_FILE)}: not the weights "
                              f"{self.path(MODEL_FILE)} records (digest {recorded[:12]}…); "
                              "the policy was fitted on those")
        module.on_load_checkpoint({"state_dict": state,  # adds the frozen tensors
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
             population: PopulationProfile | None = None, stamp: bool = True) -> Bundle:
        """Write the bundle of a trained ``module`` to ``folder`` (replacing an earlier
        bundle there): its weights without the frozen backbone tensors, the
        tokenizer, the policy, the calibration outputs it was fitted on, the fusion and
        the model card. ``data`` are the datamodule's options (``max_length`` at least);
        ``metrics`` the run's evaluation scalars for the card; ``population`` the record
        of the calibration population inputs are later compared with. ``stamp``: the
        policy was fitted on this module's (fused) outputs, and its ``fitted_with``
        record says so (false for a policy given from elsewhere, kept as it is)."""
        if "max_length" not in data:
            raise ValueError("Bundle.save: data must record max_length")
        folder = Path(folder)

        def write(tmp: Path) -> None:
            frozen = set(module.frozen_parameter_names())
            state = module.state_dict()
            restored = {name: module_library().tensor_sha256(state[name]) for name in frozen
                        if name in state}
            trained = {k: v.detach().contiguous() for k, v in state.items()
                       if k not in frozen}
            save_file(trained, str(tmp / WEIGHTS_FILE),
                      metadata={"format": "pt", "bundle": BUNDLE_FORMAT})
            names = list(module.class_names)
            digest = weights_digest(trained)
            info = {"weights_digest": digest, "module": _plain(dict(module.hparams)),
                    "data": _plain(dict(data)),
                    "id2label": {str(i): n for i, n in enumerate(names)},
                    "added_tokens": list(module.added_tokens),
                    "restored_from_backbone": restored, "fused": fusion is not None,
                    "metrics": {k: float(v) for k, v in (metrics or {}).items()
                                if isinstance(v, int | float)}}
            write_json_atomic(tmp / MODEL_FILE, info)
            save_tokenizer(module.tokenizer, tmp, int(data["max_length"]))
            # a policy fitted on this model's outputs says so; one given from elsewhere
            # keeps what it says (a record of other weights is refused when read)
            (dataclasses.replace(thresholds, fitted_with=fitted_record(digest, fusion))
             if stamp else thresholds).to_json(tmp / THRESHOLDS_FILE)
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


def weights_digest(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's tensors by content (names, dtypes, shapes, bytes), not of
    a file: ``safetensors`` orders its header's metadata differently from one process to
    the next, so the same weights saved twice differ in their file hash. Hand-written for
    that reason."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()


def fitted_record(weights: str | None, fusion: Fusion | None) -> dict[str, str | None]:
    """A policy's ``fitted_with`` record: the digest of the weights and of the fusion its
    thresholds were fitted on."""
    return {"weights": weights, "fusion": fusion.digest() if fusion is not None else None}


def check_policy(policy: Thresholds, weights: str | None, fusion: Fusion | bool | None,
                 policy_file: PathLike, weights_file: PathLike) -> None:
    """Refuse a policy whose ``fitted_with`` record names other weights than the digest
    ``weights``, or another fusion than ``fusion`` (a loaded one is compared by digest;
    ``True``: the model has one, not loaded), or a fusion the model lacks (or the
    reverse): its thresholds are about another model's probabilities. A policy (or a
    model) saved before the record existed passes what it cannot be checked on."""
    fitted = policy.fitted_with
    if not fitted:
        return
    recorded = fitted.get("weights")
    if weights is not None and recorded is not None and recorded != weights:
        raise BundleError(f"{policy_file}: fitted on another model's outputs (weights "
                          f"{recorded[:12]}…), not on {weights_file} ({weights[:12]}…); "
                          "its thresholds certify nothing here")
    if bool(fitted.get("fusion")) != bool(fusion):
        raise BundleError(
            f"{policy_file}: fitted {'with' if fitted.get('fusion') else 'without'} "
            f"a fused n-gram model, and the model beside it ({weights_file}) has "
            f"{'one' if fusion else 'none'}; its thresholds certify only what they were "
            "fitted on")
    if isinstance(fusion, Fusion) and fitted.get("fusion") != fusion.digest():
        raise BundleError(f"{policy_file}: fitted with another fused n-gram model "
                          f"({str(fitted.get('fusion'))[:12]}…) than the model's "
                          f"({fusion.digest()[:12]}…)")


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


def module_library() -> Any:
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
