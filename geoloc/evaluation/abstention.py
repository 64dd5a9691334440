"""Per-class confidence thresholds with a finite-sample precision guarantee, and UNCERTAIN.

The product promise is "every country we assign keeps >= 90 % precision". A prediction is
kept only when its top class c has probability >= t_c; otherwise the profile is UNCERTAIN
(-1 in arrays). Assigning OTHER is a claim too, so OTHER gets a threshold like any class.

**How t_c is chosen** (``METHOD = "fixed_sequence_clopper_pearson"``): on the calibration
split, for each class c separately,

1. Each candidate threshold t on a fixed grid is a hypothesis test of
   H_t: precision_c(t) < target, where precision_c(t) = P(true = c | top = c, p_c >= t).
   Among the k-of-n calibration predictions of c kept at t, H_t is rejected when the
   one-sided Clopper-Pearson lower confidence bound of precision at level delta is
   >= target (the exact binomial bound, ``scipy.stats.beta.ppf(delta, k, n - k + 1)``).
2. **Fixed-sequence testing** (as in Learn-then-Test, Angelopoulos et al. 2021): the
   hypotheses are tested in a fixed order from the strictest threshold to the loosest,
   stopping at the first that is not rejected; t_c is the loosest threshold rejected
   (maximum coverage). A wrong certification needs the first true null of the sequence
   to be rejected, so the chance of certifying any threshold whose precision is below
   target is <= the level of one test, without splitting it over the ~100 thresholds of
   the grid as a Bonferroni correction would.
3. **Where sequences start, and alpha-recycling.** Thresholds near 1 keep a handful of
   predictions whose bound cannot reach the target even when all are right (n/n correct
   needs n >= ln(delta)/ln(target): 29 at 0.90/0.05), and a weak first test ends the scan
   before it reaches well-populated thresholds. A start that keeps many predictions, on
   the other hand, misses a class whose precise region is small. So each class runs a few
   sequences, each starting at the strictest grid threshold that keeps at least s
   calibration predictions of c, for s in ``start_counts`` (those <= n_c; a class with
   fewer starts once, with all its predictions). Each start gets an equal share of delta,
   and the shares are *recycled* (the graphical procedure of Bretz et al. 2009 on a
   chain): a rejected threshold passes its whole level on to the next looser one, so
   where a sequence from a strict start reaches the start of another, that threshold is
   tested at the sum of both shares. This controls the chance of any wrong
   certification at delta (strongly, with no assumption on how precision varies with the
   threshold) and is never less powerful than splitting delta equally. Starts depend
   only on how many predictions lie above each threshold, never on whether they are
   right.
4. **A floor.** No threshold is below ``min_probability`` (``PolicyConfig``): a class
   whose top-class predictions were all right on the calibration population would
   otherwise certify t = 0.0 and be assigned on any argmax, which is exactly what breaks
   first on a population unlike it. Grid thresholds below the floor are not tested.
5. A class with fewer calibration predictions than that minimum, or none of whose
   sequences passes its first test, gets t_c = +inf: it is never assigned, and its
   ``status`` says why.

**Pooled rare countries** (``pool_below``): countries predicted fewer times than that (a
label-free rule) are first tested as one group (one shared threshold, certified on their
pooled predictions). When the group is certified, each of its countries is then tested
alone (from the pool down); one that passes gets its own threshold and guarantee kind
``class``. If none does, all keep the pool's threshold with kind ``pooled``, a statement
about all assignments to the pooled countries at that threshold together, not about each
one. If some do, the others are never assigned: the pool's bound was earned partly by the
countries that left, and does not cover those that failed alone. Reports count the two
kinds apart.

**What is guaranteed** (a PAC statement, not a per-assignment promise): for each class
with guarantee kind ``class``, with probability >= 1 - delta over the draw of the
calibration sample, the precision of that class on new data drawn like the calibration
population is >= target. Any one assignment can be wrong; on a finite batch the realised
precision scatters around the population precision. ``guarantee="per_class"`` makes the
statement for each class separately (about a dozen families on the real tweets, so one of
them failing somewhere is far likelier than delta); ``"simultaneous"`` makes it for all
certified classes at once, by testing each family at delta / F, where F counts only the
families actually tested (a label-free count: classes predicted often enough that a
test could pass, plus the pool), not every class of the label set. The temperature is
treated as fixed; fitted on the same split it is one scalar chosen by likelihood, not by
precision, but pass a temperature fitted elsewhere to be strict.

The fitting code is :mod:`geoloc.evaluation.certify`; this module holds the policy
objects (:class:`PolicyConfig`, :class:`Thresholds`) every consumer reads.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from geoloc.errors import InputFileError
from geoloc.evaluation.calibration import softmax
from geoloc.evaluation.sweep import default_grid
from geoloc.io import write_json_atomic
from geoloc.labels import UNCERTAIN

#: Name of the threshold-selection method, written into thresholds.json and the report.
METHOD = "fixed_sequence_clopper_pearson"
METHOD_DESCRIPTION = (
    "fixed-sequence testing (Learn-then-Test) from the strictest threshold to the loosest, "
    "each threshold certified when the one-sided Clopper-Pearson lower confidence bound of "
    "its calibration precision is >= target, stopping at the first failure; per class a few "
    "sequences start where >= 50, 100, 300, ... calibration predictions are kept, each with "
    "an equal share of delta that a rejected threshold passes on to the next (alpha-"
    "recycling); no threshold below the floor min_probability"
)
#: The floor a thresholds file written before the floor existed is read with (it has no
#: ``min_probability``): the configured default (``geoloc/conf/evaluation/default.yaml``),
#: so an old policy with a threshold of 0.0 no longer assigns on any argmax.
LEGACY_MIN_PROBABILITY = 0.5
#: Array value of an UNCERTAIN decision.
UNCERTAIN_INDEX = -1
SCHEMA = "geoloc.thresholds/v1"

# Per-class status values.
ASSIGNED = "assigned"
NO_PREDICTIONS = "no_calibration_predictions"
TOO_FEW = "too_few_calibration_predictions"
BOUND_BELOW_TARGET = "bound_below_target"
POOLED = "pooled"
#: a pooled country that, after its pool was certified, passed its own test
POOLED_OWN = "assigned_from_pool"
POOL_FAILED = "pool_bound_below_target"
#: a pooled country that failed alone after another country of its pool was certified alone
POOL_SPLIT = "pool_split"
STATUS_TEXT = {
    ASSIGNED: "threshold certified on the calibration split",
    POOLED: "rare country: shares the threshold certified for the pooled rare countries",
    POOLED_OWN: "rare country: certified alone after its pool was certified",
    POOL_FAILED: "rare country: the pooled rare countries' bound never reaches the target",
    POOL_SPLIT: "rare country: failed alone, and its pool's bound was earned partly by a "
                "country certified alone since, so it no longer covers this one",
    NO_PREDICTIONS: "never predicted on the calibration split",
    TOO_FEW: "too few calibration predictions for the bound to reach the target",
    BOUND_BELOW_TARGET: "lower confidence bound of precision never reaches the target",
}


#: Guarantee kinds. ``per_class``: each class with a threshold keeps precision >= target
#: with probability >= 1 - delta; ``simultaneous``: all of them at once (delta / F each,
#: F the families tested).
GUARANTEES = ("per_class", "simultaneous")


@dataclass(frozen=True)
class PolicyConfig:
    """How thresholds are fitted: the one object the evaluation path passes around.

    Built from the ``evaluation.policy`` config node (``geoloc/conf/evaluation/default.yaml`` holds
    the values; there are no code defaults to drift from it). ``start_counts``: each class
    runs one fixed sequence per count s <= n_c, starting at the strictest grid threshold
    that keeps >= s calibration predictions (see the module docstring). ``guarantee`` is
    one of :data:`GUARANTEES`; new kinds (pooled guarantees for rare classes) go there.
    """

    target: float
    delta: float
    start_counts: tuple[int, ...]
    guarantee: str
    pool_below: int | None = None
    """Countries with fewer calibration predictions than this are not tested alone but
    as one pooled group (one shared threshold, certified on their pooled predictions);
    None: every class is tested alone. See :func:`geoloc.evaluation.certify.fit_thresholds`."""
    min_probability: float = 0.0
    """The floor: no class is assigned below this calibrated probability, whatever its
    calibration said (see the module docstring)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", float(self.target))
        object.__setattr__(self, "delta", float(self.delta))
        object.__setattr__(self, "start_counts",
                           tuple(sorted({int(x) for x in self.start_counts})))
        if not 0.0 < self.target < 1.0:
            raise ValueError(f"evaluation.policy.target={self.target}: must be in (0, 1)")
        if not 0.0 < self.delta < 1.0:
            raise ValueError(f"evaluation.policy.delta={self.delta}: must be in (0, 1)")
        if not self.start_counts or min(self.start_counts) < 1:
            raise ValueError(f"evaluation.policy.start_counts={list(self.start_counts)}: "
                             "need one or more positive counts")
        if self.pool_below is not None:
            object.__setattr__(self, "pool_below", int(self.pool_below))
            if self.pool_below < 1:
                raise ValueError(f"evaluation.policy.pool_below={self.pool_below}: must be "
                                 ">= 1 or null")
        object.__setattr__(self, "min_probability", float(self.min_probability))
        if not 0.0 <= self.min_probability < 1.0:
            raise ValueError(f"evaluation.policy.min_probability={self.min_probability}: "
                             "must be in [0, 1)")
        if self.guarantee not in GUARANTEES:
            raise ValueError(f"evaluation.policy.guarantee={self.guarantee!r}: expected one "
                             f"of {', '.join(GUARANTEES)}")

    @property
    def simultaneous(self) -> bool:
        return self.guarantee == "simultaneous"

    def delta_per_class(self, n_families: int) -> float:
        """The level each family is tested at (delta, or delta / F when simultaneous)."""
        return self.delta / max(n_families, 1) if self.simultaneous else self.delta

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "delta": self.delta,
                "start_counts": list(self.start_counts), "guarantee": self.guarantee,
                "pool_below": self.pool_below, "min_probability": self.min_probability}


