"""Start-up validation of a composed config.

Everything an ablation varies is checked here, before any weights, data or Lightning
are loaded, so that a bad value in a 20-job multirun fails in seconds with a message
that names the option and the allowed values instead of 10 minutes in.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from geoloc.backbones import BUNDLED_BACKBONES, check_backbone_name
from geoloc.data.sources import MixtureSource, SyntheticSource
from geoloc.data.splits import record_split, validate_eval_split, validate_splits
from geoloc.errors import (
    ConfigError,
    DataConfigError,
    InputFileError,
    LabelSetError,
    ModelConfigError,
)
from geoloc.instantiate import check_targets, instantiate
from geoloc.io import read_jsonl
from geoloc.labels import LabelSet, is_valid_code, normalize_code
from geoloc.model.encoder import (
    validate_encoder_layers,
    validate_pooling,
    validate_text_pooling,
)
from geoloc.model.tokenization import TOKENIZER_VARIANTS
from geoloc.runs import in_multirun, run_dirname

# The package's own conf/ folder (geoloc/conf, shipped in the wheel), as an absolute path:
# Hydra resolves a relative config_path against the calling module, which differs between
# `python -m` and console scripts.
CONF_DIR = str(Path(__file__).resolve().parent / "conf")


def frequent_countries(data: DictConfig, min_profiles: int) -> list[str]:
    """The label set of ``labels=frequent``: every country with at least ``min_profiles``
    labelled rows in the data's train split, most frequent first. The answer to "is
    adding most other countries feasible?" is then one config change.

    Only train rows: counting the validation or test rows would pick the label set by
    the evaluation, and counting the calib rows would pick the hypotheses the policy
    tests by the sample that tests them. Under cross-fitting (``crossfit.folds``) every
    labelled row is also an out-of-fold calibration row, so the label set there depends
    on calibration rows' labels (never on a prediction): a mild selection, stated here
    rather than removed, since no labelled row is left that is not a calibration row.

    Resolved by OmegaConf (``${frequent_countries:${data},N}``) each time the list is
    read, so it is cached per source file, split rule and threshold.
    """
    n = int(min_profiles)
    if n < 1:
        raise ConfigError(f"labels.min_profiles={min_profiles}: expected an integer >= 1")
    source = instantiate(data.source)
    if isinstance(source, SyntheticSource | MixtureSource):
        raise ConfigError("labels=frequent counts the countries of real labelled rows; "
                          f"data.source {type(source).__name__} generates rows for a given "
                          "label set (use labels.countries=[...] or a real source)")
    splits = tuple(sorted((str(k), float(v)) for k, v in data.splits.items()))
    return list(_frequent_countries(source.canonical_jsonl(), splits, int(data.split_seed), n))


@lru_cache(maxsize=16)
def _frequent_countries(path: Path, splits: tuple[tuple[str, float], ...], split_seed: int,
                        min_profiles: int) -> tuple[str, ...]:
    fractions = dict(splits)
    counts: Counter[str] = Counter()
    for rec in read_jsonl(path):
        code = normalize_code(rec.get("country"))
        if code and is_valid_code(code) and \
                record_split(rec, split_seed, fractions) == "train":
            counts[code] += 1
    kept = tuple(c for c, k in sorted(counts.items(), key=lambda x: (-x[1], x[0]))
                 if k >= min_profiles)
    if not kept:
        raise ConfigError(f"labels.min_profiles={min_profiles}: no country of {path} has "
                          f"that many labelled rows in the train split (most: "
                          f"{counts.most_common(1)})")
    return kept


# Registered on import: every entry point imports this module before Hydra resolves.
OmegaConf.register_new_resolver("frequent_countries", frequent_countries, replace=True)
OmegaConf.register_new_resolver("run_dirname", run_dirname, replace=True)


def compose_config(overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
    """Compose ``geoloc/conf/`` with overrides as the entry points see it, without a Hydra app:
    the one composer for tests, notebooks, baselines and ablations."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))


