"""BM25 as a sparse inner product (polisum.index.bm25_sparse) against polisum's local BM25
(bm25s), of chunks and of their context windows, the context windows the Milvus publisher makes
from the store, and the Milvus filter expressions. No Milvus needed."""

from __future__ import annotations

import numpy as np
import pytest

from polisum.index import bm25_sparse
from polisum.index.backend import SearchFilter
from polisum.index.bm25 import BM25Index, context_windows
from polisum.index.milvus_conn import MilvusError
from polisum.index.milvus_rows import store_records
from polisum.index.milvus_schema import (
    BM25,
    BM25_PARAMS,
    FORMAT,
    LEXICAL,
    check_info,
    extension,
    lexical_of,
    outdated,
    quote,
    where_expression,
)
from polisum.index.records import ChunkRow, DocumentUpdate
from polisum.index.store import MetadataStore


@pytest.fixture(scope="module")
def corpus() -> list[list[str]]:
    """300 chunks of Zipf-distributed terms, lengths 0-120 (one empty chunk)."""
    rng = np.random.default_rng(7)
    vocab = [f"t{i}" for i in range(400)]
    docs = [[]]
    for _ in range(299):
        n = int(rng.integers(1, 120))
        docs.append([vocab[min(int(rng.zipf(1.3)) - 1, 399)] for _ in range(n)])
    return docs


def _sparse_side(docs: list[list[str]], mean: float):
    df: dict[str, int] = {}
    for d in docs:
        for t in set(d):
            df[t] = df.get(t, 0) + 1
    term_ids = {t: i for i, t in enumerate(sorted(df))}
    vocabulary = {t: (term_ids[t], df[t]) for t in df}
    vectors = [bm25_sparse.document_vector(d, term_ids, mean)[0] for d in docs]
    return vocabulary, vectors


QUERIES = [["t0", "t3"], ["t17", "t17", "t250"], ["t5", "t9", "t40", "t399", "unknown"], ["t1"]]


@pytest.mark.parametrize("query", QUERIES)
def test_sparse_inner_product_equals_local_bm25(corpus, query):
    local = BM25Index.build(np.arange(len(corpus)), corpus).scores(query)
    mean = bm25_sparse.avgdl(sum(map(len, corpus)), len(corpus))
    vocabulary, vectors = _sparse_side(corpus, mean)
    q = bm25_sparse.query_vector(bm25_sparse.query_counts(query), vocabulary, len(corpus))
    inner = np.asarray([sum(w * v.get(t, 0.0) for t, w in q.items()) for v in vectors])
    np.testing.assert_allclose(inner, local, rtol=2e-6, atol=1e-5)
    # a chunk sharing no term with the query scores exactly 0 on both sides
    assert ((inner == 0) == (local == 0)).all() and (local == 0).any()
    exact = bm25_sparse.exact_scores(
        q, vectors, np.asarray([len(d) for d in corpus], float), np.full(len(corpus), mean), mean
    )
    np.testing.assert_allclose(exact, local, rtol=2e-6, atol=1e-5)


def test_scores_stay_exact_when_rows_were_weighted_with_an_older_avgdl(corpus):
    """Rows weighted when avgdl was 20% lower score as if weighted with today's avgdl."""
    query = ["t2", "t11", "t11", "t60"]
    local = BM25Index.build(np.arange(len(corpus)), corpus).scores(query)
    mean = bm25_sparse.avgdl(sum(map(len, corpus)), len(corpus))
    vocabulary, stale = _sparse_side(corpus, mean * 0.8)
    q = bm25_sparse.query_vector(bm25_sparse.query_counts(query), vocabulary, len(corpus))
    dl = np.asarray([len(d) for d in corpus], float)
    exact = bm25_sparse.exact_scores(q, stale, dl, np.full(len(corpus), mean * 0.8), mean)
    np.testing.assert_allclose(exact, local, rtol=2e-6, atol=1e-5)
    inner = np.asarray([sum(w * v.get(t, 0.0) for t, w in q.items()) for v in stale])
    assert not np.allclose(inner, local, rtol=1e-3)  # the stored weights alone would drift


@pytest.fixture(scope="module")
def documents(corpus) -> list[tuple[int, int, list[str]]]:
    """(chunk id, document id, terms) in reading order: the corpus cut into documents of 1 to
    9 chunks, chunk ids not in reading order (a document re-ingested gets new ids)."""
    rng = np.random.default_rng(11)
    ids = rng.permutation(len(corpus)) + 1000
    rows, start, doc = [], 0, 0
    while start < len(corpus):
        size = int(rng.integers(1, 10))
        rows += [
            (int(ids[i]), doc, corpus[i]) for i in range(start, min(start + size, len(corpus)))
        ]
        start, doc = start + size, doc + 1
    return rows


@pytest.mark.parametrize("query", QUERIES)
def test_window_exact_scores_equal_local_window_bm25(documents, query):
    """The window corpus weighted as a sparse vector scores as the local backend's bm25w index,
    also when rows were weighted with an older avgdl."""
    windows = list(context_windows(documents))
    local = BM25Index.from_rows(windows)
    want = local.scores(query)
    assert (want > 0).sum() > (
        BM25Index.from_rows((i, t) for i, _, t in documents).scores(query) > 0
    ).sum()
    by_id = dict(windows)
    terms = [by_id[i] for i in local.ids.tolist()]  # the local index's row order
    mean = bm25_sparse.avgdl(sum(map(len, terms)), len(terms))
    dl = np.asarray([len(t) for t in terms], float)
    for weighted_with in (mean, mean * 1.3):
        vocabulary, vectors = _sparse_side(terms, weighted_with)
        q = bm25_sparse.query_vector(bm25_sparse.query_counts(query), vocabulary, len(terms))
        exact = bm25_sparse.exact_scores(q, vectors, dl, np.full(len(terms), weighted_with), mean)
        np.testing.assert_allclose(exact, want, rtol=2e-6, atol=1e-5)
        assert ((exact == 0) == (want == 0)).all()


