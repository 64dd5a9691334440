"""Encoder truncation, tokenizer variants and the partially frozen embedding table,
on the real mE5-small weights and tokenizer."""

from __future__ import annotations

import pytest
import torch

from geoloc.errors import ModelConfigError
from geoloc.labels import DEFAULT_COUNTRIES, flag_emoji
from geoloc.model.encoder import (
    PartiallyFrozenEmbedding,
    ProfileClassifier,
    freeze_word_embeddings,
    load_encoder,
    pool,
    validate_encoder_layers,
)
from geoloc.model.tokenization import (
    LOCATION_EMOJI,
    build_tokenizer,
    extend_embeddings,
    load_base_tokenizer,
    piece_ids,
)


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_truncation_keeps_first_layers(me5_dir):
    full = load_encoder(me5_dir, 12)
    short = load_encoder(me5_dir, 3)
    assert len(short.encoder.layer) == 3 and short.config.num_hidden_layers == 3
    per_layer = _params(full.encoder.layer[0])
    assert _params(full) - _params(short) == 9 * per_layer
    # The kept layers are the *first* ones, with the pretrained weights.
    for a, b in zip(short.encoder.layer, full.encoder.layer[:3], strict=True):
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
            assert torch.equal(pa, pb)
    assert torch.equal(short.embeddings.word_embeddings.weight,
                       full.embeddings.word_embeddings.weight)


@pytest.mark.parametrize("bad", [0, 13, -1, "3", 2.5, True])
def test_encoder_layers_out_of_range_names_option(bad):
    with pytest.raises(ModelConfigError, match=r"model\.encoder_layers.*1.*12"):
        validate_encoder_layers(bad, "me5_small")


def test_minilm_depth_range():
    assert validate_encoder_layers(6, "minilm_en") == 6
    with pytest.raises(ModelConfigError, match="1 to 6"):
        validate_encoder_layers(7, "minilm_en")


def test_base_variant_splits_flags(me5_dir):
    tok, added = build_tokenizer(me5_dir, "base", DEFAULT_COUNTRIES)
    assert added == []
    assert len(tok.tokenize(flag_emoji("BR"))) > 1


def test_location_emoji_variant_makes_every_flag_one_token(me5_dir):
    tok, added = build_tokenizer(me5_dir, "location_emoji", DEFAULT_COUNTRIES)
    for code in DEFAULT_COUNTRIES:
        pieces = tok.tokenize(flag_emoji(code))
        assert pieces == [flag_emoji(code)], (code, pieces)
    for emo in LOCATION_EMOJI:
        ids = tok(emo, add_special_tokens=False)["input_ids"]
        assert len([i for i in ids if i != tok.convert_tokens_to_ids("▁")]) == 1, emo
    # A sentence keeps its other words intact.
    text = f"Bom dia {flag_emoji('BR')} 📍 São Paulo ✈️ {flag_emoji('PT')}"
    pieces = tok.tokenize(text)
    assert flag_emoji("BR") in pieces and flag_emoji("PT") in pieces and "✈️" in pieces
    assert len(added) >= len(DEFAULT_COUNTRIES)


def test_tweet_variant_normalises_links_mentions_and_elongations_in_tokenizer_json(
        me5_dir, tmp_path):
    """The tweet variant: the location_emoji tokens plus links -> http, @handles -> @user,
    letters cut to two repeats; a check-in "(@ Place)" and the flags stay; the rewrite
    is in the saved tokenizer.json, so a reloaded tokenizer (an export) does the same."""
    from transformers import PreTrainedTokenizerFast

    tok, added = build_tokenizer(me5_dir, "tweet", DEFAULT_COUNTRIES)
    emoji, _ = build_tokenizer(me5_dir, "location_emoji", DEFAULT_COUNTRIES)
    assert added == emoji.convert_ids_to_tokens(list(range(len(emoji) - len(added),
                                                          len(emoji))))
    text = f"Shopping! (@ Kohl's) http://t.co/I8ZkQHT9 @Mela_1 sooooo goood {flag_emoji('BR')}"
    want = emoji.tokenize(f"Shopping! (@ Kohl's) http @user soo good {flag_emoji('BR')}")
    assert tok.tokenize(text) == want
    tok.save_pretrained(tmp_path)
    assert PreTrainedTokenizerFast.from_pretrained(tmp_path).tokenize(text) == want


