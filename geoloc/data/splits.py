"""Split rules: which of train/val/calib/test a profile belongs to, and records -> rows.

Splits are decided by a keyed hash of each profile's id, not by shuffling row order: a
profile stays in the same split when the corpus grows or is re-ordered, so a test split
never leaks into training across runs. A record may carry an optional ``split`` field;
when present and non-null it overrides the hash (e.g. synthetic rows mixed into a real
corpus are pinned to ``train``, see :class:`geoloc.data.sources.MixtureSource`). A split
may have fraction 0 (the real tweets have no ``test`` split: their held-out half is the
test); ``eval_split`` names the split that is evaluated.

This module sits below both :mod:`geoloc.data.sources` (a mixture counts the real rows
that will be training rows) and :mod:`geoloc.data.datamodule` (which applies the rule),
and imports neither, so the two never import each other. It holds no default fractions:
``data.splits`` in ``geoloc/conf/data/*.yaml`` is the one place they are written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from geoloc.data.schema import profile_text
from geoloc.errors import DataConfigError
from geoloc.labels import LabelSet

SPLITS: tuple[str, ...] = ("train", "val", "calib", "test")


def validate_splits(splits: Mapping[str, float]) -> dict[str, float]:
    """Check ``data.splits`` (the four named splits, fractions >= 0 summing to 1) and
    return them as plain floats in :data:`SPLITS` order."""
    keys = set(splits)
    if keys != set(SPLITS):
        raise DataConfigError(
            f"data.splits: expected exactly the keys {', '.join(SPLITS)}, got {sorted(keys)}"
        )
    fractions = {k: float(splits[k]) for k in SPLITS}
    if any(v < 0 for v in fractions.values()) or abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise DataConfigError(f"data.splits: fractions must be >= 0 and sum to 1, got {fractions}")
    return fractions


def validate_eval_split(eval_split: str, fractions: Mapping[str, float]) -> str:
    """``data.eval_split``: a named split that the id hash fills (fraction > 0), because
    evaluating an always-empty split would fail only after training."""
    if eval_split not in SPLITS:
        raise DataConfigError(
            f"data.eval_split={eval_split!r}: expected one of {', '.join(SPLITS)}"
        )
    if fractions[eval_split] <= 0:
        raise DataConfigError(
            f"data.eval_split={eval_split!r}: data.splits.{eval_split} is 0, so it would be "
            "empty; evaluate a split with a positive fraction (e.g. data.eval_split=val)"
        )
    return eval_split


def keyed_unit(key: object, profile_id: str) -> float:
    """A number in [0, 1) fixed by ``key`` and the id alone (SHA-256 of ``key:id``): the
    keyed bucket every id-hash split reads (training splits, geoloc-calibrate's audit
    part), so a row never changes side when others are added."""
    digest = hashlib.sha256(f"{key}:{profile_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_split(profile_id: str, seed: int, fractions: Mapping[str, float]) -> str:
    """Deterministic split of one profile id under ``seed`` (keyed SHA-256 bucket).

    A split with fraction 0 never receives a row (float rounding of the cumulative sum
    falls back to the last split with a positive fraction, not blindly to ``test``).
    """
    u = keyed_unit(seed, profile_id)
    acc = 0.0
    for name in SPLITS:
        if fractions[name] <= 0:
            continue
        acc += fractions[name]
        if u < acc:
            return name
    return [n for n in SPLITS if fractions[n] > 0][-1]


def record_split(record: Mapping[str, Any], seed: int, fractions: Mapping[str, float]) -> str:
    """The split of one canonical record: its own ``split`` field if set, else the id hash."""
    given = record.get("split")
    if given is not None:
        if given not in SPLITS:
            raise DataConfigError(
                f"record {record.get('id')!r}: field 'split'={given!r}: expected one of "
                f"{', '.join(SPLITS)} or null"
            )
        return str(given)
    return assign_split(str(record["id"]), seed, fractions)


#: The splits cross-fitting draws its folds from: every labelled row that is not
#: evaluated (``val`` and ``test`` stay untouched, so evaluation is as without folds).
CROSSFIT_POOL = ("train", "calib")


@dataclass(frozen=True)
class CrossFitFold:
    """Which model of a cross-fit a datamodule feeds.

    The rows the id hash puts in ``train`` or ``calib`` (pinned rows keep their split)
    are dealt into ``folds`` folds by a second keyed hash. ``index = k``: fold k becomes
    the ``calib`` split (the rows model k predicts out of fold) and the other folds
    ``train``. ``index = None``: the refit on every pooled row (all ``train``, no calib).
    ``validate_heldout``: fold model k validates each epoch on fold k (its out-of-fold
    rows) instead of ``val``, so the learning curve the epoch count is chosen on is out
    of fold and ``val`` stays an audit split.
    """

    folds: int
    index: int | None
    validate_heldout: bool = False

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise DataConfigError(f"crossfit.folds={self.folds}: need at least 2 folds")
        if self.index is not None and not 0 <= self.index < self.folds:
            raise DataConfigError(f"fold index {self.index}: expected 0 .. {self.folds - 1}")


def assign_fold(profile_id: str, seed: int, folds: int) -> int:
    """Deterministic fold of one profile id (keyed SHA-256, independent of its split)."""
    digest = hashlib.sha256(f"fold:{seed}:{profile_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % folds


def prepare_rows(batch: Mapping[str, list], label_set: LabelSet, seed: int,
                 fractions: Mapping[str, float], fold: CrossFitFold | None = None
                 ) -> dict[str, list]:
    """Model text, class index and split of a batch of canonical records (columns).

    The one place that turns records into (text, label, split): the datamodule and the
    baselines (via :func:`geoloc.data.datamodule.labelled_splits`) both call it, so they
    see the same text, labels and split. ``fold`` re-deals the cross-fitting pool.
    """
    given = batch.get("split") or [None] * len(batch["id"])
    splits = []
    for rid, pinned in zip(batch["id"], given, strict=True):
        split = record_split({"id": rid, "split": pinned}, seed, fractions)
        if fold is not None and pinned is None and split in CROSSFIT_POOL:
            held_out = fold.index is not None and assign_fold(str(rid), seed,
                                                              fold.folds) == fold.index
            split = "calib" if held_out else "train"
        splits.append(split)
    return {
        "text": [profile_text(b or "", c or []) for b, c in
                 zip(batch["bio"], batch["captions"], strict=True)],
        "labels": [label_set.index(c) for c in batch["country"]],
        "split": splits,
    }


__all__ = [
    "CROSSFIT_POOL",
    "SPLITS",
    "CrossFitFold",
    "assign_fold",
    "DataConfigError",
    "assign_split",
    "prepare_rows",
    "record_split",
    "validate_eval_split",
    "validate_splits",
]
