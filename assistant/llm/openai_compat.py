"""Any OpenAI-compatible ``/v1/chat/completions`` server (llama.cpp server, vLLM, Ollama, ...) over HTTP."""

from __future__ import annotations

import json
import math
import threading
import time
from typing import Any, Iterator

from .base import Generation, Message, ModelError, repeats_itself


class OpenAICompatLLM:
    """Any OpenAI-compatible server (llama.cpp server, vLLM, Ollama, ...) over ``/v1/chat/completions``.

    Faults, each a ``ModelError`` naming the server (the assistant turns it into a degraded answer):

    * nothing listens, or the connection drops before an answer starts (a server restarting): retried
      ``retries`` times with backoff (0.5 s, 1 s, 2 s, ...), so ``retries + 1`` attempts at most;
    * the server accepted the request but sent nothing for ``timeout`` seconds: not retried (it is busy
      with this very request; sending it again would only queue a second copy behind it);
    * the connection drops in the middle of a streamed answer, or the stream ends without its end
      marker: not retried (part of the answer was already shown).
    """

    CONNECT_TIMEOUT = 10.0

    def __init__(self, base_url: str, model: str = "default", timeout: float = 60, retries: int = 2,
                 api_key: str | None = None) -> None:
        import httpx

        self._httpx = httpx
        base = base_url.rstrip("/")
        if base.endswith("/v1"):
            base = base[: -len("/v1")]
        self.base_url = base
        self.url = f"{base}/v1/chat/completions"
        self.model = model
        self.name = f"{model}@{base}"
        self.retries = max(0, retries)
        self.timeout = float(timeout)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeouts = httpx.Timeout(self.timeout, connect=min(self.timeout, self.CONNECT_TIMEOUT))
        self._client = httpx.Client(timeout=timeouts, headers=headers)
        self._logprobs_rejected = False  # the server answered an error to a logprobs request
        self._lock = threading.Lock()
        self.last_stream: Generation | None = None

    def close(self) -> None:
        self._client.close()

    def _unreachable(self, e: Exception, attempts: int = 1) -> ModelError:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        reason = f"model server at {self.base_url} is unreachable{tries}"
        return ModelError(f"{reason}: {type(e).__name__}: {e}. Start it, or check the server URL", reason)

    def _timed_out(self, e: Exception) -> ModelError:
        reason = f"model server at {self.base_url} did not answer within {self.timeout:g} s"
        return ModelError(f"{reason} ({type(e).__name__}); it may be overloaded: try again", reason)

    def _broke_off(self, e: Exception | None) -> ModelError:
        why = f" ({type(e).__name__}: {e})" if e is not None else ""
        reason = f"model server at {self.base_url} stopped in the middle of the answer"
        return ModelError(f"{reason}{why}. Check that it is still running", reason)

    def _payload(self, messages: list[Message], max_tokens: int, stop: list[str] | None, **extra: Any) -> dict:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": max_tokens,
                                "temperature": 0.0}
        if stop:
            body["stop"] = list(stop)
        body.update(extra)
        return body

    def _with_retries(self, fn):
        """Call ``fn`` at most ``retries + 1`` times; only faults that mean "no answer has started" repeat."""
        httpx = self._httpx
        delay = 0.5
        for attempt in range(1, self.retries + 2):
            try:
                return fn()
            except (httpx.ReadTimeout, httpx.WriteTimeout) as e:  # the server has the request: do not pile on
                raise self._timed_out(e) from e
            except httpx.TransportError as e:  # refused, reset, dropped before a response, connect timeout
                if attempt > self.retries:
                    raise self._unreachable(e, attempt) from e
            except httpx.HTTPStatusError as e:
                if e.response.status_code not in (502, 503, 504) or attempt > self.retries:
                    raise
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def _post(self, body: dict) -> dict:
        def go() -> dict:
            r = self._client.post(self.url, json=body)
            r.raise_for_status()
            return r.json()

        return self._with_retries(go)

    def _post_logprobs(self, body: dict) -> tuple[dict, bool]:
        """POST asking for logprobs if the server may support them; fall back to a plain request."""
        if not self._logprobs_rejected:
            try:
                # top_logprobs=1: llama-cpp-python's server only returns logprobs when top_logprobs is set
                data = self._post({**body, "logprobs": True, "top_logprobs": 1})
                return data, True
            except self._httpx.HTTPStatusError as e:
                if e.response.status_code >= 500 and e.response.status_code not in (500, 501):
                    raise self._status_error(e) from e
                self._logprobs_rejected = True  # 4xx / 500 / 501: treat as "logprobs not supported"
        try:
            return self._post(body), False
        except self._httpx.HTTPStatusError as e:
            raise self._status_error(e) from e

    def _status_error(self, e: Exception) -> ModelError:
        resp = getattr(e, "response", None)
        detail = resp.text[:500] if resp is not None else str(e)
        code = resp.status_code if resp is not None else "?"
        reason = f"model server at {self.base_url} answered HTTP {code}"
        return ModelError(f"{reason}: {detail}", reason)

    @staticmethod
    def _content_logprobs(choice: dict) -> list[dict]:
        lp = choice.get("logprobs") or {}
        return lp.get("content") or []

    def chat(self, messages: list[Message], max_tokens: int = 256, stop: list[str] | None = None,
             prefix: str | None = None) -> Generation:
        t0 = time.perf_counter()
        with self._lock:
            data, _ = self._post_logprobs(self._payload(messages, max_tokens, stop))
        seconds = time.perf_counter() - t0
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        lps = [float(x["logprob"]) for x in self._content_logprobs(choice) if x.get("logprob") is not None]
        return Generation(text=choice["message"].get("content") or "", token_logprobs=lps,
                          prompt_tokens=int(usage.get("prompt_tokens") or 0),
                          completion_tokens=int(usage.get("completion_tokens") or len(lps)),
                          seconds=seconds, first_token_seconds=None)

    def _open_stream(self, body: dict):
        def go():
            req = self._client.build_request("POST", self.url, json=body)
            r = self._client.send(req, stream=True)
            if r.status_code >= 400:
                r.read()
                r.close()
                r.raise_for_status()
            return r

        return self._with_retries(go)

    def stream(self, messages: list[Message], max_tokens: int = 256, stop: list[str] | None = None,
               prefix: str | None = None) -> Iterator[str]:
        """Yield text pieces as the server sends them; afterwards ``last_stream`` holds the whole Generation
        (with per-token log-probs when the server gives them, as llama.cpp's server does)."""
        body = self._payload(messages, max_tokens, stop, stream=True)
        httpx = self._httpx
        self.last_stream = None
        with self._lock:
            t0 = time.perf_counter()
            resp = None
            if not self._logprobs_rejected:
                try:
                    resp = self._open_stream({**body, "logprobs": True, "top_logprobs": 1})
                except httpx.HTTPStatusError as e:
                    if e.response.status_code >= 500 and e.response.status_code not in (500, 501):
                        raise self._status_error(e) from e
                    self._logprobs_rejected = True
            if resp is None:
                try:
                    resp = self._open_stream(body)
                except httpx.HTTPStatusError as e:
                    raise self._status_error(e) from e
            pieces: list[str] = []
            lps: list[float] = []
            first: float | None = None
            finished = False
            finish = ""
            try:
                for line in resp.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[len("data:"):].strip()
                    if payload == "[DONE]":
                        finished = True
                        break
                    try:
                        event = json.loads(payload)
                    except ValueError:
                        continue
                    for choice in event.get("choices") or []:
                        lps.extend(float(x["logprob"]) for x in self._content_logprobs(choice)
                                   if x.get("logprob") is not None)
                        if choice.get("finish_reason"):
                            finished = True
                            finish = str(choice["finish_reason"])
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            if first is None:
                                first = time.perf_counter() - t0
                            pieces.append(piece)
                            yield piece
                            if repeats_itself("".join(pieces)):  # closing the connection stops the server
                                finished, finish = True, "repeat"
                    if finish == "repeat":
                        break
            except httpx.TimeoutException as e:
                raise (self._broke_off(e) if pieces else self._timed_out(e)) from e
            except httpx.TransportError as e:  # the server died or dropped the connection mid-answer
                raise self._broke_off(e) from e
            finally:
                resp.close()
            if not finished:  # the connection closed cleanly, but before the server said the answer was complete
                raise self._broke_off(None)
            text = "".join(pieces)
            self.last_stream = Generation(text=text, token_logprobs=lps, completion_tokens=len(lps),
                                          seconds=time.perf_counter() - t0, first_token_seconds=first,
                                          finish_reason=finish)

    def next_token_probs(self, messages: list[Message], candidates: list[str]) -> dict[str, float]:
        """From the server's ``top_logprobs`` of the first reply token.

        Without the server's tokenizer, a candidate's first token is taken to be the longest listed token
        that is a non-empty prefix of it (leading whitespace ignored); 0.0 when none is listed.
        A server that gives no log-probs (some OpenAI-compatible servers do not) gets a coarse estimate
        from its short greedy reply instead: 1.0 for the candidate the reply starts with, 0.0 for the others.
        """
        if not self._logprobs_rejected:
            body = self._payload(messages, 1, None, logprobs=True, top_logprobs=20)
            with self._lock:
                try:
                    data = self._post(body)
                except self._httpx.HTTPStatusError as e:
                    if e.response.status_code >= 500 and e.response.status_code not in (500, 501):
                        raise self._status_error(e) from e
                    self._logprobs_rejected = True
                    data = None
            if data is not None:
                content = self._content_logprobs(data["choices"][0])
                top = (content[0].get("top_logprobs") if content else None) or []
                if top:
                    return self._probs_from_top(top, candidates)
        return self._probs_from_reply(messages, candidates)

    @staticmethod
    def _probs_from_top(top: list[dict], candidates: list[str]) -> dict[str, float]:
        out: dict[str, float] = {}
        for c in candidates:
            best: tuple[int, float] | None = None
            for t in top:
                tok = (t.get("token") or "").lstrip()
                if tok and c.lstrip().startswith(tok) and (best is None or len(tok) > best[0]):
                    best = (len(tok), float(t["logprob"]))
            out[c] = 0.0 if best is None else min(1.0, max(0.0, math.exp(best[1])))
        return out

    def _probs_from_reply(self, messages: list[Message], candidates: list[str]) -> dict[str, float]:
        longest = max((len(c) for c in candidates), default=1)
        reply = self.chat(messages, max_tokens=max(4, longest // 2 + 2)).text.lstrip()
        out = {c: 0.0 for c in candidates}
        for c in sorted(candidates, key=len, reverse=True):
            if c.strip() and reply.startswith(c.strip()):
                out[c] = 1.0
                break
        return out
