"""Proposal vs strategy alignment with the real embedder and a real index of the Sofia RIS3 document."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from conftest import CORPUS, make_docx, make_pdf

MOBILITY = """# Smart Mobility Sofia

## Summary

Our project develops an intelligent traffic management platform for Sofia.
Sensors at intersections feed real-time data to adaptive traffic lights.
Citizens use a mobile app that shows metro and bus departures and the nearest free parking place.
The goal is to cut commute times and emissions in the city.

## Team

The project will last 24 months.
"""

BAKERY = """# Bakery recipes

This collection gathers our family's favourite bakery recipes.

## Rye bread

Mix 500 g rye flour with sourdough starter and warm water. Leave the dough covered for twelve hours.
Bake for an hour in a hot oven.

## Banitsa

Layer filo pastry with eggs, yoghurt and white cheese. Bake until golden brown and serve warm with ayran.
"""


@pytest.fixture(scope="module")
def retriever(tmp_path_factory, embedder):
    from assistant.retrieve import Retriever
    from ingestion.config import Settings
    from ingestion.pipeline import ingest
    from ingestion.store import Store, connect

    db = tmp_path_factory.mktemp("align-index")
    store = Store(connect(db), "align", embedder.name)
    report = ingest([CORPUS / "sofia-ris3.md", CORPUS / "cskc-membership.md"], store=store, embedder=embedder,
                    progress=False)
    assert not report.failed
    r = Retriever(store, embedder, Settings(db=db, collection="align"))
    r.db_path = db
    return r


def test_smart_mobility_proposal_is_strong_on_mobility(tmp_path, retriever, embedder):
    from assistant.align import align_file

    path = tmp_path / "smart-mobility.md"
    path.write_text(MOBILITY, encoding="utf-8")
    rep = align_file(path, retriever, embedder)

    assert rep.source == "smart-mobility.md" and rep.overall == "aligned"
    assert len(rep.rows) == 11  # ICT, its 8 sub-priorities, creative industries, horizontal policy
    assert {r.level for r in rep.rows} == {"vertical priority area", "ICT sub-priority", "horizontal policy"}
    mobility = rep.row("mobility")
    assert mobility.alignment == "strong", rep.to_markdown()
    assert any(w in mobility.sentence.lower() for w in ("traffic", "metro", "commute"))  # a sentence about mobility
    assert mobility.citation is not None and mobility.citation.doc == "sofia-ris3.md"
    assert "smart urban living and mobility" in mobility.citation.quote.lower()
    ict = rep.row("ict")
    assert ict.alignment == "strong" and ict.via == "Smart urban living and mobility"
    # neither unrelated priorities nor the neighbours of mobility ("smart" in the title matched them once)
    for pid in ("security", "health", "networking", "ecosystem", "energy", "spaces", "creative"):
        assert rep.row(pid).alignment == "none", (pid, rep.row(pid).score)
    assert rep.row("ecosystem").citation.quote.startswith("The horizontal policy of Sofia RIS3")
    assert "Smart urban living and mobility" in rep.summary and "Informatics and ICT" in rep.summary

    md = rep.to_markdown()
    table = [ln for ln in md.splitlines() if ln.startswith("| ") and not ln.startswith("| Priority")]
    assert len(table) == 11
    assert "sofia-ris3.md" in md and "| strong |" in md
    assert json.loads(json.dumps(rep.to_json()))["rows"][1]["priority_id"] == "mobility"


def test_bakery_recipes_align_with_nothing(retriever, embedder):
    from assistant.align import align

    rep = align(BAKERY, retriever, embedder, source="recipes")
    assert rep.overall == "not aligned", rep.to_markdown()
    assert [r.alignment for r in rep.rows] == ["none"] * 11
    from assistant.align import PARTIAL_Z

    assert max(r.score for r in rep.rows) < PARTIAL_Z
    assert rep.summary.startswith("No sentence of the proposal matches")
    assert "| none |" in rep.to_markdown() and "| strong |" not in rep.to_markdown()


def test_pdf_in_bulgarian_and_docx_proposals(tmp_path, retriever, embedder):
    from assistant.align import align_file

    pdf = make_pdf(tmp_path / "predlozhenie.pdf", [
        "Проектът разработва интелигентна система за управление на градския транспорт в София. "
        "Сензори по кръстовищата събират данни за трафика в реално време.",
        "Гражданите ще планират пътуванията си с метро и автобуси чрез мобилно приложение."])
    rep = align_file(pdf, retriever, embedder)
    assert rep.row("mobility").alignment == "strong" and rep.overall == "aligned"
    assert rep.row("creative").alignment == "none"

    docx = make_docx(tmp_path / "museum.docx", [
        ("Title", "Virtual Thracian Treasures"),
        ("Heading 1", "Idea"),
        ("", "We will build a virtual reality exhibition for the National History Museum."),
        ("", "Visitors explore 3D reconstructions of Thracian treasures, and schoolchildren play an online game."),
    ])
    rep = align_file(docx, retriever, embedder)
    assert rep.row("creative").alignment == "strong", rep.to_markdown()
    assert rep.row("mobility").alignment == "none"
    assert "New technologies in creative and recreational industries" in rep.summary


def test_sentences_and_markdown_are_safe():
    from assistant.align import AlignmentReport, AlignmentRow, split_sentences

    text = "# Title\n\n- first item about sensors and lights\n- second item | with a pipe here\n\n" \
           "A paragraph wrapped\nover two lines ends here. Second sentence follows it right away.\n\n12\n"
    assert split_sentences(text) == ["first item about sensors and lights", "second item | with a pipe here",
                                     "A paragraph wrapped over two lines ends here.",
                                     "Second sentence follows it right away."]
    rep = AlignmentReport(source="a|b", overall="partly aligned", summary="s", sentences=1, rows=[
        AlignmentRow("mobility", "Smart urban living and mobility", "ICT sub-priority", "partial", 3.2,
                     "x | y", None)])
    md = rep.to_markdown()
    assert "x \\| y" in md and "a\\|b" in md
    with pytest.raises(ValueError):
        from assistant.align import align
        align("# Title\n\n12\n", None, None)


def test_clauses_split_a_two_topic_sentence_and_join_short_pieces():
    from assistant.align.sentences import split_clauses

    assert split_clauses("We will stream concerts as live virtual-reality shows to audiences at home, over a "
                         "dedicated 5G network built inside the hall.") == [
        "We will stream concerts as live virtual-reality shows to audiences at home",
        "over a dedicated 5G network built inside the hall."]
    assert split_clauses("Облачен архив за счетоводни кантори: документите се съхраняват криптирани на виртуални "
                         "сървъри, с двуфакторен вход и дневник на всеки достъп.") == [
        "Облачен архив за счетоводни кантори", "документите се съхраняват криптирани на виртуални сървъри",
        "с двуфакторен вход и дневник на всеки достъп."]  # "с двуфакторен вход" alone is too short: joined on
    assert split_clauses("The planner combines the metro, trams, buses and shared bicycles in one trip.") == [
        "The planner combines the metro", "trams, buses and shared bicycles in one trip."]
    assert split_clauses("An app that tells drivers where to park.") == []  # one clause: nothing to add
    assert split_clauses("Pumps and solar panels, cheap.") == []  # pieces too short


def test_an_abbreviation_does_not_end_a_sentence():
    """Eighth round: "Св.", "ул.", "e.g.", "Dr." and initials before a capital letter are not sentence ends; a year's
    "г." and words that usually close a sentence still are."""
    from assistant.align import split_sentences

    assert split_sentences("Фестивал на светлината около площад „Св. Александър Невски“ с музика и анимации. "
                           "Ще отворим студио на ул. „Граф Игнатиев“ с работни места.") == [
        "Фестивал на светлината около площад „Св. Александър Невски“ с музика и анимации.",
        "Ще отворим студио на ул. „Граф Игнатиев“ с работни места."]
    assert split_sentences("Mentors, e.g. Dr. Ivanova from St. Kliment university, will coach J. Smith and the team. "
                           "The second sentence has six words.") == [
        "Mentors, e.g. Dr. Ivanova from St. Kliment university, will coach J. Smith and the team.",
        "The second sentence has six words."]
    assert split_sentences("Проектът ще приключи през 2027 г. Бюджетът е 100 000 евро за всичко.") == [
        "Проектът ще приключи през 2027 г.", "Бюджетът е 100 000 евро за всичко."]


def test_a_two_word_head_is_a_clause_of_its_own():
    from assistant.align.sentences import split_clauses

    # seventh round: the head names what is built; joined to the next piece alone, its topic was outvoted there
    assert split_clauses("Облачна платформа, в която лабораториите съхраняват резултатите от изследванията, а "
                         "лекарят ги вижда веднага.") == [
        "Облачна платформа", "Облачна платформа, в която лабораториите съхраняват резултатите от изследванията",
        "а лекарят ги вижда веднага."]
    # a sentence that gives no other clause still gives its head
    assert split_clauses("Роботизирана ръка с камера ще сортира пластмасовите отпадъци на лентата.") == [
        "Роботизирана ръка"]
    assert split_clauses("Heat pumps and solar panels, cheap.") == ["Heat pumps"]
    # a one-word head is not a clause; a head of four words or more is an ordinary clause
    assert split_clauses("Pumps and solar panels, cheap.") == []
    assert split_clauses("An app that tells drivers where to park.") == []


def test_a_clause_is_scored_but_its_sentence_is_the_evidence():
    import hashlib

    import numpy as np

    from assistant.align.scoring import score_sentences

    class Hashed:  # a deterministic stand-in for the embedder: word hashes, so texts sharing words are close
        name = "hashed"

        def _vec(self, text):
            v = np.zeros(64, dtype=np.float32)
            for w in text.lower().split():
                v[int(hashlib.md5(w.encode()).hexdigest(), 16) % 64] += 1.0
            return v + 0.01

        def embed_query(self, text):
            return self._vec(text)

        def embed_passages(self, texts):
            self.last = list(texts)
            return np.stack([self._vec(t) for t in texts])

    sentences = ["Software runs household heat pumps when electricity is cheap, and rooftop solar panels charge "
                 "a battery in the basement.", "The project will last twelve months in total."]
    emb = Hashed()
    best, arg = score_sentences(sentences, emb)
    assert emb.last[:2] == sentences and len(emb.last) > 2  # the first sentence's clauses were embedded with it
    assert set(arg.tolist()) <= {0, 1} and np.isfinite(best).all()


# --------------------------------------------------------------------------- Bulgarian clauses (sixth round)
# A toy embedder with fixed vectors: three priorities a, b, c, each with one English and one Bulgarian phrase on
# an axis of its own; the background sentences lie on axes of their own with a little noise on the phrase axes, so
# a similarity of 0.3 to a phrase is a z of about 3.

BG_SENTENCE = "Първото изречение говори за едно нещо, второто изречение говори за друго нещо."
EN_SENTENCE = "The first sentence speaks about one thing, the second sentence speaks about another thing."
AXES = {"a-en": 0, "а-бг": 1, "b-en": 2, "б-бг": 3, "c-en": 4, "в-бг": 5}


def _toy(units):
    """(priorities, embedder) where ``units`` maps a text to its similarity with each phrase ({phrase: cos})."""
    import numpy as np

    from assistant.align.priorities import parse_priorities
    from assistant.align.scoring import BACKGROUND

    dim = 8 + len(BACKGROUND) + 1
    rng = np.random.default_rng(0)
    vectors = {}
    for i, text in enumerate(BACKGROUND):
        v = np.zeros(dim, dtype=np.float32)
        v[:6] = rng.normal(0.0, 0.1, 6)
        v[8 + i] = 1.0
        vectors[text] = v
    for phrase, axis in AXES.items():
        vectors[phrase] = np.eye(dim, dtype=np.float32)[axis]
    for text, sims in units.items():
        v = np.zeros(dim, dtype=np.float32)
        for phrase, cos in sims.items():
            v[AXES[phrase]] = cos
        v[-1] = np.sqrt(max(0.0, 1.0 - float((v ** 2).sum())))  # the rest of a unit vector on an axis of its own
        vectors[text] = v

    class Toy:
        name = "toy"

        def embed_query(self, text):
            return vectors[text]

        def embed_passages(self, texts):
            return np.stack([vectors[t] for t in texts])

    def priority(pid, en, bg):
        return {"id": pid, "name": pid.upper(), "level": "vertical priority area", "strategy_query": pid,
                "aspects_en": [en], "aspects_bg": [bg]}

    pr = parse_priorities({"strategy_doc": "x.md", "priority": [priority("a", "a-en", "а-бг"),
                                                                priority("b", "b-en", "б-бг"),
                                                                priority("c", "c-en", "в-бг")]}, "toy")
    return pr, Toy()


def _scores(sentence, sims, clause_sims, monkeypatch, with_clauses=True):
    """Best score per priority for one sentence whose two clauses have ``clause_sims``."""
    from assistant.align import scoring
    from assistant.align.sentences import split_clauses

    clauses = split_clauses(sentence)
    assert len(clauses) == 2
    pr, emb = _toy({sentence: sims, clauses[0]: clause_sims[0], clauses[1]: clause_sims[1]})
    if not with_clauses:
        monkeypatch.setattr(scoring, "split_clauses", lambda s: [])
    best, _ = scoring.score_sentences([sentence], emb, pr)
    monkeypatch.undo()
    return dict(zip("abc", best.tolist()))


def _raw(sentence, sims, phrase_ids=("a", "b", "c")):
    """The sentence's uncorrected z per priority (all phrases), as ``score_sentences`` computes it."""
    import numpy as np

    from assistant.align import scoring

    pr, emb = _toy({sentence: sims})
    m = scoring._model(emb, pr)
    v = scoring._unit(np.asarray(emb.embed_passages([sentence]), dtype=np.float32))
    z = ((m.vectors @ v.T)[:, 0] - m.mu) / m.sd
    return {pid: float(z[m.owner == i].max()) for i, pid in enumerate(phrase_ids)}


