"""Whole profiles (``model.text_pooling``): the bio and each caption are their own
sequences, so a long first caption no longer cuts the ones after it; the trained model,
the predictor, the Hugging Face export, its pipeline and ONNX Runtime all read a profile
the same way."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import compose
from test_train import TINY

LONG = "word " * 200
TEXTS = [f"bio line | {LONG} | Bom dia 🇧🇷 São Paulo 📍", "howdy y'all",
         "a | b | c | d | e | f | g | h | i", ""]


def test_the_split_is_the_one_profile_text_joins():
    """The export's file repeats schema's constants (it runs without geoloc): they agree,
    and splitting undoes profile_text's join, the 6th text keeping what is left."""
    from geoloc.data.schema import CAPTION_SEPARATOR, MAX_CAPTIONS, profile_text
    from geoloc.inference import modeling_geoloc as mg

    assert (mg.PROFILE_SEPARATOR, mg.MAX_TEXTS) == (CAPTION_SEPARATOR, MAX_CAPTIONS + 1)
    assert mg.split_profile_text(profile_text("my bio", ["one", "two"])) == \
        ["my bio", "one", "two"]
    assert mg.split_profile_text(profile_text("", ["only"])) == ["only"]
    parts = mg.split_profile_text("a | b | c | d | e | f | g")
    assert len(parts) == 6 and parts[-1] == "f | g"


def test_per_text_encoding_keeps_every_text_and_batches_match_rows_alone(me5_dir):
    """A 200-word first caption takes 16 tokens of its own; the caption after it keeps its
    flag. The network gives each profile the same logits in a padded batch as alone (the
    empty text slots change nothing), for both text poolings."""
    from geoloc.model.module import GeolocModule
    from geoloc.model.tokenization import encode_texts, pad_ids

    for text_pooling in ("mean", "attention"):
        module = GeolocModule(
            backbone="me5_small", encoder_layers=1, pooling="mean", dropout=0.1,
            tokenizer_variant="location_emoji", countries=["US", "BR", "FR"],
            freeze_word_embeddings=True, warmup_ratio=0.1, compile=False,
            optimizer={"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-4},
            text_pooling=text_pooling).eval()
        tok = module.tokenizer
        ids = encode_texts(tok, TEXTS, 16, per_text=True)
        assert [len(r) for r in ids] == [3, 1, 6, 1]
        assert len(ids[0][1]) == 16 and tok.convert_tokens_to_ids("🇧🇷") in ids[0][2]
        flat = encode_texts(tok, TEXTS, 16, per_text=False)
        assert tok.convert_tokens_to_ids("🇧🇷") not in flat[0]  # cut by the long caption
        batch, mask = pad_ids(ids, tok.pad_token_id)
        assert batch.shape == (4, 6, 16) and mask[1, 1:].sum() == 0
        with torch.inference_mode():
            together = module(torch.from_numpy(batch), torch.from_numpy(mask))
            for i, row in enumerate(ids):
                alone, m = pad_ids([row], tok.pad_token_id)
                torch.testing.assert_close(
                    module(torch.from_numpy(alone), torch.from_numpy(m))[0], together[i],
                    rtol=0, atol=1e-5)


@pytest.mark.slow
def test_a_whole_profile_model_trains_predicts_and_exports(tmp_path):
    """geoloc-train with model.text_pooling=attention (fused, real Lightning trainer):
    its datamodule batches are rows x texts x tokens; the predictor, the export in plain
    transformers (model and pipeline, batched), the export in PyTorch and ONNX Runtime
    give the same probabilities."""
    from transformers import AutoModelForSequenceClassification, pipeline

    from geoloc.bundle import Bundle
    from geoloc.cli.common import run_task
    from geoloc.cli.train import train
    from geoloc.inference.export import export
    from geoloc.inference.predictor import Predictor
    from geoloc.model.tokenization import encode_texts, pad_ids

    cfg = compose([*TINY, "logger=none", "model.text_pooling=attention",
                   "fusion=char_ngram", "fusion.C_grid=[30.0]", "fusion.weights=[0.5]",
                   "evaluation.policy.target=0.3", "evaluation.policy.start_counts=[5,20]",
                   "data.max_length=32", f"paths.output_dir={tmp_path / 'run'}"])
    _, objects = run_task(train, cfg)
    folder = objects["bundle"].folder
    batch = next(iter(objects["datamodule"].train_dataloader()))
    assert batch["input_ids"].dim() == 3 and batch["input_ids"].shape[-1] <= 32
    assert batch["input_ids"].shape == batch["attention_mask"].shape

    module = Bundle.open(folder).load_module()
    assert module.hparams.text_pooling == "attention"
    assert module.net.text_attention is not None
    texts = [*TEXTS, "Merhaba İstanbul | " * 8]
    base = Predictor.load(folder)
    assert base.per_text
    want = base.predict_texts(texts).probabilities

    out = export(folder, tmp_path / "export", onnx=True)
    config = json.loads((out / "config.json").read_text())
    assert config["text_pooling"] == "attention"
    ids, mask = pad_ids(encode_texts(module.tokenizer, texts, 32, per_text=True),
                        module.tokenizer.pad_token_id)
    hf = AutoModelForSequenceClassification.from_pretrained(out, trust_remote_code=True)
    with torch.inference_mode():
        torch.testing.assert_close(
            hf(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits,
            module(torch.from_numpy(ids), torch.from_numpy(mask)), rtol=0, atol=1e-5)
    for kwargs in ({}, {"backend": "onnx"}):
        got = Predictor.load(out, **kwargs).predict_texts(texts).probabilities
        np.testing.assert_allclose(got, want, atol=1e-4, err_msg=str(kwargs))
    clf = pipeline("text-classification", model=str(out), trust_remote_code=True, top_k=None)
    names = list(module.class_names)
    for batch_size in (1, 3):
        for i, row in enumerate(clf(texts, batch_size=batch_size)):
            for entry in row:
                assert entry["score"] == pytest.approx(want[i, names.index(entry["label"])],
                                                       abs=1e-5)

