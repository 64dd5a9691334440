"""Synthetic realism check: surface statistics of synthetic captions vs real tweets.

Computes :func:`geoloc.synthetic.realism.text_stats` on

- the real tweets (``shared/data/umass_global_english/dev.tsv``, one tweet per row);
- single synthetic *captions* (like with like: a tweet is one post) of ``--profiles``
  profiles from the default generator config;
- whole synthetic profiles (bio + 5 captions joined as the model sees them), for reference;
- per country, for the countries with at least ``--min-rows`` real tweets: real tweets vs
  synthetic captions of a uniform-prior sample (``zipf_exponent=0``, ``other_share=0``, so
  small countries get enough captions; the prior changes nothing inside a profile).

Writes ``stats_generator_v<GENERATOR_VERSION>.csv`` (long format: sample, scope, stat,
value) and ``results.md``. When a CSV of an older generator version sits next to it, the
tables show it as "before" so the effect of a generator change can be read off.

Run (about 20 s on 2 cores): ``python experiments/synthetic_realism/run.py``
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from collections import Counter
from pathlib import Path

from geoloc.data.readers import ColumnMapping, read_profiles
from geoloc.data.schema import profile_text
from geoloc.labels import DEFAULT_COUNTRIES
from geoloc.synthetic import GENERATOR_VERSION, SyntheticConfig, generate_profiles
from geoloc.synthetic.realism import REPORT_STATS, is_english, text_stats

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
REAL = REPO / "shared" / "data" / "umass_global_english" / "dev.tsv"
# per-country table: a few statistics that differ by country
COUNTRY_STATS = (
    ("chars_median", "chars median"), ("script_non_latin", "non-Latin"),
    ("share_english", "English"), ("share_emoji", "emoji"), ("share_url", "URL"),
    ("share_mention", "@mention"), ("share_hashtag", "#hashtag"),
    ("share_place_true", "own place"),
)


def _real_path(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    try:  # the copy bundled with the package, where present
        from geoloc.resources import umass_dev_path

        bundled = Path(umass_dev_path())
        if bundled.exists():
            return bundled
    except ImportError:
        pass
    for root in (REPO, *REPO.parents):  # a worktree may sit beside the shared folder
        p = root / "shared" / "data" / "umass_global_english" / "dev.tsv"
        if p.exists():
            return p
    return REAL


def _fmt(v: float | None, stat: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if stat.startswith(("chars_", "words_")) or stat == "n":
        return f"{v:.1f}" if not float(v).is_integer() else f"{int(v)}"
    if stat == "emoji_per_text":
        return f"{v:.2f}"
    return f"{v:.3f}"


def _gap(a: float | None, b: float | None, stat: str) -> str:
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return "–"
    d = a - b
    if stat.startswith(("chars_", "words_")):
        return f"{d:+.1f}"
    return f"{d:+.2f}" if stat == "emoji_per_text" else f"{d:+.3f}"


def _load_before(current: Path) -> tuple[str | None, dict[tuple[str, str, str], float]]:
    """The newest ``stats_generator_v*.csv`` of another version, as {(sample, scope, stat)}."""
    def version(p: Path) -> tuple[int, ...]:
        m = re.search(r"_v([\d.]+)\.csv$", p.name)
        return tuple(int(x) for x in m.group(1).split(".")) if m else ()

    older = sorted((p for p in HERE.glob("stats_generator_v*.csv") if p != current), key=version)
    if not older:
        return None, {}
    path = older[-1]
    with open(path, encoding="utf-8") as f:
        rows = {(r["sample"], r["scope"], r["stat"]): float(r["value"]) for r in csv.DictReader(f)}
    return path.name.removeprefix("stats_generator_").removesuffix(".csv"), rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", default=None, help="real tweets TSV (default: the shared dev.tsv)")
    ap.add_argument("--profiles", type=int, default=2000, help="synthetic profiles (default prior)")
    ap.add_argument("--per-country-profiles", type=int, default=150,
                    help="synthetic profiles per country for the per-country table")
    ap.add_argument("--min-rows", type=int, default=100, help="real tweets a country needs")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    # ---------------------------------------------------------------- data
    real_path = _real_path(args.real)
    recs, errors = read_profiles(real_path, ColumnMapping.tweets())
    real = [(r["captions"][0] if r["captions"] else "", r["country"]) for r in recs]
    syn = list(generate_profiles(args.profiles, seed=args.seed))
    captions = [(c, r["country"]) for r in syn for c in r["captions"]]
    profiles = [(profile_text(r["bio"], r["captions"]), r["country"]) for r in syn]

    real_counts = Counter(c for _, c in real)
    big = [c for c, k in real_counts.most_common() if k >= args.min_rows and c in DEFAULT_COUNTRIES]
    uniform = SyntheticConfig(zipf_exponent=0.0, other_share=0.0)
    per_country_syn = list(generate_profiles(args.per_country_profiles * len(big),
                                             seed=args.seed + 1, countries=big, config=uniform))

    def stats(pairs):
        return text_stats([t for t, _ in pairs], [c for _, c in pairs])

    results: dict[tuple[str, str], dict[str, float]] = {
        ("real_tweets", "ALL"): stats(real),
        ("synthetic_captions", "ALL"): stats(captions),
        ("synthetic_profiles", "ALL"): stats(profiles),
    }
    for code in big:
        results[("real_tweets", code)] = stats([p for p in real if p[1] == code])
        results[("synthetic_captions", code)] = stats(
            [(c, r["country"]) for r in per_country_syn if r["country"] == code
             for c in r["captions"]])

    # ---------------------------------------------------------------- CSV
    out_csv = HERE / f"stats_generator_v{GENERATOR_VERSION}.csv"
    with open(out_csv, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["sample", "scope", "stat", "value"])
        for (sample, scope), st in results.items():
            for stat, value in st.items():
                w.writerow([sample, scope, stat, f"{value:.6g}"])
    before_v, before = _load_before(out_csv)

    # ---------------------------------------------------------------- Markdown
    real_all = results[("real_tweets", "ALL")]
    cap_all = results[("synthetic_captions", "ALL")]
    prof_all = results[("synthetic_profiles", "ALL")]
    cur = f"v{GENERATOR_VERSION}"
    lines = [
        "# Synthetic realism: results",
        "",
        f"Generated by `experiments/synthetic_realism/run.py` (generator {cur}, seed "
        f"{args.seed}). Real: {len(real):,} tweets of `umass_global_english/dev.tsv`"
        f"{f' ({len(errors)} unreadable rows skipped)' if errors else ''}. Synthetic: "
        f"{args.profiles:,} profiles of the default config = {len(captions):,} captions. "
        "Gap = synthetic − real. Statistic definitions: `geoloc/synthetic/realism.py`; what changed "
        "between generator versions and how to read the gaps: `README.md` here.",
        "",
        "## Real tweets vs single synthetic captions",
        "",
    ]
    head = ["statistic", "real tweets"]
    if before_v:
        head += [f"synthetic captions {before_v}", f"gap {before_v}"]
    head += [f"synthetic captions {cur}", f"gap {cur}", f"synthetic profiles {cur}"]
    lines += ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for stat, label in (("n", "texts"), *REPORT_STATS):
        r = real_all.get(stat)
        row = [label, _fmt(r, stat)]
        if before_v:
            b = before.get(("synthetic_captions", "ALL", stat))
            row += [_fmt(b, stat), _gap(b, r, stat) if stat != "n" else ""]
        c = cap_all.get(stat)
        row += [_fmt(c, stat), _gap(c, r, stat) if stat != "n" else "",
                _fmt(prof_all.get(stat), stat)]
        lines.append("| " + " | ".join(row) + " |")

    lines += [
        "",
        f"## Per country (real tweets vs synthetic captions; countries with ≥ {args.min_rows} "
        "real tweets)",
        "",
        f"Cells: real / synthetic {cur}" + (f" (synthetic {before_v} in brackets)" if before_v
                                            else "") + ". Synthetic: "
        f"{args.per_country_profiles} profiles per country (uniform prior) = "
        f"{5 * args.per_country_profiles} captions.",
        "",
        "| country | real n | " + " | ".join(label for _, label in COUNTRY_STATS) + " |",
        "|---|---:" + "|---:" * len(COUNTRY_STATS) + "|",
    ]
    for code in big:
        r, s = results[("real_tweets", code)], results[("synthetic_captions", code)]
        cells = []
        for stat, _ in COUNTRY_STATS:
            cell = f"{_fmt(r.get(stat), stat)} / {_fmt(s.get(stat), stat)}"
            b = before.get(("synthetic_captions", code, stat))
            if b is not None:
                cell += f" ({_fmt(b, stat)})"
            cells.append(cell)
        lines.append(f"| {code} | {int(r['n'])} | " + " | ".join(cells) + " |")

    # how far the English proxy can be trusted: the real set carries a human annotation
    ann = _english_annotation(real_path)
    if ann:
        y = [ann.get(r["id"]) for r in recs]
        pairs = [(bool(a), is_english(t)) for a, (t, _) in zip(y, real, strict=True)
                 if a is not None]
        tp = sum(a and p for a, p in pairs)
        pred, pos = sum(p for _, p in pairs), sum(a for a, _ in pairs)
        lines += [
            "",
            "## How good is the English proxy?",
            "",
            f"On the real tweets, against the human label *Definitely English* "
            f"({pos / len(pairs):.3f} of rows): precision {tp / max(pred, 1):.3f}, recall "
            f"{tp / max(pos, 1):.3f}. Short texts without a function word are missed, so the "
            "proxy under-counts English more on short texts than on long ones.",
        ]
    notes = _real_notes([t for t, _ in real])
    lines += ["", "## Notes on the real text (not generator targets)", "", *notes]
    (HERE / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


def _english_annotation(path: Path) -> dict[str, int]:
    """Tweet ID -> the 0/1 'Definitely English' annotation (empty if the column is absent)."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        if "Definitely English" not in (reader.fieldnames or []):
            return {}
        return {row["Tweet ID"]: int(row["Definitely English"]) for row in reader}


def _real_notes(texts: list[str]) -> list[str]:
    n = len(texts)
    esc = sum("\\n" in t for t in texts) / n
    ent = sum(bool(re.search(r"&(?:amp|lt|gt|quot|#\d+);", t)) for t in texts) / n
    url_end = sum(bool(re.search(r"https?://\S+\s*$", t)) for t in texts) / n
    reply = sum(t.startswith("@") for t in texts) / n
    return [
        f"- {esc:.3f} of tweets hold a literal backslash-n (an escaped newline, two characters) "
        f"and {ent:.3f} an HTML entity (`&amp;`, `&gt;`...): the text was stored escaped. "
        "Synthetic text has real newlines only in bios and no entities.",
        f"- {url_end:.3f} of tweets end with a URL (cross-posts and automatic check-ins) and "
        f"{reply:.3f} start with an @mention (replies).",
    ]


if __name__ == "__main__":
    sys.exit(main())
