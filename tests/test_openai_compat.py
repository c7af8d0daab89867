"""OpenAICompatLLM, the HTTP model backend, under faults: dead, silent, dropping, broken-off and looping servers."""

from __future__ import annotations

import json
import sys
import threading
import time

import pytest

from assistant.llm import ModelError
from assistant.llm.openai_compat import OpenAICompatLLM
from conftest import free_port, http_service, smollm2_path


def test_the_configured_model_timeout_reaches_the_server_client(store, embedder):
    """SOFIA_QA_LLM_TIMEOUT is how long a model server may stay silent; the assistant's client must use it."""
    from assistant.answer import Assistant
    from ingestion.config import Settings

    settings = Settings.from_env({"SOFIA_QA_LLM_URL": "http://127.0.0.1:9", "SOFIA_QA_LLM_TIMEOUT": "7.5"})
    bot = Assistant(settings, store=store, embedder=embedder)
    assert isinstance(bot.llm, OpenAICompatLLM)
    assert bot.llm.timeout == 7.5 and bot.llm._client.timeout.read == 7.5


def test_openai_compat_down_server_is_a_clear_error():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    remote = OpenAICompatLLM(url, timeout=5, retries=2)
    t0 = time.perf_counter()
    with pytest.raises(ModelError, match=r"model server at http://127\.0\.0\.1:\d+ is unreachable"):
        remote.chat([{"role": "user", "content": "hi"}])
    assert time.perf_counter() - t0 < 10  # bounded retries with backoff (0.5 s + 1 s)
    with pytest.raises(ModelError, match="is unreachable"):
        list(remote.stream([{"role": "user", "content": "hi"}]))


# ------------------------------------------------------------------------------------------ HTTP faults
# Fault injectors are real sockets on 127.0.0.1: a port nobody listens on, a listener that drops every
# connection, one that accepts and never answers, and one that breaks a streamed answer off.


class _FaultServer:
    """A TCP listener in a thread; ``behaviour(conn)`` decides what each accepted connection gets."""

    def __init__(self, behaviour):
        import socket

        self.behaviour = behaviour
        self.accepted = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        try:
            conn.settimeout(5)
            conn.recv(65536)  # the request (small enough to arrive in one read here)
            self.behaviour(conn, self._stop)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture()
def fault_server():
    servers: list[_FaultServer] = []

    def make(behaviour):
        servers.append(_FaultServer(behaviour))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def _sse(events: list[dict]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)


def _piece(text: str) -> dict:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


def test_openai_compat_retries_are_bounded_against_a_refusing_port():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: every connect is refused at once
    for retries in (0, 2):
        remote = OpenAICompatLLM(url, timeout=5, retries=retries)
        attempts: list[str] = []
        remote._client.event_hooks["request"].append(lambda req: attempts.append(req.method))
        t0 = time.perf_counter()
        with pytest.raises(ModelError, match=r"model server at http://127\.0\.0\.1:\d+ is unreachable"):
            remote.chat([{"role": "user", "content": "hi"}])
        took = time.perf_counter() - t0
        assert attempts == ["POST"] * (retries + 1)
        backoff = 1.5 if retries else 0.0  # 0.5 s + 1 s between the three attempts
        assert backoff <= took < backoff + 1.5
        attempts.clear()
        with pytest.raises(ModelError, match="is unreachable"):
            list(remote.stream([{"role": "user", "content": "hi"}]))
        assert attempts == ["POST"] * (retries + 1)
        with pytest.raises(ModelError, match="is unreachable"):
            remote.next_token_probs([{"role": "user", "content": "hi"}], ["NOT_FOUND"])


def test_openai_compat_retries_a_server_that_drops_connections(fault_server):
    server = fault_server(lambda conn, stop: None)  # reads the request, closes without a word
    remote = OpenAICompatLLM(server.url, timeout=5, retries=2)
    t0 = time.perf_counter()
    # a close with unread bytes in the socket is a reset (ReadError) on a busy machine, a clean close otherwise
    with pytest.raises(ModelError, match=r"is unreachable after 3 attempts: (RemoteProtocolError|ReadError)") as err:
        remote.chat([{"role": "user", "content": "hi"}])
    assert err.value.reason == f"model server at {remote.base_url} is unreachable after 3 attempts"  # no details
    assert server.accepted == 3 and time.perf_counter() - t0 < 4


