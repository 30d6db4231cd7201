"""Answers from a model through the API: streamed tokens, generation slots (503 when all are
busy), the generation timeout (504 / an error event), and one message at a time per chat."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("fastapi")

from tests.serve_support import (
    ScriptedGenerator,
    assert_problem,
    client_for,
    indexed_project,
    parse_sse,
)

QUESTION = "청년 월세 지원은 얼마인가요?"


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    with indexed_project(tmp_path_factory.mktemp("serve-gen")) as index:
        yield index


def test_model_answer_streams_its_tokens_and_cites(index):
    gen = ScriptedGenerator(["월 최대 ", "20만 원을 ", "지원합니다 [1]."])
    with client_for(index, gen) as c:
        events = parse_sse(c.post("/v1/answer", json={"question": QUESTION, "stream": True}).text)
        body = c.post("/v1/answer", json={"question": QUESTION}).json()
    tokens = [d["text"] for e, d in events if e == "token"]
    assert tokens == gen.pieces
    final = events[-1][1]
    assert events[-1][0] == "answer" and final["text"] == "월 최대 20만 원을 지원합니다 [1]."
    assert final["generator"] == gen.name and [c["number"] for c in final["citations"]] == [1]
    assert final["citations"][0]["document_id"] is not None
    assert body["text"] == final["text"] and "extractive" not in body["flags"]


def test_all_generation_slots_busy_is_503_and_a_slot_frees_when_the_answer_ends(index):
    gate = threading.Event()
    gen = ScriptedGenerator(["held ", "answer [1]"], gate=gate)
    limits = {"max_concurrent_generations": 1, "generation_wait_s": 0.2}
    with client_for(index, gen, limits=limits) as c:
        first: dict = {}

        def ask() -> None:
            response = c.post("/v1/answer", json={"question": QUESTION, "stream": True})
            first["events"] = parse_sse(response.text)

        holder = threading.Thread(target=ask)
        holder.start()
        assert gen.started.wait(30)
        busy = c.post("/v1/answer", json={"question": QUESTION})
        assert "slots are busy" in assert_problem(busy, 503)["detail"]
        assert busy.headers["retry-after"] == "5"
        gate.set()
        holder.join(30)
        assert first["events"][-1][0] == "answer"
        assert c.post("/v1/answer", json={"question": QUESTION}).status_code == 200


def test_generation_timeout_is_504_or_an_error_event_and_frees_the_slot(index):
    gen = ScriptedGenerator(["slow "] * 20, delay=0.05)
    limits = {"generation_timeout_s": 0.3, "max_concurrent_generations": 1,
              "generation_wait_s": 0.5}  # fmt: skip
    with client_for(index, gen, limits=limits) as c:
        timed_out = c.post("/v1/answer", json={"question": QUESTION})
        assert "generation_timeout_s" in assert_problem(timed_out, 504)["detail"]
        events = parse_sse(c.post("/v1/answer", json={"question": QUESTION, "stream": True}).text)
        assert events[-1][0] == "error" and events[-1][1]["status"] == 504
        assert 0 < sum(e == "token" for e, _ in events) < 20
        gen.pieces = ["quick [1]"]
        assert c.post("/v1/answer", json={"question": QUESTION}).status_code == 200


def test_a_conversation_answers_one_message_at_a_time(index):
    gate = threading.Event()
    gate.set()
    gen = ScriptedGenerator(["월세는 월 최대 20만 원 [1]"], gate=gate, reply="청년 월세 신청 장소")
    with client_for(index, gen) as c:
        conv = c.post("/v1/chat", json={"message": QUESTION}).json()["conversation_id"]
        gate.clear()
        gen.started.clear()
        second: dict = {}

        def ask() -> None:
            body = {"message": "신청은 어디서?", "conversation_id": conv, "stream": True}
            second["events"] = parse_sse(c.post("/v1/chat", json=body).text)

        thread = threading.Thread(target=ask)
        thread.start()
        assert gen.started.wait(30)
        clash = c.post("/v1/chat", json={"message": "또?", "conversation_id": conv})
        assert "still answering" in assert_problem(clash, 409)["detail"]
        gate.set()
        thread.join(30)
        final = second["events"][-1][1]
        assert final["conversation_id"] == conv
        assert final["query"] == "청년 월세 신청 장소"  # the model's rewrite of the follow-up
        third = c.post("/v1/chat", json={"message": "감사합니다", "conversation_id": conv})
        assert third.status_code == 200
