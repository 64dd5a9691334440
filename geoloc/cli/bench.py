"""``geoloc-bench``: the CPU speed benchmarks (what ``make bench`` runs), one command.

Three parts, each a program of its own with its own options and its own table:

- ``model`` (:mod:`geoloc.bench`): training throughput with the word embeddings frozen or
  trainable, and inference throughput by encoder depth
  (``experiments/benchmarks/model_speed.md``);
- ``train`` (:mod:`geoloc.training.speed`): the real-tweet recipe's training throughput
  and minutes, setting by setting, against today's recipe
  (``experiments/benchmarks/train_speed.md``);
- ``predict`` (:mod:`geoloc.inference.bench`): ``geoloc-predict`` against
  ``transformers.pipeline``, ONNX Runtime and the fp32 matmul limit, by depth, and its
  peak memory (``experiments/benchmarks/results.md``).

``geoloc-bench`` alone runs both with their defaults; ``geoloc-bench PART [OPTIONS]`` runs
one (``geoloc-bench PART --help`` lists its options). Speed is measured here, never
asserted in tests.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from geoloc import bench as model_bench
from geoloc.inference import bench as predict_bench
from geoloc.training import speed as train_bench

#: part -> (its main(argv, prog), one line on what it measures)
PARTS: dict[str, tuple[Callable[..., object], str]] = {
    "model": (model_bench.main, "training and inference throughput by depth "
                                "(experiments/benchmarks/model_speed.md)"),
    "train": (train_bench.main, "the real-tweet recipe's training speed by setting "
                                "(experiments/benchmarks/train_speed.md)"),
    "predict": (predict_bench.main, "prediction speed against transformers.pipeline, ONNX "
                                    "Runtime and the fp32 matmul limit, peak memory "
                                    "(experiments/benchmarks/results.md)"),
}


def _parser() -> argparse.ArgumentParser:
    parts = "\n".join(f"  {name:<9}{what}" for name, (_, what) in PARTS.items())
    return argparse.ArgumentParser(
        prog="geoloc-bench",
        usage=f"geoloc-bench [{{{','.join(PARTS)}}} [OPTIONS]]",
        description="CPU speed benchmarks. Without a part: every part with its defaults "
                    "(what `make bench` runs).",
        epilog=f"parts (geoloc-bench PART --help lists its options):\n{parts}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in PARTS:
        run, _ = PARTS[args[0]]
        run(args[1:], prog=f"geoloc-bench {args[0]}")
        return
    _parser().parse_args(args)  # --help prints the parts; anything else is a usage error
    for name, (run, _) in PARTS.items():
        run([], prog=f"geoloc-bench {name}")


if __name__ == "__main__":
    main()
