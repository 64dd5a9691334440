"""geoloc: predict the country of a social-media profile from what its owner writes.

The package follows the data flow of the design: ``data`` (sources, labels, datamodule)
-> ``backbones`` + ``model`` (encoder and head) -> ``evaluation`` (metrics, calibration,
abstention) -> ``cli`` (Hydra entry points).
"""

__version__ = "0.1.0"
