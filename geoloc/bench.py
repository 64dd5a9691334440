"""``geoloc-bench model`` (in ``make bench``): CPU speed of the knobs that decide what an
experiment costs.

Measures, in one run and on the same synthetic batch, so every row has its baseline:

- training throughput (samples/s) of the default model with the word-embedding table
  frozen vs. trainable (the baseline: everything trainable);
- inference throughput by encoder depth (1, 3, 6, 12 layers of mE5-small).

Prints a Markdown table and writes it to ``experiments/benchmarks/model_speed.md``.
Speed is only ever measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch
from tqdm import tqdm

from geoloc.backbones import materialize_backbone
from geoloc.data.schema import profile_text
from geoloc.labels import DEFAULT_COUNTRIES, LabelSet
from geoloc.model.encoder import ProfileClassifier, freeze_word_embeddings, load_encoder
from geoloc.model.tokenization import build_tokenizer, extend_embeddings, load_base_tokenizer
from geoloc.synthetic import generate_profiles

OUT = Path(__file__).resolve().parents[1] / "experiments" / "benchmarks" / "model_speed.md"


def _batch(tokenizer, batch_size: int, max_length: int) -> dict[str, torch.Tensor]:
    rows = list(generate_profiles(batch_size, seed=123))
    texts = [profile_text(r["bio"], r["captions"]) for r in rows]
    return tokenizer(texts, truncation=True, max_length=max_length, padding="max_length",
                     return_tensors="pt")


def _model(folder, layers: int, freeze: bool):
    base = load_base_tokenizer(folder)
    tok, added = build_tokenizer(folder, "location_emoji", DEFAULT_COUNTRIES)
    enc = load_encoder(folder, layers)
    extend_embeddings(enc, base, tok, added)
    if freeze:
        freeze_word_embeddings(enc, trainable_from=len(base))
    return ProfileClassifier(enc, LabelSet.default().num_classes), tok


def train_throughput(folder, layers: int, freeze: bool, batch, steps: int) -> float:
    model, _ = _model(folder, layers, freeze)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    labels = torch.zeros(batch["input_ids"].shape[0], dtype=torch.long)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(
            model(batch["input_ids"], batch["attention_mask"]), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up (allocations, optimiser state)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * labels.shape[0] / (time.perf_counter() - started)


@torch.inference_mode()
def infer_throughput(folder, layers: int, batch, steps: int) -> float:
    model, _ = _model(folder, layers, freeze=True)
    model.eval()
    model(batch["input_ids"], batch["attention_mask"])
    started = time.perf_counter()
    for _ in range(steps):
        model(batch["input_ids"], batch["attention_mask"])
    return steps * batch["input_ids"].shape[0] / (time.perf_counter() - started)


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=96)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    folder = materialize_backbone("me5_small")
    _, tok = _model(folder, 1, True)
    batch = _batch(tok, args.batch_size, args.max_length)
    rows: list[tuple[str, str, float, str]] = []
    jobs = [("train", 3, False), ("train", 3, True)] + [("infer", n, True) for n in (1, 3, 6, 12)]
    for kind, layers, freeze in tqdm(jobs, desc="bench"):
        if kind == "train":
            sps = train_throughput(folder, layers, freeze, batch, args.steps)
            what = f"train step, {layers} layers, embeddings {'frozen' if freeze else 'trainable'}"
            rows.append((what, "baseline" if not freeze else "", sps, "samples/s"))
        else:
            sps = infer_throughput(folder, layers, batch, args.steps)
            rows.append((f"inference, {layers} layers", "baseline" if layers == 12 else "", sps,
                         "samples/s"))

    base_train = rows[0][2]
    base_infer = next(r[2] for r in rows if r[1] == "baseline" and r[0].startswith("inference"))
    lines = [
        "# Model speed (CPU, fp32)",
        "",
        f"mE5-small, batch {args.batch_size} x {args.max_length} tokens, {args.steps} timed "
        f"steps after 1 warm-up, {args.threads} threads, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}. Produced by `make bench`.",
        "",
        "| what | samples/s | vs baseline |",
        "| --- | ---: | ---: |",
    ]
    for what, tag, sps, _ in rows:
        base = base_train if what.startswith("train") else base_infer
        ratio = "baseline" if tag else f"{sps / base:.2f}x"
        lines.append(f"| {what} | {sps:.1f} | {ratio} |")
    table = "\n".join(lines) + "\n"
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
