"""The REST API over one index (read side): every read endpoint, auth, limits, problem
details, SSE, chat state, PDF page previews and the ingest path checks."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from PIL import Image

from polisum.chat import Answerer, ChatSession
from tests.serve_support import (
    ADMIN,
    ADMIN_KEY,
    READ,
    READ_KEY,
    ScriptedGenerator,
    assert_problem,
    client_for,
    indexed_project,
    parse_sse,
)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-api")
    pages = ["Rooftop solar panels on schools, page one.", "Page two: the budget."]
    with indexed_project(root, pages) as index:
        yield root, index


@pytest.fixture(scope="module")
def client(project):
    project_dir, index = project
    outside = project_dir / "outside"
    outside.mkdir()
    (project_dir / "docs" / "escape").symlink_to(outside)
    with client_for(
        index,
        read_keys=(READ_KEY,),
        admin_keys=(ADMIN_KEY,),
        allowed_ingest_roots=(project_dir / "docs",),
    ) as c:
        yield c


@pytest.fixture(scope="module")
def index(project):
    return project[1]


def doc_id(client, name: str) -> int:
    docs = client.get("/v1/documents", headers=READ).json()["documents"]
    return next(d["id"] for d in docs if d["source"].endswith(name))


# -- system and auth ------------------------------------------------------------------------------
def test_health_needs_no_key_and_says_keys_are_required(client):
    body = client.get("/v1/health").json()
    assert body == {"status": "ok", "version": body["version"], "auth": True}


def test_missing_or_unknown_key_is_401_and_read_key_cannot_write(client):
    missing = assert_problem(client.get("/v1/status"), 401)
    assert "Bearer" in missing["detail"]
    assert client.get("/v1/status").headers["www-authenticate"] == "Bearer"
    assert_problem(client.get("/v1/status", headers={"Authorization": "Bearer nope"}), 401)
    assert_problem(client.get("/v1/status", headers={"Authorization": f"Basic {READ_KEY}"}), 401)
    forbidden = client.post("/v1/ingest", json={"path": "/tmp"}, headers=READ)
    assert "admin" in assert_problem(forbidden, 403)["detail"]
    assert_problem(client.delete(f"/v1/documents/{doc_id(client, 'city.txt')}", headers=READ), 403)
    upload = client.post("/v1/documents", files={"files": ("a.md", b"# a")}, headers=READ)
    assert_problem(upload, 403)


def test_status_is_polisum_status_json_plus_the_service(client, index):
    body = client.get("/v1/status", headers=READ).json()
    info = index.info()
    for key in ("index", "embedder", "generation", "chunks", "failed"):
        assert body[key] == info[key]
    assert {d["source"] for d in body["documents"]} == {d.source for d in index.documents()}
    assert body["service"]["role"] == "read" and body["service"]["auth"] is True
    assert body["service"]["generator"] is None and body["service"]["images"] is False
    assert client.get("/v1/status", headers=ADMIN).json()["service"]["role"] == "admin"


def test_openapi_and_docs_are_served(client):
    spec = client.get("/openapi.json").json()
    assert {"/v1/search", "/v1/answer", "/v1/documents", "/v1/jobs/{job_id}"} <= set(spec["paths"])
    docs = client.get("/docs")
    assert docs.status_code == 200 and "https://" not in docs.text  # served offline, no CDN
    assert client.get("/docs-static/swagger-ui-bundle.js").status_code == 200


# -- search ---------------------------------------------------------------------------------------
def test_search_gives_the_hits_of_index_search_with_document_ids(client, index):
    query = "청년 월세 지원"
    body = client.post("/v1/search", json={"query": query, "k": 3}, headers=READ).json()
    expected = [h.to_dict() for h in index.search(query, k=3)]
    assert [h["chunk_id"] for h in body["hits"]] == [h["chunk_id"] for h in expected]
    first = body["hits"][0]
    assert first["source"].endswith("youth.md") and first["summary"] and first["scores"]
    assert first["score"] == pytest.approx(expected[0]["score"])
    assert first["document_id"] == doc_id(client, "youth.md")


def test_search_filters_by_source_prefix_and_file_type(client):
    def sources(filters):
        body = {"query": "solar panels schools", "k": 10, "filters": filters}
        hits = client.post("/v1/search", json=body, headers=READ).json()["hits"]
        return {h["source"].rsplit("/", 1)[-1] for h in hits}

    assert sources({"file_types": ["pdf"]}) == {"solar.pdf"}
    assert sources({"source_prefix": "docs/city"}) == {"city.txt"}
    assert sources({}) >= {"solar.pdf", "city.txt"}


@pytest.mark.parametrize(
    "body, field",
    [
        ({"query": "x", "k": 51}, "k"),
        ({"query": "x", "k": 0}, "k"),
        ({"query": "x" * 2001}, "query"),
        ({"query": "   "}, "query"),
        ({"query": "x", "unknown": 1}, "unknown"),
        ({"query": "x", "filters": {"file_types": [""]}}, "filters"),
    ],
)
def test_search_limits_and_bad_input_are_422_naming_the_field(client, body, field):
    problem = assert_problem(client.post("/v1/search", json=body, headers=READ), 422)
    assert any(field in e["loc"] for e in problem["errors"])
    assert "x" * 100 not in str(problem)  # the input is not echoed back


def test_malformed_json_is_422_and_oversized_bodies_413(client):
    bad = client.post(
        "/v1/search", content=b"{nope", headers={**READ, "content-type": "application/json"}
    )
    assert_problem(bad, 422)
    big = b'{"query": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    declared = client.post(
        "/v1/search", content=big, headers={**READ, "content-type": "application/json"}
    )
    assert "limit" in assert_problem(declared, 413)["detail"]

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"query": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    streamed = client.post(
        "/v1/search", content=chunks(), headers={**READ, "content-type": "application/json"}
    )
    assert_problem(streamed, 413)


# -- answers --------------------------------------------------------------------------------------
QUESTION = "청년 월세 지원은 얼마인가요?"


def test_answer_json_is_the_cited_extractive_answer(client, index):
    body = client.post("/v1/answer", json={"question": QUESTION}, headers=READ).json()
    expected = Answerer(index, None, k=index.config.k).answer(QUESTION)
    assert body["text"] == expected.text and "extractive" in body["flags"]
    assert body["citations"] and body["citations"][0]["document_id"] == doc_id(client, "youth.md")
    assert [p["number"] for p in body["passages"]] == list(range(1, len(body["passages"]) + 1))
    assert body["conversation_id"] is None and not body["refused"]


@pytest.mark.parametrize("how", ["body", "accept"])
def test_answer_streams_passages_tokens_then_the_answer(client, how):
    payload = {"question": QUESTION, "stream": how == "body"}
    headers = {**READ, "Accept": "text/event-stream"} if how == "accept" else READ
    response = client.post("/v1/answer", json=payload, headers=headers)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    names = [e for e, _ in events]
    assert names[0] == "passages" and names[-1] == "answer" and "token" in names
    final = events[-1][1]
    assert "".join(d["text"] for e, d in events if e == "token") == final["text"]
    assert events[0][1]["passages"][0]["chunk_id"] == final["passages"][0]["chunk_id"]


def test_low_relevance_question_is_refused_not_invented(client):
    body = client.post(
        "/v1/answer", json={"question": "quantum chromodynamics lattice gauge"}, headers=READ
    ).json()
    assert body["refused"] is True and body["citations"] == []


# -- chat -----------------------------------------------------------------------------------------
def test_chat_keeps_the_conversation_and_rewrites_follow_ups(client, index):
    first = client.post("/v1/chat", json={"message": QUESTION}, headers=READ).json()
    conv = first["conversation_id"]
    assert conv
    follow = client.post(
        "/v1/chat", json={"message": "신청은 어디서?", "conversation_id": conv}, headers=READ
    ).json()
    local = ChatSession(Answerer(index, None, k=index.config.k))
    local.ask(QUESTION)
    assert follow["query"] == local.rewrite("신청은 어디서?") != "신청은 어디서?"
    assert follow["conversation_id"] == conv
    # Another key cannot continue (or read) it; the owner can end it.
    other = client.post(
        "/v1/chat", json={"message": "and?", "conversation_id": conv}, headers=ADMIN
    )
    assert_problem(other, 404)
    assert client.delete(f"/v1/chat/{conv}", headers=READ).status_code == 204
    gone = client.post("/v1/chat", json={"message": "x", "conversation_id": conv}, headers=READ)
    assert_problem(gone, 404)


def test_chat_with_history_is_stateless_and_bounded(client):
    history = [{"question": QUESTION, "answer": "월 최대 20만 원 [1]", "query": QUESTION}]
    body = client.post(
        "/v1/chat", json={"message": "신청은 어디서?", "history": history}, headers=READ
    ).json()
    assert body["conversation_id"] is None and "월세" in body["query"]
    too_long = [{"question": "q", "answer": "a"}] * 21
    assert_problem(
        client.post("/v1/chat", json={"message": "x", "history": too_long}, headers=READ), 422
    )
    both = {"message": "x", "history": history, "conversation_id": "abc"}
    assert_problem(client.post("/v1/chat", json=both, headers=READ), 422)


# -- documents and pages --------------------------------------------------------------------------
def test_documents_list_and_one_document_with_its_chunks(client, index):
    docs = client.get("/v1/documents", headers=READ).json()
    assert {d["file_type"] for d in docs["documents"]} == {".md", ".txt", ".pdf"}
    youth = doc_id(client, "youth.md")
    detail = client.get(f"/v1/documents/{youth}", headers=READ).json()
    with index.store.read() as view:
        chunks = view.document_chunks(youth)
    assert detail["total"] == len(chunks) == detail["document"]["chunks"]
    assert [c["text"] for c in detail["chunks"]] == [c["text"] for c in chunks]
    page = client.get(f"/v1/documents/{youth}?offset=1&limit=1", headers=READ).json()
    assert [c["chunk_id"] for c in page["chunks"]] == [chunks[1]["chunk_id"]]
    missing = assert_problem(client.get("/v1/documents/999999", headers=READ), 404)
    assert "GET /v1/documents" in missing["detail"]


def test_pdf_page_renders_as_png_of_the_width_asked(client):
    pdf = doc_id(client, "solar.pdf")
    response = client.get(f"/v1/documents/{pdf}/pages/2.png?width=300", headers=READ)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.width == 300 and image.height > image.width  # a portrait page
    no_page = client.get(f"/v1/documents/{pdf}/pages/3.png", headers=READ)
    assert "has 2 pages" in assert_problem(no_page, 404)["detail"]
    assert_problem(client.get(f"/v1/documents/{pdf}/pages/1.png?width=3000", headers=READ), 422)
    text_doc = doc_id(client, "city.txt")
    assert_problem(client.get(f"/v1/documents/{text_doc}/pages/1.png", headers=READ), 404)


def test_pdf_page_of_a_file_changed_since_indexing_is_409(client, project):
    project_dir = project[0]
    pdf = doc_id(client, "solar.pdf")
    path = project_dir / "docs" / "solar.pdf"
    st = path.stat()
    try:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        assert_problem(client.get(f"/v1/documents/{pdf}/pages/1.png", headers=READ), 409)
    finally:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


# -- images ---------------------------------------------------------------------------------------
def test_prompt_and_images_without_models_are_503_with_the_reason(client):
    prompt = assert_problem(
        client.post("/v1/prompt", json={"description": "a park"}, headers=READ), 503
    )
    assert "generator" in prompt["detail"]
    images = client.post("/v1/images", json={"prompt": "a park at dawn"}, headers=READ)
    assert "--image-model" in assert_problem(images, 503)["detail"]


def test_prompt_with_a_generator_is_validated_sd35_json(index):
    reply = '{"prompt": "a quiet park at dawn, benches", "aspect_ratio": "16:9", "style": null}'
    with client_for(index, ScriptedGenerator([], reply=reply)) as c:
        body = c.post("/v1/prompt", json={"description": "새벽 공원", "from_docs": True}).json()
    assert body["prompt"].startswith("a quiet park") and body["aspect_ratio"] == "16:9"
    assert body["negative_prompt"] and body["sources"] and body["sources"][0]["document_id"]


# -- errors, logs ---------------------------------------------------------------------------------
def test_unknown_routes_and_methods_are_problems(client):
    assert "/docs" in assert_problem(client.get("/v1/nothing", headers=READ), 404)["detail"]
    assert_problem(client.put("/v1/search", headers=READ), 405)


def test_unexpected_error_is_500_with_request_id_and_no_trace(client, monkeypatch, caplog):
    state = client.app.state.polisum

    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(state.index, "search", broken)
    with caplog.at_level(logging.ERROR, logger="polisum.serve"):
        response = client.post("/v1/search", json={"query": "solar"}, headers=READ)
    problem = assert_problem(response, 500)
    assert "secret internal detail" not in response.text
    assert problem["request_id"] in problem["detail"]
    assert problem["request_id"] in caplog.text and "secret internal detail" in caplog.text


def test_access_log_holds_no_key_and_no_query_text(client, caplog):
    with caplog.at_level(logging.INFO, logger="polisum.serve"):
        client.post("/v1/search", json={"query": "rooftop panels"}, headers=READ)
        client.get("/v1/status", headers=ADMIN)
    assert "POST /v1/search 200" in caplog.text
    assert READ_KEY not in caplog.text and ADMIN_KEY not in caplog.text
    assert "rooftop" not in caplog.text


# -- ingest paths ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path, status",
    [
        ("relative/docs", 422),
        ("/etc", 403),
        ("{docs}/../outside", 403),
        ("{docs}/escape", 403),  # a symlink inside the root, to a folder outside it
        ("{docs}/missing", 403),
        ("{docs}/city.txt", 422),
        ("{docs}/\x00", 422),
    ],
)
def test_ingest_paths_outside_the_allowed_roots_are_refused(client, project, path, status):
    docs = project[0] / "docs"
    response = client.post("/v1/ingest", json={"path": path.format(docs=docs)}, headers=ADMIN)
    assert_problem(response, status)


def test_ingest_is_off_without_allowed_roots(index):
    with client_for(index) as c:
        problem = assert_problem(c.post("/v1/ingest", json={"path": str(Path.cwd())}), 403)
    assert "--allow-ingest-root" in problem["detail"]
