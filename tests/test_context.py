"""The header every chunk carries: the document's name, its period (title, file name or first page) and section path.

Periods are found on plain strings and on a real PDF the test builds; the header is checked in ``embed_text``, in a
store's round trip, and in what BM25 indexes (a question that names only the period finds a page that does not).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import make_pdf
from ingestion.chunking import chunk_document
from ingestion.config import Settings
from ingestion.context import (chunk_header, document_label, document_period, find_period, label_for, period_order,
                               series_name)
from ingestion.pipeline import ingest
from ingestion.readers import read_document
from ingestion.types import Document, Section


@pytest.mark.parametrize("text, period", [
    ("UNITED STATES ... FORM 10-Q\nFor the quarterly period ended July 1, 2023\nor", "quarterly period ended July 1, 2023"),
    ("for the three months ended June 30, 2023 and 2022", "three months ended June 30, 2023"),
    ("2023 Q2 INTC", "2023 Q2"),
    ("Results for Q3 2022", "Q3 2022"),
    ("Innovation Strategy for Smart Specialisation 2014-2020", "2014-2020"),
    ("Sofia RIS3 2021\u20132027", "2021\u20132027"),
    ("Board minutes of March 5, 2021", "March 5, 2021"),
    ("Cluster management excellence labels", None),
    ("0000320193-22-000070", None),  # an accession number is not a period
    ("", None),
])
def test_find_period_on_strings(text, period):
    assert find_period(text) == period


@pytest.mark.parametrize("period, when", [
    ("quarterly period ended July 1, 2023", (2023, 7, 1)),
    ("Quarterly Period Ended September 30, 2022", (2022, 9, 30)),
    ("2023 Q2", (2023, 6, 0)),
    ("Q3 2022", (2022, 9, 0)),
    ("2021\u20132027", (2027, 0, 0)),
    ("Cluster labels", None),
    (None, None),
])
def test_a_period_orders_by_the_day_it_ends(period, when):
    assert period_order(period) == when


def test_a_later_quarter_is_newer_than_an_earlier_year_end():
    assert period_order("quarterly period ended July 1, 2023") > period_order("2023 Q2") > period_order("Q3 2022")


@pytest.mark.parametrize("name, series", [
    ("2023 Q1 INTC.pdf", "intc"), ("2022 Q3 INTC.pdf", "intc"), ("2022 Q3 AAPL.pdf", "aapl"),
    ("board-minutes-2024-05.pdf", "board minutes"), ("Report_FY2023_Q1.pdf", "report"), ("протокол-2024.pdf", "протокол"),
])
def test_a_series_is_the_file_name_without_its_period(name, series):
    assert series_name(name) == series


def _doc(title: str, name: str, text: str, pages: int | None = None) -> Document:
    return Document(doc_id=name, path=Path("/docs") / name, title=title, text=text,
                    sections=(Section(text=text, start=0, page=1 if pages else None),), content_hash="h", pages=pages)


def test_label_prefers_the_file_name_over_an_identifier_title():
    assert label_for("0000320193-22-000070", "/docs/2022 Q3 AAPL.pdf") == "2022 Q3 AAPL"
    assert label_for("Sofia RIS3", "/docs/sofia-ris3.md") == "Sofia RIS3"
    assert label_for("", "/docs/board_minutes.pdf") == "board minutes"
    assert label_for("10Q Document", "/docs/2023 Q1 INTC.pdf", paged=True) == "2023 Q1 INTC: 10Q Document"
    assert label_for("Q1 report", "/docs/q1.md") == "Q1 report"  # a Markdown title is the author's own


def test_period_from_the_cover_page_when_the_label_has_only_the_quarter():
    doc = _doc("0000320193-22-000070", "2022 Q3 AAPL.pdf", "FORM 10-Q\nFor the quarterly period ended June 25, 2022\n"
               "Apple Inc.", pages=30)
    assert document_label(doc) == "2022 Q3 AAPL"
    assert document_period(doc) == "quarterly period ended June 25, 2022"


def test_markdown_text_is_not_read_for_a_period():
    # an event's date in the body of a Markdown file says nothing about what the file covers
    doc = _doc("Cluster Sofia - Knowledge City", "cskc.md", "Founded on March 5, 2012 in Sofia.")
    assert document_period(doc) is None
    assert document_period(_doc("Sofia RIS3 2021-2027", "ris3.md", "text")) == "2021-2027"


def test_header_is_short_and_does_not_repeat_the_period():
    assert chunk_header("Sofia RIS3 2021-2027", "2021-2027", ("Budget",)) == "Sofia RIS3 2021-2027 > Budget"
    assert chunk_header("2023 Q2 INTC", "quarterly period ended July 1, 2023", ()) == \
        "2023 Q2 INTC (quarterly period ended July 1, 2023)"


def test_pdf_period_reaches_every_chunk_and_its_embed_text(tmp_path, store, embedder):
    pages = ["FORM 10-Q\nFor the quarterly period ended July 1, 2023\nIntel Corporation",
             "Revenue of the Client Computing Group was 12.9 billion dollars, down 12 percent.",
             "Risk factors: supply chain constraints may affect our factories."]
    folder = tmp_path / "docs"
    folder.mkdir()
    pdf = make_pdf(folder / "2023 Q2 INTC.pdf", pages, title="10Q Document")
    doc = read_document(pdf, pdf.name)
    assert document_period(doc) == "quarterly period ended July 1, 2023"
    chunks = chunk_document(doc, lambda s: len(s.split()), 220, embedder.name)
    assert chunks and all(c.period == "quarterly period ended July 1, 2023" for c in chunks)
    header = "2023 Q2 INTC: 10Q Document (quarterly period ended July 1, 2023)"
    assert all(c.embed_text().startswith(header + "\n") for c in chunks)

    # the period survives the store's metadata round trip, so BM25 (built from stored chunks) sees the header too
    ingest([folder], store=store, embedder=embedder, chunk_tokens=Settings().chunk_tokens)
    stored = store.all_chunks()
    assert {c.period for c in stored} == {"quarterly period ended July 1, 2023"}
    from assistant.retrieve import Retriever

    bm25 = Retriever(store, embedder, Settings(), mode="bm25")
    _, lexical = bm25.candidates("July 2023 quarterly period")
    # pages 2 and 3 never say the period; only their header does
    assert {c.page_start for c, _ in lexical} == {1, 2, 3}