@dataclass(frozen=True)
class ClassCalibration:
    """What the calibration split said about one class (kept for the report and the JSON)."""

    status: str
    n_predicted: int
    """Calibration profiles whose top class is this class."""
    n_support: int
    """Calibration profiles whose true class is this class."""
    n_kept: int = 0
    """Predictions kept at the chosen threshold (0 when never assigned)."""
    n_correct: int = 0
    precision: float | None = None
    """Calibration precision at the chosen threshold."""
    lower_bound: float | None = None
    """Clopper-Pearson lower bound at the chosen threshold; for a never-assigned class the
    highest bound any test reached (how far it was from the target)."""
    start_thresholds: list[float] = field(default_factory=list)
    """Where each fixed sequence started."""
    delta_per_test: float | None = None
    """Level of the test at the chosen threshold (for a never-assigned class: at the best
    bound): delta (/ F when simultaneous) times the shares of the start points whose
    sequences reached it (alpha-recycling)."""
    n_tests: int = 0
    pool: list[str] = field(default_factory=list)
    """For a pooled country: the countries of its pool."""
    pool_threshold: float | None = None
    """For a pooled country: the pool's certified threshold (None: the pool failed)."""
    pool_n_kept: int = 0
    pool_n_correct: int = 0
    pool_precision: float | None = None
    pool_lower_bound: float | None = None
    """The pool's calibration counts and bound at its threshold: the group's numbers,
    kept apart from this country's own (``n_kept`` ... ``lower_bound``, which for a
    country that kept the pool's threshold are its own share, with no bound)."""

    @property
    def guarantee(self) -> str:
        """What the threshold's precision bound is about, derived from ``status``:
        ``class`` (this class alone, also for a pooled country that passed its own test),
        ``pooled`` (all assignments to the pooled rare countries together; the group's
        numbers are the ``pool_*`` fields), or ``none`` (never assigned)."""
        return {ASSIGNED: "class", POOLED_OWN: "class", POOLED: "pooled"}.get(
            self.status, "none")


