"""Tokenizer variants.

``base`` is the backbone's own tokenizer. ``location_emoji`` adds, as single tokens, the
flag of every country in the label set and the common location emoji. The XLM-R
SentencePiece vocabulary splits a flag into its two regional-indicator letters
(🇧🇷 -> 🇧 + 🇷), so a flag is only recognisable through attention; as one token it
becomes a direct, cheap cue, which is what the reference system did.

The new embedding rows start at the mean of the embeddings of the pieces the old
tokenizer split the token into, so a new token starts where the model already "reads"
it instead of at random noise that the first steps would have to undo.

``tweet`` is ``location_emoji`` plus tweet normalisation (:data:`TWEET_NORMALIZATION`):
links become ``http``, user mentions ``@user`` and a letter repeated more than twice is
cut to two (``soooo`` -> ``soo``). It is part of the tokenizer's own normaliser, so it
travels in ``tokenizer.json``: training, ``geoloc-predict``, the export's pipeline and
ONNX serving all see the same text with no step of their own (the fused char n-gram
model reads the text as written).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import AddedToken, Regex, normalizers
from transformers import PreTrainedModel, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from geoloc.errors import TokenizerVariantError

# (the export's model file repeats no geoloc code: the split lives there, one definition)
from geoloc.inference.modeling_geoloc import split_profile_text
from geoloc.labels import flag_emoji

TOKENIZER_VARIANTS = ("base", "location_emoji", "tweet")

#: The ``tweet`` variant's rewrites (regex, replacement), run before the backbone's own
#: normaliser. A link's characters are noise (t.co hashes); a handle names a person, not a
#: place, in all but a few tweets; elongations multiply spellings of one word. The
#: Foursquare check-in "(@ Place)" has a space after the @ and is kept.
TWEET_NORMALIZATION: tuple[tuple[str, str], ...] = (
    (r"https?://\S+", "http"),
    (r"@\w+", "@user"),
    # a letter that follows two copies of itself (the tokenizers library's Replace has no
    # group substitution, so the third and later copies are matched and deleted)
    (r"(?<=(\p{L})\1)\1", ""),
)

# Common location emoji. Several carry U+FE0F (emoji presentation), which the base
# tokenizer otherwise emits as a separate piece.
LOCATION_EMOJI: tuple[str, ...] = (
    "📍", "📌", "🏠", "🏡", "🌍", "🌎", "🌏", "🌐", "✈️", "🛫", "🛬", "🗺️", "🧭", "🧳",
    "🏙️", "🌆", "🏖️", "🏝️", "🗽",
)


def location_tokens(countries: Sequence[str]) -> list[str]:
    """The strings the ``location_emoji`` variant makes single tokens: flags, then emoji."""
    return [flag_emoji(c) for c in countries] + list(LOCATION_EMOJI)


def load_base_tokenizer(backbone_dir: str | Path) -> PreTrainedTokenizerBase:
    """Load the backbone's own fast tokenizer from a materialised folder.

    ``AutoTokenizer`` is deliberately avoided: under transformers 5 the XLM-R slow class
    rebuilds the normaliser from the SentencePiece model and drops part of it; the
    folder's ``tokenizer.json`` is the exact original.
    """
    path = Path(backbone_dir)
    if (path / "tokenizer.json").exists():
        return PreTrainedTokenizerFast.from_pretrained(str(path))
    # A hub id or a folder without tokenizer.json (e.g. a WordPiece vocab.txt only).
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(backbone_dir))


def build_tokenizer(
    backbone_dir: str | Path, variant: str, countries: Sequence[str]
) -> tuple[PreTrainedTokenizerBase, list[str]]:
    """Return the tokenizer for ``variant`` and the list of tokens it added."""
    if variant not in TOKENIZER_VARIANTS:
        raise TokenizerVariantError(
            f"tokenizer.variant={variant!r}: expected one of {', '.join(TOKENIZER_VARIANTS)}"
        )
    tok = load_base_tokenizer(backbone_dir)
    if variant == "base":
        return tok, []
    vocab = tok.get_vocab()
    wanted = [t for t in location_tokens(countries) if t not in vocab]
    # normalized=False: match the raw characters, before the SentencePiece normaliser
    # can rewrite the variation selector of e.g. ✈️.
    tok.add_tokens([AddedToken(t, normalized=False, single_word=False) for t in wanted])
    new_vocab = tok.get_vocab()  # one call: it builds a 250k-entry dict each time
    added = [t for t in wanted if t in new_vocab]
    if variant == "tweet":
        backend = tok.backend_tokenizer
        rewrites = [normalizers.Replace(Regex(pattern), content)
                    for pattern, content in TWEET_NORMALIZATION]
        backend.normalizer = normalizers.Sequence(
            rewrites + ([backend.normalizer] if backend.normalizer is not None else []))
    return tok, added


def piece_ids(base_tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Ids of the pieces the base tokenizer splits ``text`` into (no special tokens).

    A lone word-start marker piece (▁) is dropped when other pieces exist: it carries
    no meaning of the token itself.
    """
    ids = base_tokenizer(text, add_special_tokens=False)["input_ids"]
    marker = base_tokenizer.convert_tokens_to_ids("▁")
    unk = base_tokenizer.unk_token_id
    if marker is None or marker == unk:  # WordPiece vocabularies have no marker piece
        return list(ids)
    kept = [i for i in ids if i != marker]
    return kept or list(ids)


