"""The app in a real headless Chromium (Playwright): chat, alignment, upload, evaluation report.

One app process and one browser page serve the module; the tests run in file order and each saves a
screenshot of its tab to ``test-artifacts/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT
from test_align import MOBILITY
from test_app import ANSWER_TIMEOUT, build_index, running_app, write_fake_report

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def page(request, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    db = build_index(request.config)
    tmp = tmp_path_factory.mktemp("browser-app")
    write_fake_report(tmp / "reports")
    ARTIFACTS.mkdir(exist_ok=True)
    with running_app(tmp, db) as (url, _), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 950})
        pg = context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        pg.goto(url + "/", wait_until="domcontentloaded")
        pg.wait_for_selector("#sqa-question textarea", timeout=60_000)
        pg.errors = errors
        yield pg
        context.close()
        browser.close()


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def test_chat_answer_shows_citation_cards(page, tmp_path):
    open_tab(page, "Chat")
    box = page.locator("#sqa-question textarea")
    box.fill("What are the ICT sub-priorities of Sofia RIS3?")
    page.locator("#sqa-ask").click()
    # the passages are on screen while the model reads them (most of an answer's time on this CPU)
    page.wait_for_selector("#sqa-chat .sqa-reading .sqa-card", timeout=ANSWER_TIMEOUT * 1000)
    assert "reading these passages" in page.locator("#sqa-chat .sqa-reading").last.inner_text().lower()
    page.screenshot(path=str(ARTIFACTS / "chat-reading.png"), full_page=True)
    page.wait_for_selector("#sqa-chat .sqa-answer:not(.sqa-reading) .sqa-card", timeout=ANSWER_TIMEOUT * 1000)
    answer = page.locator("#sqa-chat .sqa-answer").last
    assert answer.locator(".sqa-card").count() >= 1
    card = answer.locator(".sqa-card").first
    assert "sofia-ris3.md" in card.inner_text()
    if answer.locator(".sqa-card mark").count():  # the quote is highlighted in a cited card
        assert answer.locator(".sqa-card mark").first.inner_text().strip()
    link = card.locator("a")
    if link.count():
        assert link.first.get_attribute("href").startswith(("http://", "https://"))
        assert link.first.get_attribute("target") == "_blank"
    answer.evaluate("el => el.scrollIntoView({block: 'start'})")  # the answer's start, not the last card
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)
    assert not page.errors, page.errors


def ask(page, question: str):
    """Ask in a fresh conversation of the Chat tab and return the final answer message."""
    open_tab(page, "Chat")
    # a fresh conversation: an earlier turn would have the model rewrite the question as a follow-up
    page.locator("#sqa-clear").click()
    page.wait_for_function("document.querySelectorAll('#sqa-chat .sqa-answer').length == 0", timeout=30_000)
    answers = page.locator("#sqa-chat .sqa-answer:not(.sqa-reading)")
    before = answers.count()
    page.locator("#sqa-question textarea").fill(question)
    page.locator("#sqa-ask").click()
    page.wait_for_function(f"document.querySelectorAll('#sqa-chat .sqa-answer:not(.sqa-reading)').length > {before}",
                           timeout=ANSWER_TIMEOUT * 1000)
    return answers.last


def test_a_bulgarian_question_is_answered_in_english_by_default(page):
    """The answered outcome, for a Bulgarian asker: English (the box asks for Bulgarian instead), with the note."""
    open_tab(page, "Chat")
    box = page.locator("#sqa-bulgarian input[type=checkbox]")
    assert not box.is_checked()  # the default: English answers, which the bundled model gets right more often
    assert "Bulgarian" in page.locator("#sqa-bulgarian").inner_text()
    answer = ask(page, "Колко струва първото оценяване за златен етикет?")
    text = answer.locator(".sqa-text").inner_text()
    assert "8,250" in text and "cost" in text.lower(), text
    assert "Отговорът е на английски" in answer.locator(".sqa-notice").inner_text()
    assert "sqa-unconfirmed" not in answer.get_attribute("class") and answer.locator(".sqa-evidence").count() == 0
    assert not page.errors, page.errors


def test_an_unconfirmed_answer_quotes_the_passage_highlighted_in_its_card(page):
    from assistant import prompts
    from test_assistant import UNCONFIRMED_QUESTION

    answer = ask(page, UNCONFIRMED_QUESTION)
    assert "sqa-unconfirmed" in answer.get_attribute("class")
    text = answer.locator(".sqa-text").inner_text()
    assert text.startswith(prompts.UNCONFIRMED["en"]) and prompts.REFUSAL["en"] not in text, text
    cards = answer.locator(".sqa-card.sqa-evidence")
    assert 1 <= cards.count() <= 2
    quote = cards.first.locator("mark").inner_text().strip()
    assert quote and f"“{quote}”" in text  # the sentence quoted in the text is the one marked in its card
    answer.evaluate("el => el.scrollIntoView({block: 'start'})")
    page.screenshot(path=str(ARTIFACTS / "chat-unconfirmed.png"), full_page=True)
    assert not page.errors, page.errors


def test_not_in_the_documents_only_when_nothing_is_close(page):
    from assistant import prompts
    from test_assistant import NOT_FOUND_QUESTION

    answer = ask(page, NOT_FOUND_QUESTION)
    assert "sqa-not-found" in answer.get_attribute("class")
    assert answer.locator(".sqa-text").inner_text().strip() == prompts.REFUSAL["en"]
    assert answer.locator(".sqa-evidence").count() == 0 and answer.locator("mark").count() == 0
    assert answer.locator(".sqa-card").count() >= 1  # the closest passages are still shown
    page.screenshot(path=str(ARTIFACTS / "chat-not-found.png"), full_page=True)
    assert not page.errors, page.errors


def test_alignment_table(page):
    open_tab(page, "Alignment")
    page.locator("#sqa-proposal textarea").fill(MOBILITY)
    page.locator("#sqa-check").click()
    page.wait_for_selector("#sqa-align-table", timeout=300_000)
    row = page.locator("#sqa-align-table tbody tr").filter(
        has=page.locator("td:first-child", has_text="Smart urban living and mobility"))
    assert row.locator(".sqa-badge").inner_text().strip() == "strong"
    assert page.locator("#sqa-align-table tbody tr").count() == 11
    assert page.locator("#sqa-align-download").is_visible()
    page.screenshot(path=str(ARTIFACTS / "alignment.png"), full_page=True)


def test_upload_is_listed_in_the_library(page, tmp_path):
    open_tab(page, "Library")
    page.wait_for_selector("#sqa-docs-table #sqa-docs", timeout=60_000)
    doc = tmp_path / "innovation-voucher-notes.md"
    doc.write_text("---\ntitle: Innovation voucher notes\ndoc_type: reference\n---\n# Innovation voucher notes\n\n"
                   "## Vouchers\n\nSmall firms in Sofia can apply for an innovation voucher of up to EUR 10,000.\n",
                   encoding="utf-8")
    page.locator("#sqa-upload input[type=file]").set_input_files(str(doc))
    page.wait_for_selector("#sqa-upload :text('innovation-voucher-notes.md')", timeout=60_000)
    page.locator("#sqa-upload-btn").click()
    page.wait_for_selector("#sqa-docs-table :text('Innovation voucher notes')", timeout=300_000)
    assert "Indexed innovation-voucher-notes.md" in page.locator("#sqa-lib-status").inner_text()
    page.screenshot(path=str(ARTIFACTS / "library.png"), full_page=True)


def test_evaluation_tab_shows_report_and_plot(page):
    open_tab(page, "Evaluation")
    page.wait_for_selector("#sqa-eval-plots img", timeout=60_000)
    assert "hybrid" in page.locator("#sqa-eval-report").inner_text()
    page.screenshot(path=str(ARTIFACTS / "evaluation.png"), full_page=True)
    assert not page.errors, page.errors
