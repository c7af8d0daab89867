"""The Evaluation tab's view of the last report: its Markdown and its plots, taken out of report.html."""

from __future__ import annotations

import base64
import html as htmllib
import re
import time
from pathlib import Path

from ingestion.config import Settings

from .render import esc, status_html

_IMG = re.compile(r"<img\b[^>]*>")
_PNG_DATA = re.compile(r"""src=['"]data:image/png;base64,([A-Za-z0-9+/=]+)['"]""")
_ALT = re.compile(r"""alt=['"]([^'"]*)['"]""")


def report_dir() -> Path:
    """Where ``sofia-qa eval`` and the app's fast subset write their report (``SOFIA_QA_REPORT_DIR``)."""
    return Settings.from_env().report_dir


def figures(folder: Path) -> list[tuple[str, str]]:
    """(caption, base64 PNG) of every plot: those embedded in report.html, then any PNG files in the folder."""
    found = []
    page = folder / "report.html"
    if page.is_file():
        for tag in _IMG.findall(page.read_text(encoding="utf-8", errors="replace")):
            data = _PNG_DATA.search(tag)
            alt = _ALT.search(tag)
            if data:
                found.append((htmllib.unescape(alt.group(1)) if alt else "plot", data.group(1)))
    for png in sorted(folder.glob("*.png")):
        found.append((png.stem.replace("_", " "), base64.b64encode(png.read_bytes()).decode("ascii")))
    return found


def eval_report(folder: Path) -> tuple[str, str, str]:
    """(status HTML, plots HTML, report Markdown) of the last report in ``folder`` (``Settings.report_dir``), or a
    note that there is none yet."""
    folder = Path(folder)
    md = folder / "report.md"
    if not md.is_file():
        return (status_html(f"No evaluation report yet in {folder}. Run the fast subset below, or "
                            f"`sofia-qa eval` on the command line."), "", "")
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(md.stat().st_mtime))
    plots = figures(folder)
    shown = "".join(f'<figure class="sqa-plot"><img alt="{esc(cap)}" src="data:image/png;base64,{data}">'
                    f'<figcaption>{esc(cap)}</figcaption></figure>' for cap, data in plots)
    return (status_html(f"Report from {when} ({md}); {len(plots)} plot(s)."),
            shown, md.read_text(encoding="utf-8", errors="replace"))
