"""Hand-written tables shipped as package data (JSON or YAML), read without executing code.

The lexicon of the synthetic generator (``lexicon/``), the location resolver's aliases and
word lists (``location/``) and the generator's weighted tables (``synthetic/``) are data, so
they live in data files next to this module; the modules that use them hold only logic.

- JSON (``json.loads``) for the large lexicon tables: it parses some 30x faster than YAML,
  which matters because they load on import. Their ``"_doc"`` key says what they are.
- YAML (``yaml.safe_load`` semantics, with libyaml's C parser when installed) for the small
  tables whose entries carry comments saying *why* they are there. Their strings are
  quoted, so that ``NO`` (Norway) or ``ON`` (Ontario) never turn into booleans.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import yaml

_SafeLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_table(name: str) -> Any:
    """Parse the bundled table ``name`` (e.g. ``"lexicon/countries.json"``).

    A top-level ``"_doc"`` key (the JSON files' header) is dropped from the result.
    """
    text = resources.files(__package__).joinpath(*name.split("/")).read_text(encoding="utf-8")
    if name.endswith(".json"):
        data = json.loads(text)
    else:  # a safe loader: builds plain dicts, lists, strings and numbers only
        data = yaml.load(text, Loader=_SafeLoader)
    if isinstance(data, dict):
        data.pop("_doc", None)
    return data


def words(block: str) -> frozenset[str]:
    """The whitespace-separated words of a YAML block scalar, as a set."""
    return frozenset(block.split())


__all__ = ["load_table", "words"]
