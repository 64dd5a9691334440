"""Small file utilities every layer uses, written once.

- :func:`atomic_write`: every file a later step trusts (caches, reports, thresholds,
  corpora) goes through a temporary sibling and an ``os.replace``, so a killed job leaves
  the previous file or none, never a truncated one that looks complete.
- :func:`read_jsonl` / :func:`write_jsonl`: the canonical JSONL format of profiles.
- :func:`file_sha256`: content hashes for cache keys and manifests.
- :func:`markdown_table`: the one way tables become Markdown (reports, results.md).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import platform
import re
import socket
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

PathLike = str | os.PathLike[str]


@contextmanager
def atomic_write(path: PathLike, mode: str = "w", *, fsync: bool = False) -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left as it was. ``mode``
    is ``"w"`` (UTF-8 text, ``\\n`` newlines) or ``"wb"``. ``fsync=True`` flushes to disk
    before the rename, for large files whose loss after a power cut would be costly.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(target)
    # the writer's host and pid are in the name, so a later write can tell a killed
    # writer's leftover (SIGKILL runs no cleanup) from a live one's file
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{_HOST}-{os.getpid()}.",
                               suffix=".tmp", dir=target.parent)
    # mkstemp creates 0600 files; give the result the mode a plain open() would (0666
    # minus the umask), so a cache shared between users stays readable.
    os.chmod(tmp, 0o666 & ~umask())
    try:
        text = {"encoding": "utf-8", "newline": "\n"} if mode == "w" else {}
        with os.fdopen(fd, mode, **text) as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


#: This machine's name as it appears in temporary file names (letters, digits, '-').
_HOST = re.sub(r"[^A-Za-z0-9]+", "-", socket.gethostname()).strip("-") or "host"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _remove_stale_temporaries(target: Path) -> None:
    """Delete temporaries of ``target`` left by writers that no longer run (a killed
    ``geoloc-synth`` used to leave one forever). Only files named by :func:`atomic_write`
    for this very target, written on this host by a process that is gone, are touched:
    a writer on another machine sharing the folder is never judged by a local pid."""
    pattern = re.compile(
        rf"^\.{re.escape(target.name)}\.{re.escape(_HOST)}-(\d+)\.[A-Za-z0-9_]+\.tmp$")
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        match = pattern.match(leftover.name)
        if match and int(match[1]) != os.getpid() and not _pid_alive(int(match[1])):
            leftover.unlink(missing_ok=True)


def umask() -> int:
    """The process's file-creation mask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: PathLike, text: str) -> Path:
    """Write a whole text file atomically; returns the path."""
    with atomic_write(path) as fh:
        fh.write(text)
    return Path(path)


def write_json_atomic(path: PathLike, data: Any, *, indent: int | None = 2) -> Path:
    """Write a JSON document atomically (UTF-8, non-ASCII kept, trailing newline)."""
    return write_text_atomic(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")


def write_jsonl(path: PathLike, rows: Iterable[Mapping[str, Any]]) -> int:
    """Atomically write rows as JSON Lines (UTF-8, non-ASCII kept); returns the row count."""
    n = 0
    with atomic_write(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: PathLike) -> Iterator[dict[str, Any]]:
    """Rows of a JSON Lines file the project wrote itself (blank lines skipped).

    For files the project *trusts* (its own caches and outputs). User files go through
    :mod:`geoloc.data.readers`, which reports bad rows with file, line and field.
    """
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def file_sha256(path: PathLike, length: int | None = None) -> str:
    """Hex SHA-256 of a file's bytes (``length`` keeps a prefix, for short cache keys)."""
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    return digest[:length] if length else digest


def markdown_table(df: Any, **kwargs: Any) -> str:
    """A GitHub-Markdown table of a pandas DataFrame (``DataFrame.to_markdown``, no index)."""
    return df.to_markdown(index=False, **kwargs)


def log_experiment(group: str, config: dict[str, Any], tables: Mapping[str, Any],
                   images: Mapping[str, PathLike], out_dir: PathLike) -> None:
    """One W&B run (group and name ``group``, offline unless ``WANDB_MODE`` says
    otherwise, files under ``out_dir``) holding an experiment script's tables
    (DataFrames) and figures, each logged as ``group/<key>``: the shape every
    ``experiments/*/run.py`` reports in, so reviewers find them alike."""
    import wandb

    os.environ.setdefault("WANDB_MODE", "offline")
    run = wandb.init(project="geoloc", group=group, job_type="experiment", config=config,
                     dir=str(out_dir), name=group)
    run.log({**{f"{group}/{k}": wandb.Table(dataframe=v) for k, v in tables.items()},
             **{f"{group}/{k}": wandb.Image(str(v)) for k, v in images.items()}})
    run.finish()


def cpu_info() -> tuple[str, set[str]]:
    """The CPU's model name and instruction-set flags from ``/proc/cpuinfo`` (the
    platform's name and no flags where there is none): what decides whether bf16 or
    int8 kernels are fast here."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:  # not Linux
        pass
    return name, flags
