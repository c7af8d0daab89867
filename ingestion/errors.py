"""The root of every error this project raises on purpose, and the readers' errors (one per reason a file is refused).

Catch ``SofiaError`` to catch them all; ``err.kind`` is a short stable string for programs ("store", "embedding",
"model", "dataset", "config", or for a file that cannot be read the reason: "too-large", "encrypted", ...) and
``str(err)`` is the sentence for people. ``StoreError`` lives in ``ingestion.store``, ``EmbeddingError`` in
``ingestion.embedding``; the layers above add their own subclasses.
"""

from __future__ import annotations

from pathlib import Path


class SofiaError(Exception):
    """Anything that went wrong in a way we foresaw; ``kind`` says which way."""

    kind: str = "error"


class ReadError(SofiaError):
    """A file that cannot be indexed. ``str(err)`` names the file and the reason."""

    kind = "unreadable"

    def __init__(self, path: Path | str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self):  # pickled as (path, reason), so the PDF reader's child process can send it back
        return type(self), (self.path, self.reason)


class UnsupportedFile(ReadError):
    kind = "unsupported"


class TooLarge(ReadError):
    kind = "too-large"


class EmptyFile(ReadError):
    kind = "empty"


class EncryptedPDF(ReadError):
    kind = "encrypted"


class CorruptFile(ReadError):
    kind = "corrupt"


class NoTextLayer(ReadError):
    kind = "no-text"


class TooSlow(ReadError):
    kind = "too-slow"


class BadFrontMatter(ReadError):
    kind = "front-matter"
