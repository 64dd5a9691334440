"""``geoloc-backbone [NAME]``: build (or find) a bundled backbone folder and print its path.

Useful to pre-build the ~470 MB me5_small folder once before launching a multirun, so
that parallel jobs do not all wait on the first conversion, and to see where it lives.
"""

from __future__ import annotations

import logging
import sys

from geoloc.backbones import backbone_info, materialize_backbone


def main(argv: list[str] | None = None) -> int:
    """Materialise ``argv[0]`` (default ``me5_small``) and print the folder on stdout."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        print("usage: geoloc-backbone [me5_small|minilm_en|FOLDER]  (cache: $GEOLOC_HOME)")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    name = args[0] if args else "me5_small"
    try:
        folder = materialize_backbone(name)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not isinstance(folder, str):
        logging.getLogger("geoloc.backbone").info("%s", backbone_info(folder))
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
