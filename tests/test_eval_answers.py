"""Answer metrics (span hit, token F1, citations), ranking metrics, QA loading, and
`polisum eval answers` on a real index with the extractive answerer."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("rouge_score", reason="needs the eval extra")

from polisum.cli import app
from polisum.eval import (
    AnswerEvaluator,
    QAItem,
    answer_span_hit,
    exact_match,
    load_qa,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
    token_f1,
)
from polisum.eval.answers import cited_numbers
from polisum.eval.retrieval import retrieval_metrics
from polisum.types import Hit
from tests.conftest import KO_BUS, KO_RENT

runner = CliRunner()


# -- ranking metrics ----------------------------------------------------------------------------
def test_ranking_metrics_match_hand_computed_values():
    ranked = ["d3", "d1", "d7", "d2", "d1"]
    gold = {"d1", "d2"}
    assert recall_at_k(ranked, gold, 1) == 0.0
    assert recall_at_k(ranked, gold, 2) == 0.5
    assert recall_at_k(ranked, gold, 4) == 1.0
    assert mrr_at_k(ranked, gold, 10) == 0.5
    assert mrr_at_k(ranked, gold, 1) == 0.0
    dcg = 1 / math.log2(3) + 1 / math.log2(5)  # hits at ranks 2 and 4
    ideal = 1 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(ranked, gold, 10) == pytest.approx(dcg / ideal)
    # a duplicate does not count twice
    assert recall_at_k(["d1", "d1"], {"d1", "d2"}, 2) == 0.5
    assert ndcg_at_k(["d1", "d2"], {"d1", "d2"}, 10) == pytest.approx(1.0)
    per_query = retrieval_metrics([ranked, ["d9"]], [gold, {"d9"}], ks=(1, 5))
    assert per_query["R@1"] == [0.0, 1.0] and per_query["MRR@10"] == [0.5, 1.0]
    with pytest.raises(ValueError, match="gold"):
        recall_at_k(ranked, set(), 5)


# -- answer-text metrics ------------------------------------------------------------------------
def test_korean_token_f1_is_character_level_like_korquad():
    # "서울시는" vs gold "서울시": 3 common characters, P = 3/4, R = 3/3
    assert token_f1("서울시는", ["서울시"], "ko") == pytest.approx(2 * 0.75 / 1.75)
    assert token_f1("《서울시》", ["서울 시"], "ko") == pytest.approx(1.0)  # quotes, spaces
    assert token_f1("부산", ["서울시"], "ko") == 0.0
    # max over gold answers
    assert token_f1("20만 원", ["10만 원", "20만 원"], "ko") == pytest.approx(1.0)


def test_english_token_f1_and_em_follow_squad():
    assert token_f1("The big cat", ["a cat"], "en") == pytest.approx(2 * 0.5 / 1.5)
    assert exact_match("The Cat!", ["cat"], "en") == 1.0
    assert exact_match("cats", ["cat"], "en") == 0.0


def test_span_hit_finds_the_answer_inside_a_sentence():
    sentence = "서울시는 청년에게 월 최대 20만 원의 월세를 지원한다."
    assert answer_span_hit(sentence, ["20만 원"], "ko") == 1.0
    assert answer_span_hit(sentence, ["30만 원"], "ko") == 0.0
    assert token_f1(sentence, ["20만 원"], "ko") < 0.5  # why span hit exists


def test_citations_are_parsed_from_the_text():
    assert cited_numbers("a [1] b [2, 3] c [4-5] again [1]") == [1, 2, 3, 4, 5]
    assert cited_numbers("no citations here [x]") == []


# -- QA files -----------------------------------------------------------------------------------
def test_load_squad_json_and_jsonl(tmp_path: Path):
    squad = {
        "version": "1.1",
        "data": [
            {
                "title": "t",
                "paragraphs": [
                    {
                        "context": KO_RENT,
                        "qas": [
                            {"id": "k1", "question": "얼마?", "answers": [{"text": "20만 원"}]},
                            {"id": "k2", "question": "없음?", "answers": []},  # unanswerable
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "qa.json"
    path.write_text(json.dumps(squad, ensure_ascii=False), "utf-8")
    items = load_qa(path)
    assert [(q.id, q.answers, q.contexts) for q in items] == [("k1", ["20만 원"], [KO_RENT])]

    jsonl = tmp_path / "qa.jsonl"
    jsonl.write_text(
        '{"query": "q?", "answers": "a", "gold": "doc.md"}\n\n'
        '{"id": "x", "question": "r?", "answers": [{"text": "b"}, "c"]}\n',
        "utf-8",
    )
    items = load_qa(jsonl)
    assert items[0] == QAItem("1", "q?", ["a"], ["doc.md"], [])
    assert items[1].answers == ["b", "c"] and not items[1].has_gold
    assert len(load_qa(jsonl, limit=1)) == 1

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q?"}\n', "utf-8")
    with pytest.raises(Exception, match=r"bad\.jsonl:1: needs 'answers'"):
        load_qa(bad)


# -- the evaluator, with a scripted answerer ----------------------------------------------------
def _hit(source: str, text: str, chunk: str) -> Hit:
    return Hit(0.5, source, None, None, text, None, chunk, 0, len(text))


@dataclass
class _Answer:
    text: str
    passages: list[Hit]
    refused: bool = False
    citations: list = field(default_factory=list)


class _ScriptedAnswerer:
    def __init__(self, answers: dict[str, _Answer]) -> None:
        self.answers = answers

    def answer(self, question: str) -> _Answer:
        return self.answers[question]


def test_answer_evaluator_scores_each_question():
    rent = _hit("docs/youth.md", KO_RENT, "c-rent")
    bus = _hit("docs/youth.md", KO_BUS, "c-bus")
    other = _hit("docs/city.txt", "Libraries open at nine.", "c-lib")
    answerer = _ScriptedAnswerer(
        {
            # gold by file name, answer present, valid citation of the gold passage
            "q1": _Answer("월 최대 20만 원을 지원한다 [1].", [rent, other]),
            # gold by context text; cites a passage that does not exist
            "q2": _Answer("만 19세에서 24세 [3]", [other, bus]),
            # refusal: left out of citation validity
            "q3": _Answer("찾지 못했습니다.", [other], refused=True),
        }
    )
    items = [
        QAItem("1", "q1", ["20만 원"], gold=["youth.md"]),
        QAItem("2", "q2", ["만 19세에서 24세"], contexts=[KO_BUS]),
        QAItem("3", "q3", ["열 권"], gold=["city.txt"]),
    ]
    rankings = {"q1": [rent, other], "q2": [other, bus], "q3": [rent, bus]}
    result = AnswerEvaluator().evaluate(answerer, items, search=lambda q, k: rankings[q][:k])
    rows = {r["id"]: r for r in result.items}
    assert rows["1"]["retrieval_hit"] == 1.0 and rows["1"]["citation_valid"] == 1.0
    assert rows["1"]["cites_gold"] == 1.0 and rows["1"]["span_hit"] == 1.0
    assert rows["2"]["retrieval_hit"] == 1.0 and rows["2"]["citation_valid"] == 0.0
    assert rows["2"]["exact_match"] == 1.0 and rows["2"]["token_f1"] == pytest.approx(1.0)
    assert "citation_valid" not in rows["3"] and rows["3"]["refused"] is True
    # the answer was given city.txt (gold), but the top-k search found only youth.md
    assert rows["3"]["retrieval_hit"] == 1.0 and rows["3"]["gold_rank"] is None
    assert rows["1"]["gold_rank"] == 1 and rows["2"]["gold_rank"] == 2
    assert rows["2"]["MRR@10"] == 0.5
    assert result.refused == 1 and result.n == 3
    assert result.metrics["citation_valid"].n == 2  # refusals excluded
    assert result.metrics["R@1"].mean == pytest.approx(1 / 3)
    assert result.settings["answers"]["token_f1"].startswith("characters")

    shallow = AnswerEvaluator(retrieval_k=1).evaluate(
        answerer, items, search=lambda q, k: rankings[q][:k]
    )
    assert {"R@1", "MRR@1", "nDCG@1"} <= set(shallow.metrics) and "R@5" not in shallow.metrics
    assert shallow.fingerprint != result.fingerprint  # retrieval depth is a metric setting


# -- `polisum eval answers` on a real index -------------------------------------------------------
def test_cli_eval_answers_with_the_extractive_answerer(docs: Path, tmp_path: Path, monkeypatch):
    pytest.importorskip("polisum.chat", reason="the answerer (issue 6) is not in this checkout")
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["ingest", str(docs), "--json"]).exit_code == 0
    qa = tmp_path / "qa.jsonl"
    rows = [
        {"id": "rent", "question": "청년 월세 지원은 한 달에 최대 얼마인가?",
         "answers": ["20만 원"], "gold": ["youth.md"]},
        {"id": "bus", "question": "청년 교통비 지원 대상 나이는?",
         "answers": ["만 19세에서 24세"], "context": KO_BUS},
    ]  # fmt: skip
    qa.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    run_dir = tmp_path / "run"
    result = runner.invoke(
        app, ["eval", "answers", "--qa", str(qa), "--out", str(run_dir), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["n"] == 2
    metrics = data["metrics"]
    # Both gold passages are in this four-paragraph index and the extractive answerer quotes
    # the best sentences with [n]: retrieval and citations must be right.
    assert metrics["retrieval_hit"]["mean"] == 1.0
    assert metrics["R@5"]["mean"] == 1.0
    assert metrics["citation_valid"]["mean"] == 1.0
    assert 0 < metrics["token_f1"]["mean"] < 1  # sentences vs short spans
    items = [
        json.loads(line)
        for line in (run_dir / "items.jsonl").read_text("utf-8").split("\n")
        if line
    ]
    assert {i["id"] for i in items} == {"rent", "bus"}
    assert all(i["answer"] for i in items)
    assert json.loads((run_dir / "run.json").read_text("utf-8"))["info"]["inputs"]["generator"] == (
        "extractive"
    )

    missing = runner.invoke(app, ["eval", "answers", "--qa", str(tmp_path / "none.jsonl")])
    assert missing.exit_code == 2 and "none.jsonl" in missing.output
