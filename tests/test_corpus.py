"""The corpus: every FACTS.md id exactly once, valid front matter, sources one click away."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from conftest import CORPUS, SHARED
from ingestion.readers import read_document
from ingestion.types import DOC_TYPES

FACTS = SHARED / "research" / "FACTS.md"
DOCS = sorted(CORPUS.glob("*.md"))


@pytest.mark.skipif(not FACTS.exists(), reason="../shared/research/FACTS.md is not beside the project")
def test_every_fact_id_appears_exactly_once():
    wanted = set(re.findall(r"^- ([A-Z]+\d+)\.", FACTS.read_text(encoding="utf-8"), re.MULTILINE))
    found = Counter(i for p in DOCS for i in re.findall(r"<!--\s*([A-Z]+\d+)\s*-->", p.read_text(encoding="utf-8")))
    assert len(wanted) > 200
    assert sorted(wanted - set(found)) == [], "facts missing from the corpus"
    assert sorted(i for i, n in found.items() if n > 1) == [], "facts placed twice"
    assert sorted(set(found) - wanted) == [], "ids that FACTS.md does not have"


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_front_matter_and_links(path):
    doc = read_document(path)
    assert doc.doc_type in DOC_TYPES and doc.language and doc.reviewed and doc.sources
    raw = path.read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\((https?://[^)\s]+)\)", raw))
    assert linked and linked <= set(doc.sources), "every linked source is listed in the front matter"
    # each fact id stands next to its source: a link within the same paragraph
    for para in re.split(r"\n\s*\n", raw):
        if re.search(r"<!--\s*[A-Z]+\d+\s*-->", para):
            assert "](http" in para, f"fact without a source link in {path.name}: {para[:120]}"


def test_corpus_has_every_kind_of_document():
    types = {read_document(p).doc_type for p in DOCS}
    assert types == set(DOC_TYPES)
