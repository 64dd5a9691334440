"""``geoloc-bench predict`` (in ``make bench``): how fast geoloc labels profiles, against
what people would otherwise run and against what the cores can do.

In one run, on the same cores, threads and inputs (synthetic profiles: bio + 5 captions):

1. **Throughput** (profiles/s) of ``geoloc-predict`` (the whole file job: read JSONL,
   tokenise, predict, apply the policy, write Parquet) with PyTorch, ONNX Runtime fp32 and
   int8, against ``transformers.pipeline("text-classification")`` on the same exported
   weights and texts (the baseline), and the predictor with length sorting off.
2. **The limit**: the model's FLOPs per profile at the measured token lengths (dense
   matmuls and attention of every layer, no padding) divided by the fp32 matrix-multiply
   rate ``torch.mm`` reaches on these cores; the share of it each row reaches.
3. **Depth**: the predictor on 1 to 12 layers of mE5-small at the same settings.
4. **Peak memory** (max RSS of the process) of ``geoloc-predict`` on 10k and 200k
   profiles: bounded memory means the two are close.

The models are untrained (random head, mE5-small's encoder; speed does not depend on the
weights' values) with a placeholder policy, so the benchmark needs no training run.
Writes ``experiments/benchmarks/results.md``. Speed is measured here, never in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from geoloc.data.readers import read_profiles
from geoloc.data.schema import ColumnMapping, profile_text
from geoloc.io import cpu_info, markdown_table, write_text_atomic
from geoloc.labels import DEFAULT_COUNTRIES
from geoloc.resources import umass_dev_path
from geoloc.synthetic import generate_profiles

OUT = Path(__file__).resolve().parents[2] / "experiments" / "benchmarks" / "results.md"


def untrained_export(folder: Path, layers: int, max_length: int, onnx: bool) -> Path:
    """An export folder of an untrained ``layers``-layer default model with a
    placeholder policy (every threshold 0.5)."""
    # Imported here: together ~2.5 s on `geoloc-bench --help` (-X importtime, after the
    # module-level imports of geoloc.cli.bench)
    from geoloc.bundle import Bundle  # ~1.3 s: torchmetrics via geoloc.evaluation
    from geoloc.evaluation.abstention import PolicyConfig, Thresholds  # the same ~1.3 s
    from geoloc.inference.export import export_bundle  # ~1 s more: onnx + onnxruntime
    from geoloc.model.module import GeolocModule  # ~0.3 s more: lightning

    torch.manual_seed(0)
    module = GeolocModule(
        backbone="me5_small", encoder_layers=layers, pooling="mean", dropout=0.1,
        tokenizer_variant="location_emoji", countries=list(DEFAULT_COUNTRIES),
        freeze_word_embeddings=True, optimizer={}, warmup_ratio=0.0, compile=False).eval()
    names = list(module.class_names)
    thresholds = Thresholds(names, dict.fromkeys(names, 0.5),
                            PolicyConfig(0.9, 0.05, (50,), "per_class"))
    bundle = Bundle.save(folder.with_name(folder.name + ".bundle"), module, thresholds,
                         data={"max_length": max_length, "source": "none (benchmark)"})
    return export_bundle(bundle, module, folder, onnx=onnx, quantize=onnx)


def profiles(n: int, seed: int = 123, unique: int = 2000) -> list[dict]:
    """``n`` profiles of mixed length: alternately a synthetic profile (bio + 5 captions,
    often over 96 tokens) and a real tweet of the bundled set as a one-caption profile
    (~30 tokens). ``unique`` distinct ones are repeated with fresh ids (the generator is
    slower than the model; repetition does not change the cost per row)."""
    k = min(n, unique)
    synthetic = [{"bio": r["bio"], "captions": r["captions"]}
                 for r in generate_profiles((k + 1) // 2, seed=seed)]
    tweets, _ = read_profiles(umass_dev_path(), ColumnMapping.tweets(), fmt="tsv")
    base = [synthetic[i // 2] if i % 2 == 0 else
            {"bio": "", "captions": tweets[(i // 2) % len(tweets)]["captions"]}
            for i in range(k)]
    return [{"id": f"p{i}", **base[i % len(base)]} for i in range(n)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return path


def encoder_flops(lengths: np.ndarray, layers: int, hidden: int = 384, ffn: int = 1536
                  ) -> float:
    """Mean FLOPs per profile of a BERT encoder at these token lengths (2 per
    multiply-add): Q, K, V, O projections 4nh^2, FFN 2nhf, attention scores and
    weighted sum 2n^2h per layer; the head and LayerNorms are negligible."""
    n = lengths.astype(np.float64)
    macs = layers * (4 * n * hidden**2 + 2 * n * hidden * ffn + 2 * n**2 * hidden)
    return float(2 * macs.mean())


def matmul_rate(threads: int, seconds: float = 3.0) -> float:
    """Sustained fp32 ``torch.mm`` FLOP/s on these cores (the best of shapes like the
    encoder's: 4096 tokens x 384 -> 1536 and a square 1024 product)."""
    torch.set_num_threads(threads)
    best = 0.0
    for m, k, n in ((4096, 384, 1536), (4096, 1536, 384), (1024, 1024, 1024)):
        a, b = torch.randn(m, k), torch.randn(k, n)
        torch.mm(a, b)
        reps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 3:
            torch.mm(a, b)
            reps += 1
        best = max(best, 2 * m * k * n * reps / (time.perf_counter() - start))
    return best


def timed(run: Any, repeats: int) -> float:
    """Best of ``repeats`` timings of ``run()``, after one untimed warm-up run over the
    same inputs: oneDNN builds kernels per new input shape, and a first pass over
    length-sorted batches meets every width once."""
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def file_job(folder: Path, src: Path, backend: str, quantized: bool, threads: int,
             batch_size: int) -> Any:
    """The whole ``geoloc-predict`` file job (model loaded once, outside the timing)."""
    # Imported here: ~1.3 s on `geoloc-bench --help` (torchmetrics, via geoloc.evaluation)
    from geoloc.inference.job import predict_file
    from geoloc.inference.predictor import Predictor  # the same ~1.3 s

    # speed only: the int8 row runs the fp32 policy (decisions without the certificate)
    predictor = Predictor.load(folder, backend=backend, quantized=quantized,
                               batch_size=batch_size, threads=threads,
                               allow_precision_mismatch=True)
    mapping = ColumnMapping(stated_location=None, country=None)

    def run() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            predict_file(predictor, src, Path(tmp) / "out.parquet", mapping, progress=False)
    return run


def pipeline_job(folder: Path, texts: list[str], threads: int, batch_size: int) -> Any:
    """``transformers.pipeline`` over the same texts (truncated alike)."""
    from transformers import pipeline

    torch.set_num_threads(threads)
    clf = pipeline("text-classification", model=str(folder), trust_remote_code=True,
                   device="cpu")
    return lambda: clf(texts, batch_size=batch_size, truncation=True)


def predictor_job(folder: Path, texts: list[str], threads: int, batch_size: int,
                  sort_by_length: bool = True) -> Any:
    """:meth:`Predictor.predict_texts` (model + policy, no file I/O)."""
    # Imported here: ~1.3 s on `geoloc-bench --help` (torchmetrics, via geoloc.evaluation)
    from geoloc.inference.predictor import Predictor

    predictor = Predictor.load(folder, batch_size=batch_size, threads=threads)
    predictor.sort_by_length = sort_by_length
    return lambda: predictor.predict_texts(texts)


def peak_rss_mb(folder: Path, src: Path, out: Path, threads: int) -> tuple[float, float]:
    """Peak RSS (MB, ``VmHWM``) and seconds of ``geoloc-predict`` run as its own process.

    ``VmHWM`` rather than ``getrusage``: Linux keeps ``ru_maxrss`` across ``execve``, so a
    child started by a large parent would report the parent's peak."""
    code = (
        "import sys, time\n"
        "from geoloc.cli.predict import main\n"
        f"sys.argv = ['geoloc-predict', 'model_dir={folder}', 'input={src}', "
        f"'output={out}', 'threads={threads}', 'progress=false', "
        f"'hydra.run.dir={out.parent / 'run'}', 'hydra.output_subdir=null']\n"
        "start = time.perf_counter()\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    if exit.code:\n        raise\n"
        "hwm = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]\n"
        "print('BENCH', hwm, time.perf_counter() - start)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    line = next(x for x in done.stdout.splitlines() if x.startswith("BENCH"))
    _, kb, seconds = line.split()
    return int(kb) / 1024, float(seconds)


def cpu_description() -> str:
    """The CPU model and its int8 dot-product instructions: the int8 row's speedup
    depends on them (VNNI or AMX multiply int8 in one instruction; without them ONNX
    Runtime's int8 kernels gain little over fp32), so a reader comparing runs needs them."""
    name, flags = cpu_info()
    int8 = sorted(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})
    return f"{name} ({', '.join(int8) if int8 else 'no VNNI/AMX int8 instructions'})"


def main(argv: list[str] | None = None, prog: str | None = None) -> str:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=2000, help="throughput inputs")
    parser.add_argument("--depth-profiles", type=int, default=500)
    parser.add_argument("--memory-sizes", type=int, nargs="*", default=[10_000, 200_000])
    parser.add_argument("--memory-layers", type=int, default=1,
                        help="depth of the model of the memory runs (1: fastest; memory "
                             "is the model plus one chunk at any depth)")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=2,
                        help="each throughput is the best of this many timed runs")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    threads, bs = args.threads, args.batch_size

    work = Path(tempfile.mkdtemp(prefix="geoloc-bench-"))
    print(f"building untrained exports in {work} ...", flush=True)
    folder = untrained_export(work / f"model-{args.layers}", args.layers, args.max_length,
                              onnx=True)
    # Imported here: ~1.3 s on `geoloc-bench --help` (torchmetrics, via geoloc.evaluation)
    from geoloc.inference.predictor import Predictor

    rows = profiles(args.profiles)
    src = write_jsonl(work / "profiles.jsonl", rows)
    texts = [profile_text(r["bio"], r["captions"]) for r in rows]
    tok = Predictor.load(folder).tokenizer
    lengths = np.array([len(x) for x in tok(texts, truncation=True,
                                            max_length=args.max_length)["input_ids"]])

    results: list[dict[str, Any]] = []
    jobs = [
        ("transformers.pipeline (baseline), PyTorch",
         lambda: pipeline_job(folder, texts, threads, bs)),
        ("geoloc-predict, PyTorch", lambda: file_job(folder, src, "torch", False, threads, bs)),
        ("geoloc-predict, ONNX Runtime fp32",
         lambda: file_job(folder, src, "onnx", False, threads, bs)),
        ("geoloc-predict, ONNX Runtime int8",
         lambda: file_job(folder, src, "onnx", True, threads, bs)),
        ("predictor only (no file I/O), PyTorch",
         lambda: predictor_job(folder, texts, threads, bs)),
        ("predictor only, length sorting off",
         lambda: predictor_job(folder, texts, threads, bs, False)),
    ]
    for name, make in tqdm(jobs, desc="throughput"):
        seconds = timed(make(), args.repeats)
        results.append({"what": name, "profiles/s": len(texts) / seconds})
    flops = encoder_flops(lengths, args.layers)
    rate = matmul_rate(threads)
    limit = rate / flops
    base = results[0]["profiles/s"]
    table = markdown_table(pd.DataFrame([
        {"what": r["what"], "profiles/s": f"{r['profiles/s']:.1f}",
         "vs pipeline": "baseline" if i == 0 else f"{r['profiles/s'] / base:.2f}x",
         "share of the limit": f"{100 * r['profiles/s'] / limit:.0f} %"}
        for i, r in enumerate(results)]))

    depth_rows = []
    depth_texts = texts[: args.depth_profiles]
    for layers in tqdm((1, 2, 3, 6, 12), desc="depth"):
        f = untrained_export(work / f"depth-{layers}", layers, args.max_length, onnx=False)
        seconds = timed(predictor_job(f, depth_texts, threads, bs), args.repeats)
        pps = len(depth_texts) / seconds
        lim = rate / encoder_flops(lengths[: args.depth_profiles], layers)
        depth_rows.append({"layers": layers, "profiles/s": f"{pps:.1f}",
                           "limit profiles/s": f"{lim:.0f}",
                           "share of the limit": f"{100 * pps / lim:.0f} %"})
        if layers != args.layers:
            shutil.rmtree(f)

    mem_rows = []
    if args.memory_sizes:
        mfolder = (folder if args.memory_layers == args.layers else
                   untrained_export(work / f"memory-{args.memory_layers}", args.memory_layers,
                                    args.max_length, onnx=False))
        for n in tqdm(args.memory_sizes, desc="memory"):
            msrc = write_jsonl(work / f"mem-{n}.jsonl", profiles(n))
            mb, seconds = peak_rss_mb(mfolder, msrc, work / f"mem-{n}.parquet", threads)
            mem_rows.append({"profiles": f"{n:,}", "peak RSS (MB)": f"{mb:.0f}",
                             "wall (s)": f"{seconds:.0f}",
                             "profiles/s": f"{n / seconds:.0f}"})
            msrc.unlink()

    cpu = cpu_description()
    text = f"""# Prediction speed (CPU, fp32 unless stated)

Produced by `make bench` (`geoloc-bench predict`), {time.strftime('%Y-%m-%d')}:
{threads} threads, torch {torch.__version__}, {cpu}, {os.cpu_count()} logical cores.
Model: mE5-small cut to {args.layers} layers (untrained weights, same shapes and cost),
location_emoji tokenizer, max {args.max_length} tokens, batch {bs}. Inputs: {len(texts):,}
profiles, half synthetic (bio + 5 captions), half real tweets: mean {lengths.mean():.1f}
tokens, median {np.median(lengths):.0f}, {100 * np.mean(lengths == args.max_length):.0f} % truncated at {args.max_length}.

## Throughput against the pipeline and the hardware limit

Each figure is the best of {args.repeats} timed runs after one untimed warm-up run over
the same inputs (this machine's run-to-run spread is about 10 %).

The limit: {flops / 1e9:.3f} GFLOP per profile (encoder matmuls and attention at the
measured lengths, no padding) against {rate / 1e9:.1f} GFLOP/s measured for fp32 `torch.mm`
on these cores = **{limit:.0f} profiles/s**.

{table}

The limit is fp32's: int8 kernels multiply faster than the fp32 `torch.mm` rate, so the
int8 row's share says how it compares with fp32's ceiling, not with its own.

## Depth: the predictor on 1 to 12 layers ({len(depth_texts)} profiles)

{markdown_table(pd.DataFrame(depth_rows))}

## Peak memory of geoloc-predict ({args.memory_layers}-layer model, JSONL in, Parquet out)

{markdown_table(pd.DataFrame(mem_rows)) if mem_rows else "not run"}

Peak RSS is the whole process (Python, torch, the model with its 96 M-row embedding
table, one chunk of 4,096 rows). Rows are streamed; what still grows with the file is
the set of ids seen (duplicate ids are error rows), a few tens of bytes per row.
"""
    print(text)
    write_text_atomic(args.out, text)
    print(f"written to {args.out}")
    shutil.rmtree(work, ignore_errors=True)
    return text


if __name__ == "__main__":
    main()
