"""Text statistics of geoloc.synthetic.realism on small hand-made texts (fast, no gazetteer)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from geoloc.synthetic.realism import (
    REPORT_STATS,
    char_script,
    emoji_count,
    is_all_lowercase,
    is_english,
    scripts_of,
    text_stats,
)


@pytest.mark.parametrize(
    ("text", "scripts"),
    [
        ("Hello world", {"latin"}),
        ("Ça va? Ünïcödé", {"latin"}),
        ("Chúc mừng năm mới", {"latin"}),  # Vietnamese: Latin with stacked diacritics
        ("ＡＢＣ", {"latin"}),  # fullwidth Latin
        ("Привет, Москва", {"cyrillic"}),
        ("Καλημέρα", {"greek"}),
        ("صباح الخير", {"arabic"}),
        ("שלום", {"hebrew"}),
        ("नमस्ते", {"devanagari"}),
        ("সুপ্রভাত", {"bengali"}),
        ("สวัสดี", {"thai"}),
        ("안녕하세요", {"hangul"}),
        ("こんにちは", {"kana"}),
        ("カタカナ", {"kana"}),
        ("東京", {"han"}),
        ("東京タワーに行った", {"han", "kana"}),
        ("ქართული", {"other"}),  # Georgian: not reported on its own
        ("I ❤️ Москва", {"latin", "cyrillic"}),
        ("😀🔥 123 !!", set()),
        ("", set()),
    ],
)
def test_scripts_of(text, scripts):
    assert scripts_of(text) == scripts


def test_char_script_ignores_non_letters():
    assert char_script("7") is None and char_script(" ") is None and char_script("😀") is None
    assert char_script("a") == "latin" and char_script("ж") == "cyrillic"


def test_emoji_count_and_flags():
    assert emoji_count("no emoji here :)") == 0
    assert emoji_count("I love it ❤️") == 1
    assert emoji_count("🇫🇷") == 1  # a flag is one emoji
    assert emoji_count("🔥🔥 ok 😂") == 3
    st = text_stats(["Paris 🇫🇷", "📍 Lyon", "plain", "nice :)"], place=False)
    assert st["share_emoji"] == pytest.approx(0.5)
    assert st["share_flag"] == pytest.approx(0.25)
    assert st["share_pin"] == pytest.approx(0.25)
    assert st["share_emoticon"] == pytest.approx(0.25)
    assert st["emoji_per_text"] == pytest.approx(0.5)


def test_url_mention_hashtag():
    texts = [
        "look https://example.org/x?y=1",
        "www.example.com is down",
        "@anna_b see you",
        "write to me at a@b.com",  # an e-mail address is no mention
        "#summer vibes",
        "Tom &#39;s bar &amp; grill",  # HTML entities are no hashtags
        "nothing",
        "issue #12 fixed",
    ]
    st = text_stats(texts, place=False)
    assert st["share_url"] == pytest.approx(2 / 8)
    assert st["share_mention"] == pytest.approx(1 / 8)
    assert st["share_hashtag"] == pytest.approx(2 / 8)


def test_scripts_ignore_urls_and_mentions():
    st = text_stats(["Привет https://example.org/abc @friend", "東京 @tokyo_guy"], place=False)
    assert st["script_latin"] == 0.0
    assert st["script_cyrillic"] == pytest.approx(0.5)
    assert st["script_non_latin"] == 1.0


def test_lengths():
    st = text_stats(["ab", "abcd", "one two three", "😀"], place=False)
    assert st["chars_mean"] == pytest.approx((2 + 4 + 13 + 1) / 4)
    assert st["chars_median"] == pytest.approx(3.0)
    assert st["words_mean"] == pytest.approx((1 + 1 + 3 + 1) / 4)
    assert st["words_median"] == pytest.approx(1.0)
    assert st["share_short"] == pytest.approx(0.75)
    assert st["script_none"] == pytest.approx(0.25)
    ten = text_stats(["x" * k for k in range(1, 11)], place=False)
    assert (ten["chars_p10"], ten["chars_p90"]) == (2.0, 9.0)  # nearest rank


def test_english_proxy_and_lowercase():
    assert is_english("I love the beach")
    assert is_english("can’t wait")  # typographic apostrophe
    assert not is_english("Bom dia, gente")
    assert not is_english("Het is mooi weer")  # Dutch "is" is not an English cue
    assert not is_english("Bom dia #love #happy @theguy https://the.example/you")
    assert is_all_lowercase("good morning sunshine")
    assert is_all_lowercase("bom dia #Brasil @Ana")  # tags and handles do not count
    assert not is_all_lowercase("Good morning")
    assert not is_all_lowercase("東京 😀")  # no cased letter at all


def test_place_statistics_with_a_given_resolver():
    def resolver(text):
        return SimpleNamespace(country="FR") if "Paris" in text else None

    st = text_stats(["Paris je t'aime", "Paris baby", "home"], ["FR", "US", "FR"],
                    resolver=resolver)
    assert st["share_place"] == pytest.approx(2 / 3)
    assert st["share_place_true"] == pytest.approx(1 / 3)
    assert "share_place_true" not in text_stats(["Paris"], resolver=resolver)
    assert "share_place" not in text_stats(["Paris"], place=False)


def test_edge_cases_and_report_keys():
    assert text_stats([], place=False) == {"n": 0.0}
    with pytest.raises(ValueError):
        text_stats(["a", "b"], ["FR"], place=False)
    st = text_stats(["Hello @you https://x.example 😀 #tag"], ["FR"],
                    resolver=lambda t: None)
    assert {k for k, _ in REPORT_STATS} <= set(st)
