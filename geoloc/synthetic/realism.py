"""Surface statistics of a set of short social-media texts, to compare synthetic with real.

The synthetic generator (:mod:`geoloc.synthetic`) is the default data set, so it should
*look like* real posts in the ways a model can pick up: how long a post is, which scripts it
is written in, how often it carries emoji, URLs, @mentions, hashtags and place names. This
module measures those things on any list of texts (one text per post or per profile) so
that a synthetic sample and a real one can be put side by side
(``experiments/synthetic_realism/run.py``).

What each statistic measures (every ``share_*`` is the share of texts with at least one):

- ``chars_*``: length in Unicode code points of the text as given (a flag emoji counts 2,
  ``❤️`` counts 2); ``words_*``: whitespace-separated tokens (a Japanese or Thai sentence
  without spaces is one "word", so compare word counts only between like scripts);
  ``*_mean``, ``*_p10``, ``*_median``, ``*_p90``; ``share_short`` = at most 2 words;
- ``script_<name>``: the text, URLs and @mentions removed (they are Latin whatever the
  language), holds a *letter* (Unicode category L*) of that script. The
  script is read off the character's Unicode name (``LATIN``, ``CYRILLIC``, ``HIRAGANA``,
  ``CJK UNIFIED IDEOGRAPH``...), fullwidth Latin counts as Latin, hiragana and katakana are
  one ``kana`` script, ideographs are ``han``. ``script_other`` is any letter of a script
  not listed in :data:`SCRIPTS`; ``script_none`` a text with no letter at all (emoji,
  digits, punctuation only); ``script_non_latin`` a text with a letter outside Latin;
- ``share_emoji``: at least one emoji as the ``emoji`` package defines it (a flag is one
  emoji; ©, ®, ™ and keycaps count too); ``emoji_per_text``: mean count per text;
  ``share_flag``: a regional-indicator pair (a country flag); ``share_pin``: 📍 or 🏠;
  ``share_emoticon``: an ASCII emoticon such as ``:)``, ``:D``, ``;-)``, ``xD``, ``<3``;
- ``share_lowercase``: the running text has cased letters, none upper case;
- ``share_url``: ``http(s)://`` or ``www.``; ``share_mention``: ``@name``;
  ``share_hashtag``: ``#tag`` (not an HTML entity ``&#39;``);
- ``share_english``: the running text (URLs, @mentions, #hashtags removed) holds a word of a short list of English function
  words that are not also common words of the other languages the generator writes
  (:data:`ENGLISH_WORDS`; at least one). A cheap proxy for "written (partly) in English"; the experiment
  checks it against the real set's human "Definitely English" annotation;
- ``share_place``: :func:`geoloc.location.resolve_location` finds a place in the text
  (any country; the resolver was built for location fields, so on free text a few
  ordinary words that are also town names fire too); ``share_place_true``: it names the
  text's own country (only when countries are given). The second is the cleaner measure of
  "this post carries a place cue that points home".

All statistics are plain floats in a flat dict so they tabulate and diff easily.
"""

from __future__ import annotations

import re
import statistics
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache

from geoloc.location import resolve_location

# Scripts reported one by one (others are pooled into ``script_other``).
SCRIPTS: tuple[str, ...] = (
    "latin", "cyrillic", "greek", "arabic", "hebrew", "devanagari", "bengali", "thai",
    "hangul", "kana", "han",
)
_NAME_PREFIX = {
    "LATIN": "latin", "FULLWIDTH LATIN": "latin", "CYRILLIC": "cyrillic", "GREEK": "greek",
    "ARABIC": "arabic", "HEBREW": "hebrew", "DEVANAGARI": "devanagari", "BENGALI": "bengali",
    "THAI": "thai", "HANGUL": "hangul", "HALFWIDTH HANGUL": "hangul", "HIRAGANA": "kana",
    "KATAKANA": "kana", "HALFWIDTH KATAKANA": "kana", "CJK": "han",
}
# longest prefix first so "FULLWIDTH LATIN" wins over a shorter match
_PREFIXES = sorted(_NAME_PREFIX, key=len, reverse=True)