def extend_embeddings(
    model: PreTrainedModel,
    base_tokenizer: PreTrainedTokenizerBase,
    tokenizer: PreTrainedTokenizerBase,
    added: Sequence[str],
) -> None:
    """Grow the word-embedding table for ``added`` tokens and initialise their rows.

    The table is resized to ``max(len(tokenizer), rows)``: some backbones (mE5-small has
    250,037 rows for 250,002 pieces) carry spare rows, and resizing to ``len(tokenizer)``
    would *shrink* them.
    """
    if not added:
        return
    emb = model.get_input_embeddings()
    rows = emb.weight.shape[0]
    model.resize_token_embeddings(max(len(tokenizer), rows), mean_resizing=False)
    weight = model.get_input_embeddings().weight
    with torch.no_grad():
        for token in added:
            new_id = tokenizer.convert_tokens_to_ids(token)
            src = piece_ids(base_tokenizer, token)
            weight[new_id] = weight[torch.tensor(src)].mean(dim=0)


# -- whole profiles: each text its own sequence ------------------------------------------


def encode_texts(tokenizer: Any, texts: Sequence[str], max_length: int,
                 per_text: bool = False) -> list:
    """Token ids of model texts, with special tokens and truncated to ``max_length``: one
    list per text (concatenated profiles), or with ``per_text`` one list per part of
    ``split_profile_text`` (at most ``MAX_TEXTS``, each truncated on its own, so a
    long caption never cuts the ones after it). One tokenizer call for the whole batch
    either way."""
    if not per_text:
        return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    parts = [split_profile_text(t) for t in texts]
    flat = tokenizer([p for ps in parts for p in ps], truncation=True,
                     max_length=max_length)["input_ids"]
    out, start = [], 0
    for ps in parts:
        out.append(flat[start:start + len(ps)])
        start += len(ps)
    return out


def token_count(ids: Sequence) -> int:
    """Tokens of one encoded row of :func:`encode_texts` (either shape): what batches are
    grouped and sorted by."""
    return sum(len(x) for x in ids) if ids and isinstance(ids[0], list) else len(ids)


def pad_ids(rows: Sequence[Sequence], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """``(input_ids, attention_mask)`` int64 arrays of encoded rows, padded to the longest:
    rows x tokens for concatenated profiles, rows x texts x tokens for per-text rows (a
    missing text is all padding, mask 0). Written here because the tokenizer's ``pad``
    and ``DataCollatorWithPadding`` handle one sequence per row only."""
    nested = bool(rows) and bool(rows[0]) and isinstance(rows[0][0], list)
    if not nested:
        width = max((len(r) for r in rows), default=0)
        ids = np.full((len(rows), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = r
            mask[i, :len(r)] = 1
        return ids, mask
    texts = max(len(r) for r in rows)
    width = max(len(t) for r in rows for t in r)
    ids = np.full((len(rows), texts, width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), texts, width), dtype=np.int64)
    for i, r in enumerate(rows):
        for j, t in enumerate(r):
            ids[i, j, :len(t)] = t
            mask[i, j, :len(t)] = 1
    return ids, mask
