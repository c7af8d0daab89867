"""The alignment evaluation: the gold set's shape, the pure metrics (hand-counted cases) and ``eval --task align``."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from evals.align_gold import ALIGN_GOLD, AlignCase, load_align_gold
from evals.align_metrics import case_failures, pair_counts, per_priority, summary
from evals.datasets import DatasetError

IDS = ["ict", "mobility", "cps", "cloud", "networking", "health", "security", "energy", "spaces", "creative",
       "ecosystem"]


def case(cid, lang, strong=(), partial=(), none=()) -> AlignCase:
    return AlignCase(id=cid, split="dev", lang=lang, kind="single", length="short", text="x",
                     must_strong=tuple(strong), must_partial=tuple(partial), must_none=tuple(none))


# --------------------------------------------------------------------------- the gold set

def test_the_gold_set_is_large_bilingual_and_split_by_language_and_kind():
    cases = load_align_gold(priority_ids=IDS)
    assert len(cases) >= 48 and sum(c.lang == "bg" for c in cases) >= 16
    by = Counter((c.split, c.lang, c.kind) for c in cases)
    for split in ("dev", "test"):
        for lang in ("en", "bg"):
            for kind in ("single", "multi", "generic_ict", "ecosystem", "offtopic"):
                assert by[(split, lang, kind)] >= 1, (split, lang, kind)
    test = [c for c in cases if c.split == "test"]
    # the seen test splits of the first nine rounds joined dev; the test split is a fresh tenth one: at least 56
    # proposals, half of them Bulgarian, and 30 must-be-strong pairs in each language
    assert len(test) >= 56 and sum(c.lang == "bg" for c in test) >= 28 and sum(c.lang == "en" for c in test) >= 28
    assert all(c.id.startswith("t10-") for c in test)
    assert all(c.split == "dev" for c in cases if c.id.startswith(tuple(f"t{k}-" for k in range(2, 10))))
    for lang in ("en", "bg"):
        assert sum(len(c.must_strong) for c in test if c.lang == lang) >= 30, lang
    strong = Counter(p for c in test for p in c.must_strong)
    assert all(strong[p] >= 2 for p in IDS), strong  # every priority must be strong in at least two
    # tenth round: no test proposal repeats the words of a dev proposal (word Jaccard over words of four letters or
    # more at most 0.25; six English proposals of the ninth split did, docs/ALIGNMENT.md)
    words = {c.id: {w for w in re.findall(r"\w+", c.text.lower()) if len(w) > 3} for c in cases}
    for t in test:
        for d in cases:
            if d.split == "dev":
                a, b = words[t.id], words[d.id]
                assert len(a & b) <= 0.25 * len(a | b), (t.id, d.id)
    assert {c.length for c in cases} == {"short", "long"}
    for c in cases:
        if c.kind == "offtopic":
            assert set(c.must_none) == set(IDS) and not c.must_strong and not c.must_partial
        else:
            assert c.must_strong or c.must_partial, c.id
    # the failures of issue #26, in other words, are in dev
    dev_texts = {c.id: c.text for c in cases if c.split == "dev"}
    assert any("5G" in t and "машини" in t for t in dev_texts.values())
    assert any("калориите" in t for t in dev_texts.values())
    assert any("penetration tests" in t for t in dev_texts.values())


def test_a_bad_gold_line_is_named(tmp_path):
    good = {"id": "x1", "split": "dev", "lang": "en", "kind": "single", "length": "short", "text": "A text.",
            "must_strong": ["mobility"], "must_partial": [], "must_none": ["health"]}
    for change, why in [({"split": "train"}, 'field "split" must be one of dev, test'),
                        ({"must_strong": ["mobilty"]}, 'field "must_strong": unknown priority "mobilty"'),
                        ({"must_none": ["mobility"]}, 'field "must_none": "mobility" is also in "must_strong"'),
                        ({"text": ""}, 'field "text" must be a non-empty string')]:
        path = tmp_path / "gold.jsonl"
        path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "x2", **change}) + "\n")
        with pytest.raises(DatasetError, match="gold.jsonl line 2: " + why.replace("(", r"\(")):
            load_align_gold(path, priority_ids=IDS)
    path.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n")
    with pytest.raises(DatasetError, match='line 2: field "id": "x1" is used twice'):
        load_align_gold(path)


# --------------------------------------------------------------------------- metrics

def test_pair_counts_follow_the_definitions():
    assert pair_counts(None, "strong").to_json()["got_strong"] == 0  # not judged: nothing counts
    c = pair_counts("strong", "partial")
    assert (c.must_strong, c.strong_hit, c.must_match, c.match_hit, c.got_strong, c.got_match_ok) == (1, 0, 1, 1, 0, 1)
    c = pair_counts("partial", "strong")  # at least partial: strong is right, and not a strong miss
    assert (c.must_strong, c.must_match, c.match_hit, c.got_strong, c.got_strong_ok) == (0, 1, 1, 1, 1)
    c = pair_counts("none", "strong")
    assert (c.must_none, c.false_strong, c.false_match, c.got_strong, c.got_strong_ok) == (1, 1, 1, 1, 0)
    c = pair_counts("none", "partial")
    assert (c.false_strong, c.false_match, c.got_match, c.got_match_ok) == (0, 1, 1, 0)
    with pytest.raises(ValueError, match="unknown alignment level"):
        pair_counts("none", "medium")


def test_summary_and_per_priority_rates_by_hand():
    cases = [case("a", "en", strong=["mobility"], none=["health", "creative"]),
             case("b", "en", strong=["health", "security"], none=["mobility"]),
             case("c", "bg", strong=["health"], partial=["ecosystem"], none=["mobility", "cps"]),
             case("d", "bg", none=["mobility", "health"])]
    got = {"a": {"mobility": "strong", "health": "none", "creative": "partial", "ict": "strong"},
           "b": {"health": "strong", "security": "partial", "mobility": "none"},
           "c": {"health": "partial", "ecosystem": "strong", "mobility": "none", "cps": "strong"},
           "d": {"mobility": "none", "health": "none"}}
    s = summary(cases, got)
    # en: strong pairs mobility/a hit, health/b hit, security/b miss -> 2/3; none pairs: 3, no strong, 1 partial
    assert s["en"]["strong_recall"] == pytest.approx(2 / 3) and s["en"]["false_strong_rate"] == 0.0
    assert s["en"]["false_match_rate"] == pytest.approx(1 / 3) and s["en"]["partial_recall"] == 1.0
    assert s["en"]["strong_precision"] == 1.0  # "ict" strong in a is not labelled: not counted
    assert s["en"]["partial_precision"] == pytest.approx(3 / 4)  # creative partial in a is wrong
    # bg: health/c partial -> strong recall 0/1; ecosystem strong (must be >= partial) is right; cps strong is false
    assert s["bg"]["strong_recall"] == 0.0 and s["bg"]["partial_recall"] == 1.0
    assert s["bg"]["false_strong_rate"] == pytest.approx(1 / 4) and s["bg"]["strong_precision"] == 0.5
    assert s["all"]["strong_recall"] == pytest.approx(2 / 4) and s["all"]["false_strong"] == 1
    assert (s["all"]["passed"], s["en"]["passed"], s["bg"]["passed"]) == (1, 0, 1)
    p = per_priority(cases, got, ["mobility", "health", "cps", "energy"])
    assert p["health"]["all"]["strong_recall"] == 0.5 and p["health"]["bg"]["strong_recall"] == 0.0
    assert p["mobility"]["all"]["false_strong_rate"] == 0.0 and p["mobility"]["all"]["must_none"] == 3
    assert p["cps"]["bg"]["false_strong_rate"] == 1.0
    assert p["energy"]["all"]["strong_recall"] is None  # no pair: no rate, not 0


def test_case_failures_name_each_wrong_pair():
    c = case("a", "en", strong=["health"], partial=["ecosystem"], none=["cps"])
    assert case_failures(c, {"health": "strong", "ecosystem": "partial", "cps": "none"}) == []
    assert case_failures(c, {"health": "partial", "ecosystem": "none", "cps": "partial"}) == [
        "health: partial, must be strong", "ecosystem: none, must be at least partial", "cps: partial, must be none"]


# --------------------------------------------------------------------------- the command

def test_eval_task_align_on_a_tiny_gold_file(tmp_path, capsys):
    from assistant.cli import main

    rows = [json.loads(line) for line in ALIGN_GOLD.read_text(encoding="utf-8").splitlines()]
    tiny = tmp_path / "tiny.jsonl"
    chosen = [dict(r, split="dev") for r in rows if r["id"] in ("e02", "b03", "e27")]  # parking, fitness, restaurant
    tiny.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in chosen), encoding="utf-8")
    out = tmp_path / "align-report"
    assert main(["eval", "--task", "align", "--dataset", str(tiny), "--split", "dev", "--out", str(out),
                 "--db", str(tmp_path / "index"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["meta"]["proposals"] == 3 and printed["summary"]["all"]["must_strong"] == 2
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    cases = {c["id"]: c for c in report["cases"]}
    assert cases["e02"]["got"]["mobility"] == "strong" and cases["e02"]["pass"], cases["e02"]
    assert cases["b03"]["got"]["health"] == "strong", cases["b03"]  # the Bulgarian fitness app of issue #26
    assert set(cases["e27"]["got"].values()) == {"none"}
    assert report["summary"]["all"]["false_strong_rate"] == 0.0
    assert set(report["per_priority"]) == set(IDS)
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "## Per proposal" in md and "| e02 | en | single |" in md
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in html and "<td>e27<br>en offtopic short</td>" in html
