"""``geoloc-export model_dir=… output=…``: a model bundle -> the bundle plus a Hugging Face
model and, on request, ONNX graphs.

A thin entry point over :func:`geoloc.inference.export.export`; the module docstring there
lists what the folder holds and how plain ``transformers`` loads it.
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig

from geoloc.cli import common
from geoloc.config import CONF_DIR


def export_task(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Write the export folder; returns its size and the path."""
    # Imported here: onnx + onnxruntime, ~1.3 s on `geoloc-export --help` / `--cfg job`
    from geoloc.inference.export import export

    with common.option_errors():
        folder = export(common.model_bundle(cfg), cfg.output, onnx=bool(cfg.onnx),
                        quantize=bool(cfg.quantize), overwrite=bool(cfg.overwrite))
    files = sorted(folder.iterdir())
    size = sum(f.stat().st_size for f in files)
    listing = "\n".join(f"  {f.name:28s} {f.stat().st_size / 1e6:9.1f} MB" for f in files)
    print(f"\n## geoloc-export\n\n{folder} ({size / 1e6:.0f} MB)\n{listing}", flush=True)
    return {"megabytes": size / 1e6}, {"folder": folder}


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="export")
def _hydra_main(cfg: DictConfig) -> float | None:
    return common.hydra_task("geoloc-export", export_task, cfg, None)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
