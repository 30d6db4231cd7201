"""Chat: follow-up rewriting (heuristic and with a model), bounded history, the CLI session."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import polisum
from polisum.chat import Answerer, ChatSession
from polisum.chat.session import approx_tokens, heuristic_rewrite, is_follow_up
from polisum.cli import app
from polisum.generate import GenerationConfig
from test_answer import _Recording

pytest_plugins = ["chat_fixtures"]  # kb, tiny_exaone(_model), smollm2
runner = CliRunner()


def test_heuristic_rewrite_carries_the_topic_over() -> None:
    assert is_follow_up("금액은 얼마야?")
    assert is_follow_up("What about it?")
    assert not is_follow_up("서울 청년 교통비 지원 대상 나이는 몇 살이야?")
    rewritten = heuristic_rewrite("금액은 얼마야?", "청년 월세 지원 신청 자격은?")
    assert rewritten.endswith("금액은 얼마야?")
    assert "월세" in rewritten and "청년" in rewritten
    standalone = "서울 청년 교통비 지원 대상 나이는 몇 살이야?"
    assert heuristic_rewrite(standalone, "청년 월세 지원 신청 자격은?") == standalone


def test_follow_up_retrieves_the_previous_topic_and_history_is_bounded(kb: Path) -> None:
    with polisum.Index.open(kb, create=False) as idx:
        session = ChatSession(Answerer(idx, k=3), max_turns=2, max_history_tokens=10_000)
        first = session.ask("청년 월세 지원 신청 자격은?")
        follow = session.ask("금액은 얼마야?")
        assert "월세" in follow.query
        assert "20만 원" in follow.text  # found through the carried-over topic
        assert follow.passages[0].chunk_id == first.passages[0].chunk_id
        session.ask("When do city libraries open?")
        assert len(session.turns) == 2  # turn bound
        assert session.turns[0].question == "금액은 얼마야?"
        tight = ChatSession(Answerer(idx, k=3), max_turns=10, max_history_tokens=60)
        for q in ("청년 월세 지원 신청 자격은?", "청년 교통비 지원 대상은?", "도서관 운영 시간은?"):
            tight.ask(q)
            assert tight.history_tokens() <= 60  # token bound
        assert len(tight.turns) < 3
        tight.reset()
        assert not tight.turns and tight.rewrite("금액은?") == "금액은?"


def test_model_rewrites_follow_ups_and_sees_bounded_history(
    kb: Path, tiny_exaone_model: Path
) -> None:
    from polisum.generate import load_generator

    gen = _Recording(load_generator(f"hf:{tiny_exaone_model}"))
    config = GenerationConfig(max_new_tokens=8)
    with polisum.Index.open(kb, create=False) as idx:
        session = ChatSession(
            Answerer(idx, gen, config=config, k=3), max_turns=1, max_history_tokens=80
        )
        session.ask("청년 월세 지원 신청 자격은?")
        assert gen.calls == 1  # no rewrite for the first question
        second = session.ask("금액은 얼마야?")
        assert gen.calls == 3  # rewrite + answer
        rewrite_convo = gen.conversations[1]
        assert "standalone" in rewrite_convo[0]["content"]
        assert "청년 월세 지원 신청 자격은?" in rewrite_convo[1]["content"]
        assert second.query  # the model's rewrite, or the heuristic when it was unusable
        # The answer prompt carried the previous turn as chat history.
        answer_convo = gen.conversations[2]
        assert [m["role"] for m in answer_convo[:3]] == ["system", "user", "assistant"]
        assert answer_convo[1]["content"] == "청년 월세 지원 신청 자격은?"
        assert len(session.turns) == 1
        assert session.history_tokens() <= 80  # counted with the model's tokenizer


def test_chat_cli_session(kb: Path) -> None:
    res = runner.invoke(
        app,
        ["chat", "--index", str(kb)],
        input="청년 월세 지원 신청 자격은?\n금액은 얼마야?\n/reset\n/exit\n",
    )
    assert res.exit_code == 0, res.output
    assert res.stdout.count("[1] docs/youth.md") >= 2
    assert "20만 원" in res.stdout


def test_approx_tokens_grows_with_text() -> None:
    assert approx_tokens("가" * 30) > approx_tokens("가" * 3) >= 1


@pytest.mark.slow
def test_smollm2_chat_follow_up(kb: Path, smollm2) -> None:
    rec = _Recording(smollm2)
    with polisum.Index.open(kb, create=False) as idx:
        session = ChatSession(Answerer(idx, rec, config=GenerationConfig(max_new_tokens=32), k=2))
        session.ask("When do city libraries open?")
        follow = session.ask("And when do they close?")
    assert rec.calls == 3
    assert follow.query.strip()
    assert follow.text
    assert len(session.turns) == 2