def test_a_bulgarian_clause_rises_above_its_sentence_but_an_english_one_does_not(monkeypatch):
    from assistant.align.scoring import BG_OFFSET, CLAUSE_CAP

    # b is the sentence's second topic; its second clause is plainly about b
    for sentence, a, b in [(BG_SENTENCE, "а-бг", "б-бг"), (EN_SENTENCE, "a-en", "b-en")]:
        raw = _raw(sentence, {a: 0.5, b: 0.3})
        got = _scores(sentence, {a: 0.5, b: 0.3}, [{a: 0.9}, {b: 0.9}], monkeypatch)
        if sentence is BG_SENTENCE:  # a Bulgarian sentence scores further below its clause than an English one
            assert got["b"] > raw["b"] + BG_OFFSET + 0.5
        else:
            assert got["b"] <= raw["b"] - CLAUSE_CAP + 1e-6


def test_a_bulgarian_clause_is_compared_with_the_bulgarian_phrases_only(monkeypatch):
    # the second clause is close to b's English phrase only (by chance, as short Bulgarian pieces are)
    sims = {"а-бг": 0.5, "б-бг": 0.3, "b-en": 0.3}
    alone = _scores(BG_SENTENCE, sims, [{}, {}], monkeypatch, with_clauses=False)
    got = _scores(BG_SENTENCE, sims, [{"а-бг": 0.9}, {"b-en": 0.9}], monkeypatch)
    assert got["b"] == pytest.approx(alone["b"])
    # the same clause close to b's Bulgarian phrase does raise b
    got = _scores(BG_SENTENCE, sims, [{"а-бг": 0.9}, {"б-бг": 0.9}], monkeypatch)
    assert got["b"] > alone["b"] + 0.5


