"""What the service tests share: sample documents, an app over a fresh index, job polling, an
SSE parser, and a scripted generator (a real Generator implementation whose output and pace
the test chooses, to exercise streaming, slots and timeouts without a model)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from polisum.api import Index
from polisum.config import Config
from polisum.generate import GenerationConfig, GenerationResult, Message
from polisum.serve.app import create_app, open_state
from polisum.serve.settings import ServeSettings
from tests.conftest import EN_LIBRARY, EN_SOLAR, KO_BUS, KO_RENT
from tests.test_bad_inputs import make_pdf

READ_KEY = "read-key-0123456789abcdef"
ADMIN_KEY = "admin-key-0123456789abcdef"
READ = {"Authorization": f"Bearer {READ_KEY}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def write_docs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "youth.md").write_text(
        f"# 청년 정책\n\n## 월세 지원\n\n{KO_RENT}\n\n## 교통비\n\n{KO_BUS}\n", encoding="utf-8"
    )
    (folder / "city.txt").write_text(f"{EN_SOLAR}\n\n{EN_LIBRARY}\n", encoding="utf-8")
    return folder


def open_index(project: Path) -> Index:
    return Index.open(config=Config.load(index=project / ".polisum"), create=True)


@contextlib.contextmanager
def indexed_project(root: Path, pdf_pages: list[str] | None = None) -> Iterator[Index]:
    """The sample documents (and ``solar.pdf`` of ``pdf_pages``) under ``root/docs``, ingested
    into ``root/.polisum``, with a user config folder of its own (a module fixture runs
    before conftest's per-test one)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POLISUM_CONFIG_DIR", str(root / "user-config"))
        docs = write_docs(root / "docs")
        if pdf_pages:
            (docs / "solar.pdf").write_bytes(make_pdf(pdf_pages))
        with open_index(root) as index:
            index.ingest(docs)
            yield index


def client_for(index: Index, generator: Any = None, **settings: Any) -> TestClient:
    """A TestClient (use it as a context manager: the lifespan runs) over ``index``."""
    settings.setdefault("index", index.path)
    serve_settings = ServeSettings(**settings)
    state = open_state(serve_settings, index)
    state.generator = generator
    return TestClient(create_app(serve_settings, state=state), raise_server_exceptions=False)


def wait_job(client: TestClient, job_id: str, headers: dict | None = None, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=headers or {}).json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def parse_sse(text: str) -> list[tuple[str, Any]]:
    """(event, data) pairs of a text/event-stream body."""
    events = []
    for block in text.strip().split("\n\n"):
        event, data = "message", []
        for line in block.splitlines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        events.append((event, json.loads("\n".join(data))))
    return events


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body


class ScriptedGenerator:
    """Streams ``pieces`` (one every ``delay`` seconds); ``gate`` (an Event), when given, holds
    the first piece until it is set. ``generate`` answers ``reply``."""

    name = "scripted:test"
    context_length = 4096

    def __init__(
        self,
        pieces: list[str],
        delay: float = 0.0,
        reply: str = "",
        gate: threading.Event | None = None,
    ) -> None:
        self.pieces = pieces
        self.delay = delay
        self.reply = reply
        self.gate = gate
        self.started = threading.Event()

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 1

    def stream(
        self, conversation: list[Message], config: GenerationConfig | None = None
    ) -> Iterator[str]:
        self.started.set()
        if self.gate is not None:
            self.gate.wait(30)
        for piece in self.pieces:
            time.sleep(self.delay)
            yield piece

    def generate(
        self, conversations: list[list[Message]], config: GenerationConfig | None = None
    ) -> list[GenerationResult]:
        return [GenerationResult(self.reply) for _ in conversations]