def test_new_rows_are_mean_of_old_pieces_not_random(me5_dir):
    base = load_base_tokenizer(me5_dir)
    tok, added = build_tokenizer(me5_dir, "location_emoji", DEFAULT_COUNTRIES)
    model = load_encoder(me5_dir, 1)
    rows_before = model.get_input_embeddings().weight.shape[0]
    original = model.get_input_embeddings().weight.detach().clone()
    extend_embeddings(model, base, tok, added)
    weight = model.get_input_embeddings().weight.detach()
    # The spare rows of mE5 (250,037 > 250,002 pieces) are never shrunk away.
    assert weight.shape[0] == max(len(tok), rows_before)
    assert torch.equal(weight[: len(base)], original[: len(base)])
    for token in added:
        new_id = tok.convert_tokens_to_ids(token)
        expected = original[piece_ids(base, token)].mean(dim=0)
        assert torch.allclose(weight[new_id], expected, atol=1e-6), token
    flag_rows = torch.stack([weight[tok.convert_tokens_to_ids(flag_emoji(c))]
                             for c in ("BR", "FR")])
    assert not torch.allclose(flag_rows[0], flag_rows[1])


def test_partially_frozen_embedding_matches_table_and_trains_only_new_rows(me5_dir):
    base = load_base_tokenizer(me5_dir)
    tok, added = build_tokenizer(me5_dir, "location_emoji", DEFAULT_COUNTRIES)
    model = load_encoder(me5_dir, 1)
    extend_embeddings(model, base, tok, added)
    table = model.get_input_embeddings().weight.detach().clone()
    freeze_word_embeddings(model, trainable_from=len(base))
    emb = model.get_input_embeddings()
    assert isinstance(emb, PartiallyFrozenEmbedding)
    ids = torch.tensor([tok(f"hola {flag_emoji('MX')} 📍 CDMX")["input_ids"]])
    assert torch.equal(emb(ids), table[ids])
    trainable = [n for n, p in model.named_parameters() if p.requires_grad and "word_embeddings" in n]
    assert trainable == ["embeddings.word_embeddings.trainable"]
    assert emb.trainable.shape[0] == table.shape[0] - len(base)
    emb(ids).sum().backward()
    assert emb.frozen.grad is None and emb.trainable.grad is not None
    assert emb.trainable.grad.abs().sum() > 0


def test_tuned_rows_correct_the_most_frequent_frozen_rows_and_nothing_else(me5_dir):
    """model.tune_top_rows: the N most frequent tokens of the train rows (special tokens
    out) get a trained correction that starts at zero; a lookup is the table plus the
    correction, the full table (what the export writes) holds it, and only the
    correction and the added rows get gradients."""
    from geoloc.model.module import top_token_ids

    base = load_base_tokenizer(me5_dir)
    tok, added = build_tokenizer(me5_dir, "location_emoji", DEFAULT_COUNTRIES)
    model = load_encoder(me5_dir, 1)
    extend_embeddings(model, base, tok, added)
    table = model.get_input_embeddings().weight.detach().clone()
    freeze_word_embeddings(model, trainable_from=len(base), tuned_rows=3)
    emb = model.get_input_embeddings()
    rows = [tok(t)["input_ids"] for t in ("the the the cat", "the cat", "dog")]
    the_id, cat_id = (tok.convert_tokens_to_ids(tok.tokenize(w))[0] for w in ("the", "cat"))
    chosen = top_token_ids(rows, 3, len(base), tok.all_special_ids)
    assert chosen[:2].tolist() == [the_id, cat_id]
    assert not set(chosen.tolist()) & set(tok.all_special_ids)
    # rows of texts (a whole-profile model's input) count the same; too few: filled
    assert top_token_ids([[r] for r in rows], 3, len(base), tok.all_special_ids).tolist() \
        == chosen.tolist()
    assert len(top_token_ids(rows[2:], 40, len(base), [])) == 40
    assert not emb.tuned_chosen
    emb.tune(chosen)
    assert emb.tuned_chosen and emb.tuned_ids.tolist() == sorted(chosen.tolist())
    ids = torch.tensor([rows[0]])
    assert torch.equal(emb(ids), table[ids])  # corrections start at zero
    with torch.no_grad():
        emb.tuned[emb.tuned_ids.tolist().index(the_id)] += 1.0
    want = table[ids].clone()
    want[ids == the_id] += 1.0
    torch.testing.assert_close(emb(ids), want)
    torch.testing.assert_close(emb.weight[ids], want)
    emb(ids).sum().backward()
    assert emb.frozen.grad is None and emb.tuned.grad is not None
    assert emb.tuned.grad.abs().sum(dim=1).gt(0).sum() >= 2  # the two words' rows
    with pytest.raises(ValueError, match="tuned rows"):
        emb.tune(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="tuned rows"):
        emb.tune(torch.tensor([1, 2, len(base)]))


