"""Offline extractive summaries: the most central sentences of a paragraph, in source order."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from polisum.summarize.result import SummaryResult
from polisum.text import Sentence, split_sentences_many, terms_many


class ExtractiveSummarizer:
    """Degree centrality over sentence term vectors (LexRank without the random walk, which
    adds nothing for the handful of sentences a paragraph holds), plus a small bonus for the
    first sentence, where policy and news writing put the point.
    """

    def __init__(self, max_chars: int = 300, max_sentences: int = 3, lead_bonus: float = 0.1):
        self.max_chars = max_chars
        self.max_sentences = max_sentences
        self.lead_bonus = lead_bonus
        self.name = f"extractive-v1(max_chars={max_chars},max_sentences={max_sentences})"

    def summarize(self, texts: list[str]) -> list[str]:
        return [r.summary for r in self.summarize_detailed(texts)]

    def summarize_detailed(self, texts: list[str]) -> list[SummaryResult]:
        """Summaries of many paragraphs: Kiwi splits and analyses the whole batch at once, on
        all its worker threads; each summary depends on its own paragraph only. A summary made
        of whole sentences records their spans in the paragraph as given."""
        lead = [len(t) - len(t.lstrip()) for t in texts]
        texts = [t.strip() for t in texts]
        long = [i for i, t in enumerate(texts) if len(t) > self.max_chars]
        split = split_sentences_many([texts[i] for i in long])
        sentence_terms = iter(terms_many([s.text for ss in split if len(ss) > 1 for s in ss]))
        out = [SummaryResult(t, method="extractive") for t in texts]
        for i, sentences in zip(long, split, strict=True):
            if len(sentences) <= 1:
                out[i] = SummaryResult(self._truncate(texts[i]), method="extractive")
                continue
            chosen, best = self._pick(sentences, [next(sentence_terms) for _ in sentences])
            if not chosen:  # every sentence is longer than the cap
                out[i] = SummaryResult(self._truncate(sentences[best].text), method="extractive")
                continue
            spans = [_stripped_span(sentences[j], lead[i]) for j in chosen]
            summary = " ".join(sentences[j].text.strip() for j in chosen)
            out[i] = SummaryResult(summary, method="extractive", spans=spans)
        return out

    def summarize_one(self, text: str) -> str:
        return self.summarize([text])[0]

    def _pick(
        self, sentences: list[Sentence], sentence_terms: list[list[str]]
    ) -> tuple[list[int], int]:
        """The chosen sentences' indexes in source order (empty when none fits the cap), and
        the most central sentence's."""
        scores = self._centrality(sentence_terms)
        scores[0] += self.lead_bonus
        chosen: list[int] = []
        used = 0
        for i in np.argsort(-scores, kind="stable"):
            length = len(sentences[i].text) + (1 if chosen else 0)
            if len(chosen) >= self.max_sentences:
                break
            if used + length > self.max_chars:
                continue
            chosen.append(int(i))
            used += length
        return sorted(chosen), int(np.argmax(scores))

    def _truncate(self, text: str) -> str:
        if len(text) <= self.max_chars:
            return text
        cut = text.rfind(" ", 0, self.max_chars - 1)
        return text[: cut if cut > self.max_chars // 2 else self.max_chars - 1].rstrip() + "…"

    @staticmethod
    def _centrality(sentence_terms: list[list[str]]) -> np.ndarray:
        n = len(sentence_terms)
        df = Counter(t for ts in sentence_terms for t in set(ts))
        vocab = {t: i for i, t in enumerate(df)}
        mat = np.zeros((n, len(vocab)), dtype=np.float32)
        for row, ts in enumerate(sentence_terms):
            for term, tf in Counter(ts).items():
                idf = math.log((1 + n) / (1 + df[term])) + 1.0
                mat[row, vocab[term]] = (1 + math.log(tf)) * idf
        norms = np.linalg.norm(mat, axis=1, keepdims=True)
        mat = mat / np.maximum(norms, 1e-9)
        sim = mat @ mat.T
        np.fill_diagonal(sim, 0.0)
        return sim.sum(axis=1) / max(n - 1, 1)


def _stripped_span(sentence: Sentence, offset: int) -> tuple[int, int]:
    """The sentence's span without its surrounding whitespace, in the unstripped paragraph."""
    text = sentence.text
    start = sentence.start + len(text) - len(text.lstrip())
    end = sentence.end - (len(text) - len(text.rstrip()))
    return offset + start, offset + end
