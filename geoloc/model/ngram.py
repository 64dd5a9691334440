"""Character n-gram logistic regression, and its fusion with the transformer.

The n-gram model sees spelling (``colour``/``color``, ``-ville``, ``jalan``), place names
and emoji as character sequences, the transformer sees context through subwords; on the
real tweets the two make different errors, so a weighted sum of their log-probabilities
is more accurate and separates right from wrong predictions better than either (measured
in ``experiments/real_data/README.md``). The same class is the ``char n-gram LR``
baseline of :mod:`geoloc.baselines`.

Fusion (``fusion=char_ngram``, :mod:`geoloc.training.fusion`) is chosen on the calibration
outputs, never on the evaluated split: with ``crossfit.folds`` the n-gram model is
cross-fitted on the transformer's folds and the choice is made out of fold, else on the
calib split with n-gram models fitted on train. ``C`` and the weight ``w`` are those
whose fused calibration predictions, temperature-scaled, have the lowest log-loss (a
proper scoring rule, so it rewards confidence only where it is earned, unlike accuracy
at a threshold). The same rows then certify the thresholds: choosing one of ~33
candidates by log-loss on thousands of rows is a small look, stated here rather than
hidden.

A fused policy is only valid on fused logits: the fusion file records the SHA-256 of the
thresholds file fitted with it, and ``geoloc-eval`` refuses a pairing that differs.

A third, optional expert adds place evidence (``fusion.place_weights``): the countries
that the places a text names point at, from the location resolver's gazetteer
(:func:`geoloc.location.place_shares`: cities, regions and countries in many languages,
codes after a place, and flags; no demonyms, which the gazetteer does not hold), added
as ``a · share`` to the fused log-probabilities. It has one weight shared by every
country, so a place name the training rows never showed still
counts for its country, which a learned per-country feature cannot do with a few thousand
rows. On the real tweets, as features of the n-gram model the shares moved its
out-of-fold accuracy by 0.1 point, as this expert by 2.9 points; in the real recipe the
expert took the fused out-of-fold loss from 1.202 to 1.110 (``experiments/real_data/``:
README and ``levers.md``). ``a`` is chosen with ``C`` and ``w``, by the same log-loss.

Persistence is safe by construction: the vocabulary and parameters go to JSON, the arrays
to an ``.npz`` read with ``allow_pickle=False``; nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import log_softmax

from geoloc.evaluation.calibration import fit_temperature, nll
from geoloc.io import atomic_write, file_sha256, write_json_atomic
from geoloc.location.gazetteer import index_version
from geoloc.location.resolver import place_shares

#: Probability floor for classes the model cannot score (e.g. absent from its train rows).
PROB_FLOOR = 1e-9
FUSION_FORMAT = "geoloc-fusion/1"
#: The format of a fusion with a place expert: a reader that knows only /1 would refuse it
#: rather than serve outputs without the term its thresholds were fitted with.
FUSION_FORMAT_PLACES = "geoloc-fusion/2"

log = logging.getLogger(__name__)


def full_log_proba(proba: np.ndarray, classes: np.ndarray, n_classes: int) -> np.ndarray:
    """Scatter per-seen-class probabilities into all classes, floor, renormalise, log."""
    full = np.zeros((proba.shape[0], n_classes), dtype=np.float64)
    full[:, np.asarray(classes, dtype=int)] = proba
    full = np.maximum(full, PROB_FLOOR)
    full /= full.sum(axis=1, keepdims=True)
    return np.log(full).astype(np.float32)


def place_evidence(texts: Sequence[str], class_names: Sequence[str]) -> np.ndarray:
    """``(len(texts), len(class_names))``: each text's :func:`place_shares` over the
    classes (zeros where it names no place). A country outside the label set counts for
    ``OTHER`` when the label set has it, as its rows are labelled."""
    index = {c: i for i, c in enumerate(class_names)}
    other = index.get("OTHER")
    out = np.zeros((len(texts), len(class_names)), dtype=np.float32)
    cache: dict[str, dict[str, float]] = {}
    for row, text in enumerate(texts):
        shares = cache.get(text)
        if shares is None:
            shares = cache[text] = place_shares(text)
        for code, share in shares.items():
            col = index.get(code, other)
            if col is not None:
                out[row, col] += share
    return out


@dataclass
class CharNgramLR:
    """TF-IDF character n-grams (``char_wb``) + multinomial logistic regression."""

    n_classes: int
    C: float = 10.0
    ngram_range: tuple[int, int] = (1, 4)
    analyzer: str = "char_wb"
    min_df: int = 2
    sublinear_tf: bool = True
    max_iter: int = 2000
    name: str = "char n-gram LR"
    vectorizer_: Any = field(default=None, repr=False)
    model_: Any = field(default=None, repr=False)

    def _vectorizer(self, vocabulary: Sequence[str] | None = None) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(
            analyzer=self.analyzer, ngram_range=tuple(self.ngram_range), min_df=self.min_df,
            sublinear_tf=self.sublinear_tf, lowercase=True, dtype=np.float32,
            vocabulary=vocabulary,
        )

    def fit(self, texts: Sequence[str], labels: Sequence[int]) -> CharNgramLR:
        from sklearn.linear_model import LogisticRegression

        self.vectorizer_ = self._vectorizer()
        x = self.vectorizer_.fit_transform(list(texts))
        self.model_ = LogisticRegression(C=self.C, max_iter=self.max_iter)
        self.model_.fit(x, np.asarray(labels, dtype=int))
        return self

    def log_proba(self, texts: Sequence[str]) -> np.ndarray:
        if self.model_ is None:
            raise RuntimeError("fit the model first")
        proba = self.model_.predict_proba(self.vectorizer_.transform(list(texts)))
        return full_log_proba(proba, self.model_.classes_, self.n_classes)

    def describe(self) -> str:
        lo, hi = self.ngram_range
        return (f"TF-IDF {self.analyzer} {lo}-{hi} grams (sublinear tf, min_df={self.min_df}) "
                f"+ multinomial logistic regression, C={self.C:g}")

    # ------------------------------------------------------------ persistence
    def params(self) -> dict[str, Any]:
        return {"n_classes": self.n_classes, "C": self.C, "ngram_range": list(self.ngram_range),
                "analyzer": self.analyzer, "min_df": self.min_df,
                "sublinear_tf": self.sublinear_tf, "max_iter": self.max_iter}

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-able parameters + vocabulary (terms in column order), and the arrays."""
        if self.model_ is None:
            raise RuntimeError("fit the model first")
        vocab = self.vectorizer_.vocabulary_
        terms = [""] * len(vocab)
        for term, col in vocab.items():
            terms[col] = term
        arrays = {"idf": self.vectorizer_.idf_.astype(np.float32),
                  "coef": self.model_.coef_.astype(np.float32),
                  "intercept": self.model_.intercept_.astype(np.float32),
                  "classes": self.model_.classes_.astype(np.int64)}
        return {**self.params(), "vocabulary": terms}, arrays

    @classmethod
    def from_state(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
                   ) -> CharNgramLR:
        from sklearn.linear_model import LogisticRegression

        params = {k: meta[k] for k in ("n_classes", "C", "analyzer", "min_df",
                                       "sublinear_tf", "max_iter")}
        model = cls(**params, ngram_range=tuple(meta["ngram_range"]))
        model.vectorizer_ = model._vectorizer(vocabulary=list(meta["vocabulary"]))
        model.vectorizer_.idf_ = np.asarray(arrays["idf"], dtype=np.float32)
        lr = LogisticRegression(C=model.C, max_iter=model.max_iter)
        lr.coef_ = np.asarray(arrays["coef"])  # the dtype it was fitted and saved in
        lr.intercept_ = np.asarray(arrays["intercept"])
        lr.classes_ = np.asarray(arrays["classes"], dtype=np.int64)
        model.model_ = lr
        return model


