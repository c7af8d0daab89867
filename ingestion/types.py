"""Domain objects passed between the ingestion stages. Plain dataclasses that print well."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from .context import chunk_header, label_for

DOC_TYPES = ("strategy", "cluster-standard", "policy", "cluster", "reference", "glossary")


@dataclass(frozen=True)
class Section:
    """A structural unit of a document: a Markdown/HTML/DOCX section or one PDF page."""

    text: str
    start: int  # character offset of ``text`` in ``Document.text``
    heading_path: tuple[str, ...] = ()
    page: int | None = None  # PDFs only: the number printed on the page, what a citation shows (ingestion/pdf_clean.py)
    links: tuple[tuple[int, str], ...] = ()  # (offset in Document.text, url) of links in this section


@dataclass(frozen=True)
class Document:
    doc_id: str  # stable name within the index, e.g. "cskc-membership.md"
    path: Path
    title: str
    text: str  # the indexed text (comments and link targets removed)
    sections: tuple[Section, ...]
    content_hash: str  # sha256 of the file bytes
    doc_type: str = "reference"
    language: str = "en"
    sources: tuple[str, ...] = ()
    reviewed: str | None = None
    pages: int | None = None
    fact_ids: dict[int, str] = field(default_factory=dict)  # offset -> id of <!-- R12 --> comments


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    doc_id: str
    title: str
    path: str
    doc_type: str
    language: str
    text: str  # the chunk's own text, a slice of Document.text
    start: int
    end: int
    heading_path: tuple[str, ...]
    page_start: int | None
    page_end: int | None
    source_urls: tuple[str, ...]
    content_hash: str  # sha256 of the chunk text
    doc_hash: str  # sha256 of the whole file: ties the chunk to one version of its document
    doc_chunks: int  # how many chunks that version has (lets the store see a half-written document)
    embed_model: str
    fact_ids: tuple[str, ...] = ()
    period: str | None = None  # the period or date its document is about (ingestion/context.py), for the header
    read_version: int = 0  # ingestion.chunking.READ_VERSION of the code that made it

    @property
    def section(self) -> str:
        return " > ".join(self.heading_path)

    @property
    def pages(self) -> str:
        if self.page_start is None:
            return ""
        if self.page_end in (None, self.page_start):
            return str(self.page_start)
        return f"{self.page_start}-{self.page_end}"

    def header(self) -> str:
        """The document's name, its period and the section path: what a lone chunk needs to be found."""
        return chunk_header(label_for(self.title, self.path, paged=self.page_start is not None), self.period,
                            self.heading_path)

    def embed_text(self) -> str:
        """What the embedder and BM25 see: the header line, then the chunk's own text."""
        return f"{self.header()}\n{self.text}"


@dataclass
class FileFailure:
    path: str
    error: str


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[FileFailure] = field(default_factory=list)
    chunks: int = 0  # chunks in the collection after the run
    embedded: int = 0  # chunks embedded in this run
    seconds: float = 0.0

    def to_json(self) -> dict:
        d = asdict(self)
        return d

    def summary(self) -> str:
        parts = [
            f"{len(self.added)} added",
            f"{len(self.updated)} updated",
            f"{len(self.removed)} removed",
            f"{len(self.unchanged)} unchanged",
            f"{len(self.failed)} failed",
        ]
        line = ", ".join(parts) + f"; {self.embedded} chunks embedded, {self.chunks} in the index ({self.seconds:.1f}s)"
        if not self.embedded and not self.failed:
            line += " - nothing to re-embed"
        return line
