"""One shared embedding: is geoloc's profile embedding reusable by a second classifier?

The reference system wanted one learned profile embedding that several classifiers read.
This experiment trains a second, different head, "is this tweet written in English?"
(the real tweet set's ``Definitely English`` annotation, 48 % of rows), on four
representations and compares accuracy and cost:

1. **geoloc embedding**: the pooled embedding of the trained geoloc model
   (``geoloc-predict embeddings=true``), frozen. At prediction time it comes out of the
   forward pass that already labels the country, so the second task costs one
   384 x 2 dot product per profile.
2. **untouched backbone, 3 layers**: me5_small cut to 3 layers, never fine-tuned, mean
   pooled (the same network geoloc starts from): one more 3-layer pass per profile.
3. **untouched backbone, 12 layers**: the whole me5_small: one 12-layer pass per profile.
4. **separate fine-tuned encoder**: me5_small cut to 3 layers fine-tuned on the English
   labels with geoloc's recipe (AdamW 2e-4, weight decay 0.01, 10 % warm-up, frozen word
   embeddings, mean pooling, batch 32, ``--epochs`` epochs): its own training and its
   own 3-layer pass per profile, and its own ~21 MB of weights.

Heads 1-3 are the same scikit-learn pipeline (standardise, then logistic regression with
``C`` chosen by 5-fold cross-validation on the training rows). Rows: the geoloc model was
trained on the real recipe's train + calib splits, so the English heads train on those
rows (4,397; a downstream head may well share its upstream's training rows) and are
scored on the validation split (777), which neither model has seen. Nothing is tuned
on the validation split. Accuracy carries a 95 % bootstrap interval over its rows.

    python experiments/shared_embedding/run.py MODEL_DIR [--epochs 3] [--seeds 1]

(``MODEL_DIR``: the real recipe's model folder, e.g. ``outputs/real_data/real_only/model``,
or its ``geoloc-export`` folder.)

writes ``results.md``, ``results.csv`` and ``results.png`` beside this file and logs
the table to W&B (group ``shared_embedding``; offline unless ``WANDB_MODE`` says so).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from scipy.stats import bootstrap
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm
from transformers import DataCollatorWithPadding, get_linear_schedule_with_warmup

from geoloc.backbones import materialize_backbone
from geoloc.config import compose_config
from geoloc.data.datamodule import labelled_splits
from geoloc.data.sources import UmassTweetsSource
from geoloc.inference.predictor import Predictor, length_sorted_batches
from geoloc.io import log_experiment, markdown_table
from geoloc.model.encoder import ProfileClassifier, freeze_word_embeddings, load_encoder, pool
from geoloc.model.tokenization import load_base_tokenizer
from geoloc.resources import umass_dev_path

HERE = Path(__file__).resolve().parent
TASK_COLUMN = "Definitely English"
BACKBONE = "me5_small"
MAX_LENGTH = 64  # the real recipe's (geoloc/conf/data/umass.yaml)
BATCH = 64


def load_task() -> dict[str, tuple[list[str], np.ndarray]]:
    """``{"train": (texts, y), "test": (texts, y)}``: the real recipe's splits, with the
    per-tweet English annotation joined by tweet id."""
    cfg = compose_config(["experiment=real_umass"])
    splits = labelled_splits(UmassTweetsSource(), list(cfg.labels.countries),
                             dict(cfg.data.splits), cfg.data.split_seed)
    ann = pd.read_csv(umass_dev_path(), sep="\t", dtype={"Tweet ID": str},
                      quoting=csv.QUOTE_NONE, usecols=["Tweet ID", TASK_COLUMN])
    english = dict(zip(ann["Tweet ID"], ann[TASK_COLUMN].astype(int), strict=True))

    def view(names: Sequence[str]) -> tuple[list[str], np.ndarray]:
        texts, ids = [], []
        for name in names:
            texts += splits[name]["text"]
            ids += splits[name]["id"]
        return texts, np.array([english[i] for i in ids])

    train_splits = [s for s in ("train", "calib") if splits[s]["text"]]
    return {"train": view(train_splits), "test": view([cfg.data.eval_split])}


def timed(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def backbone_embedder(layers: int) -> Callable[[list[str]], np.ndarray]:
    """Mean-pooled states of the untouched backbone cut to ``layers`` layers, batched
    like the predictor (length-sorted, dynamic padding, inference mode)."""
    folder = materialize_backbone(BACKBONE)
    tokenizer = load_base_tokenizer(folder)
    encoder = load_encoder(folder, layers).eval()

    def embed(texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for rows, ids, mask in length_sorted_batches(tokenizer, texts, MAX_LENGTH, BATCH):
                ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
                hidden = encoder(input_ids=ids_t, attention_mask=mask_t).last_hidden_state
                out[rows] = pool(hidden, mask_t, "mean").numpy()
        return out

    return embed


def fit_head(x: np.ndarray, y: np.ndarray, seed: int) -> object:
    """Standardise + logistic regression, C by 5-fold CV on the training rows only."""
    head = make_pipeline(StandardScaler(), LogisticRegressionCV(
        Cs=10, cv=5, max_iter=5000, scoring="neg_log_loss", random_state=seed))
    return head.fit(x, y)


class FineTuned(pl.LightningModule):
    """me5_small cut to ``layers`` layers + mean pooling + linear, geoloc's recipe."""

    def __init__(self, layers: int, lr: float = 2e-4, warmup_ratio: float = 0.1) -> None:
        super().__init__()
        folder = materialize_backbone(BACKBONE)
        encoder = load_encoder(folder, layers)
        # every original row frozen, as geoloc does (no rows added: base tokenizer)
        freeze_word_embeddings(encoder, trainable_from=encoder.get_input_embeddings()
                               .num_embeddings)
        self.net = ProfileClassifier(encoder, 2, "mean", 0.1)
        self.net.train()
        self.lr, self.warmup_ratio = lr, warmup_ratio

    def training_step(self, batch: dict, _: int) -> torch.Tensor:
        logits = self.net(batch["input_ids"], batch["attention_mask"])
        return F.cross_entropy(logits, batch["labels"])

    def configure_optimizers(self) -> dict:
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=0.01)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = get_linear_schedule_with_warmup(optimizer, int(self.warmup_ratio * total),
                                                    total)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def fine_tune(texts: list[str], y: np.ndarray, epochs: int, seed: int
              ) -> tuple[FineTuned, object]:
    pl.seed_everything(seed, workers=True)
    model = FineTuned(layers=3)
    tokenizer = load_base_tokenizer(materialize_backbone(BACKBONE))
    enc = tokenizer(texts, truncation=True, max_length=MAX_LENGTH)
    rows = [{"input_ids": i, "attention_mask": m, "labels": int(label)}
            for i, m, label in zip(enc["input_ids"], enc["attention_mask"], y, strict=True)]
    loader = torch.utils.data.DataLoader(rows, batch_size=32, shuffle=True,
                                         collate_fn=DataCollatorWithPadding(tokenizer))
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_model_summary=False,
                         deterministic=True)
    trainer.fit(model, loader)
    return model.eval(), tokenizer


