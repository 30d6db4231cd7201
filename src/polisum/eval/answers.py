"""Answer quality over a QA set: retrieval hit, answer-span hit, exact match, token F1,
citation validity, and the text metrics of ``polisum.eval.text``.

QA files are KorQuAD/SQuAD JSON (``data → paragraphs → qas``; the paragraph is the gold context)
or JSONL lines ``{"id"?, "question" | "query", "answers": [...], "gold"?: [source or chunk ids],
"context"?: str}``.

Token F1 follows each dataset's official script. English: SQuAD v1.1 (lower-case, punctuation
and articles removed, whitespace tokens). Korean: KorQuAD 1.0 (the same normalisation with
Korean quotation marks, then F1 over *characters* with whitespace removed), because Korean
attaches particles to words and whitespace tokens would count "서울시는" and "서울시" as a miss.
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from polisum.eval.retrieval import first_relevant_rank, retrieval_metrics
from polisum.eval.runs import EvalRun, provenance
from polisum.eval.stats import MetricSummary, bootstrap_ci
from polisum.eval.text import (
    TextEvaluator,
    TextMetricError,
    TextMetricSettings,
    fingerprint,
    resolve_lang,
)
from polisum.jsonl import JsonlError, parse_jsonl_lines

__all__ = [
    "AnswerEvaluator",
    "QAItem",
    "answer_span_hit",
    "cited_numbers",
    "exact_match",
    "load_qa",
    "normalize_answer",
    "token_f1",
]

_CITATION = re.compile(r"\[(\d+(?:\s*[,–-]\s*\d+)*)\]")
_KO_PUNCT = "‘’´`《》〈〉「」『』·…“”"
_ARTICLES = re.compile(r"\b(a|an|the)\b")


@dataclass(frozen=True)
class QAItem:
    id: str
    question: str
    answers: list[str]
    gold: list[str] = field(default_factory=list)  # source paths/names or chunk ids
    contexts: list[str] = field(default_factory=list)  # gold passage text (SQuAD context)

    @property
    def has_gold(self) -> bool:
        return bool(self.gold or self.contexts)


def load_qa(path: Path, limit: int | None = None) -> list[QAItem]:
    """QA items from SQuAD/KorQuAD JSON or JSONL; ``limit`` keeps the first N in file order."""
    path = Path(path)
    if not path.is_file():
        raise TextMetricError(f"{path}: QA file not found")
    text = path.read_text(encoding="utf-8-sig")
    stripped = text.lstrip()
    items: list[QAItem]
    if stripped.startswith("{") and '"data"' in stripped[:200]:
        items = _load_squad(path, text)
    else:
        items = _load_jsonl(path, text)
    if not items:
        raise TextMetricError(f"{path}: no questions")
    return items[:limit] if limit else items


def _load_squad(path: Path, text: str) -> list[QAItem]:
    try:
        data = json.loads(text)["data"]
        items = []
        for article in data:
            for para in article["paragraphs"]:
                for qa in para["qas"]:
                    answers = [a["text"] for a in qa.get("answers", []) if a.get("text")]
                    if not answers:  # SQuAD 2.0 unanswerable: nothing to score against
                        continue
                    items.append(
                        QAItem(str(qa["id"]), qa["question"], answers, [], [para["context"]])
                    )
        return items
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise TextMetricError(f"{path}: not SQuAD/KorQuAD JSON ({exc!r})") from exc


def _load_jsonl(path: Path, text: str) -> list[QAItem]:
    items = []
    try:
        rows = parse_jsonl_lines(path, text.splitlines())
    except JsonlError as exc:
        raise TextMetricError(str(exc)) from None
    for n, row in rows:
        question = row.get("question", row.get("query"))
        if not isinstance(question, str) or not question.strip():
            raise TextMetricError(f"{path}:{n}: needs a non-empty 'question' (or 'query')")
        answers = row.get("answers", row.get("answer", []))
        if isinstance(answers, str):
            answers = [answers]
        answers = [a["text"] if isinstance(a, dict) else a for a in answers]
        if not answers or not all(isinstance(a, str) and a.strip() for a in answers):
            raise TextMetricError(f"{path}:{n}: needs 'answers' (a string or a list of strings)")
        gold = row.get("gold", [])
        gold = [gold] if isinstance(gold, str) else [str(g) for g in gold]
        context = row.get("context")
        contexts = [context] if isinstance(context, str) and context.strip() else []
        items.append(QAItem(str(row.get("id", n)), question, answers, gold, contexts))
    return items


# -- answer-text metrics ----------------------------------------------------------------------
def normalize_answer(text: str, lang: str = "en") -> str:
    """SQuAD v1.1 normalisation; for Korean, KorQuAD 1.0's (no English articles removed, Korean
    quotation marks and brackets removed too)."""
    text = unicodedata.normalize("NFKC", text).lower()
    punct = set(string.punctuation) | set(_KO_PUNCT)
    text = "".join(" " if ch in punct else ch for ch in text)
    if lang == "en":
        text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _tokens(text: str, lang: str) -> list[str]:
    norm = normalize_answer(text, lang)
    return list(norm.replace(" ", "")) if lang == "ko" else norm.split()


def token_f1(prediction: str, answers: Sequence[str], lang: str = "en") -> float:
    """Max over gold answers of the bag-of-tokens F1 (characters for Korean, see module doc)."""
    best = 0.0
    pred = _tokens(prediction, lang)
    for answer in answers:
        gold = _tokens(answer, lang)
        common = sum((Counter(pred) & Counter(gold)).values())
        if common == 0:
            continue
        precision, recall = common / len(pred), common / len(gold)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def exact_match(prediction: str, answers: Sequence[str], lang: str = "en") -> float:
    norm = normalize_answer(prediction, lang)
    return float(any(norm == normalize_answer(a, lang) for a in answers))


def answer_span_hit(prediction: str, answers: Sequence[str], lang: str = "en") -> float:
    """1.0 when a gold answer occurs inside the (normalised) answer text: the fair measure for
    answers that are sentences rather than spans, which EM and F1 penalise for their length."""
    norm = normalize_answer(prediction, lang).replace(" ", "")
    return float(any(normalize_answer(a, lang).replace(" ", "") in norm for a in answers if a))


def cited_numbers(text: str) -> list[int]:
    """Passage numbers cited as ``[1]``, ``[1, 2]`` or ``[1-3]`` in ``text``, first use first.

    Parsed here rather than taken from the answerer, so the check does not trust the code it
    checks."""
    seen: list[int] = []
    for marker in _CITATION.finditer(text):
        for part in re.split(r"\s*,\s*", marker.group(1)):
            bounds = [int(x) for x in re.split(r"\s*[–-]\s*", part)]
            lo, hi = bounds[0], bounds[-1]
            # A reversed or huge range is a typo, not a request for 1,000 citations.
            for n in range(lo, hi + 1) if 0 <= hi - lo <= 20 else (lo, hi):
                if n not in seen:
                    seen.append(n)
    return seen


# -- passages vs gold -------------------------------------------------------------------------
def _squash(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split())


def passage_label(passage: Any, item: QAItem) -> str:
    """The gold id a retrieved passage matches, or its own chunk id when it matches none.

    A passage matches a gold id when the id is its chunk id, source, file name or file stem; it
    matches a gold context when either text contains the other (chunking may split a context
    into several passages or merge it with a neighbour), whitespace ignored."""
    source = str(getattr(passage, "source", "") or "")
    chunk_id = str(getattr(passage, "chunk_id", "") or "")
    names = {chunk_id, source, Path(source).name, Path(source).stem}
    for gold in item.gold:
        if gold in names:
            return gold
    text = _squash(str(getattr(passage, "text", "") or ""))
    for i, ctx in enumerate(item.contexts):
        squashed = _squash(ctx)
        if text and (text in squashed or squashed in text):
            return f"context:{i}"
    return f"chunk:{chunk_id or id(passage)}"


def _gold_labels(item: QAItem) -> set[str]:
    return set(item.gold) | {f"context:{i}" for i in range(len(item.contexts))}


# -- the run ----------------------------------------------------------------------------------
class AnswererLike(Protocol):
    def answer(self, question: str) -> Any: ...


@dataclass
class AnswerEvalResult:
    settings: dict[str, Any]
    fingerprint: str
    metrics: dict[str, MetricSummary]
    items: list[dict[str, Any]]
    n: int
    empty_predictions: int
    refused: int

    def to_run(self, name: str, **inputs: Any) -> EvalRun:
        """This result as a saveable run; ``inputs`` (QA file, index, generator) go with it."""
        info = provenance(
            n=self.n, empty_predictions=self.empty_predictions, refused=self.refused, inputs=inputs
        )
        return EvalRun(
            "answers", name, self.settings, self.fingerprint, self.metrics, self.items, info
        )


class AnswerEvaluator:
    """Runs an answerer over QA items and scores each answer.

    Per question: ``retrieval_hit`` (a gold passage among the passages the answer was given),
    ``R@k``/``MRR@10``/``nDCG@10`` over a separate top-``retrieval_k`` search (the curve in the
    report), ``span_hit``, ``exact_match``, ``token_f1`` (all on the text without ``[n]``),
    ``citation_valid`` (at least one ``[n]`` and every n names a given passage; refusals are left
    out) and ``cites_gold`` (a cited passage is gold), plus ROUGE/BERTScore against the gold
    answers.
    """

    def __init__(
        self,
        text_settings: TextMetricSettings | None = None,
        retrieval_k: int = 10,
    ) -> None:
        self.text_settings = text_settings or TextMetricSettings(metrics=("rouge",))
        self.retrieval_k = retrieval_k

    def evaluate(
        self,
        answerer: AnswererLike,
        items: Sequence[QAItem],
        search: Callable[[str, int], Sequence[Any]] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> AnswerEvalResult:
        if not items:
            raise TextMetricError("no QA items to evaluate")
        lang = resolve_lang(
            self.text_settings.lang, [f"{q.question} {' '.join(q.answers)}" for q in items]
        )
        rows: list[dict[str, Any]] = []
        texts: list[str] = []
        for item in items:
            answer = answerer.answer(item.question)
            text = str(getattr(answer, "text", answer) or "")
            passages = list(getattr(answer, "passages", []) or [])
            refused = bool(getattr(answer, "refused", False))
            # Citation markers are not content: scoring them would penalise citing.
            plain = " ".join(_CITATION.sub(" ", text).split())
            row: dict[str, Any] = {
                "id": item.id,
                "question": item.question,
                "answer": text,
                "refused": refused,
                "empty": not plain,
                "span_hit": answer_span_hit(plain, item.answers, lang),
                "exact_match": exact_match(plain, item.answers, lang),
                "token_f1": token_f1(plain, item.answers, lang),
            }
            labels = [passage_label(p, item) for p in passages]
            gold = _gold_labels(item)
            if item.has_gold:
                row["retrieval_hit"] = float(bool(gold.intersection(labels)))
            cited = cited_numbers(text)
            if not refused:
                valid = bool(cited) and all(1 <= n <= len(passages) for n in cited)
                row["citation_valid"] = float(valid)
                if item.has_gold:
                    cited_labels = {labels[n - 1] for n in cited if 1 <= n <= len(passages)}
                    row["cites_gold"] = float(bool(gold & cited_labels))
            row["cited"] = cited
            if search is not None and item.has_gold:
                ranking = [passage_label(h, item) for h in search(item.question, self.retrieval_k)]
                row["gold_rank"] = first_relevant_rank(ranking, gold)
                row["ranking"] = ranking
            rows.append(row)
            texts.append(plain)
            if progress:
                progress(1)

        per_metric: dict[str, list[float | None]] = {
            k: [r.get(k) for r in rows]
            for k in (
                "retrieval_hit", "span_hit", "exact_match", "token_f1", "citation_valid",
                "cites_gold",
            )
        }  # fmt: skip
        ranked_rows = [r for r in rows if "ranking" in r]
        if ranked_rows:
            golds = [_gold_labels(q) for q in items if q.has_gold]
            ret = retrieval_metrics(
                [r["ranking"] for r in ranked_rows],
                golds,
                ks=sorted({1, 5, self.retrieval_k} & set(range(1, self.retrieval_k + 1))),
                cutoff=self.retrieval_k,
            )
            for name, values in ret.items():
                for r, v in zip(ranked_rows, values, strict=True):
                    r[name] = v
                per_metric[name] = [r.get(name) for r in rows]

        # one language decision for the whole run, shared with the text metrics
        text_result = TextEvaluator(replace(self.text_settings, lang=lang)).evaluate(
            texts, [q.answers for q in items], ids=[q.id for q in items]
        )
        for row, scores in zip(rows, text_result.items, strict=True):
            row.update({k: v for k, v in scores.items() if k not in ("id", "empty")})
        s = self.text_settings
        metrics: dict[str, MetricSummary] = {}
        for name, values in per_metric.items():
            present = [v for v in values if v is not None]
            if present:
                metrics[name] = bootstrap_ci(present, s.confidence, s.n_resamples, s.seed)
        metrics.update(text_result.metrics)
        settings = {
            **text_result.settings,
            "answers": {
                "token_f1": "characters (KorQuAD 1.0)" if lang == "ko" else "words (SQuAD 1.1)",
                "span_hit": "normalised gold answer inside normalised answer",
                "citations": "[n] markers parsed from the answer text",
                "retrieval_k": self.retrieval_k,
            },
        }
        return AnswerEvalResult(
            settings=settings,
            fingerprint=fingerprint(settings),
            metrics=metrics,
            items=rows,
            n=len(rows),
            empty_predictions=sum(r["empty"] for r in rows),
            refused=sum(r["refused"] for r in rows),
        )