#: ``Thresholds.scored_with``: the precisions a policy can be fitted on.
SCORED_WITH = ("fp32", "int8")


@dataclass
class Thresholds:
    """A fitted abstention policy: temperature plus one confidence threshold per class.

    ``thresholds[name]`` is +inf for a class that is never assigned. Thresholds apply to
    probabilities softmax(logits / temperature); use :meth:`apply_logits` on raw logits.
    """

    class_names: list[str]
    thresholds: dict[str, float]
    policy: PolicyConfig
    """How the thresholds were fitted (target, delta, start counts, guarantee kind)."""
    temperature: float = 1.0
    method: str = METHOD
    n_calibration: int = 0
    calibration: dict[str, ClassCalibration] = field(default_factory=dict)
    grid: list[float] = field(default_factory=lambda: default_grid().tolist())
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    n_families: int = 0
    """How many families (classes tested alone, plus the pool) were tested: what a
    ``simultaneous`` guarantee divides delta by."""
    scored_with: str = "fp32"
    """The numeric precision of the graph whose outputs the thresholds were fitted on
    (``"fp32"``: PyTorch or the fp32 ONNX graph; ``"int8"``: the quantised graph). The
    certificate is about that graph's probabilities: the int8 graph moves them by up to
    0.27 on the real validation tweets (``experiments/export/results.md``), so the
    predictor refuses to pair a policy with a graph of the other precision."""
    fitted_with: dict[str, str | None] = field(default_factory=dict)
    """The model the policy was fitted on: ``weights`` (:func:`geoloc.bundle.weights_digest`
    of the trained tensors) and ``fusion`` (:meth:`~geoloc.model.ngram.Fusion.digest` of
    its fused n-gram model, or None), stamped when a bundle is written. A policy is a
    statement about one model's probabilities: a reader refuses it beside other weights,
    or without the fusion it was fitted with. Empty for a policy written before the
    record existed (it cannot be checked)."""

    def __post_init__(self) -> None:
        self.class_names = [str(n) for n in self.class_names]
        missing = [n for n in self.class_names if n not in self.thresholds]
        if missing:
            raise ValueError(f"no threshold for classes {missing}")
        for name, t in self.thresholds.items():
            # a probability threshold, or +inf (never assigned); NaN compares false with
            # everything, so a NaN threshold would silently assign nothing (or all)
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not (
                    0.0 <= t <= 1.0 or t == math.inf):
                raise ValueError(f"threshold of {name!r} is {t!r}: expected a probability "
                                 "in [0, 1] or null (never assigned)")
        if not (isinstance(self.temperature, (int, float))
                and 0.0 < self.temperature < math.inf):
            raise ValueError(f"temperature {self.temperature!r}: expected a positive number")
        if self.scored_with not in SCORED_WITH:
            raise ValueError(f"scored_with {self.scored_with!r}: expected one of "
                             f"{', '.join(SCORED_WITH)}")

    @property
    def target(self) -> float:
        return self.policy.target

    @property
    def delta(self) -> float:
        return self.policy.delta

    @property
    def delta_per_class(self) -> float:
        """The level each family is tested at (delta, or delta / F when simultaneous)."""
        return self.policy.delta_per_class(self.n_families or len(self.class_names))

    def vector(self) -> np.ndarray:
        """Thresholds in class-index order (+inf = never assigned)."""
        return np.array([self.thresholds[n] for n in self.class_names], dtype=np.float64)

    @property
    def never_assigned(self) -> list[str]:
        """Classes with no finite threshold."""
        return [n for n in self.class_names if not np.isfinite(self.thresholds[n])]

    def guarantee(self, name: str) -> str:
        """Guarantee kind of class ``name`` (:attr:`ClassCalibration.guarantee`); a policy
        without calibration records says ``class`` for a finite threshold, else ``none``."""
        cal = self.calibration.get(name)
        if cal is not None:
            return cal.guarantee
        return "class" if np.isfinite(self.thresholds[name]) else "none"

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """softmax(logits / temperature): the probabilities the thresholds refer to."""
        return softmax(logits, self.temperature)

    def apply(self, probs: np.ndarray) -> np.ndarray:
        """Class index of each row, or -1 (UNCERTAIN) when its top probability is below
        the top class's threshold. Only the top class can be assigned: a runner-up above
        its own threshold never is."""
        probs = np.asarray(probs, dtype=np.float64)
        if probs.ndim != 2 or probs.shape[1] != len(self.class_names):
            raise ValueError(
                f"expected probabilities of shape (N, {len(self.class_names)}), got {probs.shape}"
            )
        top = probs.argmax(axis=1)
        conf = probs[np.arange(len(probs)), top]
        # the floor applies to policies fitted before it existed too (min_probability 0)
        floor = np.maximum(self.vector(), self.policy.min_probability)
        return np.where(conf >= floor[top], top, UNCERTAIN_INDEX).astype(np.int64)

    def apply_logits(self, logits: np.ndarray) -> np.ndarray:
        """:meth:`apply` on softmax(logits / temperature)."""
        return self.apply(self.probabilities(logits))

    def decode(self, decisions: np.ndarray) -> list[str]:
        """Class names of decisions from :meth:`apply`, with ``UNCERTAIN`` for -1."""
        return [UNCERTAIN if d == UNCERTAIN_INDEX else self.class_names[d] for d in decisions]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; never-assigned thresholds become null (JSON has no infinity)."""
        return {
            "schema": SCHEMA,
            "method": self.method,
            "method_description": METHOD_DESCRIPTION if self.method == METHOD else "",
            "target": self.target,
            "delta": self.delta,
            "guarantee": self.policy.guarantee,
            "pool_below": self.policy.pool_below,
            "min_probability": self.policy.min_probability,
            "n_families": self.n_families,
            "scored_with": self.scored_with,
            "fitted_with": dict(self.fitted_with),
            "guarantee_per_class": {n: c.guarantee for n, c in self.calibration.items()},
            "delta_per_class": self.delta_per_class,
            "temperature": self.temperature,
            "class_names": list(self.class_names),
            "thresholds": {
                n: (float(t) if np.isfinite(t) else None) for n, t in self.thresholds.items()
            },
            "never_assigned": self.never_assigned,
            "calibration": {
                "n_samples": self.n_calibration,
                "start_counts": list(self.policy.start_counts),
                "per_class": {n: {**asdict(c), "guarantee": c.guarantee}
                              for n, c in self.calibration.items()},
            },
            "grid": [float(g) for g in self.grid],
            "created_at": self.created_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Thresholds:
        """Inverse of :meth:`to_dict` (null thresholds become +inf)."""
        if data.get("schema", SCHEMA) != SCHEMA:
            raise ValueError(f"unsupported thresholds schema {data.get('schema')!r}")
        cal = data.get("calibration", {})
        # Files written before the guarantee kind had a name stored a boolean instead.
        guarantee = data.get("guarantee") or (
            "simultaneous" if data.get("simultaneous") else "per_class")
        return cls(
            class_names=list(data["class_names"]),
            thresholds={
                n: (math.inf if t is None else float(t)) for n, t in data["thresholds"].items()
            },
            policy=PolicyConfig(target=data["target"], delta=data["delta"],
                                start_counts=cal["start_counts"], guarantee=guarantee,
                                pool_below=data.get("pool_below"),
                                min_probability=data.get("min_probability",
                                                         LEGACY_MIN_PROBABILITY)),
            temperature=float(data.get("temperature", 1.0)),
            method=str(data.get("method", METHOD)),
            n_calibration=int(cal.get("n_samples", 0)),
            calibration={n: _class_calibration(c, data["thresholds"].get(n))
                         for n, c in cal.get("per_class", {}).items()},
            n_families=int(data.get("n_families", 0)),
            # files written before the field existed were all fitted on fp32 outputs
            scored_with=str(data.get("scored_with", "fp32")),
            fitted_with=_fitted_with(data.get("fitted_with")),
            grid=[float(g) for g in data.get("grid", default_grid().tolist())],
            created_at=str(data.get("created_at", "")),
        )

    def to_json(self, path: str | Path) -> Path:
        """Write the policy as indented JSON (the file ``geoloc-eval`` and inference load)."""
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def from_json(cls, path: str | Path) -> Thresholds:
        """Load a policy written by :meth:`to_json`; a file that is not one (truncated,
        edited, another JSON) fails naming the file and what is wrong."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, got {type(data).__name__}")
            return cls.from_dict(data)
        except json.JSONDecodeError as err:
            raise InputFileError(f"{path}: not valid JSON (line {err.lineno}: {err.msg}); "
                                 "a thresholds file written by geoloc was expected") from None
        except KeyError as err:
            raise InputFileError(f"{path}: thresholds file lacks the field {err}") from None
        except (TypeError, ValueError, AttributeError) as err:
            raise InputFileError(f"{path}: not a usable thresholds file: {err}") from None


