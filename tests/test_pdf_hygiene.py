"""Real-PDF hygiene on PDFs built here: running headers and footers, contents pages, broken words, tables, and the
printed page number a citation shows (``ingestion.pdf_clean`` through ``read_document`` and the real chunker)."""

from __future__ import annotations

import re

import pytest

from conftest import make_report_pdf
from ingestion import pdf_clean as P
from ingestion.chunking import chunk_document
from ingestion.config import Settings
from ingestion.readers import read_document

HEADER = "Sofia RIS3 monitoring report 2023"
FOOTER = "Page {n}"
TOC = "Contents\nIntroduction ........ 1\nPriority areas ........ 2\nFunding ........ 3\nMonitoring ........ 4"
TOPICS = ["informatics and ICT", "creative industries", "healthy living and biotechnology", "new technologies",
          "mechatronics", "clean energy"]
HEAD_ROW = ("District", "Firms", "Employees", "Patents")
ROWS = [(f"District D{i}", 100 + 7 * i, 1000 + 53 * i, 3 + i) for i in range(40)]


def _body(i: int) -> str:
    topic = TOPICS[i % len(TOPICS)]
    return (f"Chapter {i} reviews {topic}. The city supported {topic} with grants, training and "
            f"public procurement; results for {topic} are discussed with the partners of chapter {i}.")


def _report(path, **kw):
    """Cover, contents page, then six numbered pages with a running header and footer (printed 1 = physical 3)."""
    pages = [["Sofia Research and Innovation Strategy: monitoring report."], [TOC]]
    pages += [[_body(i)] for i in range(1, 7)]
    pages[2].append("The smart special-\nisation strat-\negy of Sofia-\nCapital answers the COVID-\n19 shock.")
    pages[3].append([HEAD_ROW, *ROWS[:3]])
    return make_report_pdf(path, pages, header=HEADER, footer=FOOTER, numbered_from=3, **kw)


@pytest.fixture()
def chunks(tmp_path, embedder):
    doc = read_document(_report(tmp_path / "report.pdf"))
    return doc, chunk_document(doc, embedder.count_tokens, Settings.chunk_tokens, embedder.name)


def test_running_header_and_footer_are_gone_from_every_chunk(chunks):
    doc, got = chunks
    assert len(got) >= 6
    for c in got:
        assert HEADER.casefold() not in c.text.casefold(), c.text
        assert not re.search(r"^Page \d+$", c.text, re.M), c.text
    assert all(f"Chapter {i} reviews" in doc.text for i in range(1, 7))  # the content itself stays


def test_contents_page_is_not_indexed(chunks):
    doc, got = chunks
    assert "........" not in doc.text and "Priority areas" not in doc.text
    assert not any(re.search(r"^Contents$", c.text, re.M) for c in got)
    assert "monitoring report." in doc.text  # the cover is content and stays
    assert {s.page for s in doc.sections} == {1, 2, 3, 4, 5, 6}  # the contents page (physical 2) has no section


def test_words_broken_at_a_line_end_are_joined_and_compounds_kept(chunks):
    doc, _ = chunks
    flat = " ".join(doc.text.split())
    assert "strategy of" in flat and "strat-" not in flat
    assert "specialisation" in flat  # "-isation" is a suffix, not a word of the document
    assert "Sofia- Capital" in flat or "Sofia-Capital" in flat  # a capital after the hyphen: a real compound
    assert "COVID- 19" in flat or "COVID-19" in flat


def test_citation_page_is_the_printed_number(chunks, tmp_path):
    doc, got = chunks
    page_of = {c.text.split(".")[0]: c.page_start for c in got if c.text.startswith("Chapter")}
    # physical page i + 2 prints "Page i"; the cover (before the numbering starts) keeps its physical number
    assert all(page_of[f"Chapter {i} reviews {TOPICS[i % len(TOPICS)]}"] == i for i in range(1, 7)), page_of
    labelled = read_document(_report(tmp_path / "labelled.pdf", label_start=101))
    assert [s.page for s in labelled.sections][:3] == [101, 103, 104]  # the PDF's own labels win over the footer
    plain = read_document(make_report_pdf(tmp_path / "plain.pdf", [[_body(i)] for i in range(1, 5)]))
    assert [s.page for s in plain.sections] == [1, 2, 3, 4]  # nothing printed: the physical page


def test_table_rows_stay_with_their_header_row(tmp_path, embedder):
    pages = [[_body(1)], [_body(2), [HEAD_ROW, *ROWS], _body(3)], [_body(4)]]
    doc = read_document(make_report_pdf(tmp_path / "table.pdf", pages, footer=FOOTER))
    got = chunk_document(doc, embedder.count_tokens, Settings.chunk_tokens, embedder.name)
    header = " ".join(HEAD_ROW)
    with_rows = [c for c in got if re.search(r"^District D\d+ ", c.text, re.M)]
    assert len(with_rows) >= 2  # 40 rows do not fit one chunk, so the table is cut ...
    for c in with_rows:  # ... and every piece starts with the header row
        assert header in c.text, c.text
    found = {ln.split()[1] for c in with_rows for ln in c.text.splitlines() if re.match(r"District D\d+ ", ln)}
    assert found == {r[0].split()[1] for r in ROWS}  # no row lost


# --------------------------------------------------------------------------- the pure functions, edge cases

def test_page_number_ignores_numbers_that_do_not_move_with_the_page():
    removed = [(f"Form 10-Q 2023 | {i}",) for i in range(1, 11)]
    assert P.page_numbers(10, removed) == (tuple(range(1, 11)), "printed")
    years = [("Annual report 2023",)] * 10
    assert P.page_numbers(10, years) == (tuple(range(1, 11)), "physical")
    assert P.page_numbers(3, [(), (), ()], ["iii", "1", "2"]) == ((1, 1, 2), "labels")  # roman: physical index


