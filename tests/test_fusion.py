"""Fusion methods, BM25 index terms and the context-window BM25."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import polisum
from polisum.config import Config, ConfigError, FusionWeights
from polisum.fusion import RankFusion, ScoreFusion, make_fusion, zscore
from polisum.index.backend import WINDOW, Candidates, Query
from polisum.index.bm25 import BM25Index, context_windows
from polisum.index.local import Generation
from polisum.index.vectors import VectorIndex
from polisum.ingest.stages import terms_of
from polisum.text import TermOptions, index_terms, terms


def pool(dense, summary, bm25, ids=None) -> Candidates:
    n = len(dense)
    ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids)
    f = np.float32
    return Candidates(ids, {"dense": f(dense), "summary": f(summary), "bm25": f(bm25)})


# -- fusion -------------------------------------------------------------------------------------
def test_min_max_fusion_is_the_weighted_sum_of_min_max_scores():
    c = pool([0.8, 0.9, 0.7], [0.5, 0.5, 0.6], [10.0, 0.0, 5.0])
    got = ScoreFusion(FusionWeights(0.3, 0.15, 0.55), norm="minmax").fuse(c)
    want = 0.3 * np.array([0.5, 1, 0]) + 0.15 * np.array([0, 0, 1]) + 0.55 * np.array([1, 0, 0.5])
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_default_fusion_sums_standard_scores_over_the_pool():
    c = pool([0.80, 0.81, -np.inf, 0.79], [0.5, 0.5, 0.5, 0.5], [9.0, 1.0, 1.2, 0.8])
    z = zscore(c.signals["dense"])
    assert z[2] == z[3]  # not scored: counts as the pool minimum
    assert abs(z.mean()) < 1e-6 and z.std() == pytest.approx(1.0)
    assert not zscore(c.signals["summary"]).any()  # a constant signal says nothing
    w = FusionWeights(0.4, 0.2, 0.4)
    want = 0.4 * z + 0.4 * zscore(c.signals["bm25"])
    np.testing.assert_allclose(ScoreFusion(w).fuse(c), want, rtol=1e-6)


def test_window_share_splits_the_bm25_weight():
    c = pool([0, 0, 0], [0, 0, 0], [4.0, 0.0, 2.0])
    w = FusionWeights(0, 0, 1)
    # no window scores in the pool: the chunk's BM25 takes the whole weight
    np.testing.assert_allclose(ScoreFusion(w, "minmax").fuse(c), [1, 0, 0.5])
    c.signals[WINDOW] = np.float32([0.0, 3.0, 3.0])
    np.testing.assert_allclose(ScoreFusion(w, "minmax").fuse(c), [0.5, 0.5, 0.75])
    np.testing.assert_allclose(ScoreFusion(w, "minmax", window_share=0.0).fuse(c), [1, 0, 0.5])


def test_fusions_ask_only_for_the_signals_they_read():
    assert ScoreFusion().signals == ("dense", "summary", "bm25", WINDOW)
    assert ScoreFusion(FusionWeights(1, 0, 0)).signals == ("dense",)
    assert ScoreFusion(window_share=0).signals == ("dense", "summary", "bm25")
    assert RankFusion().signals == ("dense", "summary", "bm25")
    with pytest.raises(ValueError, match="window_share"):
        ScoreFusion(window_share=1.5)


def test_rrf_counts_ranks_not_score_gaps():
    c = pool([0.9, 0.1, 0.0], [0, 0, 0], [0.0, 100.0, 99.0])
    got = RankFusion(FusionWeights(1, 0, 1)).fuse(c)
    np.testing.assert_allclose(got, [1 / 61 + 1 / 63, 1 / 62 + 1 / 61, 1 / 63 + 1 / 62], rtol=1e-6)


def test_fusion_setting_chooses_the_retrievers_fusion(docs: Path, index_dir: Path):
    assert Config().fusion == "score"
    assert Config().weights == FusionWeights(0.40, 0.20, 0.40)
    with pytest.raises(ConfigError, match="fusion"):
        Config(fusion="calibrated")
    assert isinstance(make_fusion("rrf", FusionWeights(1, 0, 1)), RankFusion)
    with polisum.Index.open(index_dir, fusion="rrf", weights={"summary": 0}) as idx:
        fusion = idx.retriever().fusion
        assert isinstance(fusion, RankFusion) and fusion.weights == FusionWeights(0.4, 0, 0.4)
        idx.ingest(docs)
        hit = idx.search("청년 월세 지원", k=1)[0]
        assert "월세" in hit.text and WINDOW not in hit.scores  # RRF reads chunk BM25 only


# -- BM25 index terms ---------------------------------------------------------------------------
def test_numbers_match_with_or_without_thousands_separators():
    assert index_terms("5,500만 원") == index_terms("5500만원")
    assert "1234567" in index_terms("1,234,567원")
    assert index_terms("12,345.67") == ["12345.67"]  # decimals stay
    assert "5,500" in index_terms("5,500만 원", TermOptions(numbers=False))


def test_compounds_are_indexed_whole_and_in_parts():
    spaced = set(index_terms("개인정보 보호 위원회"))
    joined = set(index_terms("개인정보보호위원회는"))  # one proper noun for Kiwi
    assert {"개인", "정보", "보호", "위원회"} <= joined
    assert {"개인", "정보", "보호", "위원회"} <= spaced
    split_by_kiwi = index_terms("정보통신산업진흥원")  # four nouns for Kiwi
    assert "정보통신산업진흥원" in split_by_kiwi and "진흥원" in split_by_kiwi
    assert "정보통신산업진흥원" not in index_terms(
        "정보통신산업진흥원", TermOptions(compounds=False)
    )


def test_latin_words_are_stemmed_and_the_rest_is_unchanged():
    assert index_terms("Tailored interventions") == ["tailor", "intervent"]
    assert index_terms("tailoring intervention")[0] == "tailor"
    plain = TermOptions(numbers=False, compounds=False, stem=False)
    for text in ("청년 교통비 지원 사업은 20퍼센트를 돌려준다", "Members borrow ten books"):
        assert index_terms(text, plain) == terms(text)


def test_ingest_and_queries_make_the_same_terms(docs: Path, index_dir: Path):
    text = "개인정보보호위원회는 5,500만 원의 Interventions를 검토했다."
    assert terms_of([text]) == [index_terms(text)]
    (docs / "notice.txt").write_text(text * 3, encoding="utf-8")
    with polisum.Index.open(index_dir) as idx:
        idx.ingest(docs)
        # the stored terms are the index terms: a stem and a spaced compound find the chunk
        hits = idx.search("intervention 보호 위원회 5500", k=1)
        assert hits[0].source.endswith("notice.txt") and hits[0].scores["bm25"] > 0


# -- context-window BM25 ------------------------------------------------------------------------
def test_context_windows_stay_inside_their_document():
    rows = [(5, 1, ["a"]), (3, 1, ["b"]), (9, 1, ["c"]), (1, 2, ["d"]), (2, 3, ["e"])]
    assert list(context_windows(rows)) == [
        (5, ["a", "b"]),
        (3, ["a", "b", "c"]),
        (9, ["b", "c"]),
        (1, ["d"]),
        (2, ["e"]),
    ]
    assert list(context_windows(rows, radius=0)) == [(c, t) for c, _, t in rows]
    index = BM25Index.from_rows(context_windows(rows))
    assert index.ids.tolist() == [1, 2, 3, 5, 9]  # sorted: candidates() looks ids up
    scores = dict(zip(index.ids.tolist(), index.scores(["a"]).tolist(), strict=True))
    assert min(scores[3], scores[5]) > scores[9] == scores[1]  # 9 and 1: no "a" in reach


def _generation() -> Generation:
    """Chunks 1-3 are one document, 4 another; only chunk 1 says "rent"."""
    rows = [(1, 1, ["rent", "youth"]), (2, 1, ["bus"]), (3, 1, ["fare"]), (4, 2, ["bus", "park"])]
    vectors = np.eye(4, 8, dtype=np.float32)
    ids = np.array([1, 2, 3, 4], dtype=np.int64)
    return Generation(
        0,
        VectorIndex.build(8, ids, vectors),
        VectorIndex.build(8, ids, vectors),
        BM25Index.from_rows((c, t) for c, _, t in rows),
        BM25Index.from_rows(context_windows(rows)),
    )


def test_window_bm25_finds_a_chunk_by_its_neighbours_words():
    gen = _generation()
    cands = gen.candidates(Query("rent bus", None, ["rent", "bus"]), n=10)
    assert set(cands.signals) == {"bm25", WINDOW}
    chunk = dict(zip(cands.ids.tolist(), cands.signals["bm25"].tolist(), strict=True))
    window = dict(zip(cands.ids.tolist(), cands.signals[WINDOW].tolist(), strict=True))
    assert chunk[1] > 0 and chunk[2] > 0 and chunk[4] > 0  # chunks holding a query word
    assert chunk[3] == 0 < window[3]  # chunk 3 only through its neighbour 2
    # the windows of chunks 1 and 2 hold both words, those of 3 and 4 one
    assert min(window[1], window[2]) > max(window[3], window[4])
    # the window's top n joins the pool: chunk 2 is a candidate with no query word of its own
    youth = Query("youth", None, ["youth"])
    assert gen.candidates(youth, n=10).ids.tolist() == [1, 2]
    assert gen.candidates(youth, n=10, use=("bm25",)).ids.tolist() == [1]


def test_window_bm25_respects_the_filter():
    gen = _generation()
    allowed = np.array([3, 4], dtype=np.int64)
    cands = gen.candidates(Query("youth", None, ["youth", "park"]), n=10, allowed=allowed)
    assert cands.ids.tolist() == [4]  # chunk 2's window matches "youth" but is filtered out
    assert cands.signals[WINDOW][0] > 0


def test_windows_follow_edits_and_old_indexes_rebuild_them(docs: Path, index_dir: Path):
    paragraphs = [
        "Rooftop solar panels were installed on twelve public schools across the district.",
        "The council reviewed the annual maintenance budget for the municipal swimming pools.",
        "Residents asked for longer opening hours at the central library during exam weeks.",
    ]
    city = docs / "city.txt"
    city.write_text("\n\n".join(paragraphs), encoding="utf-8")
    query = "rooftop solar schools"
    with polisum.Index.open(index_dir, min_chars=20) as idx:
        idx.ingest(docs)
        hits = {h.text: h.scores for h in idx.search(query, k=10) if h.source.endswith("city.txt")}
        assert hits[paragraphs[1]]["bm25"] == 0 < hits[paragraphs[1]][WINDOW]
        assert hits[paragraphs[2]][WINDOW] == 0  # two chunks away: not in the window
        city.write_text("\n\n".join(paragraphs[1:]), encoding="utf-8")
        idx.ingest(docs)  # a publish rebuilds the windows: the solar paragraph is gone
        assert not any(
            h.scores[WINDOW] > 0 for h in idx.search(query, k=10) if h.source.endswith("city.txt")
        )
        before = [(h.chunk_id, h.scores) for h in idx.search("library exam", k=3)]
    for folder in index_dir.glob("bm25w.g*"):  # an index written before the window BM25
        shutil.rmtree(folder)
    with polisum.Index.open(index_dir, min_chars=20) as idx:
        assert [(h.chunk_id, h.scores) for h in idx.search("library exam", k=3)] == before
        assert list(index_dir.glob("bm25w.g*"))  # rebuilt from SQLite and kept
