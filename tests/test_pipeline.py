"""Ingest end to end with the real embedder and real Chroma: incremental runs, bad files, SIGKILL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CORPUS, ROOT, make_pdf, run_cli
from ingestion.chunking import chunk_document
from ingestion.pipeline import ingest
from ingestion.readers import read_document
from ingestion.store import ModelMismatch, Store, connect


def write_doc(folder: Path, name: str, topic: str, paragraphs: int = 4) -> Path:
    body = "\n\n".join(
        f"Paragraph {i} about {topic}: the cluster reports figure {i * 137} for {topic} in year {2010 + i}, "
        f"with partners from Sofia and a budget of EUR {i * 1000 + 250}." for i in range(1, paragraphs + 1))
    p = folder / name
    p.write_text(f"---\ntitle: {topic.title()}\ndoc_type: reference\n---\n# {topic.title()}\n\n## Facts\n\n{body}\n",
                 encoding="utf-8")
    return p


def expected_index(folder: Path, embedder, chunk_tokens=220) -> dict[str, set[str]]:
    """What a correct index holds for the files present now: doc id -> chunk ids."""
    budget = min(chunk_tokens, embedder.max_tokens - embedder.overhead)
    out = {}
    for f in sorted(folder.rglob("*.md")):
        doc = read_document(f, f.relative_to(folder).as_posix())
        out[doc.doc_id] = {c.chunk_id for c in chunk_document(doc, embedder.count_tokens, budget, embedder.name)}
    return out


def actual_index(store: Store) -> dict[str, set[str]]:
    got = store.col.get(include=["metadatas"])
    out: dict[str, set[str]] = {}
    for cid, meta in zip(got["ids"], got["metadatas"]):
        out.setdefault(meta["doc_id"], set()).add(cid)
    return out


def test_chunks_carry_provenance_and_fit_the_model(tmp_path, embedder):
    doc = read_document(CORPUS / "cskc-membership.md") if (CORPUS / "cskc-membership.md").exists() \
        else read_document(write_doc(tmp_path, "m.md", "membership", 30))
    chunks = chunk_document(doc, embedder.count_tokens, 220, embedder.name)
    assert chunks
    for c in chunks:
        assert doc.text[c.start:c.end] == c.text
        assert embedder.count_tokens(c.embed_text()) <= min(220, embedder.max_tokens - embedder.overhead)
        assert c.doc_id and c.title and c.doc_type and c.language and c.content_hash and c.embed_model
        assert c.doc_chunks == len(chunks)
    assert len({c.chunk_id for c in chunks}) == len(chunks)


def test_long_paragraph_is_split_not_truncated(embedder):
    from ingestion.types import Document, Section

    text = " ".join(f"Sentence {i} names the innovation ecosystem of Sofia and its partners." for i in range(200))
    doc = Document("long.txt", Path("long.txt"), "Long", text, (Section(text, 0),), "h")
    chunks = chunk_document(doc, embedder.count_tokens, 120, embedder.name)
    assert len(chunks) > 5
    assert all(embedder.count_tokens(c.embed_text()) <= 120 for c in chunks)
    assert "".join(c.text for c in chunks).count("Sentence 199") == 1 or chunks[-1].text.endswith("partners.")


def test_incremental_update_delete_rebuild(tmp_path, store, embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for t in ("labels", "membership", "strategy"):
        write_doc(corpus, f"{t}.md", t)
    r1 = ingest([corpus], store=store, embedder=embedder, progress=False)
    assert sorted(r1.added) == ["labels.md", "membership.md", "strategy.md"] and not r1.failed
    assert actual_index(store) == expected_index(corpus, embedder)

    r2 = ingest([corpus], store=store, embedder=embedder, progress=False)
    assert r2.embedded == 0 and sorted(r2.unchanged) == ["labels.md", "membership.md", "strategy.md"]
    assert "nothing to re-embed" in r2.summary()

    write_doc(corpus, "labels.md", "labels", paragraphs=7)  # changed
    (corpus / "strategy.md").unlink()  # deleted
    r3 = ingest([corpus], store=store, embedder=embedder, progress=False)
    assert r3.updated == ["labels.md"] and r3.removed == ["strategy.md"] and r3.unchanged == ["membership.md"]
    assert actual_index(store) == expected_index(corpus, embedder)

    r4 = ingest([corpus], store=store, embedder=embedder, progress=False, rebuild=True)
    assert sorted(r4.added) == ["labels.md", "membership.md"]
    assert actual_index(store) == expected_index(corpus, embedder)


def test_bad_files_are_skipped_and_nothing_stored_is_lost(tmp_path, store, embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    good = write_doc(corpus, "good.md", "labels")
    victim = write_doc(corpus, "victim.md", "membership")
    ingest([corpus], store=store, embedder=embedder, progress=False)
    before = actual_index(store)

    (corpus / "empty.md").write_text("")
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    (corpus / "image.png").write_bytes(b"\x89PNG")
    make_pdf(corpus / "locked.pdf", ["secret"], password="pw")
    victim.write_text("---\ndoc_type: nonsense\n---\nnew text", encoding="utf-8")  # now invalid
    r = ingest([corpus], store=store, embedder=embedder, progress=False)
    failed = {Path(f.path).name: f.error for f in r.failed}
    assert set(failed) == {"empty.md", "broken.pdf", "image.png", "locked.pdf", "victim.md"}
    assert failed["locked.pdf"].startswith("encrypted") and "doc_type" in failed["victim.md"]
    assert actual_index(store) == before  # the old victim.md chunks are still there
    assert good.exists()


def test_model_mismatch_is_refused(tmp_path):
    client = connect(tmp_path / "idx")
    Store(client, "coll", "multilingual-e5-small")
    with pytest.raises(ModelMismatch) as err:
        Store(client, "coll", "all-MiniLM-L6-v2")
    assert "multilingual-e5-small" in str(err.value) and "--rebuild" in str(err.value)


def test_cli_json_summary_and_docs(tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    write_doc(corpus, "a.md", "alpha")
    (corpus / "bad.pdf").write_bytes(b"nope")
    db = str(tmp_path / "db")
    out = run_cli("ingest", str(corpus), "--db", db, "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert set(summary) >= {"added", "updated", "removed", "unchanged", "failed", "chunks"}
    assert summary["added"] == ["a.md"] and summary["failed"][0]["path"].endswith("bad.pdf")
    assert run_cli("ingest", str(corpus), "--db", db, "--strict").returncode == 1
    docs = json.loads(run_cli("docs", "--db", db, "--json").stdout)
    assert docs[0]["doc"] == "a.md" and docs[0]["doc_type"] == "reference" and docs[0]["chunks"] >= 1
    assert run_cli("remove", "a.md", "--db", db).returncode == 0
    assert json.loads(run_cli("docs", "--db", db, "--json").stdout) == []


def _kill_at_progress(cmd: list[str], fraction: float, env: dict[str, str]) -> bool:
    """Run an ingest and SIGKILL it once its own progress bar shows ``fraction`` of the chunks
    embedded and written. Returns whether it was still running when killed. The kill point follows
    the work, not the clock: a timer tuned on one run misses on a warmer or busier machine."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT, env=env)
    seen = b""
    killed = False
    while True:
        data = proc.stderr.read1(4096)
        if not data:
            break
        seen = (seen + data)[-400:]
        bars = re.findall(rb"embedding:[^\r\n]*?(\d+)/(\d+)", seen)
        if bars and int(bars[-1][0]) >= fraction * int(bars[-1][1]) and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
            break
    proc.stderr.close()
    proc.wait()
    return killed