def test_openai_compat_read_timeout_is_clear_and_not_retried(fault_server):
    server = fault_server(lambda conn, stop: stop.wait(30))  # accepts, reads the request, never answers
    remote = OpenAICompatLLM(server.url, timeout=1, retries=2)
    for call in (lambda: remote.chat([{"role": "user", "content": "hi"}]),
                 lambda: list(remote.stream([{"role": "user", "content": "hi"}]))):
        before = server.accepted
        t0 = time.perf_counter()
        with pytest.raises(ModelError, match=r"did not answer within 1 s \(ReadTimeout\)"):
            call()
        took = time.perf_counter() - t0
        assert server.accepted - before == 1  # a busy server is not sent the same request again
        assert 0.9 < took < 3


def test_openai_compat_stream_broken_off_is_an_error_not_a_short_answer(fault_server):
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"

    def chunked_then_die(conn, stop):  # a server killed mid-answer: the chunked body never ends
        body = _sse([_piece("The answer"), _piece(" is")])
        conn.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n" + f"{len(body):x}\r\n".encode() + body + b"\r\n")
        time.sleep(0.2)

    def closed_without_done(conn, stop):  # a proxy that ends the body cleanly but early (no [DONE])
        conn.sendall(head + b"Connection: close\r\n\r\n" + _sse([_piece("The answer"), _piece(" is")]))

    def complete(conn, stop):
        conn.sendall(head + b"Connection: close\r\n\r\n" + _sse([_piece("The answer"), _piece(" is Sofia.")])
                     + b"data: [DONE]\n\n")

    for behaviour in (chunked_then_die, closed_without_done):
        server = fault_server(behaviour)
        remote = OpenAICompatLLM(server.url, timeout=5, retries=2)
        got: list[str] = []
        with pytest.raises(ModelError, match="stopped in the middle of the answer"):
            for piece in remote.stream([{"role": "user", "content": "hi"}]):
                got.append(piece)
        assert got == ["The answer", " is"] and server.accepted == 1 and remote.last_stream is None
    remote = OpenAICompatLLM(fault_server(complete).url, timeout=5)
    assert "".join(remote.stream([{"role": "user", "content": "hi"}])) == "The answer is Sofia."
    assert remote.last_stream.text == "The answer is Sofia."


def test_openai_compat_server_without_logprobs_still_gates(tmp_path):
    """A server that refuses log-probs (llama.cpp's with --logits_all False answers HTTP 500 to them) must
    still answer and give the gate an estimate, not send every question into degraded mode."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path()), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "1024", "--n_threads", "2", "--logits_all", "False"]
    with http_service(cmd, f"{url}/v1/models", tmp_path / "server.log", timeout=90):
        remote = OpenAICompatLLM(url, timeout=60)
        g = remote.chat([{"role": "user", "content": "Say hello."}], max_tokens=8)
        assert g.text.strip() and g.token_logprobs == [] and remote._logprobs_rejected
        assert "".join(remote.stream([{"role": "user", "content": "Say hello."}], max_tokens=8)).strip()
        probs = remote.next_token_probs(
            [{"role": "user", "content": "Reply with exactly the word NOT_FOUND and nothing else."}],
            ["NOT_FOUND", "Hello"])
        assert set(probs) == {"NOT_FOUND", "Hello"} and set(probs.values()) <= {0.0, 1.0}
        assert sum(probs.values()) <= 1.0


# ------------------------------------------------------------------------------------------ drafts going round in circles


def test_openai_compat_stream_going_round_in_circles_is_cut_and_the_connection_closed(fault_server):
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    sent = []

    def loops_forever(conn, stop):  # a server whose model repeats one sentence until its limit
        conn.sendall(head)
        for _ in range(200):
            body = _sse([_piece("The cluster meets in Sofia. ")])
            try:
                conn.sendall(f"{len(body):x}\r\n".encode() + body + b"\r\n")
            except OSError:  # the client hung up: stop writing
                return
            sent.append(1)
            time.sleep(0.02)

    remote = OpenAICompatLLM(fault_server(loops_forever).url, timeout=5)
    text = "".join(remote.stream([{"role": "user", "content": "hi"}]))
    assert text == "The cluster meets in Sofia. " * 2 and remote.last_stream.finish_reason == "repeat"
    time.sleep(0.5)
    assert len(sent) < 50  # the server saw the connection close and stopped long before 200
