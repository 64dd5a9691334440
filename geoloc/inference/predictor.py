"""The predictor: profiles in, a country or UNCERTAIN out, under the saved policy.

One class serves every way of running a trained model (``geoloc-predict``, the benchmark,
Ray Data actors, notebooks): it owns the tokenizer, a *scorer* that turns token ids into
logits, the saved policy (temperature, per-country thresholds and their guarantee kinds)
and, when the run fused one, the char n-gram model. It loads a model bundle
(:mod:`geoloc.bundle`, verified against its manifest first):

- the folder training writes (``<run>/model``), scored by the Lightning module's network
  in PyTorch, or
- an export of it (``geoloc-export``), scored by the exported
  :class:`~geoloc.inference.modeling_geoloc.GeolocForSequenceClassification` in PyTorch
  (``backend="torch"``) or by ONNX Runtime (``backend="onnx"``, fp32 or int8 graph).

Speed (see ``make bench``): texts are tokenised once per chunk without padding, sorted by
length and cut into batches padded only to their own longest row, so a batch of short
captions never pays for one long bio; forward passes run under ``torch.inference_mode``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from geoloc.bundle import Bundle, open_model
from geoloc.bundle.files import (
    FUSION_ARRAYS,
    FUSION_FILE,
    HF_CONFIG_FILE,
    HF_WEIGHTS_FILE,
    ONNX_FILE,
    ONNX_INT8_FILE,
    THRESHOLDS_FILE,
    WEIGHTS_FILE,
)
from geoloc.data.schema import ProfileRecord, profile_text
from geoloc.errors import PredictorError
from geoloc.inference.modeling_geoloc import GeolocForSequenceClassification
from geoloc.io import PathLike
from geoloc.labels import UNCERTAIN
from geoloc.model.tokenization import encode_texts, pad_ids, token_count

if TYPE_CHECKING:  # geoloc.evaluation loads torchmetrics (~1.3 s): types only
    from geoloc.evaluation import Thresholds

log = logging.getLogger("geoloc")

BACKENDS = ("torch", "onnx")


class Scorer(Protocol):
    """Token ids and mask (int64 arrays, batch x length) -> logits (float32, batch x C)
    and, when ``embeddings``, the pooled profile embedding the head reads (batch x H)."""

    has_embedding: bool

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray,
                 embeddings: bool = False) -> tuple[np.ndarray, np.ndarray | None]: ...


class TorchScorer:
    """A PyTorch network under ``inference_mode``, as its two halves: ``embed`` (encoder
    and pooling: the shared profile embedding) and ``head`` (the linear classifier), so
    one forward pass yields both the logits and the embedding."""

    has_embedding = True

    def __init__(self, model: Any) -> None:
        """``model``: the Lightning module's :class:`~geoloc.model.encoder.ProfileClassifier`
        (head ``head``) or an exported ``GeolocForSequenceClassification`` (``classifier``)."""
        self.model = model.eval()
        self.embed = model.embed
        self.head = model.head if hasattr(model, "head") else model.classifier

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray,
                 embeddings: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        with torch.inference_mode():
            pooled = self.embed(input_ids=torch.from_numpy(input_ids),
                                attention_mask=torch.from_numpy(attention_mask))
            logits = self.head(pooled)  # dropout is the identity in eval mode
        return logits.float().numpy(), (pooled.float().numpy() if embeddings else None)


class OnnxScorer:
    """An ONNX graph (``model.onnx`` or ``model.int8.onnx``) run by ONNX Runtime on CPU."""

    def __init__(self, path: PathLike, threads: int | None = None) -> None:
        import onnxruntime as ort  # ~1 s at import; only the ONNX backend needs it

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])
        self.has_embedding = "embedding" in {o.name for o in self.session.get_outputs()}

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray,
                 embeddings: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        names = ["logits", "embedding"] if embeddings else ["logits"]
        out = self.session.run(names, {"input_ids": input_ids,
                                       "attention_mask": attention_mask})
        return out[0], (out[1] if embeddings else None)


def length_sorted_batches(tokenizer: Any, texts: Sequence[str], max_length: int,
                          batch_size: int, sort: bool = True, per_text: bool = False
                          ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(rows, input_ids, attention_mask)`` batches covering ``texts``: tokenised once
    without padding (``per_text``: each text of a profile on its own, batches of
    rows x texts x tokens), ordered by token count (when ``sort``) and padded only to each
    batch's longest; ``rows`` are the batch's positions in ``texts``. No library batcher
    does this for plain arrays (``DataCollatorWithPadding`` pads but does not sort)."""
    n = len(texts)
    if n == 0:
        return
    ids = encode_texts(tokenizer, texts, max_length, per_text)
    lengths = np.fromiter((token_count(x) for x in ids), dtype=np.int64, count=n)
    order = np.argsort(lengths, kind="stable") if sort else np.arange(n)
    for start in range(0, n, batch_size):
        rows = order[start:start + batch_size]
        batch, mask = pad_ids([ids[r] for r in rows], tokenizer.pad_token_id)
        yield rows, batch, mask


