"""The web app in a real browser: headless Debian Chromium against a live ``polisum serve``.

One server (with keys) over an index of two small documents serves every test. The journey:
upload a PDF, see it listed, search (terms marked), ask and open the citation (the passage and
the rendered PDF page), delete it. Also: a hostile document shows as text; the page works in
Korean at phone width; it asks for a key, and offers a read key no writes. Each page is saved
as a screenshot (``$POLISUM_SCREENSHOTS``, else the test's temporary folder, and a copy in
test-artifacts/screenshots/).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from browser import (
    CHROMIUM_ARGS,
    Screenshots,
    chromium_path,
    clean_env,
    drop_files,
    live_server,
    sync_playwright,
)
from conftest import EN_LIBRARY, EN_SOLAR, KO_BUS, KO_RENT
from fake_openai import chunk, fake_openai
from test_bad_inputs import make_pdf

pytest.importorskip("fastapi", reason="the web service needs fastapi: pip install polisum[serve]")
pytest.importorskip("uvicorn", reason="the web service needs uvicorn: pip install polisum[serve]")

READ_KEY = "read-key-for-the-browser-test"
ADMIN_KEY = "admin-key-for-the-browser-test"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
# The server may be slow to answer while a first ingest loads its models on a busy machine.
TIMEOUT = 60
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}
FERRY = "Ferries to Seagull Island leave pier seven every forty minutes."
HOSTILE = (
    "# Notice <script>window.__pwned = 1</script>\n\n"
    'The harbour notice <img src=x onerror="window.__pwned = 2"> says '
    "<b>lighthouse</b> tours start at noon.\n"
)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """The test project: ``project/.polisum`` (the index), the user config, the server logs."""
    return tmp_path_factory.mktemp("serve-browser")


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[str]:
    """A live ``polisum serve`` with a read key and an admin key, its index holding youth.md
    (Korean) and city.txt (English), uploaded through the API."""
    index = root / "project" / ".polisum"
    keys = {"POLISUM_READ_KEYS": READ_KEY, "POLISUM_ADMIN_KEYS": ADMIN_KEY}
    with live_server(index, clean_env(root / "user-config", **keys), root / "server.log") as base:
        youth = f"# 청년 정책\n\n## 월세 지원\n\n{KO_RENT}\n\n## 교통비\n\n{KO_BUS}\n"
        files = [
            ("files", ("youth.md", youth.encode(), "text/markdown")),
            ("files", ("city.txt", f"{EN_SOLAR}\n\n{EN_LIBRARY}\n".encode(), "text/plain")),
        ]
        reply = httpx.post(f"{base}/v1/documents", files=files, headers=ADMIN, timeout=TIMEOUT)
        assert reply.status_code == 202, reply.text
        job = reply.json()["job"]
        deadline = time.monotonic() + 120
        while job["state"] not in ("done", "failed") and time.monotonic() < deadline:
            time.sleep(0.2)
            job = httpx.get(f"{base}/v1/jobs/{job['id']}", headers=ADMIN, timeout=TIMEOUT).json()
        assert job["state"] == "done" and len(documents(base)) == 2, job
        yield base


# Tests name ``browser`` before ``server``: without a browser they skip before a server starts.
@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Screenshots:
    folder = os.environ.get("POLISUM_SCREENSHOTS")
    return Screenshots(Path(folder) if folder else tmp_path_factory.mktemp("screenshots"))


def open_page(browser, base: str, *, viewport: dict, locale: str = "en-US", key=ADMIN_KEY):
    """A fresh tab at ``base`` holding ``key`` as the page keeps it (None: no key yet).
    Page errors and console errors are collected in page.problems."""
    context = browser.new_context(viewport=viewport, locale=locale)
    if key:
        context.add_init_script(f"sessionStorage.setItem('polisum.key', {json.dumps(key)})")
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda msg: page.problems.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    page.goto(base + "/")
    page.wait_for_selector("body[data-ready=true]")
    return page


def documents(base: str) -> list[dict]:
    return httpx.get(f"{base}/v1/documents", headers=ADMIN, timeout=TIMEOUT).json()["documents"]


def delete(base: str, source_end: str) -> None:
    doc = next(d for d in documents(base) if d["source"].endswith(source_end))
    reply = httpx.delete(f"{base}/v1/documents/{doc['id']}", headers=ADMIN, timeout=TIMEOUT)
    assert reply.status_code == 202, reply.text


def test_page_and_bundle_are_served_with_a_strict_policy(server: str) -> None:
    page = httpx.get(server + "/", timeout=TIMEOUT)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    html = page.text
    # No inline script or style for the policy to block: every <script> has a src.
    assert all("src=" in tag for tag in re.findall(r"<script\b[^>]*>", html))
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=|javascript:", html)
    for name in re.findall(r'(?:src|href)="/static/([^"]+)"', html):
        asset = httpx.get(f"{server}/static/{name}", timeout=TIMEOUT)
        assert asset.status_code == 200, name
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        assert asset.headers["content-type"].startswith(kind), name
        again = httpx.get(
            f"{server}/static/{name}",
            headers={"If-None-Match": asset.headers["etag"]},
            timeout=TIMEOUT,
        )
        assert again.status_code == 304
    assert httpx.get(f"{server}/static/..%2Fweb.py", timeout=TIMEOUT).status_code == 404
    assert httpx.get(f"{server}/static/nothing.js", timeout=TIMEOUT).status_code == 404


def test_upload_search_ask_open_citation_delete(browser, server: str, shots: Screenshots) -> None:
    page = open_page(browser, server, viewport=DESKTOP)
    pdf = make_pdf([FERRY, "The ferry office opens at eight."])
    broken = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"

    # Upload with the file picker; the job's progress shows, then the table lists the PDF,
    # and the file that could not be read with its reason.
    page.click("nav >> text=Documents")
    page.set_input_files(
        "#file",
        [
            {"name": "ferry.pdf", "mimeType": "application/pdf", "buffer": pdf},
            {"name": "broken.pdf", "mimeType": "application/pdf", "buffer": broken},
        ],
    )
    page.wait_for_selector("#jobs .job")
    row = page.wait_for_selector("#docs tr:has-text('ferry.pdf')", timeout=60_000)
    assert "Indexed" in row.inner_text()
    failed = page.wait_for_selector("#docs tr:has-text('broken.pdf')")
    assert "Failed" in failed.inner_text()
    reason = next(d for d in documents(server) if d["source"].endswith("broken.pdf"))["error"]
    assert reason and reason in failed.inner_text()
    assert "broken.pdf" in page.inner_text("#jobs .job .problems")
    shots(page, "desktop-documents")

    # Search: the hit names its source and page, and the query's words are marked.
    page.click("nav >> text=Search")
    page.fill("#q", "ferries for Seagull Island")
    page.press("#q", "Enter")
    first = page.wait_for_selector("#results .hit")
    assert "ferry.pdf" in first.inner_text() and "p. 1" in first.inner_text()
    marked = {
        m.lower() for m in page.locator("#results .hit").first.locator("mark").all_inner_texts()
    }
    assert marked == {"ferries", "seagull", "island"}  # "for" is no term: "forty" stays plain
    shots(page, "desktop-search")

    # Ask: the answer arrives as a stream and its [1] opens the passage and the PDF's page.
    page.click("nav >> text=Ask")
    page.fill("#question", "How often do ferries leave for Seagull Island?")
    with page.expect_response("**/v1/answer") as answered:
        page.click("#ask-submit")
    assert answered.value.headers["content-type"].startswith("text/event-stream")
    cite = page.wait_for_selector("#answer-text button.cite", timeout=60_000)
    assert "Seagull" in page.inner_text("#answer-text")
    assert page.get_attribute("#answer-text", "aria-busy") == "false"
    shots(page, "desktop-ask")
    cite.click()
    page.wait_for_selector("#passage[open]")
    assert FERRY in page.inner_text("#passage-text")
    page.wait_for_function(
        "() => { const i = document.getElementById('passage-image');"
        " return i.complete && i.naturalWidth > 100; }",
        timeout=30_000,
    )
    assert page.is_visible("#passage-image")
    shots(page, "desktop-passage")
    page.keyboard.press("Escape")

    # Delete (after confirming): the row goes, and the index no longer has the document.
    page.click("nav >> text=Documents")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#docs tr:has-text('ferry.pdf') button.danger")
    page.wait_for_selector("#docs tr:has-text('ferry.pdf')", state="detached", timeout=60_000)
    assert not any(d["source"].endswith("ferry.pdf") for d in documents(server))
    assert re.fullmatch(r"Deleted \S*ferry\.pdf\.", page.inner_text("#docs-status"))
    shots(page, "desktop-deleted")
    delete(server, "broken.pdf")
    assert page.problems == []
    page.context.close()


def test_document_markup_shows_as_text_and_never_runs(
    browser, server: str, shots: Screenshots
) -> None:
    page = open_page(browser, server, viewport=DESKTOP)
    page.click("nav >> text=Documents")
    drop_files(page, "#drop", {"notice.md": ("text/markdown", HOSTILE.encode())})
    page.wait_for_selector("#docs tr:has-text('notice.md')", timeout=60_000)

    page.click("nav >> text=Search")
    page.fill("#q", "lighthouse tours")
    page.press("#q", "Enter")
    hit = page.wait_for_selector("#results .hit:has-text('notice.md')")
    text = hit.inner_text()
    assert "<script>window.__pwned = 1</script>" in text  # the section heading, as text
    assert '<img src=x onerror="window.__pwned = 2">' in text
    assert hit.query_selector("img, script, b") is None
    shots(page, "desktop-hostile")

    page.click("nav >> text=Ask")
    page.fill("#question", "When do the lighthouse tours start?")
    page.click("#ask-submit")
    page.wait_for_selector("#answer-text button.cite", timeout=60_000)
    page.click("#answer-sources button >> nth=0")
    page.wait_for_selector("#passage[open]")
    assert page.query_selector("#passage img:not(#passage-image), #passage script") is None
    assert page.evaluate("window.__pwned") is None
    assert page.problems == []
    page.context.close()
    delete(server, "notice.md")


def test_korean_at_phone_width(browser, server: str, shots: Screenshots) -> None:
    page = open_page(browser, server, viewport=PHONE, locale="ko-KR")
    assert page.get_attribute("html", "lang") == "ko"
    assert page.inner_text("nav a[data-tab=search]") == "검색"
    page.fill("#q", "청년 월세 지원은?")
    page.press("#q", "Enter")
    first = page.wait_for_selector("#results .hit")
    assert "youth.md" in first.inner_text()
    marked = page.locator("#results .hit").first.locator("mark").all_inner_texts()
    assert "월세" in marked and "청년" in marked
    fits = "() => document.documentElement.scrollWidth <= window.innerWidth"
    assert page.evaluate(fits), "the page scrolls sideways at 375 px"
    shots(page, "phone-search-ko")

    page.click("nav a[data-tab=ask]")
    page.fill("#question", "청년 월세 지원은 얼마인가요?")
    page.click("#ask-submit")
    page.wait_for_selector("#answer-text button.cite", timeout=60_000)
    assert "20만 원" in page.inner_text("#answer-text")
    assert page.evaluate(fits)
    shots(page, "phone-ask-ko")

    page.click("nav a[data-tab=documents]")
    page.wait_for_selector("#docs tr:has-text('youth.md')")
    assert "색인됨" in page.inner_text("#docs tr:has-text('youth.md')")
    assert page.evaluate(fits)
    shots(page, "phone-documents-ko")

    # The switch: English labels at once, kept for the next visit.
    page.select_option("#lang", "en")
    assert page.inner_text("nav a[data-tab=documents]") == "Documents"
    assert "Indexed" in page.inner_text("#docs tr:has-text('youth.md')")
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.get_attribute("html", "lang") == "en"
    assert page.problems == []
    page.context.close()


def test_the_page_asks_for_a_key_and_offers_a_read_key_no_writes(
    browser, server: str, shots: Screenshots
) -> None:
    page = open_page(browser, server, viewport=DESKTOP, key=None)
    # /v1/health says keys are required: the page asks before anything fails.
    page.wait_for_selector("#key-dialog[open]")
    page.fill("#key-input", "not-a-key")
    page.press("#key-input", "Enter")
    page.wait_for_selector("#key-dialog[open] #key-rejected:not([hidden])")  # 401: asked again
    assert page.input_value("#key-input") == ""
    shots(page, "desktop-key")
    page.fill("#key-input", READ_KEY)
    page.press("#key-input", "Enter")
    page.click("nav >> text=Documents")
    page.wait_for_selector("#docs tr:has-text('youth.md')")
    assert page.evaluate("sessionStorage.getItem('polisum.key')") == READ_KEY

    # A read key can neither upload nor delete: the page does not offer it.
    page.wait_for_selector("body[data-role=read]")
    assert not page.is_visible("#drop")
    assert not page.is_visible("#docs button.danger")
    shots(page, "desktop-read-key")

    # The key lasts for the tab: a reload asks nothing.
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    page.click("nav >> text=Documents")
    page.wait_for_selector("#docs tr:has-text('youth.md')")
    assert not page.is_visible("#key-dialog")
    # The refused key's 401 is the only thing the console reports.
    assert all("401" in problem for problem in page.problems), page.problems
    page.context.close()


def test_event_stream_reader_joins_events_split_across_chunks(browser, server: str) -> None:
    """The SSE reader (static/api.js) against the splits a network makes: an event cut in the
    middle of its JSON and of its CRLF blank line, comments, multi-line data, no final newline."""
    page = open_page(browser, server, viewport=DESKTOP)
    read = page.evaluate(
        """async (parts) => {
            const { events } = await import("/static/api.js");
            const encoder = new TextEncoder();
            const body = new ReadableStream({
                start(controller) {
                    for (const part of parts) controller.enqueue(encoder.encode(part));
                    controller.close();
                },
            });
            const out = [];
            for await (const event of events(new Response(body))) out.push(event);
            return out;
        }""",
        [
            'event: passages\r\ndata: {"passages": [{"number": 1, "source": "a<b>.md"}]}\r\n\r\n',
            'event: token\r\ndata: {"text": "Fer',
            'ries [1]"}\r\n\r',
            "\n: a comment line\n\nevent: token\ndata: plain text\n\n",
            'event: answer\ndata: {"text": "Ferries [1]",\ndata:  "flags": []}',
        ],
    )
    assert read == [
        {"type": "passages", "data": {"passages": [{"number": 1, "source": "a<b>.md"}]}},
        {"type": "token", "data": {"text": "Ferries [1]"}},
        {"type": "token", "data": "plain text"},
        {"type": "answer", "data": {"text": "Ferries [1]", "flags": []}},
    ]
    page.context.close()


def test_a_model_answer_shows_while_it_streams(
    browser, server: str, root: Path, shots: Screenshots
) -> None:
    """With a generator (a scripted OpenAI-compatible server sending a piece every 0.6 s), the
    answer grows on the page piece by piece; its [1] becomes a button once it is complete."""
    pieces = ["월 최대 20만 원의 ", "월세를 12개월 동안 ", "지원합니다 [1]."]
    answers = itertools.count()
    release = threading.Event()  # the second answer waits after its first piece until set

    def slow_stream(handler) -> None:
        second = next(answers) == 1
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.end_headers()
        for piece in [*pieces, None]:
            event = chunk(piece) if piece else chunk(finish="stop")
            handler.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            handler.wfile.flush()
            if second:
                release.wait(30)
            time.sleep(0.6)
        handler.wfile.write(b"data: [DONE]\n\n")
        handler.close_connection = True

    answer_is = "([text, whole]) => {\n"
    answer_is += "const now = document.getElementById('answer-text').textContent;\n"
    answer_is += "return whole ? now === text : now.startsWith(text); }"
    env = clean_env(root / "user-config", POLISUM_ADMIN_KEYS=ADMIN_KEY)
    with fake_openai(slow_stream) as model:
        generator = ("--generator", "openai:fake", "--base-url", model.url)
        log = root / "model-server.log"
        with live_server(root / "project" / ".polisum", env, log, *generator) as base:
            try:
                page = open_page(browser, base, viewport=DESKTOP)
                page.click("nav >> text=Ask")
                page.fill("#question", "청년 월세 지원은 얼마인가요?")
                page.click("#ask-submit")
                page.wait_for_function(answer_is, arg=[pieces[0], False], timeout=60_000)
                partial = page.inner_text("#answer-text")
                assert page.get_attribute("#answer-text", "aria-busy") == "true"
                assert partial != "".join(pieces) and page.query_selector("button.cite") is None
                shots(page, "desktop-ask-streaming")
                page.wait_for_selector("#answer-text button.cite")
                assert page.inner_text("#answer-text") == "".join(pieces)
                assert page.get_attribute("#answer-text", "aria-busy") == "false"
                assert "extractive" not in page.inner_text("#answer-flags").lower()
                page.click("#answer-text button.cite")
                assert "youth.md" in page.inner_text("#passage-title")
                page.keyboard.press("Escape")

                # Stop (the model holds after its first piece): the stream is dropped where it
                # is, and the page is ready for the next question.
                page.click("#ask-submit")
                page.wait_for_function(answer_is, arg=[pieces[0], True])
                page.click("#ask-stop")
                page.wait_for_selector("#answer-flags li")
                assert page.inner_text("#answer-flags") == "Stopped."
                assert page.inner_text("#answer-text") == pieces[0]
                assert page.is_enabled("#ask-submit") and not page.is_visible("#ask-stop")
                assert page.problems == []
                page.context.close()
            finally:
                release.set()  # a held stream would keep the server from stopping