# ---------------------------------------------------------------------------- fusion


@dataclass(frozen=True)
class FusionConfig:
    """What ``fusion=char_ngram`` searches (the n-gram model's ``C``, the weight)."""

    C_grid: tuple[float, ...] = (100.0, 300.0, 1000.0)
    weights: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
    ngram_range: tuple[int, int] = (1, 4)
    analyzer: str = "char_wb"
    min_df: int = 2
    #: the place expert's weights searched (``(0.0,)``: no place expert)
    place_weights: tuple[float, ...] = (0.0,)

    def __post_init__(self) -> None:
        if not self.C_grid or any(not float(c) > 0 for c in self.C_grid):
            raise ValueError(f"fusion.C_grid={list(self.C_grid)}: positive values expected")
        if not self.weights or any(not 0.0 <= float(w) <= 1.0 for w in self.weights):
            raise ValueError(f"fusion.weights={list(self.weights)}: values in [0, 1] expected")
        if not self.place_weights or any(not float(a) >= 0 for a in self.place_weights):
            raise ValueError(f"fusion.place_weights={list(self.place_weights)}: values >= 0 "
                             "expected (0: no place expert)")
        object.__setattr__(self, "C_grid", tuple(float(c) for c in self.C_grid))
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        object.__setattr__(self, "place_weights", tuple(float(a) for a in self.place_weights))
        object.__setattr__(self, "ngram_range", tuple(int(n) for n in self.ngram_range))

    def model(self, n_classes: int, C: float) -> CharNgramLR:
        return CharNgramLR(n_classes=n_classes, C=float(C), ngram_range=self.ngram_range,
                           analyzer=self.analyzer, min_df=self.min_df)