@dataclass
class Predictions:
    """What the policy decided for a list of texts (arrays in input order)."""

    class_names: list[str]
    probabilities: np.ndarray
    """Calibrated probabilities softmax(logits / T), N x C."""
    decisions: np.ndarray
    """Class index, or -1 for UNCERTAIN."""
    guarantee: list[str]
    """Guarantee kind of each class (``class``, ``pooled`` or ``none``)."""
    top_k: int = 3
    embeddings: np.ndarray | None = None
    """The pooled profile embeddings (N x H, float32), when asked for."""
    all_probabilities: bool = False
    """Also put every class's probability in each row (what audience estimation reads)."""

    def rows(self, records: Sequence[ProfileRecord], lines: Sequence[int | None]
             ) -> list[dict]:
        """One output row per record (the columns of :data:`OUTPUT_COLUMNS`)."""
        k = min(self.top_k, len(self.class_names))
        order = np.argsort(-self.probabilities, axis=1, kind="stable")[:, :k]
        out = []
        for i, rec in enumerate(records):
            d = int(self.decisions[i])
            top = order[i]
            out.append({
                "id": rec["id"],
                "line": None if lines[i] is None else int(lines[i]),
                "country": UNCERTAIN if d < 0 else self.class_names[d],
                "guarantee": None if d < 0 else self.guarantee[d],
                "probability": float(self.probabilities[i, top[0]]),
                "argmax": self.class_names[top[0]],
                "top_countries": [self.class_names[j] for j in top],
                "top_probabilities": [float(self.probabilities[i, j]) for j in top],
            })
            if "group" in rec:
                out[-1][GROUP_COLUMN] = rec["group"]
            if self.all_probabilities:
                out[-1][PROBABILITIES_COLUMN] = self.probabilities[i].tolist()
            if self.embeddings is not None:
                out[-1][EMBEDDING_COLUMN] = self.embeddings[i].tolist()
        return out


#: Columns of every prediction row, in order (``top_*`` hold ``top_k`` entries).
OUTPUT_COLUMNS = ("id", "line", "country", "guarantee", "probability", "argmax",
                  "top_countries", "top_probabilities")
#: The extra column of ``embeddings=true``: the pooled profile embedding (list of floats).
EMBEDDING_COLUMN = "embedding"
#: The extra column of a mapped ``group`` column: the group the profile belongs to.
GROUP_COLUMN = "group"
#: The extra column of ``probabilities=true``: every class's calibrated probability, in
#: the order of the model's classes (``id2label`` of an export).
PROBABILITIES_COLUMN = "probabilities"


def check_precision(thresholds: Thresholds, bundle: Bundle, quantized: bool,
                    allow: bool) -> None:
    """Refuse a policy fitted on outputs of another numeric precision than the graph that
    will score (fp32 thresholds on the int8 graph, or the reverse): its certificate is
    about the other graph's probabilities. Written by hand: the pairing is geoloc's own."""
    graph = "int8" if quantized else "fp32"
    if thresholds.scored_with == graph or allow:
        return
    path = bundle.path(THRESHOLDS_FILE)
    if graph == "int8":
        raise PredictorError(
            f"{path}: fitted on fp32 outputs; the int8 graph moves probabilities by up to "
            "0.27 and changes 10 of 777 decisions on the real validation tweets, so the "
            "90 % certificate does not carry over. Fit int8 thresholds with geoloc-calibrate "
            f"model_dir={bundle.folder} backend=onnx quantized=true input=LABELLED "
            "output=NEW_FOLDER, or pass allow_precision_mismatch=true to decide without "
            "the certificate")
    raise PredictorError(
        f"{path}: fitted on int8 outputs (geoloc-calibrate quantized=true); score with "
        "backend=onnx quantized=true, or pass allow_precision_mismatch=true to decide "
        "without the certificate")


