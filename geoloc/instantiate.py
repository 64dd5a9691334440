"""The one way a config node (or a checkpoint's saved hyper-parameters) becomes an object.

Hydra imports and calls any dotted name it is given, so without the allow-list below an
override, a config file or a crafted checkpoint could make geoloc run arbitrary code.
Kept at the bottom of the import graph (only Hydra, OmegaConf and :mod:`geoloc.errors`)
so the model, the training builders and the config checks can all use it.
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import OmegaConf

from geoloc.errors import ConfigError

#: What a config, or a checkpoint's saved hyper-parameters, may instantiate: geoloc's own
#: classes, Lightning's trainer, callbacks and loggers, torch optimisers.
ALLOWED_TARGETS = ("geoloc.", "pytorch_lightning.", "lightning.pytorch.", "torch.optim.")


def check_targets(node: Any, where: str = "") -> None:
    """Raise :class:`ConfigError` for any ``_target_`` in ``node`` (a config node or plain
    containers) outside :data:`ALLOWED_TARGETS`, naming where it is."""
    if OmegaConf.is_config(node):
        node = OmegaConf.to_container(node, resolve=False)
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{where}.{key}" if where else str(key)
            if key == "_target_" and not (isinstance(value, str)
                                          and value.startswith(ALLOWED_TARGETS)):
                raise ConfigError(
                    f"{path}={value!r}: geoloc only instantiates its own classes, PyTorch "
                    f"Lightning's and torch optimisers ({', '.join(ALLOWED_TARGETS)}*)")
            check_targets(value, path)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            check_targets(value, f"{where}[{i}]")


def instantiate(node: Any, *args: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` after :func:`check_targets`."""
    check_targets(node)
    return hydra.utils.instantiate(node, *args, **kwargs)
