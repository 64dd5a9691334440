"""``geoloc-synth``: write a synthetic profile set as JSONL and show its class frequencies.

A plain argparse tool rather than a Hydra app: it has a handful of options, and the class
table it prints is the quick check that a config change (``--set other_share=0.2``, another
label set) produced the skew you intended before anything trains on it.

Without ``--n``/``--seed``/``--countries`` it writes exactly the corpus a default
``geoloc-train`` run trains on: ``n`` and ``seed`` are read from ``geoloc/conf/`` (the
``data=synthetic`` source and the run ``seed``) and the label set is the default one, so
the table previews that corpus and this tool keeps no second copy of those values.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from geoloc.config import CONF_DIR
from geoloc.io import read_jsonl
from geoloc.labels import DEFAULT_COUNTRIES, OTHER, LabelSet
from geoloc.synthetic import config_from_overrides, write_synthetic_jsonl


def default_corpus() -> tuple[int, int]:
    """``(n, seed)`` of the synthetic corpus of a default ``geoloc-train`` run.

    Read from ``geoloc/conf/data/synthetic.yaml`` (``source.n``, ``source.seed``) with the run
    ``seed`` of ``geoloc/conf/train.yaml`` resolved into it, so the CLI default follows the config
    instead of repeating it.
    """
    from omegaconf import OmegaConf

    conf = Path(CONF_DIR)
    train = OmegaConf.load(conf / "train.yaml")
    data = OmegaConf.load(conf / "data" / "synthetic.yaml")
    cfg = OmegaConf.create({"seed": train.seed, "data": data})
    return int(cfg.data.source.n), int(cfg.data.source.seed)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    n, seed = default_corpus()
    p = argparse.ArgumentParser(
        prog="geoloc-synth",
        description="Generate synthetic social-media profiles (JSONL, one ProfileRecord a line).",
    )
    p.add_argument("--n", type=int, default=n,
                   help="number of profiles (default %(default)s: the data=synthetic corpus)")
    p.add_argument("--seed", type=int, default=seed,
                   help="random seed (default %(default)s: the train config's seed)")
    p.add_argument("--out", type=Path, default=Path("synthetic.jsonl"),
                   help="output file (written atomically; default synthetic.jsonl)")
    p.add_argument("--countries", default=",".join(DEFAULT_COUNTRIES),
                   help="comma-separated label set, most frequent first (default: the 36)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="SyntheticConfig field, e.g. --set other_share=0.15 (repeatable)")
    return p.parse_args(argv)


def class_frequencies(path: Path, labels: LabelSet) -> Counter[str]:
    """Count profiles per class (label-set country or OTHER) in a JSONL file."""
    return Counter(labels.label(row["country"]) for row in read_jsonl(path))


def format_frequencies(counts: Counter[str], top: int = 12) -> str:
    """A small text table: class, count, share; plus the share of the top countries."""
    total = sum(counts.values()) or 1
    rows = [f"{'class':<7}{'count':>9}{'share':>9}"]
    for name, count in counts.most_common():
        rows.append(f"{name:<7}{count:>9}{count / total:>9.2%}")
    countries = [c for c, _ in counts.most_common() if c != OTHER]
    top_share = sum(counts[c] for c in countries[:top]) / total
    rows.append(f"top-{top} countries: {top_share:.1%} of profiles; "
                f"OTHER: {counts.get(OTHER, 0) / total:.1%}; classes present: {len(counts)}")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``geoloc-synth``."""
    args = _parse_args(argv)
    overrides = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"geoloc-synth: --set expects KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        overrides[key.strip()] = value.strip()
    try:
        labels = LabelSet.from_codes(
            [c for c in args.countries.split(",") if c.strip()], option="--countries")
        config = config_from_overrides(overrides)
    except ValueError as err:
        print(f"geoloc-synth: {err}", file=sys.stderr)
        return 2
    path = write_synthetic_jsonl(args.out, args.n, args.seed, labels.countries, config)
    print(f"wrote {args.n} profiles to {path}")
    print(format_frequencies(class_frequencies(path, labels)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