def test_a_bulgarian_clause_raises_only_its_sentences_two_best_priorities(monkeypatch):
    # c is only the sentence's third topic: a clause about c alone does not raise it
    sims = {"а-бг": 0.5, "б-бг": 0.3, "в-бг": 0.2}
    alone = _scores(BG_SENTENCE, sims, [{}, {}], monkeypatch, with_clauses=False)
    got = _scores(BG_SENTENCE, sims, [{"а-бг": 0.9}, {"в-бг": 0.9}], monkeypatch)
    assert got["c"] == pytest.approx(alone["c"])
    # the same clause in an English sentence (the English rule is unchanged) does raise c
    sims_en = {"a-en": 0.5, "b-en": 0.3, "c-en": 0.2}
    alone_en = _scores(EN_SENTENCE, sims_en, [{}, {}], monkeypatch, with_clauses=False)
    got_en = _scores(EN_SENTENCE, sims_en, [{"a-en": 0.9}, {"c-en": 0.9}], monkeypatch)
    assert got_en["c"] > alone_en["c"] + 0.5


def test_cli_align_json_and_bad_file(tmp_path, retriever, capsys):
    from assistant.align import register
    from assistant.cli import _common

    parser = argparse.ArgumentParser(prog="sofia-qa")
    register(parser.add_subparsers(dest="command", required=True), _common)
    path = tmp_path / "proposal.txt"
    path.write_text(MOBILITY, encoding="utf-8")
    args = parser.parse_args(["align", str(path), "--json", "--db", str(retriever.db_path), "--collection", "align"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["overall"] == "aligned"
    assert {r["priority_id"]: r["alignment"] for r in out["rows"]}["mobility"] == "strong"

    bad = tmp_path / "proposal.exe"
    bad.write_bytes(b"MZ\x90\x00")
    args = parser.parse_args(["align", str(bad), "--db", str(retriever.db_path), "--collection", "align"])
    assert args.func(args) == 2
    assert "unsupported file type '.exe'" in capsys.readouterr().err


def test_a_proposal_over_the_page_limit_is_refused_with_the_limit_named(tmp_path, retriever, embedder):
    from assistant.align import align_file
    from ingestion.readers import ReadError

    # one different line per page: a line repeated on every page is a running header and is cleaned away
    topics = ("traffic lights at crossings", "bus lanes", "parking sensors", "bicycle sharing", "metro timetables")
    pdf = make_pdf(tmp_path / "long-proposal.pdf", [f"This part of the proposal is about {t} in Sofia." for t in topics])
    with pytest.raises(ReadError, match="SOFIA_QA_MAX_PDF_PAGES|page"):
        align_file(pdf, retriever, embedder, max_pages=3)
    assert align_file(pdf, retriever, embedder, max_pages=5).overall  # at the limit: read


# --------------------------------------------------------------------------- an edited priorities file

FARMING = """Drones fly over the wheat and sunflower fields of farms near Sofia every week.
Their cameras measure how much water and fertiliser each part of a field needs.
Farmers get a map that tells them where to irrigate, which saves water and raises the harvest.
"""

AGRIFOOD = """
[[priority]]
id = "agrifood"
name = "Smart agriculture and food"
level = "vertical priority area"
strategy_query = "agriculture and food production"
aspects_en = [
    "precision agriculture: farms, crops, irrigation and harvests",
    "food production and processing",
]
aspects_bg = [
    "прецизно земеделие, ферми, напояване и реколта",
    "производство и преработка на храни",
]
"""


def priorities_with_agrifood(tmp_path) -> Path:
    """A copy of the packaged priorities file with a twelfth priority added at the end, as the committee would."""
    from assistant.align import DEFAULT_FILE

    path = tmp_path / "my-priorities.toml"
    path.write_text(DEFAULT_FILE.read_text(encoding="utf-8") + AGRIFOOD, encoding="utf-8")
    return path


def test_a_priority_added_to_a_copy_is_scored_by_the_cli(tmp_path, retriever):
    from conftest import run_cli

    index = tmp_path / "index"
    shutil.copytree(retriever.db_path, index)  # the subprocess gets its own copy of the module's index
    proposal = tmp_path / "farming.txt"
    proposal.write_text(FARMING, encoding="utf-8")
    args = ("align", str(proposal), "--json", "--db", str(index), "--collection", "align")

    out = run_cli(*args, env={"SOFIA_QA_PRIORITIES_FILE": str(priorities_with_agrifood(tmp_path))})
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    rows = {r["priority_id"]: r for r in rep["rows"]}
    assert len(rows) == 12 and list(rows)[-1] == "agrifood"
    assert rows["agrifood"]["alignment"] == "strong", rows["agrifood"]
    assert rows["agrifood"]["priority"] == "Smart agriculture and food" and "irrigate" in rows["agrifood"]["sentence"]
    assert "'Smart agriculture and food'" in rep["summary"] and rep["overall"] == "aligned"

    out = run_cli(*args)  # without the setting: the packaged file, which has no such priority
    assert out.returncode == 0, out.stderr
    default = json.loads(out.stdout)
    assert len(default["rows"]) == 11 and "agrifood" not in {r["priority_id"] for r in default["rows"]}


def test_a_priority_added_to_a_copy_shows_in_the_alignment_tab(tmp_path, retriever, embedder):
    from types import SimpleNamespace

    from gradio_client import Client

    import app as sofia_app
    from conftest import free_port
    from ingestion.config import Settings

    settings = Settings.from_env(priorities_file=priorities_with_agrifood(tmp_path), upload_dir=tmp_path / "uploads",
                                 host="127.0.0.1", port=free_port())
    stub = SimpleNamespace(store=retriever.store, embedder=embedder, retriever=retriever)  # no language model
    demo = sofia_app.build(settings, assistant=stub)
    demo.queue(default_concurrency_limit=1)
    demo.launch(**sofia_app.launch_options(settings, None), prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{settings.port}/", verbose=False, analytics_enabled=False,
                        download_files=str(tmp_path / "downloads"))
        status, table, download = client.predict(FARMING, None, api_name="/align")
    finally:
        demo.close()
    assert "12 strategy priorities checked" in status, status
    assert "Smart agriculture and food" in table and "sqa-badge sqa-strong" in table
    md = Path(download["value"] if isinstance(download, dict) else download).read_text(encoding="utf-8")
    assert "| Smart agriculture and food | vertical priority area | strong |" in md


def test_bulgarian_phishing_training_and_live_concerts_reach_their_priorities(embedder):
    """Seventh round: the Bulgarian phrases gained a counterpart of the English phishing phrase and the performing
    arts (theatre, concerts, dance), which no Bulgarian phrase named; without them these stay under strong."""
    from assistant.align import STRONG_Z
    from assistant.align.priorities import load_priorities
    from assistant.align.scoring import score_sentences

    p = load_priorities()
    ids = [x.id for x in p]
    best, _ = score_sentences(["Ще обучим 200 служители как да разпознават фишинг писма."], embedder, p)
    assert best[ids.index("security")] >= STRONG_Z, dict(zip(ids, best.round(2)))
    best, _ = score_sentences(["Музиканти от няколко софийски клуба ще свирят заедно на живо от различни сцени, "
                               "свързани през 5G мрежа с толкова малко закъснение, че да звучат като един оркестър."],
                              embedder, p)
    assert best[ids.index("creative")] >= STRONG_Z and best[ids.index("networking")] >= STRONG_Z, \
        dict(zip(ids, best.round(2)))


def test_the_nearest_examples_vote_for_the_priorities_they_are_strong_on():
    """Tenth round: of a proposal's EXAMPLE_K nearest examples, those strong on a priority raise it by
    EXAMPLE_WEIGHT / EXAMPLE_K each, those that must stay none on it lower that gain (never below zero)."""
    import dataclasses

    import numpy as np

    from assistant.align import scoring
    from assistant.align.priorities import Example

    pr, toy = _toy({})
    dim = len(toy.embed_query("a-en"))
    extra: dict[str, np.ndarray] = {}

    def near(text, axis, wobble):
        v = np.zeros(dim, dtype=np.float32)
        v[axis], v[-1] = 1.0, wobble  # axis 6 or 7 (no phrase lies there); the wobble orders the neighbours
        extra[text] = v
        return text

    examples = [Example(f"x{i}", near(f"An example proposal about topic six, number {i}.", 6, 0.01 * i),
                        strong=("a",), none=("c",)) for i in range(1, 6)]
    examples += [Example(f"y{i}", near(f"Another proposal about topic six, number {i}.", 6, 0.06 + 0.01 * i),
                         strong=("b",), none=("a",)) for i in range(1, 3)]
    examples += [Example(f"z{i}", near(f"A proposal about topic seven, number {i}.", 7, 0.0), strong=("c",), none=())
                 for i in range(1, 10)]
    proposal = near("We propose a project about topic six.", 6, 0.0)

    class Near:
        name = "near"

        def embed_query(self, text):
            return toy.embed_query(text)

        def embed_passages(self, texts):
            return np.stack([extra[t] if t in extra else toy.embed_passages([t])[0] for t in texts])

    assert scoring.EXAMPLE_K == 9
    with_examples = dataclasses.replace(pr, examples=tuple(examples))
    gain, why = scoring.example_votes([proposal], Near(), with_examples)
    # the nine nearest: x1-x5 (a; against c), y1-y2 (b; against a) and two of z (c)
    assert gain.tolist() == pytest.approx([scoring.EXAMPLE_WEIGHT * v for v in (3 / 9, 2 / 9, 0.0)])
    assert why[0] == ("x1", "x2", "x3", "x4", "x5") and why[1] == ("y1", "y2")
    gain, why = scoring.example_votes([proposal], Near(), pr)  # no examples: nothing changes
    assert gain.tolist() == [0.0, 0.0, 0.0] and why == [(), (), ()]
