"""The four estimators of an audience's country mix (naive, PCC, ACC, EM) and the
calibration data they learn the model's errors from (:class:`Calibration`,
:func:`load_calibration`); the estimators' algebra is QuaPy's, applied to precomputed
outputs. The package docstring (:mod:`geoloc.inference.audience`) says why each exists.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geoloc.errors import InputFileError

if TYPE_CHECKING:  # the bundle module loads torch and transformers; callers pass one
    from geoloc.bundle import Bundle

#: The estimators, in the order they are reported.
METHODS = ("naive", "pcc", "acc", "em")
#: The estimator to read first (``plot_group``'s default, the notebook's, the README's;
#: every job reports all four): PCC, chosen on the model a user gets
#: (``experiments/audience/results_deployed.md``: the deployed refit on the 777 val
#: tweets it never trained on, the estimators calibrated on the out-of-fold outputs as
#: ``geoloc-audience`` calibrates them). There PCC's 90 % intervals hold 89.5 / 87.3 %
#: of the true shares of the countries in the mix at 100 / 1,000 profiles (95.3 / 93.8 %
#: over all classes, 21 of which are never in a mix), the only estimator inside 85-95 %
#: on the countries in the mix there, and inside it in the out-of-fold experiment too
#: (``results.md``); its mean absolute error is 1.8 / 1.7 points. EM,
#: recommended before from the out-of-fold experiment alone, breaks on the deployed
#: model (2.1 / 1.9 points, 85 / 81 % coverage): the refit gives rare countries
#: probability the fold models did not (VN, 2 out-of-fold tweets: p > 0.02 for 11 of 777
#: val tweets against 1 of 4,397 out-of-fold ones) and EM's prior ratio amplifies it:
#: 28-29 % of each audience lands on countries absent from it (6-7 % in a control with
#: fold-model audiences of the same size). ACC's shares are the most accurate there (1.6
#: / 1.4 points), but its intervals are twice PCC's width and cover 97-98 % (its
#: systematic margin, from the calibration simulation, is about 3 times PCC's).
RECOMMENDED = "pcc"
DESCRIPTIONS = {
    "naive": "classify and count of the assigned labels (UNCERTAIN dropped)",
    "pcc": "probabilistic classify and count (mean calibrated probabilities)",
    "acc": "adjusted classify and count (argmax counts, calibration misclassification rates)",
    "em": "EM prior adjustment (Saerens et al. 2002) of the calibrated probabilities",
}


class AudienceError(ValueError):
    """An option the estimators cannot use; the message names it. (Unusable calibration
    files raise :class:`~geoloc.errors.InputFileError`: they are bad input.)"""


@dataclass(frozen=True)
class Calibration:
    """What the estimators learn from labelled data the model did not train on: the
    calibrated probabilities and true labels of the calibration rows."""

    class_names: tuple[str, ...]
    probabilities: np.ndarray
    """(N, C) calibrated probabilities softmax(logits / T)."""
    labels: np.ndarray
    """(N,) true class indices."""
    decisions: np.ndarray | None = None
    """(N,) the policy's decisions (class or -1), for naive counting's own check."""

    def __post_init__(self) -> None:
        n, c = self.probabilities.shape
        if c != len(self.class_names) or self.labels.shape != (n,):
            raise AudienceError(f"calibration data: {n}x{c} probabilities, "
                                f"{self.labels.shape} labels, {len(self.class_names)} classes")
        if n == 0:
            raise AudienceError("calibration data: no rows")

    @classmethod
    def load(cls, path: str | Path, thresholds: object) -> Calibration:
        """``<ckpt>.calibration.npz`` (``allow_pickle=False``) with the policy's
        temperature applied; its class names must be the policy's."""
        path = Path(path)
        if not path.is_file():
            raise InputFileError(
                f"{path}: no calibration outputs beside the model (geoloc-train saves them "
                "with the thresholds since this version; retrain, or export again)")
        try:
            with np.load(path, allow_pickle=False) as data:
                logits, labels = data["logits"], data["labels"]
                names = tuple(str(x) for x in data["class_names"])
        except (OSError, ValueError, KeyError) as err:
            raise InputFileError(f"{path}: not readable calibration outputs ({err})") from err
        if names != tuple(thresholds.class_names):
            raise InputFileError(f"{path}: classes {list(names)} differ from the policy's "
                                 f"{list(thresholds.class_names)}")
        if labels.ndim != 1 or logits.shape != (len(labels), len(names)) or (
                len(labels) and not 0 <= labels.min() <= labels.max() < len(names)):
            raise InputFileError(f"{path}: {logits.shape} logits and {labels.shape} labels "
                                 f"do not fit {len(names)} classes")
        probs = thresholds.probabilities(logits)
        return cls(names, probs, labels.astype(np.int64), thresholds.apply(probs))

    def prior(self) -> np.ndarray:
        """The label prevalence of the calibration rows."""
        return np.bincount(self.labels, minlength=len(self.class_names)) / len(self.labels)

    def implied_prior(self) -> np.ndarray:
        """The prior the calibrated probabilities themselves imply: their mean over the
        calibration rows. EM starts from it rather than from :meth:`prior`: for
        probabilities that are calibrated only approximately (temperature scaling) it is
        the prior they are consistent with (QuaPy's ``exact_train_prev=False``)."""
        return self.probabilities.mean(axis=0)

    def misclassification(self) -> np.ndarray:
        """(C, C) matrix M[i, j] = P(argmax = i | country = j) (QuaPy's layout)."""
        from quapy.method.aggregative import ACC

        classes = np.arange(len(self.class_names))
        return ACC.getPteCondEstim(classes, self.labels, self.probabilities.argmax(1))

    def resample(self, rng: np.random.Generator) -> Calibration:
        """A bootstrap replicate of the calibration rows."""
        return self.subset(rng.integers(0, len(self.labels), len(self.labels)))

    def subset(self, rows: np.ndarray) -> Calibration:
        """The calibration rows ``rows`` (indices, repeats allowed)."""
        return Calibration(self.class_names, self.probabilities[rows], self.labels[rows],
                           None if self.decisions is None else self.decisions[rows])


