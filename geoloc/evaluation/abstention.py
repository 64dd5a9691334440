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
   before the stop (maximum coverage). A wrong certification needs the first true null
   of the sequence to be rejected, so the chance of certifying any threshold whose
   precision is below target is <= the level of one test, without splitting it over the
   ~100 thresholds of the grid as a Bonferroni correction would.
3. **Where sequences start.** Thresholds near 1 keep a handful of predictions whose bound
   cannot reach the target even when all are right (n/n correct needs
   n >= ln(delta)/ln(target): 29 at 0.90/0.05), and a weak first test ends the scan
   before it reaches well-populated thresholds: a class 96 % right at every confidence
   fails a first test on 100 predictions about a third of the time. A start that keeps
   many predictions, on the other hand, misses a class whose precise region is small.
   So each class runs a few sequences, each starting at the strictest grid threshold that keeps at least
   s calibration predictions of c, for s in ``start_counts`` (default 50, 100, 300, 1000,
   3000, 10000, those <= n_c; a class with fewer than 50 but >= the 29 above starts
   once, with all its predictions), and delta is split equally between them (Bonferroni
   over sequences). t_c is the loosest threshold any sequence certifies. Starts depend
   only on how many predictions lie above each threshold, never on whether they are
   right; the guarantee then rests on LTT's usual assumption that precision does not
   rise as the threshold is loosened, so that every threshold looser than the first
   false one is false as well.
4. A class with fewer calibration predictions than that minimum, or none of whose
   sequences passes its first test, gets t_c = +inf: it is never assigned, and its
   ``status`` says why.

The guarantee is per class: for each class with a finite threshold, with probability
>= 1 - delta over the calibration sample, its precision on new data drawn like the
calibration split is >= target. ``guarantee="simultaneous"`` tests every class at delta / C so
that the statement holds for all classes at once. The temperature is treated as fixed;
fitted on the same split it is one scalar chosen by likelihood, not by precision, but pass
a temperature fitted elsewhere to be strict.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from geoloc.errors import InputFileError
from geoloc.evaluation.calibration import fit_temperature, softmax
from geoloc.evaluation.metrics import check_outputs
from geoloc.evaluation.stats import clopper_pearson, min_samples_for_target
from geoloc.evaluation.sweep import counts_above, default_grid
from geoloc.io import write_json_atomic
from geoloc.labels import OTHER, UNCERTAIN

#: Name of the threshold-selection method, written into thresholds.json and the report.
METHOD = "fixed_sequence_clopper_pearson"
METHOD_DESCRIPTION = (
    "fixed-sequence testing (Learn-then-Test) from the strictest threshold to the loosest, "
    "each threshold certified when the one-sided Clopper-Pearson lower confidence bound of "
    "its calibration precision is >= target, stopping at the first failure; per class a few "
    "sequences start where >= 50, 100, 300, ... calibration predictions are kept, with "
    "delta split equally between them"
)
#: Array value of an UNCERTAIN decision.
UNCERTAIN_INDEX = -1
SCHEMA = "geoloc.thresholds/v1"

# Per-class status values.
ASSIGNED = "assigned"
NO_PREDICTIONS = "no_calibration_predictions"
TOO_FEW = "too_few_calibration_predictions"
BOUND_BELOW_TARGET = "bound_below_target"
POOLED = "pooled"
POOL_FAILED = "pool_bound_below_target"
STATUS_TEXT = {
    ASSIGNED: "threshold certified on the calibration split",
    POOLED: "rare country: shares the threshold certified for the pooled rare countries",
    POOL_FAILED: "rare country: the pooled rare countries' bound never reaches the target",
    NO_PREDICTIONS: "never predicted on the calibration split",
    TOO_FEW: "too few calibration predictions for the bound to reach the target",
    BOUND_BELOW_TARGET: "lower confidence bound of precision never reaches the target",
}


