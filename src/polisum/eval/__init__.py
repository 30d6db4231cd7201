"""Evaluation: text metrics (ROUGE with Korean morphemes, BERTScore), answer metrics, ranking
metrics, bootstrap confidence intervals, saved runs and reports.

>>> from polisum.eval import TextEvaluator, TextMetricSettings
>>> result = TextEvaluator(TextMetricSettings(metrics=("rouge",), lang="ko")).evaluate(
...     ["청년 월세를 지원한다"], ["서울시는 청년 월세를 지원한다"])
>>> result.metrics["rouge1"].mean > 0
True

The heavy libraries (rouge-score, bert-score, scipy, matplotlib) are the ``eval`` extra:
``pip install "polisum[eval]"``.
"""

from polisum.eval.answers import (
    AnswerEvaluator,
    QAItem,
    answer_span_hit,
    exact_match,
    load_qa,
    token_f1,
)
from polisum.eval.retrieval import hit_at_k, mrr_at_k, ndcg_at_k, recall_at_k, retrieval_metrics
from polisum.eval.runs import EvalRun, RunError, SettingsMismatchError, check_comparable
from polisum.eval.stats import MetricSummary, bootstrap_ci
from polisum.eval.text import (
    KiwiRougeTokenizer,
    TextEvalResult,
    TextEvaluator,
    TextMetricError,
    TextMetricSettings,
)

__all__ = [
    "AnswerEvaluator",
    "EvalRun",
    "KiwiRougeTokenizer",
    "MetricSummary",
    "QAItem",
    "RunError",
    "SettingsMismatchError",
    "TextEvalResult",
    "TextEvaluator",
    "TextMetricError",
    "TextMetricSettings",
    "answer_span_hit",
    "bootstrap_ci",
    "check_comparable",
    "exact_match",
    "hit_at_k",
    "load_qa",
    "mrr_at_k",
    "ndcg_at_k",
    "recall_at_k",
    "retrieval_metrics",
    "token_f1",
]
