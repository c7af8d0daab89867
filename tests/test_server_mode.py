"""Server mode: a real `chroma run` process holds the index; results match the embedded store."""

from __future__ import annotations

import json

from conftest import run_cli
from test_pipeline import write_doc


def test_ingest_and_docs_against_a_chroma_server(tmp_path, chroma_server):
    url, _proc = chroma_server
    corpus = tmp_path / "c"
    corpus.mkdir()
    for t in ("labels", "membership"):
        write_doc(corpus, f"{t}.md", t)
    served = run_cli("ingest", str(corpus), "--chroma-url", url, "--json")
    assert served.returncode == 0, served.stderr
    embedded = run_cli("ingest", str(corpus), "--db", str(tmp_path / "db"), "--json")
    s, e = json.loads(served.stdout), json.loads(embedded.stdout)
    assert s["added"] == e["added"] == ["labels.md", "membership.md"] and s["chunks"] == e["chunks"] > 0
    again = json.loads(run_cli("ingest", str(corpus), "--chroma-url", url, "--json").stdout)
    assert again["unchanged"] == ["labels.md", "membership.md"] and again["embedded"] == 0
    docs = json.loads(run_cli("docs", "--chroma-url", url, "--json").stdout)
    assert [d["doc"] for d in docs] == ["labels.md", "membership.md"]


def test_server_down_gives_a_clear_error(tmp_path):
    from conftest import free_port

    out = run_cli("docs", "--chroma-url", f"http://127.0.0.1:{free_port()}")
    assert out.returncode == 2
    assert "unreachable" in out.stderr and "chroma run" in out.stderr