def test_publisher_windows_are_the_local_backends(tmp_path):
    """The windows the Milvus publisher reads for some chunks (from their documents only) are
    those the local backend builds from the whole store (polisum.index.local._lexical)."""
    store = MetadataStore(tmp_path / "meta.sqlite")
    words = [f"w{i}" for i in range(40)]
    updates = [
        DocumentUpdate(
            f"docs/d{d}.txt", None, None, None, "ok", None,
            [
                ChunkRow(f"d{d}-{o}", o, "text", None, None, 0, 4, f"h{d}-{o}", None, None,
                         [words[(d * 7 + o * 3 + k) % 40] for k in range(o + 1)])
                for o in range(n)
            ],
            {},
        )
        for d, n in enumerate([1, 2, 5, 3])
    ]  # fmt: skip
    store.publish(updates[::-1], [])  # documents' ids not in source order
    with store.read() as view:
        everything = dict(context_windows(view.iter_terms_by_document()))
        ids = sorted(everything)[1::2]  # every other chunk: parts of documents
        records = store_records(view, ids)
        assert [r["id"] for r in records] == ids
        assert all(r["window"] == everything[r["id"]] for r in records)
    assert any(len(w) > len(t) for w, t in ((r["window"], r["terms"]) for r in records))
    store.close()


def test_term_frequencies_are_recovered_from_float32_weights():
    for dl in (1, 7, 120, 600, 3000):
        for mean in (3.5, 37.2, 400.0):
            tf = np.arange(1, dl + 1, dtype=np.float64)
            w = bm25_sparse.saturation(tf, dl, mean).astype(np.float32)
            assert (bm25_sparse.recover_tf(w, dl, mean) == tf).all(), (dl, mean)


def test_a_huge_term_frequency_is_flagged_not_recoverable():
    terms = ["x"] * 20_000 + ["y"]
    _, exact = bm25_sparse.document_vector(terms, {"x": 0, "y": 1}, 3000.0)
    assert exact is False
    _, exact = bm25_sparse.document_vector(["x", "x", "y"], {"x": 0, "y": 1}, 3.0)
    assert exact is True


def test_local_bm25_pool_holds_only_chunks_that_share_a_query_term():
    """bm25s's BM25+ gave every chunk delta * idf of each query term; scores now start at 0."""
    index = BM25Index.build(np.arange(4), [["a", "b"], ["c"], ["d", "d"], []])
    scores = index.scores(["a", "zzz"])
    assert scores[0] > 0 and (scores[1:] == 0).all()


def test_collection_formats():
    """Format 1 (before context windows) is upgraded by the worker, and queried meanwhile with
    the chunks' BM25 only; another format (a newer polisum's, none) is a clear error, also on a
    query-only replica (no store ``meta``)."""
    meta = {"embedder": "e", "embedder_dim": "8", "index_id": "i"}
    info = {"embedder": "e", "embedder_dim": 8, "index_id": "i", "bm25": BM25_PARAMS}
    for record in (meta, None):
        check_info({**info, "format": FORMAT}, record, "c")
        check_info({**info, "format": 1}, record, "c")
        for other in (FORMAT + 1, None, "1"):
            with pytest.raises(MilvusError, match="not written by this polisum"):
                check_info({**info, "format": other}, record, "c")
    with pytest.raises(MilvusError, match="polisum index sync"):
        check_info({**info, "format": FORMAT, "bm25": {"k1": 1.5}}, None, "c")
    assert outdated({"format": 1}) and not outdated({"format": FORMAT})
    assert lexical_of({"format": 1}) == (BM25,) and lexical_of({"format": FORMAT}) == LEXICAL


# -- filter expressions -------------------------------------------------------------------------
def test_strings_are_quoted_and_control_characters_refused():
    assert quote('a"b\\c') == '"a\\"b\\\\c"'
    assert quote("줄\n바꿈") == '"줄\\n바꿈"'
    with pytest.raises(MilvusError, match="control characters"):
        quote("bell\x07")


def test_source_prefix_is_an_exact_string_range():
    expr, recheck = where_expression(SearchFilter(source_prefix='docs/my_"file%'))
    assert expr == 'source >= "docs/my_\\"file%" and source < "docs/my_\\"file&"'
    assert not recheck
    # a range excludes exactly what startswith excludes
    lo, hi = "docs/a_", "docs/a`"
    for s in ("docs/a_b.txt", "docs/a_", "docs/ab.txt", "docs/a`", "docs/a^z"):
        assert (lo <= s < hi) == s.startswith("docs/a_")


def test_file_types_become_extensions():
    expr, recheck = where_expression(SearchFilter(file_types=("PDF", ".Hwp")))
    assert expr == 'ext in [".hwp", ".pdf"]' and not recheck
    expr, recheck = where_expression(SearchFilter(file_types=(".tar.gz",)))
    assert expr == 'ext in [".gz"]' and recheck
    assert extension("docs/Report.v2.PDF") == ".pdf"
    assert extension("docs/.hidden") == "" and extension("docs/README") == ""
    assert SearchFilter(file_types=("PDF",)).matches("a/b.pdf")
    assert not SearchFilter(file_types=("pdf",)).matches("a/mypdf")
