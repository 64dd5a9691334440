"""The knobs of the synthetic generator (:class:`SyntheticConfig`), in a module of their
own so that the generator (:mod:`geoloc.synthetic.generator`) and the public API
(:mod:`geoloc.synthetic`, which re-exports the class) both import it without importing
each other.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from geoloc.synthetic.lexicon import DEFAULT_OTHER_COUNTRIES


@dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the generator; every share is a probability in [0, 1].

    Profile kinds (mutually exclusive; the rest are ordinary profiles):

    - ``sparse_profile_share``: every caption one word or emoji only, bio empty or emoji;
    - ``no_cue_english_share``: generic English, no place, flag, slang or local name;
    - ``traveller_share``: several captions name other countries' places and flags;
    - ``diaspora_share``: writes in the language and culture of an origin country (see
      ``lexicon.DIASPORA``) but lives, and is labelled, in another.

    Caption shape and rates (generator version 2) follow the surface statistics of real
    posts measured in ``experiments/synthetic_realism``: captions of one to five sentences,
    @mentions, URLs, emoticons and lower-case posts, and far fewer emoji, flags, pins and
    place names per caption than a caricature of a photo caption would have.

    Class prior: label-set countries get Zipf weights ``1 / rank**zipf_exponent`` in the
    order given (the default label set is ordered by platform frequency);
    ``country_weights`` replaces the weight of listed codes. ``other_share`` of profiles
    come from ``other_countries`` (codes outside the label set; uniform).
    """

    # class prior
    zipf_exponent: float = 1.0
    country_weights: dict[str, float] | None = None
    other_share: float = 0.09
    other_countries: tuple[str, ...] = DEFAULT_OTHER_COUNTRIES
    # hard cases
    sparse_profile_share: float = 0.02
    no_cue_english_share: float = 0.08
    traveller_share: float = 0.06
    diaspora_share: float = 0.04
    empty_bio_share: float = 0.15
    short_caption_share: float = 0.05  # per caption: one word or emoji only
    english_mix_share: float = 0.12  # per caption: a non-English writer posts in English
    # caption shape (per caption)
    extra_sentence_rate: float = 0.65  # after each sentence another follows (at most 5 in all)
    code_switch_rate: float = 0.4  # an extra sentence of a post in a foreign language
    #                                 switches back to the writer's own language
    mention_rate: float = 0.3  # tags or replies to an @handle
    url_rate: float = 0.25  # ends with a link
    lowercase_rate: float = 0.15  # written all in lower case
    laugh_rate: float = 0.06  # laughter as the language writes it (haha, kkkk, 555...)
    emoticon_rate: float = 0.04  # an ASCII emoticon
    # cue rates of ordinary captions / bios
    location_rate: float = 0.12  # caption names a city (pin, "in X", #X)
    bio_location_rate: float = 0.3
    cue_rate: float = 0.25  # local slang, dish, club, shop or price
    dialect_rate: float = 0.2  # caption is a line only this country writes
    hashtag_rate: float = 0.18
    flag_rate: float = 0.01
    emoji_rate: float = 0.15
    # the separate stated_location field
    stated_location_share: float = 0.30
    vague_location_share: float = 0.12  # of stated locations: "worldwide", "🌍", ...

    def __post_init__(self) -> None:
        # Hydra hands lists / DictConfigs; normalise so hashing and asdict are stable.
        object.__setattr__(self, "other_countries",
                           tuple(str(c).upper() for c in self.other_countries))
        if self.country_weights is not None:
            object.__setattr__(self, "country_weights",
                               {str(k).upper(): float(v) for k, v in dict(self.country_weights).items()})
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("_share", "_rate")) and not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"SyntheticConfig.{f.name} must be in [0, 1], got {value!r}")
        kinds = (self.sparse_profile_share + self.no_cue_english_share
                 + self.traveller_share + self.diaspora_share)
        if kinds > 1.0:
            raise ValueError("SyntheticConfig: sparse + no_cue_english + traveller + diaspora "
                             f"shares sum to {kinds:.3f} > 1")
        if self.zipf_exponent < 0:
            raise ValueError("SyntheticConfig.zipf_exponent must be >= 0")

    def __hash__(self) -> int:  # the dict field would make the generated hash fail
        return hash(json.dumps(asdict(self), sort_keys=True))