def validate_backbone_name(name: object) -> str:
    """Bundled name, existing local folder, or something shaped like a hub id (the rules
    of :func:`geoloc.backbones.check_backbone_name`, reported as a :class:`ConfigError`)."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(
            f"backbone.name={name!r}: expected {', '.join(BUNDLED_BACKBONES)}, a local "
            "Hugging Face folder or a hub model id"
        )
    try:
        return check_backbone_name(name)
    except (ValueError, FileNotFoundError) as err:
        raise ConfigError(str(err)) from err


def _instantiate_or_explain(node: DictConfig) -> None:
    """Instantiate a config node; a bad value raises :class:`ConfigError` with the
    constructor's own message (Hydra wraps it); a target outside
    :data:`ALLOWED_TARGETS` is refused by :func:`instantiate` before anything is called."""
    try:
        instantiate(node)
    except Exception as err:
        raise ConfigError(str(err.__cause__ or err)) from err


def _number(value: Any, option: str, minimum: float, integer: bool = False) -> float:
    """``value`` as a number >= ``minimum`` (an integer when ``integer``), else a
    :class:`ConfigError` naming ``option``: a mistyped number must fail at start-up, not
    minutes later inside the optimiser or the trainer."""
    ok_type = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_type) or value != value \
            or value < minimum:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{option}={value!r}: expected {kind} >= {minimum:g}")
    return value


def _check_training_numbers(cfg: DictConfig) -> None:
    trainer = cfg.get("trainer") or {}
    if str(trainer.get("accelerator", "cpu")) in ("gpu", "cuda") and \
            not torch.cuda.is_available():
        # Lightning would raise a MisconfigurationException traceback after start-up
        raise ConfigError(f"trainer.accelerator={trainer.accelerator} (trainer=gpu, ddp): "
                          "no CUDA GPU is visible on this machine; use trainer=cpu")
    max_steps = trainer.get("max_steps")
    by_steps = isinstance(max_steps, int) and not isinstance(max_steps, bool) and max_steps > 0
    if trainer.get("max_epochs") is not None and not (trainer.max_epochs == -1 and by_steps):
        # -1 is Lightning's "no epoch limit", meaningful only with trainer.max_steps > 0
        _number(trainer.get("max_epochs"), "trainer.max_epochs", 1, integer=True)
    optimizer = cfg.model.get("optimizer") or {}
    if "lr" in optimizer:
        lr = _number(optimizer.lr, "model.optimizer.lr", 0.0)
        if lr == 0:
            raise ConfigError("model.optimizer.lr=0: a learning rate must be > 0")
    if "weight_decay" in optimizer:
        _number(optimizer.weight_decay, "model.optimizer.weight_decay", 0.0)
    if "warmup_ratio" in cfg.model:
        ratio = _number(cfg.model.warmup_ratio, "model.warmup_ratio", 0.0)
        if ratio > 1:
            raise ConfigError(f"model.warmup_ratio={ratio!r}: expected a number in [0, 1]")
    if "class_balance" in cfg.model:
        balance = _number(cfg.model.class_balance, "model.class_balance", 0.0)
        if balance > 1:
            raise ConfigError(f"model.class_balance={balance!r}: expected a number in [0, 1]")
    if "focal_gamma" in cfg.model:
        _number(cfg.model.focal_gamma, "model.focal_gamma", 0.0)
    if "language_balance" in cfg.model:
        balance = _number(cfg.model.language_balance, "model.language_balance", 0.0)
        if balance > 1:
            raise ConfigError(f"model.language_balance={balance!r}: expected a number in "
                              "[0, 1]")
        if balance > 0 and importlib.util.find_spec("py3langid") is None:
            raise ConfigError("model.language_balance needs py3langid: pip install "
                              "'geoloc[analysis]'")
    if cfg.model.get("tune_top_rows"):
        _number(cfg.model.tune_top_rows, "model.tune_top_rows", 0, integer=True)
        if not cfg.model.get("freeze_word_embeddings", True):
            raise ConfigError("model.tune_top_rows corrects frozen rows: with "
                              "model.freeze_word_embeddings=false every row trains already")
    precision = str(trainer.get("precision", "32-true"))
    if precision.endswith("-true") and precision not in ("32-true", "64-true"):
        # bf16-true / 16-true cast the weights themselves; serving is fp32 (fit gives
        # prediction an fp32 trainer, which assumes fp32 master weights: the -mixed modes)
        raise ConfigError(f"trainer.precision={precision}: trains the weights in reduced "
                          "precision, but the policy is fitted on fp32 outputs; use "
                          f"{precision.split('-')[0]}-mixed (autocast, fp32 weights)")


def _check_crossfit(cfg: DictConfig, folds: Any) -> None:
    """``crossfit.deploy=soup`` needs fold models. ``crossfit.validate=heldout`` makes
    each fold model validate on the rows it then
    predicts for calibration: allowed only when nothing is chosen on that validation (no
    checkpoint monitor, no early stopping), else the out-of-fold outputs would be picked
    on themselves and the certificate would be optimistic."""
    deploy = (cfg.get("crossfit") or {}).get("deploy", "refit")
    if deploy not in ("refit", "soup"):
        raise ConfigError(f"crossfit.deploy={deploy!r}: expected refit or soup")
    if deploy == "soup" and not folds:
        raise ConfigError("crossfit.deploy=soup averages the fold models' weights: set "
                          "crossfit.folds=K")
    if deploy == "soup" and int((cfg.get("model") or {}).get("tune_top_rows") or 0):
        raise ConfigError("crossfit.deploy=soup with model.tune_top_rows: each fold model "
                          "tunes the rows of its own most frequent tokens, so their "
                          "corrections cannot be averaged; use crossfit.deploy=refit")
    validate_on = (cfg.get("crossfit") or {}).get("validate", "val")
    if validate_on not in ("val", "heldout"):
        raise ConfigError(f"crossfit.validate={validate_on!r}: expected val or heldout")
    if validate_on != "heldout":
        return
    if not folds:
        raise ConfigError("crossfit.validate=heldout: only fold models have a held-out "
                          "fold; set crossfit.folds=K or crossfit.validate=val")
    for name, cb in (cfg.get("callbacks") or {}).items():
        target = str(cb.get("_target_", "")) if isinstance(cb, DictConfig) else ""
        if "EarlyStopping" in target or ("ModelCheckpoint" in target and cb.get("monitor")):
            raise ConfigError(
                f"crossfit.validate=heldout with callbacks.{name} choosing on "
                f"{cb.get('monitor')}: each fold model would pick its epoch on the rows it "
                f"calibrates on; set callbacks.{name}.monitor=null (fixed epochs) or "
                "crossfit.validate=val")


def _check_training_splits(cfg: DictConfig, fractions: dict[str, float], folds: Any) -> None:
    """Training needs train rows, and calibration rows unless a saved policy is given or
    cross-fitting calibrates on out-of-fold train rows; caught here, not after training."""
    if fractions["train"] <= 0:
        raise ConfigError("data.splits.train=0: training needs a train split")
    saved_policy = "evaluation" in cfg and cfg.evaluation.get("thresholds")
    if fractions["calib"] <= 0 and not folds and not saved_policy:
        raise ConfigError(
            "data.splits.calib=0: the thresholds are fitted on the calib split; give it a "
            "fraction, or use crossfit.folds=K (out-of-fold calibration) or "
            "evaluation.thresholds=<saved policy>")


def _trains(cfg: DictConfig) -> bool:
    """Whether ``cfg`` trains a model (a ``model`` group; ``geoloc-eval`` and the other
    commands name a trained model folder with ``model_dir=`` instead)."""
    return isinstance(cfg.get("model"), DictConfig)


def _multi_process(cfg: DictConfig) -> bool:
    """Whether the trainer trains in several processes (a DDP strategy)."""
    return str((cfg.get("trainer") or {}).get("strategy", "")).startswith("ddp")


def validate_config(cfg: DictConfig) -> None:
    """Validate the options of a train/eval config; raise :class:`ConfigError`.

    Only groups present are checked: ``geoloc-eval`` has no ``model`` group (the
    checkpoint decides backbone, depth, tokenizer and label set).
    """
    check_targets({k: v for k, v in cfg.items() if k != "hydra"})  # hydra: its own plugins
    try:
        if _trains(cfg):
            LabelSet.from_codes(list(cfg.model.countries))
            backbone = validate_backbone_name(cfg.model.backbone)
            if cfg.model.tokenizer_variant not in TOKENIZER_VARIANTS:
                raise ConfigError(
                    f"tokenizer.variant={cfg.model.tokenizer_variant!r}: expected one of "
                    f"{', '.join(TOKENIZER_VARIANTS)}"
                )
            validate_encoder_layers(cfg.model.encoder_layers, backbone)
            validate_pooling(cfg.model.pooling)
            validate_text_pooling(cfg.model.get("text_pooling"))
        if _trains(cfg):
            _check_training_numbers(cfg)
        folds = (cfg.get("crossfit") or {}).get("folds")
        _check_crossfit(cfg, folds)
        if "data" in cfg and "splits" in cfg.data:
            fractions = validate_splits(dict(cfg.data.splits))
            validate_eval_split(str(cfg.data.get("eval_split", "test")), fractions)
            if _trains(cfg):
                _check_training_splits(cfg, fractions, folds)
        if folds is not None:
            if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
                raise ConfigError(f"crossfit.folds={folds!r}: expected null or an integer >= 2")
            if cfg.get("ckpt_path"):
                raise ConfigError("crossfit.folds with ckpt_path: resuming a cross-fit is not "
                                  "supported; resume without crossfit or start afresh")
            if _multi_process(cfg):
                # each process would predict and then delete the fold checkpoints
                raise ConfigError(f"crossfit.folds with trainer.strategy="
                                  f"{cfg.trainer.strategy}: cross-fitting trains its fold "
                                  "models in one process; use crossfit.folds=null with DDP")
        if _multi_process(cfg):
            if in_multirun():  # Lightning relaunches the command line: the whole sweep
                raise ConfigError(f"trainer.strategy={cfg.trainer.strategy} in a multirun: "
                                  "DDP starts its processes by rerunning the command, "
                                  "which would rerun the sweep; launch DDP runs one by one")
        if "evaluation" in cfg and not cfg.evaluation.get("thresholds"):
            _instantiate_or_explain(cfg.evaluation.policy)
        if cfg.get("fusion"):
            if "evaluation" in cfg and cfg.evaluation.get("thresholds"):
                raise ConfigError("fusion chooses its weight on calibration outputs: it "
                                  "cannot be used with a saved policy (evaluation.thresholds)")
            _instantiate_or_explain(cfg.fusion)
    except (LabelSetError, ModelConfigError, DataConfigError) as err:
        raise ConfigError(str(err)) from err
    except InterpolationResolutionError as err:  # a resolver's own ConfigError, unwrapped
        cause: BaseException | None = err
        while cause is not None and not isinstance(cause, ConfigError | InputFileError):
            cause = cause.__cause__ or cause.__context__  # OmegaConf chains implicitly
        if cause is not None:
            raise cause from None
        raise