def scores(y: np.ndarray, proba: np.ndarray, seed: int) -> dict[str, float]:
    pred = (proba >= 0.5).astype(int)
    correct = (pred == y).astype(float)
    ci = bootstrap((correct,), np.mean, n_resamples=2000, confidence_level=0.95,
                   random_state=seed, method="percentile").confidence_interval
    return {"accuracy": correct.mean(), "acc_lo": ci.low, "acc_hi": ci.high,
            "f1_english": f1_score(y, pred), "auroc": roc_auc_score(y, proba)}


def run(model_path: str, epochs: int, seeds: int, threads: int) -> pd.DataFrame:
    torch.set_num_threads(threads)
    data = load_task()
    (x_train_text, y_train), (x_test_text, y_test) = data["train"], data["test"]
    print(f"train {len(y_train)} tweets ({y_train.mean():.1%} English), "
          f"test {len(y_test)} ({y_test.mean():.1%} English)", flush=True)
    predictor = Predictor.load(model_path, embeddings=True, threads=threads)
    embedders: dict[str, tuple[Callable[[list[str]], np.ndarray], str]] = {
        # name: (embed function, the encoder pass it adds at prediction)
        "geoloc embedding (frozen)": (
            lambda t: predictor.predict_texts(t).embeddings, "none: the country pass yields it"),
        "untouched backbone, 3 layers": (backbone_embedder(3), "one 3-layer pass"),
        "untouched backbone, 12 layers": (backbone_embedder(12), "one 12-layer pass"),
    }
    rows = []
    for name, (embed, extra_pass) in tqdm(embedders.items(), desc="frozen embeddings"):
        embed(x_test_text[:BATCH])  # warm-up
        x_train, t_embed_train = timed(lambda e=embed: e(x_train_text))
        x_test, t_embed_test = timed(lambda e=embed: e(x_test_text))
        for seed in range(seeds):
            head, t_fit = timed(lambda s=seed, x=x_train: fit_head(x, y_train, s))
            proba = head.predict_proba(x_test)[:, 1]
            coef = head[-1].coef_
            rows.append({"representation": name, "seed": seed, **scores(y_test, proba, seed),
                         "extra pass at prediction": extra_pass,
                         "pass profiles/s": len(x_test_text) / t_embed_test,
                         "training s": t_embed_train + t_fit,
                         "extra weights MB": (coef.size + 2 * x_train.shape[1]) * 4 / 1e6})
    for seed in range(seeds):
        (model, tokenizer), t_train = timed(lambda s=seed: fine_tune(x_train_text, y_train,
                                                                     epochs, s))
        torch.set_num_threads(threads)  # Lightning may have changed it

        def fine_tuned_proba(texts: list[str], m: FineTuned = model, tok=tokenizer
                             ) -> np.ndarray:
            out = np.zeros(len(texts), dtype=np.float64)
            with torch.inference_mode():
                for idx, ids, mask in length_sorted_batches(tok, texts, MAX_LENGTH, BATCH):
                    logits = m.net(torch.from_numpy(ids), torch.from_numpy(mask))
                    out[idx] = torch.softmax(logits, dim=-1)[:, 1].numpy()
            return out

        fine_tuned_proba(x_test_text[:BATCH])
        proba, t_test = timed(lambda f=fine_tuned_proba: f(x_test_text))
        trained_mb = sum(p.numel() for p in model.parameters() if p.requires_grad) * 4 / 1e6
        rows.append({"representation": f"separate encoder, 3 layers fine-tuned ({epochs} ep)",
                     "seed": seed, **scores(y_test, proba, seed),
                     "extra pass at prediction": "one 3-layer pass",
                     "pass profiles/s": len(x_test_text) / t_test, "training s": t_train,
                     "extra weights MB": trained_mb})
    return pd.DataFrame(rows)


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """One row per representation (mean over seeds; ± std where several)."""
    out = []
    for name, g in df.groupby("representation", sort=False):
        def pm(col: str, scale: float = 100.0, digits: int = 1, g=g) -> str:
            m = g[col].mean() * scale
            return (f"{m:.{digits}f} ± {g[col].std() * scale:.{digits}f}" if len(g) > 1
                    else f"{m:.{digits}f}")
        out.append({
            "representation": name,
            "accuracy %": pm("accuracy"),
            "95 % CI": f"{100 * g['acc_lo'].mean():.1f}–{100 * g['acc_hi'].mean():.1f}",
            "F1 English %": pm("f1_english"), "AUROC %": pm("auroc"),
            "extra pass at prediction": g["extra pass at prediction"].iloc[0],
            "pass profiles/s": f"{g['pass profiles/s'].mean():.0f}",
            "training s": f"{g['training s'].mean():.0f}",
            "extra weights MB": f"{g['extra weights MB'].mean():.3g}",
            "seeds": len(g),
        })
    return pd.DataFrame(out)