def test_pooling_and_classifier_shapes(me5_dir):
    model = load_encoder(me5_dir, 1)
    hidden = torch.arange(12, dtype=torch.float32).reshape(1, 3, 4)
    mask = torch.tensor([[1, 1, 0]])
    assert torch.equal(pool(hidden, mask, "cls"), hidden[:, 0])
    assert torch.allclose(pool(hidden, mask, "mean"), hidden[:, :2].mean(dim=1))
    clf = ProfileClassifier(model, num_classes=37, pooling="mean")
    tok = load_base_tokenizer(me5_dir)
    enc = tok(["hello", "olá mundo"], padding=True, return_tensors="pt")
    assert clf(enc["input_ids"], enc["attention_mask"]).shape == (2, 37)
    assert clf.embed(enc["input_ids"], enc["attention_mask"]).shape == (2, 384)


def test_training_loss_options_class_balance_and_focal():
    """class_balance weights rows by count^-a with mean weight 1 over the rows; the focal
    loss down-weights confident right answers; both act on the training loss only, so
    validation stays plain cross-entropy (the out-of-fold learning curve compares)."""
    import torch.nn.functional as F
    from conftest import compose

    from geoloc.errors import ConfigError
    from geoloc.instantiate import instantiate
    from geoloc.model.module import balanced_weights

    labels = torch.tensor([0, 0, 0, 1])
    w = balanced_weights(labels, 3, 1.0)
    assert w[labels].mean().item() == pytest.approx(1.0)
    assert w[1] / w[0] == pytest.approx(3.0)  # inverse frequency
    assert torch.equal(balanced_weights(labels, 3, 0.0)[labels], torch.ones(4))

    module = instantiate(compose(["model.encoder_layers=1", "model.focal_gamma=2.0"]).model)
    logits = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 3.0], [2.0, 0.0, 0.0]])
    ce = F.cross_entropy(logits, labels, reduction="none")
    focal = module._loss(logits, labels, "train")
    assert focal.item() == pytest.approx(((1 - torch.exp(-ce)) ** 2 * ce).mean().item())
    assert focal < ce.mean()
    assert module._loss(logits, labels, "val").item() == pytest.approx(ce.mean().item())
    module.class_weights = w
    weighted = module._loss(logits, labels, "train")
    assert weighted.item() == pytest.approx(
        ((1 - torch.exp(-ce)) ** 2 * ce * w[labels]).mean().item())
    for bad in (["model.class_balance=1.5"], ["model.focal_gamma=-1"]):
        # (Hydra's instantiate wraps the module's ConfigError; the CLI reports its line)
        with pytest.raises(Exception, match=f"{ConfigError.__name__}.*{bad[0]}"):
            instantiate(compose(["model.encoder_layers=1", *bad]).model)


def test_language_balance_weights_each_languages_majority_country_down():
    """language_balance b: a row's weight is P(country | language)^-b, mean 1; a language
    that names one country leaves its rows alike; the weights act through the batch's
    ``row`` on the training loss only."""
    import torch.nn.functional as F
    from conftest import compose

    from geoloc.instantiate import instantiate
    from geoloc.model.module import detect_languages, language_weights

    langs = ["en", "en", "en", "en", "ru", "ru"]
    labels = [0, 0, 0, 1, 2, 2]  # English: 3 US, 1 GB; Russian: RU only
    w = language_weights(langs, labels, 1.0)
    assert w.mean().item() == pytest.approx(1.0)
    assert w[3] / w[0] == pytest.approx(3.0)  # P = 1/4 against 3/4
    assert w[4] == pytest.approx(w[5]) and w[4] < w[0]  # P = 1 weighs least
    assert torch.equal(language_weights(langs, labels, 0.0), torch.ones(6))
    assert detect_languages(["Bu akşam İstanbul'da maç var", "Где ты сегодня вечером?"]) == \
        ["tr", "ru"]

    module = instantiate(compose(["model.encoder_layers=1", "model.language_balance=1.0"]).model)
    logits = torch.randn(4, 37)
    y, rows = torch.tensor([0, 1, 2, 3]), torch.tensor([5, 2, 0, 1])
    module.row_weights = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    ce = F.cross_entropy(logits, y, reduction="none")
    assert module._loss(logits, y, "train", rows).item() == pytest.approx(
        (ce * torch.tensor([6.0, 3.0, 1.0, 2.0])).mean().item(), rel=1e-5)
    assert module._loss(logits, y, "val", rows).item() == pytest.approx(ce.mean().item())
