"""Property tests (hypothesis): invariants that must hold for *any* input, not only the
examples the other tests chose. Budgets are small (CI time); a failure prints the
smallest counter-example hypothesis found."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

# JSON values a user's file may hold where geoloc expects text, lists or codes
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.text(max_size=30))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u200e\u200f\u202a\u202e\u2066\u2069"


@FAST
@given(bio=st.text(), captions=st.lists(st.text(), max_size=8))
def test_profile_text_accepts_any_text(bio, captions):
    from geoloc.data.schema import CAPTION_SEPARATOR, MAX_CAPTIONS, profile_text

    text = profile_text(bio, captions)
    assert isinstance(text, str)
    if not bio.strip() and not any(c.strip() for c in captions[:MAX_CAPTIONS]):
        assert text == ""
    assert text.count(CAPTION_SEPARATOR) >= 0  # no exception for any input is the point


@FAST
@given(text=st.text(max_size=60))
def test_the_resolver_answers_any_text_with_none_or_a_valid_code(text):
    from geoloc.labels import is_valid_code
    from geoloc.location import resolve_country

    code = resolve_country(text)
    assert code is None or is_valid_code(code) or code == "XK"


@FAST
@given(place=st.sampled_from(["London", "São Paulo", "Jakarta", "Istanbul, Turkey",
                              "東京", "Paris, France", "Lagos Nigeria"]),
       marks=st.lists(st.tuples(st.integers(0, 30), st.sampled_from(INVISIBLE)), max_size=4))
def test_invisible_characters_inside_a_place_name_change_nothing(place, marks):
    """Zero-width and direction marks pasted inside a name ("Lon\u200bdon") used to split
    it and defeat the resolver."""
    from geoloc.location import resolve_country

    text = place
    for pos, mark in marks:
        pos = min(pos, len(text))
        text = text[:pos] + mark + text[pos:]
    assert resolve_country(text) == resolve_country(place) is not None


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.dictionaries(
    st.sampled_from(["id", "bio", "captions", "stated_location", "country", "other"]),
    values, max_size=6), min_size=1, max_size=12))
def test_the_reader_answers_every_row_with_a_record_or_an_error(tmp_path, rows):
    """Whatever a JSONL row holds, the reader yields exactly one valid record or one
    RecordError naming its line, never another exception and never a malformed record."""
    from geoloc.data.readers import iter_numbered_results
    from geoloc.data.schema import MAX_CAPTIONS, ColumnMapping
    from geoloc.errors import RecordError
    from geoloc.labels import is_valid_code

    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = list(iter_numbered_results(path, ColumnMapping()))
    assert [line for line, _ in out] == list(range(1, len(rows) + 1))
    for line, item in out:
        if isinstance(item, RecordError):
            assert item.line == line and item.field and str(item).startswith(f"{path}:{line}:")
            continue
        assert isinstance(item["id"], str) and item["id"]
        assert isinstance(item["bio"], str)
        assert isinstance(item["captions"], list) and len(item["captions"]) <= MAX_CAPTIONS
        assert all(isinstance(c, str) and c.strip() for c in item["captions"])
        assert item["country"] is None or is_valid_code(item["country"]) or \
            item["country"] == "XK"


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 600),
       skill=st.floats(0.0, 6.0), target=st.sampled_from([0.8, 0.9, 0.95]))
def test_no_threshold_assigns_a_class_its_calibration_cannot_vouch_for(seed, n, skill, target):
    """For any calibration data: a class gets a finite threshold only when its recorded
    lower bound reaches the target, the calibration precision at that threshold does too,
    and applying the policy assigns no class above its threshold's reach."""
    from geoloc.evaluation.abstention import PolicyConfig
    from geoloc.evaluation.certify import fit_thresholds

    rng = np.random.default_rng(seed)
    names = ["US", "BR", "JP", "OTHER"]
    labels = rng.integers(0, len(names), n)
    logits = rng.normal(size=(n, len(names)))
    logits[np.arange(n), labels] += skill  # from hopeless to near-perfect models
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    policy = PolicyConfig(target=target, delta=0.05, start_counts=(40, 100),
                          guarantee="per_class")
    th = fit_thresholds(probs, labels, names, policy)
    pred, conf = probs.argmax(axis=1), probs.max(axis=1)
    for c, name in enumerate(names):
        t = th.thresholds[name]
        if t == math.inf:
            continue
        cal = th.calibration[name]
        assert cal.lower_bound is not None and cal.lower_bound >= target
        kept = (pred == c) & (conf >= t)
        assert kept.sum() > 0 and (labels[kept] == c).mean() >= target
    decisions = th.apply(probs)
    for c, name in enumerate(names):
        assigned = decisions == c
        assert (conf[assigned] >= th.thresholds[name]).all()
        if th.thresholds[name] == math.inf:
            assert not assigned.any()


@pytest.mark.parametrize("code", ["usa", "XX", "U S", "840", ""])
def test_invalid_codes_never_become_a_country(code):
    from geoloc.labels import LabelSet

    labels = LabelSet.from_codes(["US", "BR"])
    assert labels.label(code or None) == "OTHER"
