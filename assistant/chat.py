"""Follow-up questions: rewritten into stand-alone questions from a bounded chat history."""

from __future__ import annotations

from typing import Sequence

from . import prompts
from .retrieve import detect_language

MAX_TURN_CHARS = 600


def bounded_history(history: Sequence, turns: int) -> list[tuple[str, str]]:
    """The last ``turns`` (user, assistant) pairs, each side cut to a few hundred characters.

    Accepts Gradio-style message dicts ({"role", "content"}) or (user, assistant) pairs.
    """
    pairs: list[tuple[str, str]] = []
    pending_user = None
    for item in history or []:
        if isinstance(item, dict):
            content = item.get("content")
            content = content if isinstance(content, str) else str(content or "")
            if item.get("role") == "user":
                pending_user = content
            elif item.get("role") == "assistant" and pending_user is not None:
                pairs.append((pending_user, content))
                pending_user = None
        else:
            user, bot = item
            pairs.append((str(user or ""), str(bot or "")))
    return [(u[:MAX_TURN_CHARS], a[:MAX_TURN_CHARS]) for u, a in pairs[-turns:]]


def rewrite_messages(question: str, pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    convo = "\n".join(f"User: {u}\nAssistant: {a}" for u, a in pairs)
    language = prompts.LANGUAGE_NAMES.get(detect_language(question), "English")
    return [{"role": "system", "content": prompts.REWRITE.format(language=language)},
            {"role": "user", "content": f"Conversation:\n{convo}\n\nLast question: {question}\n\nStand-alone question:"}]


def clean_rewrite(text: str, original: str) -> str:
    """The model's rewrite, or the original question when the rewrite is unusable."""
    line = (text or "").strip().splitlines()[0].strip() if (text or "").strip() else ""
    line = line.removeprefix("Stand-alone question:").strip().strip('"').strip()
    if not line or len(line) > 3 * len(original) + 200 or detect_language(line) != detect_language(original):
        return original
    return line