#: Guarantee kinds. ``per_class``: each class with a threshold keeps precision >= target
#: with probability >= 1 - delta; ``simultaneous``: all of them at once (delta / C each).
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
    None: every class is tested alone. See :func:`fit_thresholds`."""

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
        if self.guarantee not in GUARANTEES:
            raise ValueError(f"evaluation.policy.guarantee={self.guarantee!r}: expected one "
                             f"of {', '.join(GUARANTEES)}")

    @property
    def simultaneous(self) -> bool:
        return self.guarantee == "simultaneous"

    def delta_per_class(self, n_classes: int) -> float:
        """The level each class is tested at (delta, or delta / C when simultaneous)."""
        return self.delta / n_classes if self.simultaneous else self.delta

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "delta": self.delta,
                "start_counts": list(self.start_counts), "guarantee": self.guarantee,
                "pool_below": self.pool_below}


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
    """Level of each test: delta (/ C when simultaneous) / number of sequences."""
    n_tests: int = 0
    pool: list[str] = field(default_factory=list)
    """For a pooled country: the countries of its pool."""

    @property
    def guarantee(self) -> str:
        """What the threshold's precision bound is about, derived from ``status``:
        ``class`` (this class alone), ``pooled`` (all assignments to the pooled rare
        countries together; the counts and bound above are then the pool's), or ``none``
        (never assigned)."""
        return {ASSIGNED: "class", POOLED: "pooled"}.get(self.status, "none")


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

    @property
    def target(self) -> float:
        return self.policy.target

    @property
    def delta(self) -> float:
        return self.policy.delta

    @property
    def delta_per_class(self) -> float:
        """The level each class is tested at (delta, or delta / C when simultaneous)."""
        return self.policy.delta_per_class(len(self.class_names))

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
        return np.where(conf >= self.vector()[top], top, UNCERTAIN_INDEX).astype(np.int64)

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
                                pool_below=data.get("pool_below")),
            temperature=float(data.get("temperature", 1.0)),
            method=str(data.get("method", METHOD)),
            n_calibration=int(cal.get("n_samples", 0)),
            calibration={n: ClassCalibration(**{k: v for k, v in c.items() if k != "guarantee"})
                         for n, c in cal.get("per_class", {}).items()},
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


def _fit_class(
    confidence: np.ndarray,
    correct: np.ndarray,
    n_support: int,
    grid_desc: np.ndarray,
    target: float,
    delta: float,
    start_counts: Sequence[int],
) -> tuple[float, ClassCalibration]:
    """Fixed-sequence tests for one class; see the module docstring."""
    n_pred = len(confidence)
    if n_pred == 0:
        return math.inf, ClassCalibration(NO_PREDICTIONS, 0, n_support)
    kept, right = counts_above(confidence, correct, grid_desc)
    counts = [s for s in start_counts if s <= n_pred] or [n_pred]
    # A start keeping fewer predictions than n/n-correct needs to pass a test at the
    # per-sequence level could never certify anything: drop it rather than spend delta.
    n_min = min_samples_for_target(target, delta / len(counts))
    counts = [s for s in counts if s >= n_min]
    if not counts:
        if n_pred < min_samples_for_target(target, delta):
            return math.inf, ClassCalibration(TOO_FEW, n_pred, n_support)
        counts = [n_pred]
    starts = sorted({int(np.flatnonzero(kept >= s)[0]) for s in counts})
    level = delta / len(starts)
    bounds = clopper_pearson(right, kept, level)
    chosen: int | None = None
    tested: set[int] = set()
    for start in starts:
        j = start
        while j < len(grid_desc):
            tested.add(j)
            if bounds[j] < target:  # first failure: this sequence stops here
                break
            chosen = j if chosen is None else max(chosen, j)
            j += 1
    info = dict(
        n_predicted=n_pred,
        n_support=n_support,
        start_thresholds=[float(grid_desc[j]) for j in starts],
        delta_per_test=level,
        n_tests=len(tested),
    )
    if chosen is None:
        best = max(tested, key=lambda j: bounds[j])
        return math.inf, ClassCalibration(
            BOUND_BELOW_TARGET,
            precision=float(right[best] / kept[best]),
            lower_bound=float(bounds[best]),
            **info,
        )
    return float(grid_desc[chosen]), ClassCalibration(
        ASSIGNED,
        n_kept=int(kept[chosen]),
        n_correct=int(right[chosen]),
        precision=float(right[chosen] / kept[chosen]),
        lower_bound=float(bounds[chosen]),
        **info,
    )


def fit_thresholds(
    probs: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    policy: PolicyConfig,
    *,
    temperature: float = 1.0,
    grid: np.ndarray | None = None,
) -> Thresholds:
    """Choose each class's threshold on calibration probabilities (see module docstring).

    ``probs`` must already be softmax(logits / temperature); ``temperature`` is only
    recorded so that :meth:`Thresholds.apply_logits` reproduces them.
    """
    probs, labels, names = check_outputs(probs, labels, class_names)
    grid = default_grid() if grid is None else np.asarray(grid, dtype=np.float64)
    grid_desc = np.unique(grid)[::-1]
    delta_c = policy.delta_per_class(len(names))
    pred = probs.argmax(axis=1)
    conf = probs.max(axis=1)
    correct = pred == labels
    thresholds: dict[str, float] = {}
    calibration: dict[str, ClassCalibration] = {}
    n_pred = np.bincount(pred, minlength=len(names))
    # Which countries are pooled depends only on how often each is *predicted*, never on
    # whether the predictions are right, so the pooled test stays a valid test (the same
    # argument as for the start counts).
    pooled = [c for c, name in enumerate(names) if name != OTHER and policy.pool_below
              and 0 < n_pred[c] < policy.pool_below]
    for c, name in enumerate(names):
        if c in pooled:
            continue
        mask = pred == c
        thresholds[name], calibration[name] = _fit_class(
            conf[mask], correct[mask], int((labels == c).sum()), grid_desc,
            policy.target, delta_c, policy.start_counts,
        )
    if pooled:
        mask = np.isin(pred, pooled)
        t_pool, pool_info = _fit_class(
            conf[mask], correct[mask], int(np.isin(labels, pooled).sum()), grid_desc,
            policy.target, delta_c, policy.start_counts,
        )
        certified = math.isfinite(t_pool)
        for c in pooled:
            thresholds[names[c]] = t_pool
            calibration[names[c]] = replace(
                pool_info, status=POOLED if certified else POOL_FAILED, n_predicted=int(n_pred[c]), n_support=int((labels == c).sum()),
                pool=[names[i] for i in pooled])
    return Thresholds(
        class_names=names,
        thresholds=thresholds,
        policy=policy,
        temperature=float(temperature),
        n_calibration=len(labels),
        calibration=calibration,
        grid=[float(g) for g in np.unique(grid)],
    )


def fit_policy(
    logits: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    policy: PolicyConfig,
    *,
    temperature: float | None = None,
    grid: np.ndarray | None = None,
) -> Thresholds:
    """Fit the temperature (unless given), then the per-class thresholds, on calibration
    logits: the whole abstention policy from one call."""
    logits, labels, names = check_outputs(logits, labels, class_names)
    if temperature is None:
        temperature = fit_temperature(logits, labels)
    return fit_thresholds(softmax(logits, temperature), labels, names, policy,
                          temperature=temperature, grid=grid)