#: What another ``max_length`` did on the real validation tweets (777), the recipe's
#: model (trained at 64 tokens) with its saved policy unchanged: length -> (accuracy %,
#: precision of assigned countries %). From ``experiments/real_data/max_length.md``.
MAX_LENGTH_MEASURED = {"trained": 64, "file": "experiments/real_data/max_length.md",
                       "at": {8: (69.8, 94.4), 16: (71.9, 94.6), 32: (72.6, 94.4),
                              48: (72.7, 94.4), 64: (72.7, 94.4), 128: (72.7, 94.4)},
                       # whole synthetic profiles, the same file's second table
                       "synthetic": {"trained": 96, "length": 5, "accuracy": (68.2, 53.3),
                                     "precision": (95.9, 87.1)}}


def check_max_length(max_length: int | None, trained: int, config: dict[str, Any]) -> None:
    """Refuse a ``max_length`` past the encoder's position table (it would fail inside
    the network with a tensor-size error, after the job had started); warn about one
    other than the trained length, which the policy's certificate was not measured at,
    with what the same change of length did on the real validation tweets."""
    if max_length is None or int(max_length) == trained:
        return
    if int(max_length) < 1:
        raise PredictorError(f"max_length={max_length}: expected a positive number of tokens")
    limit = int(config.get("max_position_embeddings") or 0)
    if config.get("model_type") in ("xlm-roberta", "roberta", "camembert"):
        limit -= int(config.get("pad_token_id", 1)) + 1  # positions start after padding
    if limit and int(max_length) > limit:
        raise PredictorError(f"max_length={max_length}: the encoder has positions for "
                             f"{limit} tokens; the model was trained at {trained}")
    measured = MAX_LENGTH_MEASURED
    base = measured["trained"]
    # the measured cut nearest to this one, as a share of the trained length
    near = min(measured["at"], key=lambda n: abs(n / base - int(max_length) / trained))
    (acc0, prec0), (acc, prec) = measured["at"][base], measured["at"][near]
    if int(max_length) > trained:
        consequence = (f"On the real validation tweets, {near} tokens instead of {base} "
                       f"moved accuracy {acc0:.1f} -> {acc:.1f} % and the precision of "
                       f"assigned countries {prec0:.1f} -> {prec:.1f} % ({measured['file']})"
                       "; longer inputs are read further than the policy saw")
    else:
        synthetic = measured["synthetic"]
        consequence = (
            f"On the real validation tweets (short: 14 % over 32 tokens), cutting at "
            f"{near} instead of {base} moved accuracy {acc0:.1f} -> {acc:.1f} % and the "
            f"precision of assigned countries {prec0:.1f} -> {prec:.1f} % "
            f"({measured['file']}). Longer profiles lose more: on synthetic ones (a model "
            f"trained at {synthetic['trained']} tokens), {synthetic['length']} tokens moved "
            f"them {synthetic['accuracy'][0]:.1f} -> {synthetic['accuracy'][1]:.1f} % and "
            f"{synthetic['precision'][0]:.1f} -> {synthetic['precision'][1]:.1f} %. The "
            f"run's summary counts the rows cut shorter than at {trained}")
    log.warning("max_length=%d: the policy was certified on inputs cut at %d tokens, the "
                "length the model was trained at; at %d its per-country precision was not "
                "measured, so the 90 %% promise does not cover these decisions. %s.",
                int(max_length), trained, int(max_length), consequence)


