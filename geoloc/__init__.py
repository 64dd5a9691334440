"""geoloc: predict the country of a social-media profile from what its owner writes.

The package follows the data flow of the design: ``data`` (sources, labels, datamodule)
-> ``backbones`` + ``model`` (encoder and head) -> ``evaluation`` (metrics, calibration,
abstention) -> ``cli`` (Hydra entry points).
"""

import os

# Nothing geoloc does at run time needs the Hugging Face Hub for datasets: it loads local
# JSONL only, yet `datasets.load_dataset("json", ...)` makes one request to the Hub unless
# this is set before `datasets` is imported. A user's own value wins.
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

__version__ = "0.1.0"
