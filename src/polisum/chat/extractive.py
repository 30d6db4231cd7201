"""The offline answerer: the sentences of the top passages that best match the question.

It needs no model, so ``polisum query --answer`` is useful before any generator is configured.
Sentences are scored by the IDF-weighted question terms (Kiwi content morphemes) they contain,
with a prior for the passage's retrieval rank; the best ones are quoted with their citation.
A quote cites the passage it comes from and nothing else: ``[n]`` markers inside the quoted text
are neutralised to ``(n)``, or a document ending "... 500,000 won [2]." would cite passage [2].
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from polisum.chat.citations import neutralize_markers
from polisum.text import split_sentences, terms
from polisum.types import Hit


@dataclass(frozen=True)
class ExtractiveAnswerer:
    max_sentences: int = 2
    max_passages: int = 3
    # A second sentence is added only when it scores this close to the best one: quoting a
    # weak sentence lowers precision more than it adds answers (benchmarks/answer_quality.py).
    second_ratio: float = 0.7
    rank_decay: float = 0.15

    def answer(self, question: str, hits: Sequence[Hit]) -> tuple[str, list[int]]:
        """Answer text with ``[n]`` markers (n: 1-based index into ``hits``), and the n used."""
        q_terms = set(terms(question))
        candidates: list[tuple[int, int, str, set[str]]] = []  # (passage no, order, text, terms)
        for number, hit in enumerate(hits[: self.max_passages], 1):
            for order, sent in enumerate(split_sentences(hit.text)):
                candidates.append((number, order, sent.text.strip(), set(terms(sent.text))))
        if not candidates:
            return "", []
        df = Counter(t for *_, ts in candidates for t in ts)
        n = len(candidates)
        scored = []
        for number, order, text, ts in candidates:
            overlap = sum(math.log(1 + n / df[t]) for t in q_terms & ts)
            prior = 1.0 - self.rank_decay * (number - 1)
            scored.append((overlap * prior, -number, -order, number, order, text))
        scored.sort(reverse=True)
        best = scored[0]
        if best[0] <= 0:  # no sentence shares a term: fall back to the top passage's opening
            chosen = [next(c for c in scored if c[3] == 1 and c[4] == 0)]
        else:
            chosen = [best]
            for cand in scored[1:]:
                if len(chosen) >= self.max_sentences or cand[0] < self.second_ratio * best[0]:
                    break
                chosen.append(cand)
        chosen.sort(key=lambda c: (c[3], c[4]))  # reading order reads better than score order
        parts = [f"{neutralize_markers(c[5])} [{c[3]}]" for c in chosen]
        return " ".join(parts), sorted({c[3] for c in chosen})