def test_sigkill_mid_ingest_then_clean_rerun(tmp_path):
    from ingestion.embedding import load_embedder

    embedder = load_embedder("all-MiniLM-L6-v2")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    n_docs = 16
    for i in range(n_docs):
        write_doc(corpus, f"doc{i:02d}.md", f"topic {i}", paragraphs=8)
    db = tmp_path / "db"
    # the store's consistency is under test, not the model: the faster packaged embedder keeps this short
    model = "all-MiniLM-L6-v2"
    cmd = [sys.executable, "-m", "assistant.cli", "ingest", str(corpus), "--db", str(db), "--json",
           "--embed-model", model]
    full = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert full.returncode == 0, full.stderr
    # small batches and a visible bar, so the killed run is between writes of its documents
    env = {**os.environ, "SOFIA_QA_EMBED_BATCH": "2"}
    kills = 0
    for round_, fraction in enumerate((0.2, 0.4, 0.6, 0.8)):
        for i in range(n_docs):  # every file changes, so the killed run redoes the whole corpus
            write_doc(corpus, f"doc{i:02d}.md", f"topic {i} round {round_}", paragraphs=8 - round_ % 2)
        if round_ == 2:
            (corpus / "doc05.md").unlink()
        kills += _kill_at_progress(cmd + ["--progress"], fraction, env)
        again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        assert again.returncode == 0, again.stderr
        store = Store(connect(db), "sofia_qa", embedder.name)
        expected = expected_index(corpus, embedder)
        assert actual_index(store) == expected, f"inconsistent after a kill at {fraction:.0%} of the chunks"
        assert store.count() == sum(len(v) for v in expected.values())
    assert kills >= 3, "the ingest finished before it could be killed; the test did not test anything"


def test_an_index_made_by_older_reading_code_is_read_again(tmp_path, store, embedder, monkeypatch):
    """A change to how documents become chunks (a new PDF table rule, say) must reach an index built before it:
    the file is unchanged, but its chunks were made by the older code, so the next ingest reads it again."""
    from ingestion import chunking, pipeline

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_doc(corpus, "labels.md", "labels")
    ingest([corpus], store=store, embedder=embedder, progress=False)
    assert ingest([corpus], store=store, embedder=embedder, progress=False).unchanged == ["labels.md"]
    newer = chunking.READ_VERSION + 1
    monkeypatch.setattr(chunking, "READ_VERSION", newer)
    monkeypatch.setattr(pipeline, "READ_VERSION", newer)
    again = ingest([corpus], store=store, embedder=embedder, progress=False)
    assert again.updated == ["labels.md"] and again.embedded > 0
    assert store.doc_states()["labels.md"].read_versions == {newer}
    assert ingest([corpus], store=store, embedder=embedder, progress=False).unchanged == ["labels.md"]