URL = re.compile(r"https?://\S+|\bwww\.\S+", re.IGNORECASE)
MENTION = re.compile(r"(?<![\w@])@\w+")
HASHTAG = re.compile(r"(?<![\w#&])#\w+")
FLAG = re.compile("[\U0001F1E6-\U0001F1FF]{2}")
PIN = re.compile("[\U0001F4CD\U0001F3E0]")  # 📍 🏠
EMOTICON = re.compile(
    r"(?:(?<![\w:])[:;=8][-^o']?[)(\]\[dDpP/\\|oO*3](?![\w)(])"  # :) :-( ;P :D =] :*
    r"|(?<!\w)[xX][dD]+(?!\w)"  # xD xDD
    r"|(?<![\w<])<3+(?!\d)"  # <3
    r"|\^[_.]?\^)"  # ^^ ^_^
)
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
# English function words that are not ordinary words of the generator's other languages
# ("is" is Dutch, "was" German, "my"/"we"/"to" Polish, "on" French, "for" Danish...).
ENGLISH_WORDS = frozenset({
    "the", "and", "you", "your", "this", "that", "with", "just", "what", "have", "are",
    "not", "but", "when", "get", "got", "can", "can't", "don't", "i'm", "it's", "you're",
    "really", "about", "been", "from", "they", "there", "would", "should", "because",
    "some", "much", "why", "how", "who", "ever", "never", "today", "tonight", "love",
    "happy", "good", "day", "time", "people", "lol", "going", "gonna", "wanna", "thank",
    "thanks", "want", "need", "know", "think", "like", "see", "new", "night", "morning",
})


@lru_cache(maxsize=65536)
def char_script(ch: str) -> str | None:
    """The script of a letter (one of :data:`SCRIPTS` or ``"other"``); None for a non-letter."""
    if not unicodedata.category(ch).startswith("L"):
        return None
    name = unicodedata.name(ch, "")
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            return _NAME_PREFIX[prefix]
    return "other"


def scripts_of(text: str) -> set[str]:
    """The scripts whose letters appear in ``text`` (empty for emoji/digits only)."""
    out = set()
    for ch in text:
        s = char_script(ch)
        if s is not None:
            out.add(s)
    return out


def emoji_count(text: str) -> int:
    """Number of emoji in ``text`` (``emoji`` package; a flag or a ZWJ sequence is one)."""
    import emoji

    return emoji.emoji_count(text)


def _running_text(text: str) -> str:
    """``text`` without URLs, @mentions and #hashtags (Latin/English whatever the language)."""
    return HASHTAG.sub(" ", MENTION.sub(" ", URL.sub(" ", text)))


def is_english(text: str) -> bool:
    """Cheap proxy: the running text (no URL, @mention, #hashtag) holds a word of
    :data:`ENGLISH_WORDS`."""
    words = _WORD.findall(_running_text(text))
    return any(w.lower().replace("’", "'") in ENGLISH_WORDS for w in words)


def is_all_lowercase(text: str) -> bool:
    """The running text has cased letters and none of them is upper case."""
    t = _running_text(text)
    return any(c.islower() for c in t) and not any(c.isupper() for c in t)


def _quantiles(values: Sequence[float], prefix: str) -> dict[str, float]:
    if not values:
        return {f"{prefix}_{k}": float("nan") for k in ("mean", "p10", "median", "p90")}
    ordered = sorted(values)

    def q(p: float) -> float:  # nearest-rank quantile: robust and exact on small sets
        return float(ordered[min(len(ordered) - 1, max(0, round(p * (len(ordered) - 1))))])

    return {f"{prefix}_mean": float(statistics.fmean(ordered)), f"{prefix}_p10": q(0.10),
            f"{prefix}_median": float(statistics.median(ordered)), f"{prefix}_p90": q(0.90)}