def _fitted_with(record: Any) -> dict[str, str | None]:
    """The ``fitted_with`` record of a policy file ({} when it has none)."""
    if record is None:
        return {}
    if not isinstance(record, dict) or not all(
            isinstance(v, str | None) for v in record.values()):
        raise ValueError(f"fitted_with {record!r}: expected an object of digests (text "
                         "or null)")
    return {str(k): v for k, v in record.items()}


def _class_calibration(data: Mapping[str, Any], threshold: Any = None) -> ClassCalibration:
    """A :class:`ClassCalibration` from its JSON; files written before the pool's numbers
    had their own fields kept them in the country's (``n_kept`` ... ``lower_bound``), and
    the pool's threshold was the country's."""
    fields_ = {k: v for k, v in data.items() if k != "guarantee"}
    if fields_.get("status") == POOLED and "pool_lower_bound" not in fields_:
        fields_["pool_threshold"] = threshold
        for key in ("n_kept", "n_correct", "precision", "lower_bound"):
            fields_[f"pool_{key}"] = fields_.pop(key, None)
        fields_["pool_n_kept"] = fields_["pool_n_kept"] or 0
        fields_["pool_n_correct"] = fields_["pool_n_correct"] or 0
    return ClassCalibration(**fields_)


def guarantee_statement(th: Thresholds, name: str) -> str:
    """The PAC statement a country's threshold carries, in words (per-class table,
    report, model card)."""
    kind = th.guarantee(name)
    conf = f"{1 - th.delta:.0%}"
    if th.policy.simultaneous:
        conf += " jointly with every other certified country"
    if kind == "class":
        return (f"with probability >= {conf} over the calibration draw, its precision on "
                f"data like the calibration population is >= {th.target:.0%}")
    if kind == "pooled":
        pool = th.calibration[name].pool if name in th.calibration else []
        return (f"pooled: with probability >= {conf}, the precision of all assignments to "
                f"the pool ({', '.join(pool)}) together is >= {th.target:.0%}; none for "
                "this country alone")
    return "none: never assigned"
