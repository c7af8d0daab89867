"""Readers: every format, page numbers, Cyrillic, and a clear error for each kind of bad file."""

from __future__ import annotations

import zipfile

import pytest

from conftest import make_docx, make_pdf, make_scan_pdf
from ingestion.readers import (BadFrontMatter, CorruptFile, EmptyFile, EncryptedPDF, NoTextLayer, TooLarge,
                               UnsupportedFile, read_document)

BG = "Иновационна стратегия за интелигентна специализация на София"

MD = """---
title: Test strategy
doc_type: strategy
language: en
sources:
  - https://example.org/a
reviewed: 2026-11-25
---
# Test strategy

Intro paragraph about the strategy.

## Priorities

### ICT

Sofia RIS3 names ICT as a priority ([SDA](https://example.org/sda)). <!-- R19 -->

Second paragraph in Bulgarian: """ + BG + """. <!-- R1 -->

## Monitoring

Teams met on 12 July 2018. <!-- a private note that must not be indexed -->
"""


def test_markdown_front_matter_headings_comments_links(tmp_path):
    p = tmp_path / "s.md"
    p.write_text(MD, encoding="utf-8")
    doc = read_document(p)
    assert doc.title == "Test strategy" and doc.doc_type == "strategy" and doc.language == "en"
    assert doc.sources == ("https://example.org/a",) and doc.reviewed == "2026-11-25"
    assert "<!--" not in doc.text and "private note" not in doc.text and "https://" not in doc.text
    assert BG in doc.text  # Cyrillic survives unchanged
    ict = next(s for s in doc.sections if "ICT as a priority" in s.text)
    assert ict.heading_path == ("Priorities", "ICT")
    assert doc.text[ict.start:ict.start + len(ict.text)] == ict.text
    assert ict.links and ict.links[0][1] == "https://example.org/sda"
    assert sorted(doc.fact_ids.values()) == ["R1", "R19"]
    mon = next(s for s in doc.sections if "12 July 2018" in s.text)
    assert mon.heading_path == ("Monitoring",)


@pytest.mark.parametrize("front, field", [("doc_type: brochure", "doc_type"), ("sources: 5", "sources")])
def test_bad_front_matter_names_the_field(tmp_path, front, field):
    p = tmp_path / "bad.md"
    p.write_text(f"---\ntitle: x\n{front}\n---\nBody text here.\n", encoding="utf-8")
    with pytest.raises(BadFrontMatter) as err:
        read_document(p)
    assert "bad.md" in str(err.value) and field in str(err.value)


def test_pdf_pages_are_one_based_and_cyrillic_survives(tmp_path):
    p = make_pdf(tmp_path / "strategy.pdf", ["First page about ICT.", BG + " - втора страница.", "Third page: 40,400 IT specialists."],
                 title="Sofia strategy")
    doc = read_document(p)
    assert doc.pages == 3 and doc.title == "Sofia strategy"
    by_page = {s.page: s.text for s in doc.sections}
    assert set(by_page) == {1, 2, 3}
    assert "First page" in by_page[1] and "40,400" in by_page[3]
    assert BG in by_page[2].replace("\n", " ")


def test_pdf_whose_metadata_title_is_an_accession_number_is_named_by_its_file(tmp_path):
    # SEC filings carry "0000320193-23-000077" as their title: citations and prompts would name the filing by it
    p = make_pdf(tmp_path / "2023 Q3 AAPL.pdf", ["Net sales rose in the third quarter."], title="0000320193-23-000077")
    assert read_document(p).title == "2023 Q3 AAPL"
    named = make_pdf(tmp_path / "q3.pdf", ["Net sales rose in the third quarter."], title="Apple 10-Q for Q3 2023")
    assert read_document(named).title == "Apple 10-Q for Q3 2023"


def test_encrypted_pdf(tmp_path):
    p = make_pdf(tmp_path / "locked.pdf", ["secret"], password="pw")
    with pytest.raises(EncryptedPDF) as err:
        read_document(p)
    assert "locked.pdf" in str(err.value) and "password" in str(err.value)


def test_corrupt_pdf(tmp_path):
    p = tmp_path / "broken.pdf"
    p.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\nthis is not a pdf at all" * 3)
    with pytest.raises(CorruptFile) as err:
        read_document(p)
    assert "broken.pdf" in str(err.value)


def test_scanned_pdf_without_text(tmp_path):
    p = make_scan_pdf(tmp_path / "scan.pdf")
    with pytest.raises(NoTextLayer) as err:
        read_document(p)
    assert "scan.pdf" in str(err.value) and "OCR" in str(err.value)


def test_html_headings_and_scripts(tmp_path):
    p = tmp_path / "page.html"
    p.write_text("<html><head><title>Cluster page</title><script>alert('x')</script></head><body>"
                 "<h1>Cluster page</h1><h2>Членство</h2><p>Членовете плащат годишен членски внос.</p>"
                 "<h2>Labels</h2><p>Bronze is valid for <b>two years</b>. <a href='https://eucles.be'>EUCLES</a></p>"
                 "</body></html>", encoding="utf-8")
    doc = read_document(p)
    assert doc.title == "Cluster page" and "alert" not in doc.text
    member = next(s for s in doc.sections if "членски внос" in s.text)
    assert member.heading_path == ("Членство",)
    labels = next(s for s in doc.sections if "two years" in s.text)
    assert labels.heading_path == ("Labels",) and labels.links[0][1] == "https://eucles.be"


def test_docx_headings_and_cyrillic(tmp_path):
    p = make_docx(tmp_path / "proposal.docx", [("Title", "Предложение"), ("Heading 1", "Цели"),
                                                ("", "Проектът развива умни системи за мобилност в София."),
                                                ("Heading 1", "Budget"), ("", "EUR 20,000 over two years.")])
    doc = read_document(p)
    assert doc.title == "Предложение" and doc.language == "bg"
    goals = next(s for s in doc.sections if "мобилност" in s.text)
    assert goals.heading_path == ("Цели",)


def test_plain_text_utf8_and_cp1251(tmp_path):
    a = tmp_path / "a.txt"
    a.write_text(BG, encoding="utf-8")
    b = tmp_path / "b.txt"
    b.write_bytes(BG.encode("cp1251"))
    assert read_document(a).text == BG == read_document(b).text


@pytest.mark.parametrize("name, content, error", [
    ("empty.md", b"", EmptyFile),
    ("blank.txt", b"   \n\n  ", EmptyFile),
    ("picture.png", b"\x89PNG....", UnsupportedFile),
    ("fake.docx", b"not a zip file", CorruptFile),
])
def test_bad_files_name_the_file(tmp_path, name, content, error):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(error) as err:
        read_document(p)
    assert name in str(err.value)


def test_size_limit(tmp_path):
    p = tmp_path / "big.txt"
    p.write_text("word " * 300_000)
    with pytest.raises(TooLarge) as err:
        read_document(p, max_mb=1)
    assert "big.txt" in str(err.value) and "MB" in str(err.value)


def test_docx_decompression_bomb(tmp_path):
    p = tmp_path / "bomb.docx"
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("word/document.xml", b"0" * (60 * 1024 * 1024))
    with pytest.raises(TooLarge) as err:
        read_document(p)
    assert "bomb.docx" in str(err.value) and "decompression bomb" in str(err.value)
