"""Offline extractive summaries: the most central sentences of a paragraph, in source order."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

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
        """Summaries of many paragraphs: Kiwi splits and analyses the whole batch at once, on
        all its worker threads; each summary depends on its own paragraph only."""
        texts = [t.strip() for t in texts]
        long = [i for i, t in enumerate(texts) if len(t) > self.max_chars]
        split = split_sentences_many([texts[i] for i in long])
        sentence_terms = iter(terms_many([s.text for ss in split if len(ss) > 1 for s in ss]))
        out = list(texts)
        for i, sentences in zip(long, split, strict=True):
            if len(sentences) <= 1:
                out[i] = self._truncate(texts[i])
            else:
                out[i] = self._pick(sentences, [next(sentence_terms) for _ in sentences])
        return out

    def summarize_one(self, text: str) -> str:
        return self.summarize([text])[0]

    def _pick(self, sentences: list[Sentence], sentence_terms: list[list[str]]) -> str:
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
        if not chosen:  # every sentence is longer than the cap
            return self._truncate(sentences[int(np.argmax(scores))].text)
        return " ".join(sentences[i].text.strip() for i in sorted(chosen))

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