def fuse(transformer_logits: np.ndarray, ngram_log_proba: np.ndarray, weight: float,
         places: np.ndarray | None = None, place_weight: float = 0.0) -> np.ndarray:
    """``w · log p_transformer + (1 - w) · log p_ngram + a · places`` (a log-linear pool;
    used as logits, so the policy's temperature rescales the sum as a whole; ``places``
    is :func:`place_evidence`, needed when ``a > 0``)."""
    tr = log_softmax(np.asarray(transformer_logits, dtype=np.float64), axis=1)
    mixed = weight * tr + (1.0 - weight) * np.asarray(ngram_log_proba, dtype=np.float64)
    if place_weight:
        if places is None:
            raise ValueError("a place weight > 0 needs the texts' place evidence")
        mixed += place_weight * np.asarray(places, dtype=np.float64)
    return mixed.astype(np.float32)


def select_fusion(transformer_logits: np.ndarray, ngram_by_c: Mapping[float, np.ndarray],
                  labels: np.ndarray, weights: Sequence[float],
                  places: np.ndarray | None = None, place_weights: Sequence[float] = (0.0,)
                  ) -> tuple[float, float, float, list[dict[str, float]]]:
    """The ``(C, w, a)`` whose fused calibration log-loss (out of fold in a cross-fit),
    after fitting a temperature, is lowest; returns them and every candidate's score.
    Ties go to the larger transformer weight, then the smaller place weight."""
    labels = np.asarray(labels, dtype=np.int64)
    trials = []
    for c, ngram in ngram_by_c.items():
        for w in weights:
            for a in place_weights:
                fused = fuse(transformer_logits, ngram, w, places, a)
                temp = fit_temperature(fused, labels)
                trials.append({"C": float(c), "weight": float(w), "place_weight": float(a),
                               "temperature": temp, "nll": nll(fused, labels, temp),
                               "accuracy": float((fused.argmax(axis=1) == labels).mean())})
    best = min(trials, key=lambda t: (t["nll"], -t["weight"], t["place_weight"]))
    return best["C"], best["weight"], best["place_weight"], trials


