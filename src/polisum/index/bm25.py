"""BM25 over Kiwi content morphemes (Korean) and lower-cased words (other languages)."""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
from collections.abc import Iterable, Iterator
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


def context_windows(
    rows: Iterable[tuple[int, int, list[str]]], radius: int = 1
) -> Iterator[tuple[int, list[str]]]:
    """(chunk id, terms of the chunk and of the ``radius`` chunks before and after it in the
    same document) from (chunk id, document id, terms) rows in reading order, document by
    document (StoreView.iter_terms_by_document).

    A window index gives each chunk the lexical evidence of its context: a question about a
    page whose words fall in two of its chunks matches both chunks' windows, while each chunk
    alone holds half of them. Unlike whole-document BM25 it stays local in long files."""
    for _, group in itertools.groupby(rows, key=lambda row: row[1]):
        chunks = [(chunk_id, terms) for chunk_id, _, terms in group]
        for i, (chunk_id, _) in enumerate(chunks):
            lo, hi = max(0, i - radius), min(len(chunks), i + radius + 1)
            yield chunk_id, [t for _, terms in chunks[lo:hi] for t in terms]


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
        """An index where chunk ``ids[i]`` holds ``corpus_terms[i]``."""
        return cls.from_rows(zip(ids.tolist(), corpus_terms, strict=True))

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[int, list[str]]]) -> BM25Index:
        """An index from (chunk id, terms) rows, which may be a stream (a SQLite cursor): each
        row becomes vocabulary ids as it arrives, so 100k rows never exist as lists of strings
        at once (~4 KB a row as strings, ~0.5 KB as ids). Rows are kept in id order."""
        ids: list[int] = []
        vocab: dict[str, int] = {}
        token_ids: list[list[int]] = []
        for chunk_id, terms in rows:
            ids.append(chunk_id)
            token_ids.append([vocab.setdefault(t, len(vocab)) for t in terms])
        id_array = np.asarray(ids, dtype=np.int64)
        if not ids:
            return cls(None, id_array)
        if np.any(np.diff(id_array) < 0):  # rows in reading order: ids are looked up by bisection
            order = np.argsort(id_array, kind="stable")
            id_array = id_array[order]
            token_ids = [token_ids[i] for i in order]
        retriever = bm25s.BM25(method=METHOD, k1=K1, b=B, delta=DELTA)
        corpus = bm25s.tokenization.Tokenized(ids=token_ids, vocab=vocab)
        retriever.index(corpus, show_progress=False)
        return cls(retriever, id_array)

    def scores(self, query_terms: list[str]) -> np.ndarray:
        """BM25 score of every row (aligned with ``ids``, which are ascending): 0 for a row
        that shares no term with the query, so a BM25 candidate pool holds only rows that match.

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
        try:
            np.save(staging / "ids.npy", self.ids, allow_pickle=False)
            (staging / "empty.json").write_text(json.dumps({"empty": self._retriever is None}))
            if self._retriever is not None:
                self._retriever.save(str(staging), show_progress=False)
            atomic_publish_dir(staging, path)
        except BaseException:  # a failed write (a full disk) leaves no staging folder behind
            shutil.rmtree(staging, ignore_errors=True)
            raise

    @classmethod
    def load(cls, path: Path) -> BM25Index:
        ids = np.load(path / "ids.npy", allow_pickle=False)
        if json.loads((path / "empty.json").read_text())["empty"]:
            return cls(None, ids)
        retriever = bm25s.BM25.load(str(path), load_corpus=False)
        return cls(retriever, ids)
