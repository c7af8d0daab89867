"""Hostile input: every reader returns a ``Document`` or a ``ReadError`` naming the file, in bounded time and memory.

Property tests mutate real files (PDF, DOCX) and build tag and token soups (HTML, Markdown) with hypothesis;
test_hostile_input_limits.py pins each bug they or a hand-made worst case found, plus the limits: pages,
size, bombs.
Hypothesis runs derandomized (the same examples on every machine) with no deadline, because this machine's
speed varies 10x under load; a watchdog (SIGALRM) fails any single read that takes over WATCHDOG seconds.
"""

from __future__ import annotations

import io
import re
import signal
import tracemalloc
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from conftest import make_pdf
from ingestion.readers import SUPPORTED, ReadError, read_document

WATCHDOG = 30.0  # seconds; a fixed reader takes well under 1 s for every input here, the old ones hung
MB = 1024 * 1024
BG = "Иновационна стратегия за интелигентна специализация на София"


def fuzz(examples: int):
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class Hang(BaseException):
    """Not an ``Exception``: the readers' own ``except Exception`` must not turn a hang into a ReadError."""


@contextmanager
def watchdog(seconds: float, what: str):
    def fire(signum, frame):
        raise Hang(f"{what}: still running after {seconds:g} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def check_read(path: Path, **limits):
    """The property: a consistent ``Document``, or a ``ReadError`` whose message names the file.
    Read in this process (no child, no page alarm), so a hang shows here and memory is measured here."""
    limits = {"timeout": None, "page_timeout": None, **limits}
    # a hang stops the run at once (no shrinking through 30 s examples); the input stays at ``path``
    with watchdog(WATCHDOG, f"reading {path} (the input is kept there)"):
        try:
            doc = read_document(path, **limits)
        except ReadError as err:
            assert path.name in str(err) and err.reason, f"{type(err).__name__} does not say which file: {err}"
            outcome(type(err).__name__)
            return err
    outcome("Document")
    assert doc.text.strip() and isinstance(doc.title, str)
    for s in doc.sections:
        assert doc.text[s.start:s.start + len(s.text)] == s.text
        assert all(s.start <= offset < s.start + len(s.text) for offset, _ in s.links)
    return doc


def outcome(name: str) -> None:
    """Counted per property test: ``pytest --hypothesis-show-statistics`` shows how often each came up."""
    if currently_in_test_context():
        event(name)


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- sample files


def raw_pdf(objects: list[bytes]) -> bytes:
    """A PDF from raw object bodies (object 1 is the catalog) with a correct xref table."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def pages_pdf(n_pages: int, content: bytes = b"BT /F1 12 Tf 72 720 Td (A page of text about smart cities.) Tj ET",
              *, flate: bool = False, count: int | None = None, catalog_extra: bytes = b"") -> bytes:
    """``n_pages`` pages that all draw one shared content stream: thousands of pages in milliseconds."""
    kids = b" ".join(b"%d 0 R" % (5 + i) for i in range(n_pages))
    page = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents 4 0 R >>")
    return raw_pdf([b"<< /Type /Catalog /Pages 2 0 R%s >>" % catalog_extra,
                    b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, n_pages if count is None else count),
                    b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
                    b"<< /Length %d%s >>\nstream\n" % (len(content), b" /Filter /FlateDecode" if flate else b"")
                    + content + b"\nendstream"] + [page] * n_pages)


def zeros_deflated(gib: int = 1) -> bytes:
    """zlib data that inflates to ``gib`` GiB of zeros, built in milliseconds: after a full flush every
    1 MiB block of zeros compresses to the same bytes, so one block is repeated; the Adler-32 of n zeros
    is ((n mod 65521) << 16) | 1."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(b"\0" * MB) + c.flush(zlib.Z_FULL_FLUSH)
    end = c.flush()
    n = gib * 1024 * MB
    return b"\x78\xda" + block * (gib * 1024) + end + ((((n % 65521) << 16) | 1).to_bytes(4, "big"))


def docx_bytes() -> bytes:
    import docx

    d = docx.Document()
    d.add_paragraph("Предложение", style="Title")
    d.add_paragraph("Цели", style="Heading 1")
    d.add_paragraph("Проектът развива умни системи за мобилност в София.")
    table = d.add_table(rows=3, cols=3)
    for i, row in enumerate(table.rows):
        for j, cell in enumerate(row.cells):
            cell.text = f"cell {i}{j}"
    table.cell(0, 0).merge(table.cell(0, 1))
    table.cell(1, 2).merge(table.cell(2, 2))
    d.add_paragraph("Budget", style="Heading 1")
    d.add_paragraph("EUR 20,000 over two years.")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def rezip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


@pytest.fixture(scope="session")
def samples(tmp_path_factory):
    folder = tmp_path_factory.mktemp("samples")
    fpdf = make_pdf(folder / "s.pdf", ["First page about ICT and smart specialisation.", BG + " - втора страница."],
                    title="Sofia strategy").read_bytes()
    return {"pdf": fpdf, "raw_pdf": pages_pdf(2), "docx": docx_bytes()}


@pytest.fixture(scope="session")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def check_read_with_peak(path: Path, **limits):
    """``check_read`` and the peak Python memory (bytes) it needed."""
    tracemalloc.start()
    try:
        result = check_read(path, **limits)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_samples_are_valid(samples, scratch):
    assert read_document(write(scratch, "ok.pdf", samples["pdf"])).pages == 2
    assert read_document(write(scratch, "ok-raw.pdf", samples["raw_pdf"])).pages == 2
    doc = read_document(write(scratch, "ok.docx", samples["docx"]))
    assert doc.title == "Предложение" and "cell 22" in doc.text


# --------------------------------------------------------------------------- property tests


@st.composite
def mutated(draw, base: bytes) -> bytes:
    """Truncation, byte flips, spliced garbage, deleted ranges and broken PDF structure, 1-4 at a time."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "flip", "splice", "delete", "structure"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "truncate":
            del data[pos:]
        elif kind == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "splice":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del data[pos:pos + draw(st.integers(1, 512))]
        else:
            number = str(draw(st.sampled_from([0, -1, 7, 2**31, 10**12]) | st.integers(0, 10**6))).encode()
            pattern, repl = draw(st.sampled_from([
                (rb"startxref\s+\d+", b"startxref\n" + number),  # xref offset pointing anywhere
                (rb"\bxref\b", b"xrff"),                           # no xref table: pypdf must rebuild it
                (rb"\d{10} \d{5} [nf]", number.rjust(10, b"0")[:10] + b" 00000 n"),  # one bad xref entry
                (rb"/Length \d+", b"/Length " + number),
                (rb"/Count \d+", b"/Count " + number),
                (rb"/Kids \[", b"/Kids [1 0 R 2 0 R "),           # catalog and the tree itself as pages
                (rb"/FlateDecode", b"/LZWDecode"),
                (rb"/Parent \d+ 0 R", b"/Parent " + number + b" 0 R"),
                (rb"endobj", b""),
            ]))
            data = bytearray(re.sub(pattern, repl, bytes(data), count=draw(st.integers(0, 3))))
    return bytes(data)


@fuzz(100)
@given(data=st.data())
def test_fuzz_mutated_pdf(samples, scratch, data):
    base = samples[data.draw(st.sampled_from(["pdf", "raw_pdf"]))]
    check_read(write(scratch, "mutated.pdf", data.draw(mutated(base))))


HOSTILE_XML = [  # (snippet, element it goes just inside): where python-docx and the reader look
    (b'<w:tcPr><w:gridSpan w:val="1000000000"/></w:tcPr>', b"tc"),   # row.cells yields this cell 10^9 times
    (b'<w:tcPr><w:vMerge w:val="continue"/></w:tcPr>', b"tc"),       # merged into a cell above: maybe none
    (b'<w:tcPr><w:gridSpan w:val="-1"/></w:tcPr>', b"tc"),
    (b'<w:pPr><w:pStyle w:val="Heading9"/></w:pPr>', b"p"),
    (b'<w:pPr><w:pStyle w:val="' + b"x" * 500 + b'"/></w:pPr>', b"p"),
    (b"<w:p>" * 300, b"body"), (b"</w:body>", b"p"), (b"<!-- -->", b"p"), (b"&undefined;", b"p"),
    (b"<![CDATA[x]]>", b"p"), (b"\x00", b"p"), (b"<w:tbl><w:tr><w:tc><w:p/></w:tc></w:tr></w:tbl>", b"body"),
]


@st.composite
def broken_docx(draw, base: bytes) -> bytes:
    """One kind of damage per example: hostile XML in the body, damaged members, or a damaged ZIP."""
    members = unzip(base)
    mode = draw(st.sampled_from(["xml", "xml", "members", "zip"]))
    if mode == "xml":
        xml = members["word/document.xml"]
        for _ in range(draw(st.integers(1, 3))):
            snippet, inside = draw(st.sampled_from(HOSTILE_XML))
            places = [m.end() for m in re.finditer(rb"<w:%s>" % inside, xml)] or [0]
            pos = draw(st.sampled_from(places))
            xml = xml[:pos] + snippet + xml[pos:]
        members["word/document.xml"] = xml
    elif mode == "members":
        for name in draw(st.lists(st.sampled_from(sorted(members)), min_size=1, max_size=3, unique=True)):
            action = draw(st.sampled_from(["drop", "garbage", "truncate", "flip"]))
            content = members.pop(name)
            if action == "garbage":
                members[name] = draw(st.binary(max_size=256))
            elif action == "truncate":
                members[name] = content[:draw(st.integers(0, len(content)))]
            elif action == "flip" and content:
                pos = draw(st.integers(0, len(content) - 1))
                members[name] = content[:pos] + bytes([draw(st.integers(0, 255))]) + content[pos + 1:]
        if draw(st.booleans()):
            members[draw(st.sampled_from(["word/extra.xml", "../evil.xml", "word/_rels/x.rels"]))] = \
                draw(st.binary(max_size=64))
    packed = rezip(members)
    return draw(mutated(packed)) if mode == "zip" else packed


@fuzz(80)
@given(data=st.data())
def test_fuzz_broken_docx(samples, scratch, data):
    check_read(write(scratch, "broken.docx", data.draw(broken_docx(samples["docx"]))))


HTML_TOKENS = ["<html>", "<head>", "</head>", "<title>", "</title>", "<body>", "<div>", "</div>", "<p>", "</p>",
               "<h1>", "<h3>", "</h1>", "</h3>", '<a href="https://e.org/a">', "<a href='https://x.org/a b'>",
               "<a href=javascript:alert(1)>", "</a>", "<script>", "</script>", "<style>", "</style>", "<!--",
               "-->", "<br>", "<table><tr><td>", "</td><td>", "</tr></table>", "<![CDATA[", "]]>", "<?php ",
               "?>", "&amp;", "&#0;", "&#x110000;", "&nbsp;", "\x00", "<", ">", "</", "<!", "<!DOCTYPE html>",
               "<template>", "<noscript>", "<svg><foreignObject>", "<math>", "<meta charset='cp1251'>",
               '<?xml version="1.0" encoding="utf-16"?>', '<p title="' + "x" * 5000 + '">', "<li>", "[", "](",
               "# ", "Член", "word", " ", "\n"]


@fuzz(120)
@given(tokens=st.lists(st.sampled_from(HTML_TOKENS) | st.text(max_size=12), max_size=60),
       depth=st.sampled_from([0, 0, 0, 300, 3000]))
def test_fuzz_html_tag_soup(scratch, tokens, depth):
    html = "<div>" * depth + "".join(tokens)
    check_read(write(scratch, "soup.html", html.encode("utf-8", "surrogatepass")))


MD_TOKENS = ["# ", "## ", "####### ", "#", " ", "\t", "\n", "\n\n", "[", "]", "(", ")", "<", ">", '"', "<!--", "-->",
             "<!-- R12 -->", "http://x.org/a", "https://y", "<script>alert(1)</script>", "Иновации", "word", "---",
             "\x00", "\ufeff", "\r\n", "\r", "\x98"]
YAML_VALUES = ["x", "", "2026-11-25", "2026-13-45", "2026-02-30", "[a, b]", "{a: 1}", "&a [x, x]", "*a", "[*a, *a]",
               "!!binary aGk=", "!!python/object/apply:os.system [ls]", "[[[[[[", "'unterminated", "1e999", "~",
               "yes", "strategy", "brochure", "https://a.org", ":", "|\n  block", "\n  - a\n  - b", "@", "%x", "\t"]


@st.composite
def markdown_soup(draw) -> str:
    """Tokens, behind front matter (sometimes broken) whose fields take hostile YAML values."""
    body = "".join(draw(st.lists(st.sampled_from(MD_TOKENS) | st.text(max_size=12), max_size=60)))
    if not draw(st.booleans()):
        return body
    fields = draw(st.lists(st.sampled_from(["title", "doc_type", "language", "sources", "reviewed", "a", "b"]),
                           max_size=5))
    front = "".join(f"{name}: {draw(st.sampled_from(YAML_VALUES) | st.text(max_size=8))}\n" for name in fields)
    closing = draw(st.sampled_from(["---\n", "---\n", "---", "--\n", ""]))
    return "---\n" + front + closing + body


@fuzz(120)
@given(text=markdown_soup(), ext=st.sampled_from([".md", ".txt"]))
def test_fuzz_markdown_and_text(scratch, text, ext):
    check_read(write(scratch, "soup" + ext, text.encode("utf-8", "surrogatepass")))


@fuzz(150)
@given(ext=st.sampled_from(sorted(SUPPORTED)),
       head=st.sampled_from([b"", b"%PDF-1.7\n", b"PK\x03\x04", b"\xef\xbb\xbf", b"---\n", b"<html>", b"\xff\xfe"]),
       body=st.binary(max_size=2048))
def test_fuzz_random_bytes_with_every_extension(scratch, ext, head, body):
    check_read(write(scratch, "random" + ext, head + body))
