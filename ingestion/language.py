"""Which language a text is in, English or Bulgarian, by its script (used for documents and questions alike)."""

from __future__ import annotations

import re
from typing import Literal

Language = Literal["en", "bg"]

CYRILLIC = re.compile(r"[\u0400-\u04FF]")
LATIN = re.compile(r"[A-Za-z]")


def detect_language(text: str) -> Language:
    """``"bg"`` when ``text`` has more Cyrillic letters than Latin ones, else ``"en"``."""
    return "bg" if len(CYRILLIC.findall(text)) > len(LATIN.findall(text)) else "en"