@dataclass
class Fusion:
    """A fitted n-gram model and its weight (and the place expert's): turns transformer
    logits into fused ones."""

    model: CharNgramLR
    weight: float
    trials: list[dict[str, float]] = field(default_factory=list)
    #: SHA-256 of the thresholds file fitted on this fusion's outputs (None: not saved yet)
    thresholds_sha256: str | None = None
    #: the place expert's weight (0: none), and the class names its evidence is laid on
    place_weight: float = 0.0
    class_names: list[str] | None = None
    #: :func:`geoloc.location.gazetteer.index_version` the place weight was chosen with
    #: (read from the file; a fusion saved for the first time records this process's)
    gazetteer: str | None = None
    _digest: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.place_weight and not self.class_names:
            raise ValueError("a fusion with a place expert needs the class names")

    def places(self, texts: Sequence[str]) -> np.ndarray | None:
        """:func:`place_evidence` of ``texts`` when this fusion has a place expert."""
        return place_evidence(texts, self.class_names) if self.place_weight else None

    def apply(self, transformer_logits: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        return fuse(transformer_logits, self.model.log_proba(texts), self.weight,
                    self.places(texts), self.place_weight)

    def digest(self) -> str:
        """SHA-256 of what decides this fusion's outputs (weights, classes, the n-gram
        model's parameters and arrays), not of its files: the policy records it
        (``Thresholds.fitted_with``), and a fusion saved again (a converted checkpoint)
        keeps it, though ``np.savez`` stamps each write with its time. Hand-written: no
        library hashes a fitted scikit-learn model by content. Computed once."""
        if self._digest is not None:
            return self._digest
        meta, arrays = self.model.state()
        h = hashlib.sha256(json.dumps(
            {"weight": self.weight, "place_weight": self.place_weight,
             "class_names": self.class_names, "ngram": meta}, sort_keys=True,
            default=str).encode("utf-8"))
        for name in sorted(arrays):
            a = np.ascontiguousarray(arrays[name])
            h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
            h.update(a.tobytes())
        self._digest = h.hexdigest()
        return self._digest

    def save(self, path: str | Path) -> None:
        """``path`` (JSON: weight, parameters, vocabulary, selection trials) and
        ``path`` with suffix ``.npz`` (the arrays)."""
        meta, arrays = self.model.state()
        path = Path(path)
        with atomic_write(path.with_suffix(".npz"), "wb") as fh:
            np.savez_compressed(fh, **arrays)
        places = ({"place_weight": self.place_weight, "class_names": self.class_names,
                   "gazetteer": self.gazetteer or index_version()} if self.place_weight
                  else {})
        fmt = FUSION_FORMAT_PLACES if self.place_weight else FUSION_FORMAT
        write_json_atomic(path, {"format": fmt, "weight": self.weight, **places,
                                 "thresholds_sha256": self.thresholds_sha256,
                                 "trials": self.trials, "ngram": meta})

    @classmethod
    def load(cls, path: str | Path) -> Fusion:
        path = Path(path)
        meta = json.loads(path.read_text(encoding="utf-8"))
        if meta.get("format") not in (FUSION_FORMAT, FUSION_FORMAT_PLACES):
            raise ValueError(f"{path}: not a {FUSION_FORMAT} file (format="
                             f"{meta.get('format')!r})")
        with np.load(path.with_suffix(".npz"), allow_pickle=False) as arrays:
            model = CharNgramLR.from_state(meta["ngram"], dict(arrays))
        fusion = cls(model=model, weight=float(meta["weight"]), trials=list(meta["trials"]),
                     thresholds_sha256=meta.get("thresholds_sha256"),
                     place_weight=float(meta.get("place_weight", 0.0)),
                     class_names=meta.get("class_names"), gazetteer=meta.get("gazetteer"))
        if fusion.place_weight and fusion.gazetteer != index_version():
            # The same names and votes are what the policy was certified on; another
            # gazetteer (other package versions) can move a few decisions.
            log.warning("%s: its place expert was fitted with the gazetteer %s, this "
                        "environment builds %s; place evidence may differ", path,
                        fusion.gazetteer, index_version())
        return fusion


def oof_key(c: float) -> str:
    """Name of the out-of-fold n-gram log-probabilities for ``C`` in ``crossfit_oof.npz``."""
    return f"ngram_C{c:g}"


def check_pairing(fusion: Fusion | None, thresholds_file: str | Path | None,
                  fusion_file: str | Path) -> None:
    """Raise ``ValueError`` unless ``fusion`` and the thresholds belong together: a fused
    policy on unfused logits (or the reverse) would certify nothing it claims."""
    if fusion is None:
        return
    if thresholds_file is None:
        raise ValueError(f"{fusion_file}: a fused checkpoint needs the thresholds fitted "
                         "with its fusion; refitting them on the calib split would use "
                         "rows the refit models trained on")
    digest = file_sha256(thresholds_file)
    if fusion.thresholds_sha256 != digest:
        raise ValueError(f"{thresholds_file} was not fitted with the fusion {fusion_file} "
                         f"(its SHA-256 {digest[:12]}… is not the recorded "
                         f"{str(fusion.thresholds_sha256)[:12]}…)")


__all__ = ["CharNgramLR", "Fusion", "FusionConfig", "check_pairing", "full_log_proba", "fuse",
           "oof_key", "place_evidence", "select_fusion"]