def load_calibration(bundle: Bundle) -> tuple[Any, Calibration]:
    """The policy and calibration outputs of a model bundle (:mod:`geoloc.bundle`, opened
    and verified by the caller)."""
    thresholds = bundle.thresholds()
    data = bundle.calibration_file()
    if data is None:
        raise InputFileError(f"{bundle.folder}: holds no calibration outputs (the run that "
                             "saved it applied a saved policy instead of fitting one); "
                             "audience estimation needs them")
    return thresholds, Calibration.load(data, thresholds)


@dataclass(frozen=True)
class _Fitted:
    """The per-calibration quantities the estimators need (computed once per replicate)."""

    rates: np.ndarray
    prior: np.ndarray

    @classmethod
    def of(cls, calibration: Calibration) -> _Fitted:
        return cls(calibration.misclassification(), calibration.implied_prior())


def _estimate(method: str, probabilities: np.ndarray, decisions: np.ndarray,
              fitted: _Fitted) -> np.ndarray:
    """One estimator's prevalence vector (C,) for one sample of rows."""
    from quapy.functional import normalize_prevalence
    from quapy.method.aggregative import ACC, EMQ

    n, c = probabilities.shape
    if method == "naive":
        assigned = decisions[decisions >= 0]
        if len(assigned) == 0:
            return np.full(c, np.nan)
        return np.bincount(assigned, minlength=c) / len(assigned)
    if method == "pcc":
        return probabilities.mean(axis=0)
    if method == "acc":
        counts = np.bincount(probabilities.argmax(1), minlength=c) / n
        # Forman's ACC: solve M p = q exactly (the counts themselves when M is singular),
        # then clip to the simplex. QuaPy's constrained "minimize" solver is 50-200 ms a
        # call with 37 classes, too slow for hundreds of bootstrap replicates per group.
        raw = ACC.solve_adjustment(class_conditional_rates=fitted.rates,
                                   unadjusted_counts=counts, method="inversion",
                                   solver="exact-cc")
        return normalize_prevalence(raw, method="clip")
    if method == "em":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "might not have converged": reported by MAE
            prevalence, _ = EMQ.EM(fitted.prior, probabilities.astype(np.float64))
        return np.asarray(prevalence)
    raise AudienceError(f"method={method!r}: expected one of {', '.join(METHODS)}")


def check_methods(methods: Sequence[str]) -> list[str]:
    """``methods`` validated (unknown names refused, order kept)."""
    out = [str(m) for m in methods]
    unknown = [m for m in out if m not in METHODS]
    if unknown or not out:
        raise AudienceError(f"methods={out}: expected a non-empty subset of "
                            f"{', '.join(METHODS)}")
    return out


def check_options(**options: float) -> None:
    """Validate the numeric options of audience estimation that are given (``bootstrap``:
    an integer >= 0; ``buckets``, ``chunk_rows``: integers >= 1; ``level``: in (0, 1));
    the one place their bounds live, for the library and the command line alike."""
    for name, value in options.items():
        if name == "level":
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 < value < 1:
                raise AudienceError(f"level={value}: expected a number in (0, 1)")
            continue
        least = 0 if name == "bootstrap" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise AudienceError(f"{name}={value}: expected an integer >= {least}")