def test_a_short_document_or_a_table_of_figures_is_left_alone():
    two = ["Sofia report\nBody one about grants.\nPage 1", "Sofia report\nBody two about training.\nPage 2"]
    assert P.clean_pages(two).removed == ((), ())  # two pages cannot tell a header from content
    figures = ["Region Firms Employees", "Sofia 40 400", "Plovdiv 12 120", "Varna 9 80", "Burgas 7 60", "Ruse 5 51"]
    assert not P.toc_lines(figures, 50)  # rows of figures, not a contents column
    toc = ["Contents", "Item 1. Financial Statements 3", "Item 2. Management's Discussion 21",
           "Item 3. Market Risk 32", "Item 4. Controls and Procedures 33", "The rest is prose about the quarter."]
    assert P.toc_lines(toc, 50) == {0, 1, 2, 3, 4}


def test_a_long_table_is_cut_into_pieces_that_repeat_the_header():
    text = "Intro paragraph.\n\n" + "\n".join(["Region Firms Jobs"] + [f"Town{i} {i} {10 * i}" for i in range(80)])
    pieces = P.keep_tables(text).split("\n\n")[1:]
    assert len(pieces) > 1 and all(p.startswith("Region Firms Jobs\n") for p in pieces)
    assert all(len(p) <= P.TABLE_PIECE_CHARS for p in pieces)
    assert sum(len(p.splitlines()) - 1 for p in pieces) == 80


def test_a_line_that_is_all_a_page_says_is_content_not_furniture():
    """Forty pages that each say only the same sentence: stripping it as a running line would leave no text."""
    cleaned = P.clean_pages(["A page of text about smart cities."] * 40)
    assert all(t == "A page of text about smart cities." for t in cleaned.texts)
    framed = P.clean_pages([f"Sofia RIS3\nBody {i} about clusters and their members.\nPage {i}" for i in range(1, 6)])
    assert all("Sofia RIS3" not in t and "Body" in t for t in framed.texts)  # with content, still furniture


@pytest.mark.parametrize("header, columns", [
    ("Three Months Ended Nine Months Ended July 1, 2023 June 25, 2022 July 1, 2023 June 25, 2022",
     ["Three Months Ended July 1, 2023", "Three Months Ended June 25, 2022", "Nine Months Ended July 1, 2023",
      "Nine Months Ended June 25, 2022"]),
    ("Three Months Ended March 31, Twelve Months Ended March 31, 2022 2023 2022 2023",
     ["Three Months Ended March 31, 2022", "Three Months Ended March 31, 2023", "Twelve Months Ended March 31, 2022",
      "Twelve Months Ended March 31, 2023"]),
    ("Three Months Ended Six Months Ended July 30, July 31, July 30, July 31, 2023 2022 2023 2022",
     ["Three Months Ended July 30, 2023", "Three Months Ended July 31, 2022", "Six Months Ended July 30, 2023",
      "Six Months Ended July 31, 2022"]),
    ("Three Months Ended September 30, 2022 2021",
     ["Three Months Ended September 30, 2022", "Three Months Ended September 30, 2021"]),
])
def test_column_headings_split_by_extraction_name_each_column(header, columns):
    assert P.column_header(header).split(" | ") == columns
    assert P.column_header("District Firms Employees Patents") == "District Firms Employees Patents"  # no periods
    assert P.column_header("Year Ended December 31, 2022") == "Year Ended December 31, 2022"  # nothing to pair


def test_every_piece_of_a_statement_names_its_columns_and_keeps_its_group_labels():
    """Text extraction writes a statement's headings one date part per line and its group labels ("Cost of
    sales:") between rows: each piece must still say which column is which period, so a model reading one piece
    cannot take a nine-month figure for the quarter's."""
    heading = ["(In millions)", "Three Months Ended Nine Months Ended", "July 1,", "2023", "June 25,", "2022",
               "July 1,", "2023", "June 25,", "2022"]
    rows = []
    for g in "ABCDEF":
        rows += [f"Costs of group {g}:"] + [f"Line {g}{r} {100 + r} {90 + r} {300 + r} {280 + r}" for r in range(6)]
    text = "\n".join(["The statement of operations follows.", "", *heading, *rows, "", "Notes follow."])
    out = P.keep_tables(text)
    pieces = [p for p in out.split("\n\n") if "Line " in p]
    assert len(pieces) > 1
    names = ("(In millions) Three Months Ended July 1, 2023 | Three Months Ended June 25, 2022 | "
             "Nine Months Ended July 1, 2023 | Nine Months Ended June 25, 2022")
    assert all(p.startswith(names + "\n") for p in pieces), pieces[1]
    assert sum(p.count("Costs of group") for p in pieces) == 6  # every group label kept, once
    assert "July 1,\n" not in out and out.startswith("The statement of operations follows.")
    wrapped = text.replace("Line C2 102", "Acquisition of companies, net of cash acquired, and purchases of intangible "
                                           "and other\nassets 102")
    assert [p.split("\n")[0] for p in P.keep_tables(wrapped).split("\n\n") if "Line " in p] == [names] * len(pieces)
    assert out.endswith("Notes follow.")


def test_a_sentence_that_ends_in_a_number_does_not_start_a_table():
    text = "\n".join(["It is discussed with the partners of chapter 2.", "District Firms Jobs",
                      "District D0 100 1000", "District D1 107 1053"])
    assert P.keep_tables(text).split("\n\n")[0] == "It is discussed with the partners of chapter 2."