def plot(df: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means = df.groupby("representation", sort=False)[["accuracy", "acc_lo", "acc_hi",
                                                       "training s"]].mean()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    y = np.arange(len(means))
    err = np.vstack([means["accuracy"] - means["acc_lo"], means["acc_hi"] - means["accuracy"]])
    a.barh(y, 100 * means["accuracy"], xerr=100 * err, color="tab:blue", capsize=3)
    a.set_yticks(y, means.index)
    a.invert_yaxis()
    a.set_xlabel("accuracy on the validation tweets, % (95 % bootstrap CI)")
    a.set_xlim(50, 100)
    b.barh(y, means["training s"], color="tab:orange")
    b.set_yticks(y, [""] * len(y))
    b.invert_yaxis()
    b.set_xlabel("training time, s (embedding the training rows + head, or fine-tuning)")
    fig.suptitle("'Is this tweet English?' on a shared vs separate representation")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="model folder (<run>/model, e.g. "
                   "outputs/real_data/real_only/model) or export folder of the real recipe")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    start = time.perf_counter()
    raw = run(a.model, a.epochs, a.seeds, a.threads)
    table = summarise(raw)
    minutes = (time.perf_counter() - start) / 60
    raw.to_csv(HERE / "results.csv", index=False)
    plot(raw, HERE / "results.png")
    (HERE / "results.md").write_text(
        "# One shared embedding: 'is this tweet English?' on four representations\n\n"
        f"`python experiments/shared_embedding/run.py MODEL_DIR --epochs {a.epochs} "
        f"--seeds {a.seeds}` ({a.threads} threads, {minutes:.0f} min). Train: the real "
        "recipe's train + calib tweets; test: its validation tweets (777), unseen by "
        "every model. `pass profiles/s`: the encoder pass the representation needs, "
        "on the test tweets.\n\n" + markdown_table(table) + "\n\n![results](results.png)\n",
        encoding="utf-8")
    config = {"model": str(a.model), "epochs": a.epochs, "seeds": a.seeds,
              "threads": a.threads}
    log_experiment("shared_embedding", config, {"summary": table, "runs": raw},
                   {"figure": HERE / "results.png"}, HERE.parent.parent / "outputs")
    print(markdown_table(table))
    print(json.dumps({"minutes": round(minutes, 1)}))


if __name__ == "__main__":
    main()
