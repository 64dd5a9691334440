"""The synthetic profile generator proper (internal to :mod:`geoloc.synthetic`).

:class:`_Generator` holds the class prior and the per-country pools; ``profile(i)`` is a pure
function of ``(seed, i)``. Its probability ladders and literal pools are data
(``geoloc/resources/synthetic/generator.yaml``, whose header explains the ladder format);
this module walks them.
"""

from __future__ import annotations

import bisect
import random
import string
from collections.abc import Callable, Sequence
from typing import Any

from geoloc.data.schema import MAX_CAPTIONS, ProfileRecord
from geoloc.labels import LabelSet, flag_emoji
from geoloc.synthetic.config import SyntheticConfig
from geoloc.synthetic.lexicon import (
    DIASPORA,
    EMOTICONS,
    GENERIC_EMOJI,
    LANGUAGES,
    LAUGHTER,
    TOURIST_SPOTS,
    TRAVEL,
    TRAVEL_PHRASES,
    URL_HOSTS,
    VAGUE_LOCATIONS,
)
from geoloc.synthetic.pools import (
    TABLES,
    _country_in,
    _country_tag,
    _cum,
    _hashtag,
    _pick,
    _plain_phrases,
    _Pool,
    _pool,
)

_MASK64 = (1 << 64) - 1
_NORMAL, _SPARSE, _NO_CUE, _TRAVELLER, _DIASPORA = range(5)
_GLOBAL_ORIGINS: tuple[str, ...] = tuple(TABLES["global_origins"])
_AMOUNTS: tuple[int, ...] = tuple(TABLES["amounts"])
# Syllables for the @handles of writers whose names are not in Latin script.
_SYLLABLES = tuple(c + v for c in TABLES["syllable_consonants"] for v in TABLES["syllable_vowels"])
_URL_CHARS = string.ascii_letters + string.digits
_SENTENCE_SEPS: tuple[str, ...] = tuple(TABLES["sentence_separators"])
_BIO_SEPS: tuple[str, ...] = tuple(TABLES["bio_separators"])
_FORMATTER = string.Formatter()

# A slot's value: a string, a function that draws one (called per occurrence, only for the
# step taken), or None when the slot is unavailable (its step falls through to the next).
Slot = str | Callable[[], str] | None
# A step of a parsed ladder: (slots it needs, alternatives as (positional format, slots));
# the format is None for a template that is one slot and nothing else ("{city}").
_Step = tuple[tuple[str, ...], tuple[tuple[str | None, tuple[str, ...]], ...]]


def _parse_template(template: str) -> tuple[str | None, tuple[str, ...]]:
    """``"{city}, {country}"`` -> (``"{}, {}"``, ("city", "country")): fast to fill."""
    fmt, names = [], []
    for literal, slot, _, _ in _FORMATTER.parse(template):
        fmt.append(literal.replace("{", "{{").replace("}", "}}"))
        if slot:
            fmt.append("{}")
            names.append(slot)
    joined = "".join(fmt)
    return (None if joined == "{}" else joined), tuple(names)


def _parse_ladder(steps: list[list[Any]]) -> tuple[list[float], list[_Step]]:
    """(edges, parsed steps) of a ladder in the YAML format."""
    edges = [float(edge) for edge, _ in steps]
    if edges != sorted(edges) or edges[-1] != 1.0:
        raise ValueError(f"ladder edges must rise to 1.0, got {edges}")
    parsed: list[_Step] = []
    for _, template in steps:
        options = tuple(_parse_template(t) for t in
                        (template if isinstance(template, list) else [template]))
        parsed.append((tuple(dict.fromkeys(n for _, names in options for n in names)), options))
    return edges, parsed


_LADDERS = {name: _parse_ladder(steps) for name, steps in TABLES["ladders"].items()}


def _ladder(rng: random.Random, name: str, slots: dict[str, Slot]) -> str:
    """Draw one step of the named ladder (see the YAML header) and fill in its ``slots``."""
    edges, steps = _LADDERS[name]
    # the last edge is 1.0, so this is _pick(rng, steps, edges): the first edge above r
    k = bisect.bisect_right(edges, rng.random())
    needs, options = steps[k]
    if None in slots.values():
        while any(slots[slot] is None for slot in needs):  # unavailable: fall through
            k += 1
            needs, options = steps[k]
    fmt, names = options[int(rng.random() * len(options))] if len(options) > 1 else options[0]
    if len(names) == 1:  # the common case, kept short
        value = slots[names[0]]
        value = value if isinstance(value, str) else value()
        return value if fmt is None else fmt.format(value)
    values = []
    for slot in names:  # left to right: a slot that draws draws anew at each occurrence
        value = slots[slot]
        values.append(value if isinstance(value, str) else value())
    return values[0] if fmt is None else fmt.format(*values)


