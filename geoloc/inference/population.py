"""The population a policy was calibrated on, and a check that an input resembles it.

The 90 % guarantee is about profiles drawn like the calibration population. A marketing
team labels its own population (one market's influencers, a brand's followers); on the
real tweets, European-Portuguese text went to BR at 52 % precision and Swahili or Twi
English to ID/JP, because nothing compared the input with what the thresholds were
fitted on. A model bundle therefore records a summary of its calibration population
(:class:`PopulationProfile`, file ``geoloc_population.json``), and ``geoloc-predict`` and
``geoloc-audience`` compare every input with it (:func:`check_population`):

- **predicted-country mix**: the share of rows whose top class is each class;
- **confidence histogram**: the top calibrated probability in ten bins;
- **script mix**: the writing system of each text's letters (Latin, Cyrillic, Arabic,
  CJK, ...), which no model output can hide.

Each is compared by total-variation distance (half the L1 distance of two shares). On n
rows a TV distance is positive by chance alone; :func:`expected_tv` is its expected value
when both samples come from the same distribution (a normal approximation of each
share's sampling error), and the check fires when, for any of the three, the distance
exceeds that noise by more than ``margin`` (default :data:`DEFAULT_MARGIN`, chosen on
the shift benchmark, ``experiments/shift``: silent on held-out rows of the calibration
population over 20 random splits, firing on every shift set). Hand-written: the three
summaries are a few ``bincount`` calls; no drift library (evidently, alibi-detect) is a
dependency, and theirs compare feature matrices rather than these three shares.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geoloc.io import PathLike, write_json_atomic

SCHEMA = "geoloc.population/v1"
#: Bins of the confidence histogram (top calibrated probability).
CONFIDENCE_BINS = 10
#: How far above its sampling noise a TV distance may be before the check fires.
DEFAULT_MARGIN = 0.10
#: Fewer input rows than this are not checked (the noise would swamp any difference).
MIN_ROWS = 50
#: Writing systems told apart, by the first word of a letter's Unicode name.
SCRIPTS = ("LATIN", "CYRILLIC", "ARABIC", "CJK", "HIRAGANA", "KATAKANA", "HANGUL", "THAI",
           "DEVANAGARI", "GREEK", "HEBREW", "ETHIOPIC")
NO_LETTERS = "none"
OTHER_SCRIPT = "other"


def script_of(text: str) -> str:
    """The writing system most of ``text``'s letters belong to (``none`` without letters;
    ``other`` for a script not in :data:`SCRIPTS`). Kana and Han both count as CJK's
    neighbours but stay apart: Japanese text is told from Chinese by its kana."""
    counts: Counter[str] = Counter()
    for ch in text:
        if not ch.isalpha():
            continue
        name = unicodedata.name(ch, "")
        word = name.split(" ", 1)[0]
        counts[word if word in SCRIPTS else OTHER_SCRIPT] += 1
    if not counts:
        return NO_LETTERS
    return counts.most_common(1)[0][0].lower()


def _shares(values: Sequence[str]) -> dict[str, float]:
    n = len(values)
    return {k: v / n for k, v in sorted(Counter(values).items())} if n else {}


@dataclass
class PopulationProfile:
    """What a population looked like to the model: the three shares described in the
    module docstring, on ``n`` rows, with where they came from."""

    n: int
    predicted_mix: dict[str, float]
    confidence_hist: list[float]
    script_mix: dict[str, float]
    source: str = ""
    """Where the rows came from (the out-of-fold outputs of training, or an input file)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything else worth recording with it (geoloc-calibrate: the labelled counts)."""

    @classmethod
    def of(cls, probs: np.ndarray, texts: Sequence[str], class_names: Sequence[str],
           source: str = "", **extra: Any) -> PopulationProfile:
        """Summarise calibrated probabilities (N x C) and the texts they came from."""
        probs = np.asarray(probs, dtype=np.float64)
        if probs.ndim != 2 or probs.shape[0] != len(texts):
            raise ValueError(f"probabilities {probs.shape} and {len(texts)} texts differ")
        top = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=int)
        conf = probs.max(axis=1) if len(probs) else np.zeros(0)
        hist = np.bincount(np.minimum((conf * CONFIDENCE_BINS).astype(int),
                                      CONFIDENCE_BINS - 1), minlength=CONFIDENCE_BINS)
        n = len(texts)
        return cls(n=n,
                   predicted_mix=_shares([str(class_names[i]) for i in top]),
                   confidence_hist=(hist / max(n, 1)).tolist(),
                   script_mix=_shares([script_of(t) for t in texts]),
                   source=source, extra=dict(extra))

    @classmethod
    def from_counts(cls, predicted: Counter, confidence: Sequence[int], scripts: Counter,
                    source: str = "") -> PopulationProfile:
        """The same summary from counts accumulated over a file's chunks (geoloc-predict
        merges them from its parts, so a resumed run still covers every row)."""
        n = sum(predicted.values())
        # scripts are shares of the rows whose texts were counted (parts of a run from
        # before the check have none): never of all rows
        n_texts = sum(scripts.values())
        return cls(n=n, predicted_mix={k: v / n for k, v in sorted(predicted.items())} if n
                   else {}, confidence_hist=[c / max(n, 1) for c in confidence],
                   script_mix={k: v / n_texts for k, v in sorted(scripts.items())},
                   source=source)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PopulationProfile:
        if data.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} population record "
                             f"(schema={data.get('schema')!r})")
        return cls(**{k: v for k, v in data.items() if k != "schema"})

    def save(self, path: PathLike) -> None:
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: PathLike) -> PopulationProfile:
        return cls.from_dict(json.loads(open(path, encoding="utf-8").read()))

    def features(self) -> dict[str, dict[str, float]]:
        """The three shares, each as {category: share}."""
        return {"predicted_mix": self.predicted_mix,
                "confidence": {str(i): v for i, v in enumerate(self.confidence_hist)},
                "script_mix": self.script_mix}


class PopulationCounter:
    """The summary accumulated over batches of (probabilities, texts): what a streaming
    job (``geoloc-audience``) sees chunk by chunk. Batches without texts (an input of
    predictions) count towards the predicted mix and confidence only; with no texts at
    all the script mix stays empty and the check skips it."""

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = [str(n) for n in class_names]
        self.predicted: Counter[str] = Counter()
        self.confidence = [0] * CONFIDENCE_BINS
        self.scripts: Counter[str] = Counter()

    def add(self, probs: np.ndarray, texts: Sequence[str] | None = None) -> None:
        probs = np.asarray(probs)
        if not len(probs):
            return
        self.add_top([self.class_names[i] for i in probs.argmax(axis=1)],
                     probs.max(axis=1).tolist())
        if texts is not None:
            self.scripts.update(script_of(t) for t in texts)

    def add_top(self, argmax: Sequence[str], top_probability: Sequence[float]) -> None:
        """Rows known by their top class and its probability (geoloc-predict's output
        columns ``argmax`` and ``probability``)."""
        self.predicted.update(argmax)
        for p in top_probability:
            self.confidence[confidence_bin(float(p))] += 1

    def profile(self, source: str = "") -> PopulationProfile:
        return PopulationProfile.from_counts(self.predicted, self.confidence, self.scripts,
                                             source)


def meta_path(output: PathLike) -> Path:
    """Where the metadata of ``output`` go: ``OUTPUT.meta.json`` (the model that wrote it,
    its classes, the population check)."""
    out = Path(output)
    return out.with_name(out.name + ".meta.json")


def confidence_bin(p: float) -> int:
    """The histogram bin of a top probability."""
    return min(int(p * CONFIDENCE_BINS), CONFIDENCE_BINS - 1)


def tv_distance(p: dict[str, float], q: dict[str, float]) -> float:
    """Total-variation distance of two share dicts (missing keys are 0)."""
    keys = set(p) | set(q)
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys)


def expected_tv(shares: dict[str, float], n: int) -> float:
    """Expected TV distance between ``shares`` and an n-row sample of them: each share's
    error is about normal with sd sqrt(p (1 - p) / n), whose mean absolute value is
    sd * sqrt(2 / pi)."""
    if n <= 0:
        return math.inf
    return 0.5 * sum(math.sqrt(2 * p * (1 - p) / (math.pi * n)) for p in shares.values())


@dataclass
class PopulationCheck:
    """The outcome of :func:`check_population`: per feature the TV distance and the noise
    it is compared with, whether it fired, and a one-line message."""

    checked: bool
    fired: bool
    n: int
    distances: dict[str, float]
    noise: dict[str, float]
    margin: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_population(reference: PopulationProfile, observed: PopulationProfile,
                     margin: float = DEFAULT_MARGIN) -> PopulationCheck:
    """Compare an input's profile with the calibration population's; fires when any of
    the three TV distances exceeds its sampling noise (both samples') by more than
    ``margin``."""
    ref, obs = reference.features(), observed.features()
    # a feature the input cannot show (the script mix of predictions without texts) is
    # not compared
    ref = {k: v for k, v in ref.items() if obs[k]}
    distances = {k: tv_distance(ref[k], obs[k]) for k in ref}
    if observed.n < MIN_ROWS:  # (no noise figures: infinite for an empty input)
        return PopulationCheck(False, False, observed.n, distances, {}, margin,
                               f"population check skipped: {observed.n} rows (< {MIN_ROWS})")
    noise = {k: expected_tv(ref[k], observed.n) + expected_tv(ref[k], reference.n)
             for k in ref}
    excess = {k: distances[k] - noise[k] for k in ref}
    fired = [k for k in ref if excess[k] > margin]
    figures = ", ".join(f"{k.replace('_', ' ')} TV {distances[k]:.2f} (noise "
                        f"{noise[k]:.2f})" for k in ref)
    if fired:
        message = (f"population shift: this input differs from the population the "
                   f"thresholds were calibrated on ({reference.source or 'training'}, "
                   f"{reference.n} rows) by more than the margin {margin:g}: {figures}. "
                   "The 90 % guarantee is about profiles like the calibration population; "
                   "label a sample of this one and run geoloc-calibrate")
    else:
        message = f"population check passed ({observed.n} rows): {figures}"
    return PopulationCheck(True, bool(fired), observed.n, distances, noise, margin, message)
