"""The synthetic profile generator: determinism, schema, class skew, hard cases, scripts.

Kept fast (a few thousand profiles, one subprocess): speed itself is measured only by
``experiments/benchmarks/synth_speed.py``, never here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from geoloc.data.schema import MAX_CAPTIONS
from geoloc.labels import DEFAULT_COUNTRIES, OTHER, LabelSet, is_valid_code
from geoloc.synthetic import (
    SyntheticConfig,
    _pool,
    ensure_synthetic,
    generate_profiles,
    write_synthetic_jsonl,
)
from geoloc.synthetic.lexicon import DEFAULT_OTHER_COUNTRIES, LANGUAGES

N = 4000
REPO = Path(__file__).resolve().parents[1]
FLAG = re.compile("[\U0001F1E6-\U0001F1FF]")


def _text(rec) -> str:
    return " ".join([rec["bio"], *rec["captions"]])


@pytest.fixture(scope="module")
def profiles():
    return list(generate_profiles(N, seed=0))


# ------------------------------------------------------------------ determinism


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = write_synthetic_jsonl(tmp_path / "a.jsonl", 300, seed=7)
    b = write_synthetic_jsonl(tmp_path / "b.jsonl", 300, seed=7)
    c = write_synthetic_jsonl(tmp_path / "c.jsonl", 300, seed=8)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_profile_depends_only_on_seed_and_index(profiles):
    # a shorter run is a prefix of a longer one: chunking / order cannot change a profile
    assert list(generate_profiles(60, seed=0)) == profiles[:60]


def test_independent_of_python_hash_seed(tmp_path):
    here = write_synthetic_jsonl(tmp_path / "here.jsonl", 200, seed=3)
    there = tmp_path / "there.jsonl"
    code = ("import sys; from pathlib import Path; from geoloc.synthetic import "
            "write_synthetic_jsonl as w; w(Path(sys.argv[1]), 200, seed=3)")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code, str(there)], check=True, env=env, cwd=REPO)
    assert here.read_bytes() == there.read_bytes()


# ------------------------------------------------------------------ schema


def test_schema(profiles):
    ids = [r["id"] for r in profiles]
    assert len(set(ids)) == len(ids)
    for r in profiles:
        assert set(r) == {"id", "bio", "captions", "stated_location", "country"}
        assert isinstance(r["bio"], str)
        assert isinstance(r["captions"], list) and len(r["captions"]) == MAX_CAPTIONS
        assert all(isinstance(c, str) and c.strip() for c in r["captions"])
        assert r["stated_location"] is None or (isinstance(r["stated_location"], str)
                                                and r["stated_location"])
        assert is_valid_code(r["country"])


# ------------------------------------------------------------------ class prior


def test_class_skew_and_every_country_present(profiles):
    labels = LabelSet.default()
    counts = Counter(labels.label(r["country"]) for r in profiles)
    countries = [c for c, _ in counts.most_common() if c != OTHER]
    top12 = sum(counts[c] for c in countries[:12]) / N
    assert 0.55 <= top12 <= 0.78
    assert 0.05 <= counts[OTHER] / N <= 0.14
    assert set(DEFAULT_COUNTRIES) <= set(counts)
    # OTHER profiles keep their true code (the datamodule maps them)
    others = {r["country"] for r in profiles} - set(DEFAULT_COUNTRIES)
    assert others <= set(DEFAULT_OTHER_COUNTRIES) and len(others) >= 10


def test_country_weights_override():
    cfg = SyntheticConfig(country_weights={"FR": 100.0}, other_share=0.0)
    counts = Counter(r["country"] for r in generate_profiles(300, 1, config=cfg))
    assert counts.most_common(1)[0][0] == "FR"


# ------------------------------------------------------------------ hard cases


def _names_a_place(rec) -> bool:
    pool = _pool(rec["country"])
    text = _text(rec)
    if FLAG.search(text) or "📍" in text or "🏠" in text:
        return True
    places = [*pool.cities, pool.name_en, *pool.name_local.values()]
    places += [c for forms in pool.city_forms.values() for c in forms]
    return any(p in text for p in places)


def test_hard_cases_present(profiles):
    empty_bio = sum(r["bio"] == "" for r in profiles) / N
    assert 0.08 <= empty_bio <= 0.3
    no_cue = [r for r in profiles if _text(r).isascii() and not _names_a_place(r)]
    assert len(no_cue) >= 0.01 * N
    sparse = [r for r in profiles if all(len(c.split()) <= 2 for c in r["captions"])]
    assert sparse
    own_flag = {r["id"]: _pool(r["country"]).flag for r in profiles}
    travellers = [r for r in profiles
                  if {f for f in re.findall("[\U0001F1E6-\U0001F1FF]{2}", _text(r))}
                  - {own_flag[r["id"]]}]
    assert len(travellers) >= 0.02 * N


def test_diaspora_writes_another_language():
    cfg = SyntheticConfig(diaspora_share=1.0, no_cue_english_share=0.0, traveller_share=0.0,
                          sparse_profile_share=0.0, other_share=0.0)
    foreign = {p for lang, lex in LANGUAGES.items() if lang not in ("de", "en")
               for p in lex["phrases"] if "{" not in p}
    recs = list(generate_profiles(150, 2, countries=["DE"], config=cfg))
    assert all(r["country"] == "DE" for r in recs)
    share = sum(any(p in c for c in r["captions"] for p in foreign) for r in recs) / len(recs)
    assert share >= 0.6


# ------------------------------------------------------------------ languages and scripts


SCRIPTS = {
    "JP": "[\u3040-\u30ff\u4e00-\u9fff]", "KR": "[\uac00-\ud7af]", "TH": "[\u0e00-\u0e7f]",
    "RU": "[\u0400-\u04ff]", "UA": "[\u0400-\u04ff]", "SA": "[\u0600-\u06ff]",
    "EG": "[\u0600-\u06ff]",
}


def test_country_scripts():
    cfg = SyntheticConfig(zipf_exponent=0.0, other_share=0.0)
    recs = list(generate_profiles(1400, 5, countries=list(SCRIPTS), config=cfg))
    for code, script in SCRIPTS.items():
        mine = [r for r in recs if r["country"] == code]
        share = sum(bool(re.search(script, _text(r))) for r in mine) / len(mine)
        assert share >= 0.7, (code, share)
    # Ukrainian profiles write Ukrainian (not only Russian)
    ua = " ".join(_text(r) for r in recs if r["country"] == "UA")
    assert re.search("[іїєґ]", ua)


def test_shared_language_countries_have_distinct_cues(profiles):
    # Spanish across ES/MX/AR: the dialect lines and slang differ
    by = {c: " ".join(_text(r) for r in profiles if r["country"] == c) for c in ("MX", "AR")}
    assert any(w in by["MX"] for w in ("güey", "chido", "neta", "órale", "padre"))
    assert any(w in by["AR"] for w in ("che", "Che", "boludo", "asado", "mate"))


# ------------------------------------------------------------------ realism (version 2)


def test_captions_look_like_real_posts(profiles):
    """Bands around the real-tweet statistics of experiments/synthetic_realism (loose on
    purpose: they catch a regression to one-phrase, emoji-heavy captions, not noise)."""
    from geoloc.synthetic.realism import text_stats

    caps = [c for r in profiles for c in r["captions"]]
    st = text_stats(caps, place=False)
    assert 40 <= st["chars_median"] <= 90
    assert st["share_short"] <= 0.15 and st["script_none"] <= 0.03
    assert 0.1 <= st["share_url"] <= 0.45
    assert 0.1 <= st["share_mention"] <= 0.45
    assert 0.1 <= st["share_emoji"] <= 0.4
    assert st["share_flag"] <= 0.08 and st["share_pin"] <= 0.08
    assert st["share_hashtag"] <= 0.3
    assert 0.05 <= st["share_lowercase"] <= 0.3
    assert 0.01 <= st["share_emoticon"] <= 0.1
    handles = [h for c in caps for h in re.findall(r"@\w+", c)]
    assert handles and all(h.isascii() for h in handles)


def test_caption_features_can_be_switched_off():
    cfg = SyntheticConfig(mention_rate=0.0, url_rate=0.0, lowercase_rate=0.0,
                          extra_sentence_rate=0.0, emoticon_rate=0.0, laugh_rate=0.0)
    recs = list(generate_profiles(300, 4, config=cfg))
    text = " ".join(_text(r) for r in recs)
    assert "@" not in text and "://" not in text
    assert not any(c.strip() in (":)", ":D", ";)") for r in recs for c in r["captions"])


def test_english_posts_code_switch_back_to_own_language():
    cfg = SyntheticConfig(english_mix_share=1.0, extra_sentence_rate=1.0, code_switch_rate=1.0,
                          short_caption_share=0.0, sparse_profile_share=0.0,
                          no_cue_english_share=0.0, traveller_share=0.0, diaspora_share=0.0,
                          other_share=0.0)
    recs = list(generate_profiles(40, 6, countries=["JP"], config=cfg))
    caps = [c for r in recs for c in r["captions"]]
    en = {p for p in LANGUAGES["en"]["phrases"] if "{" not in p}
    mixed = [c for c in caps if any(p in c for p in en) and re.search("[\u3040-\u30ff]", c)]
    assert len(mixed) >= 0.5 * len(caps)


# ------------------------------------------------------------------ stated location


def test_stated_location_share(profiles):
    share = sum(r["stated_location"] is not None for r in profiles) / N
    assert 0.26 <= share <= 0.34
    cfg = SyntheticConfig(stated_location_share=0.7)
    recs = list(generate_profiles(600, 1, config=cfg))
    assert 0.63 <= sum(r["stated_location"] is not None for r in recs) / 600 <= 0.77


# ------------------------------------------------------------------ files, cache, config, CLI


def test_write_is_atomic(tmp_path, monkeypatch):
    import geoloc.synthetic as synth

    real = synth.generate_profiles

    def killed(*args, **kwargs):  # dies after part of the file was written
        yield from real(3000, 0)
        raise KeyboardInterrupt

    monkeypatch.setattr(synth, "generate_profiles", killed)
    with pytest.raises(KeyboardInterrupt):
        synth.write_synthetic_jsonl(tmp_path / "x.jsonl", 5000, seed=0)
    assert list(tmp_path.iterdir()) == []


def test_ensure_synthetic_caches(tmp_path):
    p1 = ensure_synthetic(120, 4, DEFAULT_COUNTRIES, cache_root=tmp_path)
    mtime = p1.stat().st_mtime_ns
    p2 = ensure_synthetic(120, 4, list(DEFAULT_COUNTRIES), cache_root=tmp_path)
    assert p1 == p2 and p2.stat().st_mtime_ns == mtime
    p3 = ensure_synthetic(120, 4, DEFAULT_COUNTRIES, SyntheticConfig(other_share=0.2),
                          cache_root=tmp_path)
    assert p3 != p1 and p3.parent == tmp_path
    assert sum(1 for _ in open(p3, encoding="utf-8")) == 120


def test_config_validation_and_coercion():
    with pytest.raises(ValueError):
        SyntheticConfig(other_share=1.5)
    with pytest.raises(ValueError):
        SyntheticConfig(no_cue_english_share=0.6, traveller_share=0.6)
    cfg = SyntheticConfig(other_countries=["ke", "nz"], country_weights={"us": 2})
    assert cfg.other_countries == ("KE", "NZ") and cfg.country_weights == {"US": 2.0}
    with pytest.raises(ValueError):
        list(generate_profiles(1, config=SyntheticConfig(country_weights={"KE": 1.0})))


def test_cli_writes_file_and_prints_frequencies(tmp_path, capsys):
    from geoloc.cli.synth import main

    out = tmp_path / "s.jsonl"
    assert main(["--n", "150", "--seed", "2", "--out", str(out), "--set", "other_share=0.2"]) == 0
    printed = capsys.readouterr().out
    assert "OTHER" in printed and "top-12" in printed
    assert sum(1 for _ in open(out, encoding="utf-8")) == 150
    assert main(["--n", "5", "--out", str(out), "--set", "nope=1"]) == 2
