"""What every model backend shares: the ``LLM`` protocol, ``Generation``, ``ModelError`` and loop detection."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator, Literal, Protocol, runtime_checkable

from ingestion.errors import SofiaError

Message = dict[str, str]

# "stop": the model ended; "length": stopped at max_tokens; "repeat": stopped by us, the text began to go round in
# circles (repeats_itself); "": unknown
FinishReason = Literal["stop", "length", "repeat", ""]


class ModelError(SofiaError):
    """A model could not be found, verified, loaded, reached, or it died; the message says what to do.
    ``reason`` is the short what-went-wrong a degraded answer shows, without details or the fix."""

    kind = "model"

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


class ModelCrashed(ModelError):
    """The process running the model died (a signal or an exit) in the middle of a call."""


@dataclass
class Generation:
    text: str
    token_logprobs: list[float] = field(default_factory=list)  # one per generated token; may be empty
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    first_token_seconds: float | None = None
    finish_reason: FinishReason = ""


# A greedy decoder of this size sometimes goes round in circles until its token limit: the same sentence again and
# again, or one citation marker after another ("[3] [3] [3] ..."), seconds of text nobody should watch stream.
_MARKER_RUN = re.compile(r"(\[\d+\])(?:[\s,;]*\1){3}")
_SENTENCE = re.compile(r"[^.!?\n]{20,}[.!?]")
_MARKER = re.compile(r"\[\d+\]")
REPEAT_SPAN = 100  # characters: a run this long written a second time is a loop (long names are shorter)


def repeats_itself(text: str) -> bool:
    """Has this draft begun to repeat itself: one marker four times running, a sentence of 20 or more characters
    written a second time (markers aside), or its last 100 characters already written before?"""
    if _MARKER_RUN.search(text):
        return True
    seen: set[str] = set()
    for m in _SENTENCE.finditer(text):
        sentence = " ".join(_MARKER.sub(" ", m.group(0)).split())
        if len(sentence) >= 20 and sentence in seen:
            return True
        seen.add(sentence)
    return len(text) >= 2 * REPEAT_SPAN and text[-REPEAT_SPAN:] in text[:-REPEAT_SPAN]


# --------------------------------------------------------------------------------------------- interface


@runtime_checkable
class LLM(Protocol):
    """``prefix``: a leading part of the last message worth keeping for later prompts that start the same
    way (a hint: the llama.cpp backend saves the state after reading it; servers keep their own caches)."""

    name: str

    def chat(self, messages: list[Message], max_tokens: int = 256, stop: list[str] | None = None,
             prefix: str | None = None) -> Generation: ...

    def stream(self, messages: list[Message], max_tokens: int = 256, stop: list[str] | None = None,
               prefix: str | None = None) -> Iterator[str]: ...

    def next_token_probs(self, messages: list[Message], candidates: list[str]) -> dict[str, float]: ...