@dataclass
class Predictor:
    """Tokenizer + scorer + saved policy (+ fused n-gram model); see the module docstring."""

    tokenizer: Any
    scorer: Scorer
    thresholds: Any
    max_length: int
    fusion: Any = None
    batch_size: int = 64
    top_k: int = 3
    sort_by_length: bool = True
    """Batch texts of similar length together (off only to measure what it buys)."""
    source: str = ""
    """Where the model came from (a checkpoint or export folder), for logs and manifests."""
    identity: dict[str, Any] = field(default_factory=dict)
    """The options that decide the output besides the files (model path, backend)."""
    model_sha256: dict[str, str] = field(default_factory=dict)
    """SHA-256 of every file whose bytes decide the output (weights, policy, fused n-gram
    model), as the bundle's manifest records them and :meth:`Bundle.open` verified."""
    embeddings: bool = False
    """Also return the pooled profile embedding (the head's input), from the same pass:
    the one shared representation other classifiers can reuse."""
    probabilities: bool = False
    """Also return every class's calibrated probability (``geoloc-audience`` reads them)."""
    per_text: bool = False
    """A whole-profile model (``model.text_pooling``): each text of a profile is its own
    sequence of up to ``max_length`` tokens."""
    trained_length: int = 0
    """The length the model was trained (and its policy certified) at; 0: unknown."""
    cut_rows: list[int] = field(default_factory=lambda: [0, 0])
    """Rows scored, and of them rows that filled ``max_length`` when it is shorter than
    the trained length (cut shorter than the certificate saw): what a job reports."""
    provenance: dict[str, Any] = field(default_factory=dict)
    """What a prediction file records of the model that wrote it
    (:meth:`~geoloc.bundle.Bundle.provenance` and the ``max_length`` used): a later
    reader (``geoloc-audience kind=predictions``) refuses a file of another model."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise PredictorError(f"batch_size={self.batch_size}: must be >= 1")
        if self.top_k < 1:
            raise PredictorError(f"top_k={self.top_k}: must be >= 1")
        if self.embeddings and not self.scorer.has_embedding:
            raise PredictorError(
                f"embeddings=true: the ONNX graph of {self.source} has no 'embedding' "
                "output (exported by an older geoloc); export it again")
        self.class_names = list(self.thresholds.class_names)
        self.guarantee = [self.thresholds.guarantee(n) for n in self.class_names]

    def fingerprint(self) -> dict[str, Any]:
        """What makes two predictors give the same output: a resumed batch job refuses
        parts written by another. The files' hashes are the manifest's, checked when the
        bundle was opened: nothing is hashed twice."""
        return {**self.identity, "max_length": self.max_length, "top_k": self.top_k,
                "embeddings": self.embeddings, "probabilities": self.probabilities,
                "sha256": dict(self.model_sha256)}

    # -- loading -------------------------------------------------------------------------

    @classmethod
    def load(cls, model: Bundle | PathLike, backend: str = "torch", quantized: bool = False,
             batch_size: int = 64, top_k: int = 3, threads: int | None = None,
             max_length: int | None = None, embeddings: bool = False,
             probabilities: bool = False, allow_precision_mismatch: bool = False
             ) -> Predictor:
        """A model bundle (:mod:`geoloc.bundle`: what training writes, or an export of
        it), opened and verified here when given as a path. ``backend="torch"`` scores
        with the Lightning module's network (or, in an export, the exported
        ``transformers`` class: no backbone to build); ``"onnx"`` with an export's graph.

        The policy must have been fitted on outputs of the graph's precision
        (``Thresholds.scored_with``): fp32 thresholds on the int8 graph, or int8 ones on
        an fp32 graph, are refused unless ``allow_precision_mismatch`` (the decisions are
        then made without the certificate; the speed benchmark does this)."""
        if backend not in BACKENDS:
            raise PredictorError(f"backend={backend!r}: expected one of {', '.join(BACKENDS)}")
        if quantized and backend != "onnx":
            raise PredictorError("quantized=true is the int8 ONNX graph: use backend=onnx")
        bundle = model if isinstance(model, Bundle) else open_model(model)
        if threads:
            torch.set_num_threads(int(threads))
        thresholds = bundle.thresholds()
        if backend == "onnx":
            name = ONNX_INT8_FILE if quantized else ONNX_FILE
            if not bundle.has(name):
                raise PredictorError(f"{bundle.path(name)}: missing; export the model with "
                                     "onnx=true" + (" quantize=true" if quantized else ""))
        check_precision(thresholds, bundle, quantized, allow_precision_mismatch)
        if backend == "onnx":
            weights = bundle.path(name)
            scorer: Scorer = OnnxScorer(weights, threads)
            tokenizer = bundle.tokenizer()
        elif bundle.is_export:  # the exported transformers class: no backbone to build
            weights = bundle.path(HF_WEIGHTS_FILE)
            scorer = TorchScorer(GeolocForSequenceClassification.from_pretrained(
                str(bundle.folder)))
            tokenizer = bundle.tokenizer()
        else:
            weights = bundle.path(WEIGHTS_FILE)
            module = bundle.load_module()
            scorer, tokenizer = TorchScorer(module.net), module.tokenizer
        if bundle.is_export:
            config = json.loads(bundle.path(HF_CONFIG_FILE).read_text(encoding="utf-8"))
        else:
            config = module.net.encoder.config.to_dict()
        check_max_length(max_length, bundle.max_length, config)
        fusion = bundle.fusion()
        files = (weights.name, THRESHOLDS_FILE,
                 *((FUSION_FILE, FUSION_ARRAYS) if fusion else ()))
        identity = {"model": str((bundle.source or bundle.folder).resolve()),
                    "backend": backend, "quantized": quantized}
        length = int(max_length or bundle.max_length)
        return cls(tokenizer, scorer, thresholds, length,
                   fusion=fusion, batch_size=batch_size, top_k=top_k,
                   source=str(bundle.folder), identity=identity,
                   model_sha256={name: bundle.sha256(name) for name in files},
                   embeddings=embeddings, probabilities=probabilities,
                   per_text=bundle.hparams.get("text_pooling") is not None,
                   trained_length=bundle.max_length,
                   provenance={**bundle.provenance(), "max_length": length,
                               "precision": "int8" if quantized else "fp32"})

    # -- scoring -------------------------------------------------------------------------

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Model logits of ``texts`` (fused with the n-gram model when there is one),
        computed in length-sorted, dynamically padded batches."""
        return self._score(texts, embeddings=False)[0]

    def _score(self, texts: Sequence[str], embeddings: bool
               ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`logits` and, when ``embeddings``, the pooled embeddings, in one pass."""
        n = len(texts)
        n_classes = len(self.class_names)
        out = np.zeros((n, n_classes), dtype=np.float32)
        emb = None
        if n == 0:
            return out, (np.zeros((0, 0), dtype=np.float32) if embeddings else None)
        for rows, batch, mask in length_sorted_batches(
                self.tokenizer, texts, self.max_length, self.batch_size, self.sort_by_length,
                self.per_text):
            logits, pooled = self.scorer(batch, mask, embeddings)
            out[rows] = logits
            self._count_cut(mask)
            if pooled is not None:
                if emb is None:
                    emb = np.zeros((n, pooled.shape[1]), dtype=np.float32)
                emb[rows] = pooled
        if self.fusion is not None:
            out = self.fusion.apply(out, list(texts))
        return out, emb

    @property
    def cuts_shorter(self) -> bool:
        """Whether ``max_length`` is shorter than the length the policy was certified at."""
        return bool(self.trained_length) and self.max_length < self.trained_length

    def _count_cut(self, mask: np.ndarray) -> None:
        """Count a batch's rows, and those that filled a ``max_length`` shorter than the
        trained one (a whole profile: any of its texts did; a row of exactly that many
        tokens counts, as nothing tells it from a cut one)."""
        self.cut_rows[0] += len(mask)
        if self.cuts_shorter:
            full = mask.sum(axis=-1) >= self.max_length
            self.cut_rows[1] += int((full.any(axis=1) if full.ndim > 1 else full).sum())

    def cut_summary(self) -> str | None:
        """One line on the rows this process scored that were cut shorter than the
        trained length, or None when ``max_length`` is not shorter."""
        if not self.cuts_shorter:
            return None
        scored, cut = self.cut_rows
        return (f"max_length={self.max_length}: {cut} of {scored} rows "
                f"({100 * cut / max(scored, 1):.0f} %) were cut shorter than at the "
                f"trained {self.trained_length} tokens; their decisions are outside the "
                "90 % certificate")

    def predict_texts(self, texts: Sequence[str]) -> Predictions:
        """Calibrated probabilities and decisions for model texts (and their embeddings,
        when the predictor was loaded with ``embeddings=True``)."""
        logits, emb = self._score(texts, self.embeddings)
        probs = self.thresholds.probabilities(logits)
        return Predictions(self.class_names, probs, self.thresholds.apply(probs),
                           self.guarantee, self.top_k, emb, self.probabilities)

    def predict_records(self, records: Sequence[ProfileRecord],
                        lines: Sequence[int | None] | None = None) -> list[dict]:
        """Output rows (:data:`OUTPUT_COLUMNS`) for canonical profile records."""
        texts = [profile_text(r["bio"], r["captions"]) for r in records]
        lines = list(range(1, len(records) + 1)) if lines is None else lines
        return self.predict_texts(texts).rows(records, lines)
