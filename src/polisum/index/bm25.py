"""BM25 over Kiwi content morphemes (Korean) and lower-cased words (other languages)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path

import bm25s
import numpy as np

from polisum.index.files import atomic_publish_dir

# BM25+ with k1=1.2 was best of lucene/bm25+ × k1 1.2/1.5 on a KorQuAD dev split. Every backend
# scores with these (polisum.index.bm25_sparse weights a Milvus sparse vector with them).
METHOD = "bm25+"
K1 = 1.2
B = 0.75
DELTA = 0.5  # bm25s's default; it cancels out of the scores (see BM25Index.scores)


class BM25Index:
    """A bm25s index whose rows map to chunk ids. bm25s cannot delete rows, so the index is
    rebuilt from the terms stored in SQLite whenever the chunk set changes; that takes seconds
    even at 100k chunks because no text is re-tokenized."""

    def __init__(self, retriever: bm25s.BM25 | None, ids: np.ndarray) -> None:
        self._retriever = retriever
        self.ids = ids
        self._vocab: dict[str, int] = retriever.vocab_dict if retriever is not None else {}

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(cls, ids: np.ndarray, corpus_terms: Iterable[list[str]]) -> BM25Index:
        """An index whose row i holds ``corpus_terms[i]`` and maps to ``ids[i]``."""
        return cls.from_rows(zip(ids.tolist(), corpus_terms, strict=True))

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[int, list[str]]]) -> BM25Index:
        """An index from (chunk id, terms) rows, which may be a stream (a SQLite cursor): each
        row becomes vocabulary ids as it arrives, so 100k rows never exist as lists of strings
        at once (~4 KB a row as strings, ~0.5 KB as ids)."""
        ids: list[int] = []
        vocab: dict[str, int] = {}
        token_ids: list[list[int]] = []
        for chunk_id, terms in rows:
            ids.append(chunk_id)
            token_ids.append([vocab.setdefault(t, len(vocab)) for t in terms])
        id_array = np.asarray(ids, dtype=np.int64)
        if not ids:
            return cls(None, id_array)
        retriever = bm25s.BM25(method=METHOD, k1=K1, b=B, delta=DELTA)
        corpus = bm25s.tokenization.Tokenized(ids=token_ids, vocab=vocab)
        retriever.index(corpus, show_progress=False)
        return cls(retriever, id_array)

    def scores(self, query_terms: list[str]) -> np.ndarray:
        """BM25 score of every row (aligned with ``ids``): 0 for a row that shares no term with
        the query, so the BM25 candidate pool holds only rows that match.

        bm25s's BM25+ adds ``delta * idf(t)`` of every query term to every row (its
        "non-occurrence" array), a constant per query: it changes no ranking, but it made every
        row score above 0, and the pool of a query matching fewer than ``n`` rows was padded
        with arbitrary ones. It is subtracted here. What remains is
        ``sum over query terms t in the row of idf(t) * (k1 + 1) * tf / (k1 * norm + tf)``,
        with ``idf(t) = log((N + 1) / df(t))``: what polisum.index.bm25_sparse computes."""
        known = [self._vocab[t] for t in query_terms if t in self._vocab]
        if self._retriever is None or not known:
            return np.zeros(len(self.ids), dtype=np.float32)
        scores = self._retriever.get_scores_from_ids(known).astype(np.float32)
        constant = self._retriever.nonoccurrence_array
        if constant is not None:
            scores -= constant[np.asarray(known)].sum(dtype=np.float32)
        return scores

    def save(self, path: Path) -> None:
        staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
        np.save(staging / "ids.npy", self.ids, allow_pickle=False)
        (staging / "empty.json").write_text(json.dumps({"empty": self._retriever is None}))
        if self._retriever is not None:
            self._retriever.save(str(staging), show_progress=False)
        atomic_publish_dir(staging, path)

    @classmethod
    def load(cls, path: Path) -> BM25Index:
        ids = np.load(path / "ids.npy", allow_pickle=False)
        if json.loads((path / "empty.json").read_text())["empty"]:
            return cls(None, ids)
        retriever = bm25s.BM25.load(str(path), load_corpus=False)
        return cls(retriever, ids)
