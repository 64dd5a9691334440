"""Precision and coverage of ``geoloc.location.resolve_location`` on real profile strings.

The test set is carmen's ``locations.json`` (the carmen package, BSD-2, Dredze et al.): for
each place it lists *aliases*, i.e. lower-cased profile-location strings that real Twitter
users typed ("depok, indonesia", "compton ca", "nyc, usa"), with the place's country.
The resolver is not built from carmen, so these strings are unseen by it.

Usage (carmen ships only data we need; install it without its geocoding dependencies):

    pip install --no-deps carmen==2.0.0
    python experiments/location_resolver/evaluate.py [--carmen-json PATH] [--out results.json]

Prints a markdown report (paste into results.md) and optionally writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import time
from collections import Counter, defaultdict
from pathlib import Path

import pycountry

from geoloc.location import DEFAULT_MIN_CONFIDENCE, explain, get_gazetteer, resolve_location

# carmen's country names that pycountry's fuzzy lookup does not map (checked by hand).
_COUNTRY_FIXES = {
    "The Netherlands": "NL", "Palestinian Territories": "PS", "Russia": "RU",
    "South Korea": "KR", "North Korea": "KP", "Ivory Coast": "CI", "Macedonia": "MK",
    "Vietnam": "VN", "Iran": "IR", "Syria": "SY", "Laos": "LA", "Bolivia": "BO",
    "Venezuela": "VE", "Tanzania": "TZ", "Moldova": "MD", "Taiwan": "TW", "Brunei": "BN",
    "Kosovo": "XK", "Czech Republic": "CZ", "Turkey": "TR", "Cape Verde": "CV",
    "Swaziland": "SZ", "Republic of the Congo": "CG",
    "Democratic Republic of the Congo": "CD", "Vatican City": "VA", "Micronesia": "FM",
    "East Timor": "TL", "Burma": "MM", "Myanmar": "MM",
}


def carmen_path(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    spec = importlib.util.find_spec("carmen")  # locate the data without importing carmen
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("carmen is not installed: pip install --no-deps carmen==2.0.0 "
                         "(or pass --carmen-json PATH)")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "locations.json"


def to_iso(name: str | None, code: str | None) -> str | None:
    if code:
        return code.upper()
    if not name:
        return None
    if name in _COUNTRY_FIXES:
        return _COUNTRY_FIXES[name]
    try:
        return pycountry.countries.lookup(name).alpha_2
    except LookupError:
        return None


def load_pairs(path: Path) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """(alias, ISO country) pairs, deduplicated; aliases given two countries are dropped."""
    by_alias: dict[str, set[str]] = defaultdict(set)
    stats = Counter()
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            iso = to_iso(row.get("country"), row.get("countrycode"))
            for alias in row.get("aliases") or []:
                stats["alias_occurrences"] += 1
                if iso is None:
                    stats["unmapped_country"] += 1
                    continue
                by_alias[alias.strip()].add(iso)
    pairs = []
    for alias, isos in by_alias.items():
        if len(isos) > 1:
            stats["conflicting_aliases_dropped"] += 1
            continue
        pairs.append((alias, next(iter(isos))))
    stats["unique_pairs"] = len(pairs)
    return sorted(pairs), dict(stats)


def score(pairs: list[tuple[str, str]], min_conf: float) -> dict:
    n = len(pairs)
    resolved = correct = 0
    per: dict[str, Counter] = defaultdict(Counter)
    errors = []
    for alias, gold in pairs:
        m = resolve_location(alias, min_conf)
        per[gold]["n"] += 1
        if m is None:
            continue
        resolved += 1
        per[gold]["resolved"] += 1
        if m.country == gold:
            correct += 1
            per[gold]["correct"] += 1
        else:
            per[m.country]["false_pos"] += 1
            errors.append((alias, gold, m.country, m.kind, m.matched, m.confidence))
    return {"n": n, "resolved": resolved, "correct": correct,
            "precision": correct / resolved if resolved else 0.0,
            "coverage": resolved / n if n else 0.0,
            "recall": correct / n if n else 0.0, "per": per, "errors": errors}


def audit_error(alias: str, gold: str, pred: str) -> str:
    """Sort a wrong prediction into a coarse cause, to read the precision number right."""
    if gold == "US" and pred in ("PR", "VI", "GU", "AS", "MP"):
        return "label convention (US territory has its own ISO code here)"
    reachable = any(gold in span["dist"] for span in explain(alias))
    if not reachable:
        return "gold country not among any reading of the words (namesake or label noise)"
    return "resolver picked the wrong reading"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--carmen-json")
    ap.add_argument("--min-confidence", type=float, default=DEFAULT_MIN_CONFIDENCE)
    ap.add_argument("--out", help="write the numbers as JSON here")
    ap.add_argument("--examples", type=int, default=30)
    args = ap.parse_args()

    t0 = time.perf_counter()
    get_gazetteer()
    t_index = time.perf_counter() - t0
    pairs, stats = load_pairs(carmen_path(args.carmen_json))
    # Carmen also lists machine-made aliases ("latah county, united states"); they are
    # reported separately so they do not flatter the headline number.
    generated = [p for p in pairs if p[0].endswith(", united states") and " county" in p[0]]
    typed = [p for p in pairs if p not in set(generated)]
    non_us = [p for p in typed if p[1] != "US"]
    # carmen gives bare names ("crawley", "beaufort") the country of whichever place carmen
    # filed them under, often a small US namesake: a guess, not what a user meant. Strings
    # with a comma carry their own qualifier and are the most trustworthy gold.
    with_comma = [p for p in typed if "," in p[0]]
    bare_word = [p for p in typed if len(p[0].split()) == 1]

    t0 = time.perf_counter()
    for alias, _ in typed:
        resolve_location(alias, args.min_confidence)
    speed = len(typed) / (time.perf_counter() - t0)

    res = {name: score(subset, args.min_confidence) for name, subset in
           (("all", pairs), ("typed", typed), ("typed_non_us", non_us),
            ("typed_with_comma", with_comma), ("typed_bare_word", bare_word),
            ("generated_county", generated))}

    print(f"index ready in {t_index:.1f} s; {speed:,.0f} strings/s; min_confidence="
          f"{args.min_confidence}")
    print(f"carmen stats: {stats}\n")
    print("| subset | n | resolved | coverage | precision | recall |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in res.items():
        print(f"| {name} | {r['n']:,} | {r['resolved']:,} | {r['coverage']:.3f} | "
              f"{r['precision']:.3f} | {r['recall']:.3f} |")
    print("\nConfidence threshold sweep (typed subset):\n")
    print("| min_confidence | coverage | precision |")
    print("|---:|---:|---:|")
    for thr in (0.5, 0.6, 0.7, 0.8, 0.9):
        r = score(typed, thr)
        print(f"| {thr} | {r['coverage']:.3f} | {r['precision']:.3f} |")
    per = res["typed"]["per"]
    top = sorted(per, key=lambda c: -per[c]["n"])[:20]
    print("\nPer country (typed subset, top 20 by n); precision = correct / predicted as it\n")
    print("| country | n | coverage | recall | predicted | precision |")
    print("|---|---:|---:|---:|---:|---:|")
    for c in top:
        p = per[c]
        predicted = p["correct"] + p["false_pos"]
        prec = p["correct"] / predicted if predicted else float("nan")
        print(f"| {c} | {p['n']} | {p['resolved'] / p['n']:.3f} | {p['correct'] / p['n']:.3f} "
              f"| {predicted} | {prec:.3f} |")
    errs = res["typed"]["errors"]
    rng = random.Random(0)
    sample = rng.sample(errs, min(args.examples, len(errs)))
    print(f"\n{len(errs)} wrong predictions in the typed subset; a random sample:\n")
    print("| alias | gold | predicted | kind | matched | conf |")
    print("|---|---|---|---|---|---:|")
    for alias, gold, pred, kind, matched, conf in sorted(sample):
        print(f"| {alias} | {gold} | {pred} | {kind} | {matched} | {conf:.2f} |")
    audit = Counter(audit_error(alias, gold, pred) for alias, gold, pred, *_ in errs)
    print("\nError audit (automatic):", ", ".join(f"{k}: {v}" for k, v in audit.most_common()))
    conf_pairs = Counter((g, p) for _, g, p, *_ in errs).most_common(10)
    print("\nMost frequent confusions (gold -> predicted):",
          ", ".join(f"{g}->{p} {k}" for (g, p), k in conf_pairs))
    if args.out:
        out = {name: {k: v for k, v in r.items() if k not in ("per", "errors")}
               for name, r in res.items()}
        out["speed_strings_per_s"] = speed
        out["carmen_stats"] = stats
        out["errors_typed"] = errs
        Path(args.out).write_text(json.dumps(out, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