def text_stats(
    texts: Iterable[str],
    countries: Sequence[str | None] | None = None,
    place: bool = True,
    resolver: Callable[[str], object] | None = None,
) -> dict[str, float]:
    """Statistics of ``texts`` (see the module docstring); ``n`` is the number of texts.

    ``countries`` (aligned with ``texts``) enables ``share_place_true``. ``place=False``
    skips the place-name statistics (they need the gazetteer: a few seconds once per
    process). ``resolver`` replaces :func:`resolve_location` (tests); it returns an object
    with a ``country`` attribute, or None.
    """
    texts = list(texts)
    n = len(texts)
    if countries is not None and len(countries) != n:
        raise ValueError(f"{len(countries)} countries for {n} texts")
    out: dict[str, float] = {"n": float(n)}
    if n == 0:
        return out
    out.update(_quantiles([len(t) for t in texts], "chars"))
    words = [len(t.split()) for t in texts]
    out.update(_quantiles(words, "words"))
    out["share_short"] = sum(w <= 2 for w in words) / n

    script_counts = dict.fromkeys((*SCRIPTS, "other", "none", "non_latin"), 0)
    emoji_n = emoji_texts = 0
    flags = pins = emoticons = urls = mentions = hashtags = english = lower = 0
    for t in texts:
        found = scripts_of(MENTION.sub(" ", URL.sub(" ", t)))
        for s in found:
            script_counts[s if s in script_counts else "other"] += 1
        if not found:
            script_counts["none"] += 1
        if found - {"latin"}:
            script_counts["non_latin"] += 1
        k = emoji_count(t)
        emoji_n += k
        emoji_texts += k > 0
        flags += bool(FLAG.search(t))
        pins += bool(PIN.search(t))
        emoticons += bool(EMOTICON.search(t))
        urls += bool(URL.search(t))
        mentions += bool(MENTION.search(t))
        hashtags += bool(HASHTAG.search(t))
        english += is_english(t)
        lower += is_all_lowercase(t)
    for s, c in script_counts.items():
        out[f"script_{s}"] = c / n
    out.update({
        "share_emoji": emoji_texts / n, "emoji_per_text": emoji_n / n, "share_flag": flags / n,
        "share_pin": pins / n, "share_emoticon": emoticons / n, "share_url": urls / n,
        "share_mention": mentions / n, "share_hashtag": hashtags / n,
        "share_english": english / n, "share_lowercase": lower / n,
    })
    if place:
        if resolver is None:
            resolver = resolve_location
        hits = [resolver(t) for t in texts]
        out["share_place"] = sum(h is not None for h in hits) / n
        if countries is not None:
            out["share_place_true"] = sum(
                h is not None and getattr(h, "country", None) == c
                for h, c in zip(hits, countries, strict=True)) / n
    return out


# The statistics shown in reports, in order, with a short label.
REPORT_STATS: tuple[tuple[str, str], ...] = (
    ("chars_mean", "length, chars: mean"),
    ("chars_p10", "length, chars: p10"),
    ("chars_median", "length, chars: median"),
    ("chars_p90", "length, chars: p90"),
    ("words_mean", "length, words: mean"),
    ("words_median", "length, words: median"),
    ("words_p90", "length, words: p90"),
    ("share_short", "share ≤ 2 words"),
    ("script_latin", "script: Latin"),
    ("script_non_latin", "script: any non-Latin"),
    ("script_cyrillic", "script: Cyrillic"),
    ("script_greek", "script: Greek"),
    ("script_arabic", "script: Arabic"),
    ("script_hebrew", "script: Hebrew"),
    ("script_devanagari", "script: Devanagari"),
    ("script_bengali", "script: Bengali"),
    ("script_thai", "script: Thai"),
    ("script_hangul", "script: Hangul"),
    ("script_kana", "script: kana"),
    ("script_han", "script: Han"),
    ("script_other", "script: other"),
    ("script_none", "script: no letter"),
    ("share_english", "English (function-word proxy)"),
    ("share_lowercase", "all lower case"),
    ("share_emoji", "has emoji"),
    ("emoji_per_text", "emoji per text"),
    ("share_flag", "has flag"),
    ("share_pin", "has 📍/🏠"),
    ("share_emoticon", "has ASCII emoticon"),
    ("share_url", "has URL"),
    ("share_mention", "has @mention"),
    ("share_hashtag", "has #hashtag"),
    ("share_place", "place found (any country)"),
    ("share_place_true", "place found = own country"),
)