def _mix(seed: int, index: int) -> int:
    """SplitMix64 of (seed, index): independent per-profile RNG seeds."""
    x = (seed * 0x9E3779B97F4A7C15 + index * 0xD1B54A32D192ED03 + 0x632BE59BD9B4E019) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


class _Generator:
    """Holds the prior and the pools; ``profile(i)`` is a pure function of (seed, i)."""

    def __init__(self, seed: int, countries: Sequence[str], config: SyntheticConfig) -> None:
        self.seed = seed
        self.cfg = config
        self.labels = LabelSet.from_codes(countries, option="countries").countries
        weights = [1.0 / (rank + 1) ** config.zipf_exponent for rank in range(len(self.labels))]
        overrides = config.country_weights or {}
        unknown = set(overrides) - set(self.labels)
        if unknown:
            raise ValueError(f"SyntheticConfig.country_weights: {sorted(unknown)} not in countries")
        weights = [overrides.get(c, w) for c, w in zip(self.labels, weights, strict=True)]
        if sum(weights) <= 0:
            raise ValueError("SyntheticConfig.country_weights: all weights are zero")
        self.label_cum = _cum(weights)
        others = LabelSet.from_codes(config.other_countries, option="other_countries").countries \
            if config.other_countries else ()
        self.others = [c for c in others if c not in self.labels]
        self.other_cum = _cum([1.0] * len(self.others))
        kinds = [config.sparse_profile_share, config.no_cue_english_share,
                 config.traveller_share, config.diaspora_share]
        self.kind_cum = _cum(kinds)
        self.travel = [c for c in TRAVEL]
        self.travel_cum = _cum(TRAVEL.values())
        # Build every pool now so generation never pays for it lazily (and timings are clean).
        for code in (*self.labels, *self.others, *self.travel, *self._origins()):
            _pool(code)

    @staticmethod
    def _origins() -> list[str]:
        return sorted({o for origins in DIASPORA.values() for o in origins} | set(_GLOBAL_ORIGINS))

    # ---------------------------------------------------------------- one profile
    def profile(self, index: int) -> ProfileRecord:
        cfg = self.cfg
        rng = random.Random(_mix(self.seed, index))
        if self.others and rng.random() < cfg.other_share:
            home = _pool(_pick(rng, self.others, self.other_cum))
        else:
            home = _pool(_pick(rng, self.labels, self.label_cum))
        u = rng.random()
        kind = _NORMAL
        for k, edge in enumerate(self.kind_cum):
            if u < edge:
                kind = k + 1
                break

        if kind == _SPARSE:
            bio, captions = self._sparse(rng, home)
        elif kind == _NO_CUE:
            bio, captions = self._no_cue(rng)
        elif kind == _TRAVELLER:
            bio, captions = self._traveller(rng, home)
        elif kind == _DIASPORA:
            bio, captions = self._diaspora(rng, home)
        else:
            bio, captions = self._ordinary(rng, home)
        stated = self._stated_location(rng, home) if rng.random() < cfg.stated_location_share \
            else None
        return {"id": f"syn{self.seed}-{index:07d}", "bio": bio, "captions": captions,
                "stated_location": stated, "country": home.code}

    # ---------------------------------------------------------------- profile kinds
    def _ordinary(self, rng: random.Random, home: _Pool) -> tuple[str, list[str]]:
        lang0 = _pick(rng, home.langs, home.lang_cum)
        bio = self._bio(rng, home, home, lang0)
        caps = [self._caption(rng, home, home, self._caption_lang(rng, home, lang0))
                for _ in range(MAX_CAPTIONS)]
        return bio, caps

    def _sparse(self, rng: random.Random, home: _Pool) -> tuple[str, list[str]]:
        lang0 = _pick(rng, home.langs, home.lang_cum)
        bio = self._emoji(rng, 1, 3) if rng.random() < 0.3 else ""
        return bio, [self._short(rng, lang0) for _ in range(MAX_CAPTIONS)]

    def _no_cue(self, rng: random.Random) -> tuple[str, list[str]]:
        cfg, en = self.cfg, LANGUAGES["en"]
        bio = "" if rng.random() < cfg.empty_bio_share else rng.choice(en["bio"])
        caps = []
        for _ in range(MAX_CAPTIONS):
            if rng.random() < cfg.short_caption_share:
                caps.append(rng.choice(en["words"]))
                continue
            text = self._sentences(rng, rng.choice(_plain_phrases("en")), "en", "en")
            if rng.random() < cfg.laugh_rate:
                text += " " + rng.choice(LAUGHTER["en"])
            if rng.random() < cfg.emoji_rate * 0.5:
                text += " " + self._emoji(rng, 1, 2)
            if rng.random() < cfg.emoticon_rate:
                text += " " + rng.choice(EMOTICONS)
            if rng.random() < cfg.hashtag_rate * 0.5:
                text += " #" + rng.choice(en["tags"])
            caps.append(self._finish(rng, text, None))
        return bio, caps

    def _traveller(self, rng: random.Random, home: _Pool) -> tuple[str, list[str]]:
        cfg = self.cfg
        lang0 = _pick(rng, home.langs, home.lang_cum)
        dests = []
        for _ in range(rng.randint(1, 3)):
            dest = _pick(rng, self.travel, self.travel_cum)
            if dest != home.code and dest not in dests:
                dests.append(dest)
        if not dests:
            dests = [next(c for c in self.travel if c != home.code)]
        bio = self._bio(rng, home, home, lang0)
        if rng.random() < 0.5:
            flags = "".join(flag_emoji(d) for d in dests)
            n_countries = rng.randint(12, 60)  # drawn before the choice, whichever tail wins
            tail = rng.choice(TABLES["traveller_bio_tails"]).format(
                flags=flags, home_flag=home.flag, n_countries=n_countries)
            bio = f"{bio} | {tail}" if bio else tail
        n_trip = rng.randint(2, 4)
        caps = []
        for k in range(MAX_CAPTIONS):
            lang = lang0 if rng.random() < 0.5 else "en"
            if k < n_trip:
                caps.append(self._finish(rng, self._travel_caption(rng, rng.choice(dests), lang),
                                         home))
            else:
                caps.append(self._caption(rng, home, home, lang, loc_rate=cfg.location_rate * 0.5))
        rng.shuffle(caps)
        return bio, caps

    def _diaspora(self, rng: random.Random, home: _Pool) -> tuple[str, list[str]]:
        cfg = self.cfg
        origins = DIASPORA.get(home.code)
        if origins:
            origin = _pool(_pick(rng, list(origins), _cum(origins.values())))
        else:  # a large emigrant community writing another primary language
            choices = [c for c in _GLOBAL_ORIGINS if _pool(c).primary != home.primary]
            origin = _pool(rng.choice(choices))
        lang0 = _pick(rng, origin.langs, origin.lang_cum)
        bio = self._bio(rng, origin, home, lang0)
        if rng.random() < 0.4:
            city = self._city(rng, home, "en")  # drawn before the choice, whichever tail wins
            tail = rng.choice(TABLES["diaspora_bio_tails"]).format(
                origin_flag=origin.flag, home_flag=home.flag, city=city)
            bio = f"{bio} {tail}" if bio else tail
        caps = []
        for _ in range(MAX_CAPTIONS):
            if rng.random() < 0.25:
                lang = home.primary if rng.random() < 0.6 else "en"
                caps.append(self._caption(rng, home, home, lang))
            else:
                lang = "en" if lang0 != "en" and rng.random() < cfg.english_mix_share else lang0
                caps.append(self._caption(rng, origin, home, lang))
        return bio, caps

    # ---------------------------------------------------------------- pieces
    def _caption_lang(self, rng: random.Random, pool: _Pool, lang0: str) -> str:
        if lang0 != "en" and rng.random() < self.cfg.english_mix_share:
            return "en"
        if len(pool.langs) > 1 and rng.random() < 0.2:
            return _pick(rng, pool.langs, pool.lang_cum)
        return lang0

    def _caption(self, rng: random.Random, writer: _Pool, home: _Pool, lang: str,
                 loc_rate: float | None = None) -> str:
        """One caption in ``lang`` by someone from ``writer`` living in ``home``."""
        cfg = self.cfg
        if rng.random() < cfg.short_caption_share:
            return self._short(rng, lang, home if rng.random() < 0.1 else None)
        extra = writer.extra.get(lang)
        if extra and rng.random() < cfg.dialect_rate:
            text = rng.choice(extra)
        else:
            text = rng.choice(LANGUAGES[lang]["phrases"])
        if "{food}" in text and not writer.foods:  # a country without a dish list
            text = rng.choice(_plain_phrases(lang))
        if "{" in text:
            text = self._fill(rng, text, writer, home, lang)
        parts = [self._sentences(rng, text, lang, writer.primary)]
        if writer.cues and rng.random() < cfg.cue_rate:
            cue = self._cue(rng, writer)
            if rng.random() < 0.3:
                parts.insert(0, cue + ",")
            else:
                parts.append(cue)
        if rng.random() < (cfg.location_rate if loc_rate is None else loc_rate):
            parts.append(self._city_mention(rng, home, lang))
        if rng.random() < cfg.laugh_rate:
            parts.append(rng.choice(LAUGHTER.get(lang) or LAUGHTER["en"]))
        if rng.random() < cfg.emoji_rate:
            if writer.emoji and rng.random() < 0.2:
                parts.append(rng.choice(writer.emoji))
            else:
                parts.append(self._emoji(rng, 1, 3))
        if rng.random() < cfg.emoticon_rate:
            parts.append(rng.choice(EMOTICONS))
        if rng.random() < cfg.flag_rate:
            parts.append(home.flag)
        if rng.random() < cfg.hashtag_rate:
            parts.append(self._hashtags(rng, writer, home, lang))
        return self._finish(rng, " ".join(parts), writer)

    def _sentences(self, rng: random.Random, first: str, lang: str, own: str) -> str:
        """``first`` followed by 0-4 more everyday lines (geometric, ``extra_sentence_rate``).

        A post in a language that is not the writer's own (``own``) code-switches back to it
        for some sentences: a Japanese writer's English caption often ends in Japanese.
        """
        cfg = self.cfg
        text, used = first, {first}
        for _ in range(4):
            if rng.random() >= cfg.extra_sentence_rate:
                break
            lang_k = own if own != lang and rng.random() < cfg.code_switch_rate else lang
            nxt = rng.choice(_plain_phrases(lang_k))
            if nxt in used:
                continue
            used.add(nxt)
            # punctuation between sentences only after an alphabetic-script letter or digit
            sep = rng.choice(_SENTENCE_SEPS) if text[-1].isalnum() and text[-1] < "\u0e00" \
                else " "
            text = f"{text}{sep}{nxt}"
        return text

    def _finish(self, rng: random.Random, text: str, writer: _Pool | None) -> str:
        """Lower-case some posts; add an @mention (reply or tag) and a link to some."""
        cfg = self.cfg
        if rng.random() < cfg.lowercase_rate:
            text = text.lower()
        if rng.random() < cfg.mention_rate:
            handle = "@" + self._handle(rng, writer)
            text = f"{handle} {text}" if rng.random() < 0.4 else f"{text} {handle}"
        if rng.random() < cfg.url_rate:
            scheme = "https" if rng.random() < 0.8 else "http"
            path = "".join(rng.choice(_URL_CHARS) for _ in range(rng.randint(6, 10)))
            text = f"{text} {scheme}://{rng.choice(URL_HOSTS)}/{path}"
        return text

    def _handle(self, rng: random.Random, writer: _Pool | None) -> str:
        """A friend's @handle: a name from the writer's culture, or syllables, plus decoration."""
        stems = writer.handles if writer is not None and writer.handles else None

        def stem() -> str:
            if stems is not None:
                return rng.choice(stems)
            return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))

        return _ladder(rng, "handle", {"stem": stem, "number": lambda: str(rng.randint(1, 99))})

    def _fill(self, rng: random.Random, text: str, writer: _Pool, home: _Pool, lang: str) -> str:
        slots = {}
        if "{name}" in text:
            names = writer.names.get(lang) or next(iter(writer.names.values()))
            slots["name"] = rng.choice(names)
        if "{food}" in text:
            slots["food"] = rng.choice(writer.foods)
        if "{city}" in text:
            slots["city"] = self._city(rng, home, lang)
        return text.format(**slots)

    def _cue(self, rng: random.Random, pool: _Pool) -> str:
        if pool.money and rng.random() < 0.12:
            price = rng.choice(pool.money).format(n=rng.choice(_AMOUNTS))
            return f"{rng.choice(pool.foods)} {price}" if pool.foods else price
        return rng.choice(pool.cues)

    def _city(self, rng: random.Random, pool: _Pool, lang: str) -> str:
        native = pool.native_idx.get(lang)
        if native is not None and rng.random() < 0.85:
            idx, cum = native
            return pool.city_forms[lang][idx[bisect.bisect_right(cum, rng.random() * cum[-1])]]
        k = bisect.bisect_right(pool.city_cum, rng.random() * pool.city_cum[-1])
        forms = pool.city_forms.get(lang)
        if forms is not None and rng.random() < 0.85:
            return forms[k]
        return pool.cities[k]

    def _city_mention(self, rng: random.Random, pool: _Pool, lang: str) -> str:
        city = self._city(rng, pool, lang)
        at = LANGUAGES[lang]["at"]
        return _ladder(rng, "city_mention", {
            "city": city, "flag": pool.flag, "at": at.format(city=city) if at else None,
            "city_tag": lambda: _hashtag(city)})

    def _hashtags(self, rng: random.Random, writer: _Pool, home: _Pool, lang: str) -> str:
        def country_tag() -> str:
            pool = writer if rng.random() < 0.5 else home
            return rng.choice(pool.tags) if pool.tags and rng.random() < 0.6 \
                else _country_tag(pool, lang)

        slots: dict[str, Slot] = {
            "language_tag": lambda: rng.choice(LANGUAGES[lang]["tags"]),
            "english_tag": lambda: rng.choice(LANGUAGES["en"]["tags"]),
            "country_tag": country_tag,
            "city_tag": lambda: _hashtag(self._city(rng, home, lang)),
        }
        tags = [_ladder(rng, "hashtag", slots) for _ in range(rng.randint(1, 4))]
        return " ".join("#" + t for t in dict.fromkeys(tags))

    def _emoji(self, rng: random.Random, lo: int, hi: int) -> str:
        return "".join(rng.choice(GENERIC_EMOJI) for _ in range(rng.randint(lo, hi)))

    def _short(self, rng: random.Random, lang: str, pool: _Pool | None = None) -> str:
        return _ladder(rng, "short_caption", {
            "flag": pool.flag if pool is not None else "",
            "emoji": lambda: self._emoji(rng, 1, 3),
            "word": lambda: rng.choice(LANGUAGES[lang]["words"]),
            "one_emoji": lambda: self._emoji(rng, 1, 1)})

    def _bio(self, rng: random.Random, writer: _Pool, home: _Pool, lang: str) -> str:
        cfg = self.cfg
        if rng.random() < cfg.empty_bio_share:
            return ""
        lex = LANGUAGES[lang]
        jobs = writer.jobs.get(lang)
        parts = [rng.choice(jobs) if jobs and rng.random() < 0.3 else rng.choice(lex["bio"])]
        if rng.random() < 0.3:
            parts.append(rng.choice(lex["bio"]))
        if rng.random() < 0.15:
            names = writer.names.get(lang) or next(iter(writer.names.values()))
            parts.insert(0, rng.choice(names))
        if rng.random() < cfg.bio_location_rate:
            parts.append(self._bio_location(rng, home, lang))
        if rng.random() < 0.35:
            parts.append(self._emoji(rng, 1, 3))
        parts = list(dict.fromkeys(parts))
        sep = rng.choice(_BIO_SEPS)
        return sep.join(parts)

    def _bio_location(self, rng: random.Random, pool: _Pool, lang: str) -> str:
        city = self._city(rng, pool, lang)
        lives = LANGUAGES[lang]["lives"]
        return _ladder(rng, "bio_location", {
            "city": city, "flag": pool.flag, "country": lambda: _country_in(pool, lang),
            "lives": (lambda: rng.choice(lives).format(city=city)) if lives else None})

    def _travel_caption(self, rng: random.Random, dest: str, lang: str) -> str:
        pool = _pool(dest)
        spots = TOURIST_SPOTS.get(dest)
        place = rng.choice(spots) if spots and rng.random() < 0.6 else self._city(rng, pool, "en")
        if lang == "en" and rng.random() < 0.6:
            text = rng.choice(TRAVEL_PHRASES).format(city=place)
        else:
            text = f"{rng.choice(_plain_phrases(lang))} 📍 {place}"
        if rng.random() < 0.6:
            text += " " + pool.flag
        if rng.random() < 0.4:
            text += f" #{_hashtag(place)} #{_hashtag(pool.name_en)}"
        if rng.random() < 0.3:
            text += " ✈️"
        return text

    def _stated_location(self, rng: random.Random, pool: _Pool) -> str:
        if rng.random() < self.cfg.vague_location_share:
            return rng.choice(VAGUE_LOCATIONS)
        lang = pool.primary
        k = bisect.bisect_right(pool.city_cum, rng.random() * pool.city_cum[-1])
        latin = pool.cities[k]
        local = pool.city_forms[lang][k]
        city = local if rng.random() < 0.7 else latin
        aliases = pool.aliases.get(latin)
        return _ladder(rng, "stated_location", {
            "city": city, "latin": latin, "flag": pool.flag, "country_en": pool.name_en,
            "country": pool.name_local.get(lang, pool.name_en),
            "latin_lower": lambda: latin.lower(),
            "alias": (lambda: rng.choice(aliases)) if latin in pool.aliases else None})

