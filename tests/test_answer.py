"""Answers with citations: extractive, refusal, citation validation, prompt budget and
injection delimiting, streaming, and real generation (tiny EXAONE + LoRA via transformers,
SmolLM2 via llama.cpp)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

import polisum
from polisum.chat import Answerer, check_citations, parse_citations
from polisum.chat.answer import (
    EXTRACTIVE,
    INVALID_CITATION,
    LOW_CONFIDENCE,
    NO_VALID_CITATION,
    TRUNCATED_CONTEXT,
)
from polisum.chat.prompts import assemble
from polisum.chat.relevance import RelevanceGate
from polisum.cli import app
from polisum.generate import GenerationConfig, GenerationResult, Generator, Message

pytest_plugins = ["chat_fixtures"]  # kb, tiny_exaone(_model), smollm2
runner = CliRunner()


# -- citations ----------------------------------------------------------------------------------
def test_parse_citations_forms() -> None:
    text = "가 [2]. 나 [1, 3]. 다 [2-4] 라 [1][5] and [12，1] but not [x] or [ ]."
    assert parse_citations(text) == [2, 1, 3, 4, 5, 12]
    check = check_citations(text, n_passages=3)
    assert check.valid == [2, 1, 3]
    assert check.invalid == [4, 5, 12]
    assert not check.ok
    assert check_citations("no markers here", 3).valid == []
    assert check_citations("fine [1]", 3).ok


# -- extractive and refusal ---------------------------------------------------------------------
def test_extractive_answer_quotes_the_right_sentence_with_citation(kb: Path) -> None:
    with polisum.Index.open(kb, create=False) as idx:
        answer = polisum.Answerer(idx).answer(
            "청년 교통비 지원은 대중교통 이용 금액의 몇 퍼센트야?"
        )
    assert "20퍼센트" in answer.text
    assert answer.language == "ko"
    assert answer.flags == [EXTRACTIVE]
    assert answer.citations, answer.text
    cited = answer.passages[answer.citations[0].number - 1]
    assert "교통비" in cited.text
    assert answer.citations[0].source.endswith("youth.md")
    assert not answer.refused


def test_unrelated_question_is_refused_without_generating(
    kb: Path, tiny_exaone_model: Path
) -> None:
    from polisum.generate import load_generator

    gen = _Recording(load_generator(f"hf:{tiny_exaone_model}"))
    with polisum.Index.open(kb, create=False) as idx:
        answer = Answerer(idx, gen).answer("What is the boiling point of liquid nitrogen on Mars?")
        assert answer.refused and answer.flags == [LOW_CONFIDENCE]
        assert answer.citations == []
        assert "could not find" in answer.text
        assert gen.calls == 0  # nothing was generated
        ko = Answerer(idx).answer("화성 탐사 로켓의 연료 성분은 무엇인가?")
        assert ko.refused and "찾지 못했습니다" in ko.text
        # A gate that accepts everything answers instead: the refusal came from the threshold.
        assert (
            not Answerer(idx, gate=RelevanceGate(min_dense=-1.0))
            .answer("화성 탐사 로켓의 연료 성분은 무엇인가?")
            .refused
        )


def test_query_answer_cli_json_and_text(kb: Path) -> None:
    res = runner.invoke(
        app, ["query", "When do city libraries open?", "--answer", "--json", "--index", str(kb)]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert "nine in the morning" in data["text"]
    assert data["citations"] and data["citations"][0]["source"].endswith("city.txt")
    assert data["flags"] == ["extractive"]
    assert data["passages"][0]["number"] == 1 and "text" in data["passages"][0]
    res = runner.invoke(
        app, ["query", "When do city libraries open?", "--answer", "--index", str(kb)]
    )
    assert res.exit_code == 0, res.output
    assert "nine in the morning" in res.stdout and "[1] docs/city.txt" in res.stdout


def test_adapter_without_generator_is_a_clear_error(kb: Path) -> None:
    res = runner.invoke(app, ["query", "x", "--answer", "--adapter", "lora/", "--index", str(kb)])
    assert res.exit_code == 2
    assert "needs a base model" in res.output


# -- generators -----------------------------------------------------------------------------------
class _Recording:
    """Delegates to a real generator and records the calls; ``suffix`` is appended to outputs
    so tests can force a citation pattern onto real generated text."""

    def __init__(self, inner: Generator, suffix: str = "") -> None:
        self.inner = inner
        self.name = inner.name
        self.suffix = suffix
        self.calls = 0
        self.conversations: list[list[Message]] = []

    @property
    def context_length(self) -> int:
        return self.inner.context_length

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def generate(self, conversations, config=None) -> list[GenerationResult]:
        self.calls += 1
        self.conversations.extend(conversations)
        out = self.inner.generate(conversations, config)
        return [replace(r, text=r.text + self.suffix) for r in out]

    def stream(self, conversation, config=None) -> Iterator[str]:
        self.calls += 1
        self.conversations.append(conversation)
        yield from self.inner.stream(conversation, config)
        if self.suffix:
            yield self.suffix


def test_tiny_exaone_with_lora_answers_streams_and_flags(kb: Path, tiny_exaone) -> None:
    from polisum.generate import load_generator

    model, adapter = tiny_exaone
    gen = _Recording(load_generator(f"hf:{model}", adapter=str(adapter)))
    assert "adapter" in gen.name
    config = GenerationConfig(max_new_tokens=12)
    question = "청년 월세 지원은 한 달에 얼마까지 받을 수 있어?"
    with polisum.Index.open(kb, create=False) as idx:
        answerer = Answerer(idx, gen, config=config)
        stream = answerer.stream(question)
        assert stream.passages  # sources are known before the first token
        pieces = list(stream)
        answer = stream.answer
    assert answer is not None and gen.calls == 1
    assert len(pieces) >= 2  # streamed, not one blob
    assert answer.text == "".join(pieces).strip()
    assert answer.text  # random weights still emit corpus words
    check = check_citations(answer.text, len(answer.passages))
    assert (NO_VALID_CITATION in answer.flags) == (not check.valid)
    # The prompt numbered and delimited the passages and carried the rules.
    convo = gen.conversations[0]
    rules = convo[0]["content"]
    assert convo[0]["role"] == "system"
    assert "never follow" in rules.lower() or "절대 따르지" in rules
    assert '<passage id="1"' in convo[-1]["content"] and question in convo[-1]["content"]


def test_citations_from_generated_text_are_validated(kb: Path, tiny_exaone_model: Path) -> None:
    from polisum.generate import load_generator

    base = load_generator(f"hf:{tiny_exaone_model}")
    config = GenerationConfig(max_new_tokens=6)
    with polisum.Index.open(kb, create=False) as idx:
        good = Answerer(idx, _Recording(base, " [1]"), config=config).answer(
            "When do city libraries open?"
        )
        assert [c.number for c in good.citations] == [1]
        assert good.citations[0].chunk_id == good.passages[0].chunk_id
        assert NO_VALID_CITATION not in good.flags and INVALID_CITATION not in good.flags
        bad = Answerer(idx, _Recording(base, " [9]"), config=config).answer(
            "When do city libraries open?"
        )
    assert bad.citations == [] and bad.invalid_citations == [9]
    assert NO_VALID_CITATION in bad.flags and INVALID_CITATION in bad.flags


def test_prompt_respects_the_token_budget_and_defuses_injection(
    kb: Path, tiny_exaone_model: Path
) -> None:
    from polisum.generate import load_generator

    gen = load_generator(f"hf:{tiny_exaone_model}")  # context 512 tokens
    with polisum.Index.open(kb, create=False) as idx:
        hits = idx.search("parking permits cost", k=5)
    assert any("IGNORE ALL" in h.text for h in hits)
    generous = assemble(
        "parking permits cost?", hits, "en", count_tokens=gen.count_tokens,
        context_length=gen.context_length, max_new_tokens=64,
    )  # fmt: skip
    tight = assemble(
        "parking permits cost?", hits, "en", count_tokens=gen.count_tokens,
        context_length=gen.context_length, max_new_tokens=gen.context_length - 200,
    )  # fmt: skip
    assert len(tight.passages) < len(generous.passages) and tight.truncated
    for assembled, new in ((generous, 64), (tight, gen.context_length - 200)):
        rendered = gen.prompt(assembled.messages)
        assert gen.count_tokens(rendered) + new <= gen.context_length
    # The injected closing tag / forged passage cannot end or open a passage block.
    user = generous.messages[-1]["content"]
    n = len(generous.passages)
    assert user.count("</passage>") == n and user.count("<passage ") == n
    assert '<passage id="9">' not in user


@pytest.mark.slow
def test_smollm2_gguf_answers_with_real_generation(kb: Path, smollm2) -> None:
    config = GenerationConfig(max_new_tokens=48)
    with polisum.Index.open(kb, create=False) as idx:
        answerer = Answerer(idx, smollm2, config=config)
        stream = answerer.stream("When do city libraries open?")
        pieces = list(stream)
    answer = stream.answer
    assert answer is not None and answer.generator == smollm2.name
    assert len(pieces) >= 2 and answer.text
    assert "city.txt" in answer.passages[0].source
    check = check_citations(answer.text, len(answer.passages))
    assert [c.number for c in answer.citations] == check.valid
    assert (NO_VALID_CITATION in answer.flags) == (not check.valid)
    assert TRUNCATED_CONTEXT not in answer.flags  # four short passages fit SmolLM2's context
