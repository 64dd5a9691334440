"""Start-up validation of a composed config.

Everything an ablation varies is checked here, before any weights, data or Lightning
are loaded, so that a bad value in a 20-job multirun fails in seconds with a message
that names the option and the allowed values instead of 10 minutes in.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from geoloc.labels import LabelSet

# The repo's conf/ folder, as an absolute path: Hydra resolves a relative config_path
# against the calling module, which differs between `python -m` and console scripts.
CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


class ConfigError(ValueError):
    """A config option is invalid; the message says which and what is allowed."""


def validate_backbone_name(name: object) -> str:
    """Bundled name, existing local folder, or something shaped like a hub id (the rules
    of :func:`geoloc.backbones.check_backbone_name`, reported as a :class:`ConfigError`)."""
    from geoloc.backbones import BUNDLED_BACKBONES, check_backbone_name

    if not isinstance(name, str) or not name.strip():
        raise ConfigError(
            f"backbone.name={name!r}: expected {', '.join(BUNDLED_BACKBONES)}, a local "
            "Hugging Face folder or a hub model id"
        )
    try:
        return check_backbone_name(name)
    except (ValueError, FileNotFoundError) as err:
        raise ConfigError(str(err)) from err


def validate_config(cfg: DictConfig) -> None:
    """Validate the options of a train/eval config; raise :class:`ConfigError`."""
    from geoloc.data.datamodule import DataConfigError, validate_splits
    from geoloc.labels import LabelSetError
    from geoloc.model.encoder import ModelConfigError, validate_encoder_layers, validate_pooling
    from geoloc.model.tokenization import TOKENIZER_VARIANTS

    try:
        LabelSet.from_codes(list(cfg.labels.countries))
        backbone = validate_backbone_name(cfg.backbone.name)
        if cfg.tokenizer.variant not in TOKENIZER_VARIANTS:
            raise ConfigError(
                f"tokenizer.variant={cfg.tokenizer.variant!r}: expected one of "
                f"{', '.join(TOKENIZER_VARIANTS)}"
            )
        if "model" in cfg:
            validate_encoder_layers(cfg.model.encoder_layers, backbone)
            validate_pooling(cfg.model.pooling)
        if "data" in cfg and "splits" in cfg.data:
            validate_splits(dict(cfg.data.splits))
        if "evaluation" in cfg:
            target = float(cfg.evaluation.target_precision)
            delta = float(cfg.evaluation.delta)
            if not 0.0 < target < 1.0:
                raise ConfigError(f"evaluation.target_precision={target}: must be in (0, 1)")
            if not 0.0 < delta < 1.0:
                raise ConfigError(f"evaluation.delta={delta}: must be in (0, 1)")
    except (LabelSetError, ModelConfigError, DataConfigError) as err:
        raise ConfigError(str(err)) from err
