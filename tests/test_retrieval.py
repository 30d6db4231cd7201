"""Retrieval: fusion properties, flat vs HNSW indexes, reranking, `polisum eval retrieval`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import faiss
import numpy as np
import pytest
from typer.testing import CliRunner

import polisum
from polisum.cli import app
from polisum.config import FusionWeights
from polisum.fusion import ScoreFusion
from polisum.index import vectors as vectors_mod
from polisum.index.bm25 import BM25Index, context_windows
from polisum.index.local import Generation, MemoryBackend
from polisum.index.vectors import VectorIndex
from polisum.rerank import RerankerError, load_reranker
from polisum.retrieve import HybridRetriever
from polisum.text import index_terms
from tests.conftest import EN_LIBRARY, KO_BUS, KO_RENT


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 20 centres: neighbour structure like real embeddings, unlike
    isotropic noise where every point is equally far from every other."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, dim))
    v = centres[rng.integers(0, 20, n)] + 0.6 * rng.standard_normal((n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


# -- vector indexes ---------------------------------------------------------------------------
def test_hnsw_agrees_with_flat_at_high_recall():
    v = clustered(3000, 32)
    ids = np.arange(3000, dtype=np.int64) * 7 + 5  # sparse, like SQLite ids after deletions
    flat = VectorIndex.build(32, ids, v, "flat")
    hnsw = VectorIndex.build(32, ids, v, "hnsw")
    assert (flat.kind, hnsw.kind) == ("flat", "hnsw")
    queries = clustered(50, 32, seed=1)
    overlap = []
    for q in queries:
        exact_ids, exact_scores = flat.search(q, 10)
        approx_ids, approx_scores = hnsw.search(q, 10)
        np.testing.assert_allclose(exact_scores, np.sort(v @ q)[::-1][:10], rtol=1e-5)
        # exact re-scoring gives the same numbers whichever index found the id
        np.testing.assert_allclose(hnsw.scores_for(q, approx_ids), approx_scores, rtol=1e-5)
        overlap.append(len(set(exact_ids) & set(approx_ids)) / 10)
    assert np.mean(overlap) >= 0.95


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_removed_ids_disappear_and_stay_gone_after_reload(kind, tmp_path: Path):
    v = clustered(500, 16)
    ids = np.arange(1, 501, dtype=np.int64)
    idx = VectorIndex.build(16, ids, v, kind)
    gone = ids[:40]
    idx.remove(gone)
    assert len(idx) == 460
    assert set(idx.ids.tolist()) == set(ids[40:].tolist())
    for q in v[:40]:  # each removed vector's own query must not find it any more
        found, _ = idx.search(q, 20)
        assert not set(found.tolist()) & set(gone.tolist())
    assert np.isneginf(idx.scores_for(v[0], gone)).all()
    idx.save(tmp_path / "v.faiss")
    again = VectorIndex.load(tmp_path / "v.faiss", 16, kind)
    assert again.kind == kind and len(again) == 460
    np.testing.assert_array_equal(again.ids, idx.ids)
    np.testing.assert_allclose(again.vectors_of(ids[40:50]), v[40:50], rtol=1e-6)
    # re-adding an id after removal (a changed summary) gives exactly one live row for it
    again.add(ids[:1], v[:1])
    assert len(again) == 461 and again.search(v[0], 1)[0][0] == ids[0]


def test_hnsw_drops_tombstones_once_a_fifth_of_rows_are_dead():
    v = clustered(300, 16)
    ids = np.arange(1, 301, dtype=np.int64)
    idx = VectorIndex.build(16, ids, v, "hnsw")
    idx.remove(ids[:30])
    assert idx._index.ntotal == 300  # tombstones only
    idx.remove(ids[30:80])
    assert idx._index.ntotal == 220 and len(idx) == 220  # rebuilt without them
    assert set(idx.search(v[100], 5)[0].tolist()) <= set(ids[80:].tolist())


def test_auto_policy_switches_with_size(monkeypatch):
    monkeypatch.setattr(vectors_mod, "AUTO_HNSW_MIN", 200)
    v = clustered(400, 16)
    ids = np.arange(1, 401, dtype=np.int64)
    idx = VectorIndex.build(16, ids[:150], v[:150], "auto")
    assert idx.kind == "flat"
    idx.add(ids[150:], v[150:])
    assert idx.kind == "hnsw" and len(idx) == 400
    idx.remove(ids[:250])  # 150 left: below 0.8 × threshold
    assert idx.kind == "flat" and len(idx) == 150
    assert set(idx.ids.tolist()) == set(ids[250:].tolist())


def test_legacy_idmap_file_still_loads(tmp_path: Path):
    v = clustered(50, 8)
    legacy = faiss.IndexIDMap2(faiss.IndexFlatIP(8))
    legacy.add_with_ids(v, np.arange(100, 150, dtype=np.int64))
    faiss.write_index(legacy, str(tmp_path / "old.faiss"))
    idx = VectorIndex.load(tmp_path / "old.faiss", 8)
    assert idx.search(v[3], 1)[0][0] == 103
    with pytest.raises(ValueError, match="dimension"):
        VectorIndex.load(tmp_path / "old.faiss", 16)


# -- fusion -----------------------------------------------------------------------------------
class TableEmbedder:
    """Queries map to fixed vectors, so dense scores are known exactly."""

    name, dim = "table", 16

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.table[t] for t in texts])

    def embed_documents(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - unused
        raise NotImplementedError


WORDS = "solar panel library book bus fare rent youth school energy city park".split()  # noqa: SIM905


@pytest.fixture
def toy_retriever() -> tuple[HybridRetriever, dict[str, np.ndarray], VectorIndex, BM25Index]:
    rng = np.random.default_rng(3)
    n = 60
    ids = np.arange(10, 10 + n, dtype=np.int64)
    docs = [list(rng.choice(WORDS, size=rng.integers(3, 12))) for _ in range(n)]
    dense = VectorIndex.build(16, ids, clustered(n, 16, seed=2))
    summary = VectorIndex.build(16, ids, clustered(n, 16, seed=4))
    bm25 = BM25Index.build(ids, docs)
    # every chunk its own document: each window is the chunk itself
    rows = zip(ids.tolist(), ids.tolist(), docs, strict=True)
    windows = BM25Index.from_rows(context_windows(rows))
    queries = {q: clustered(1, 16, seed=10 + i)[0] for i, q in enumerate(["solar bus", "rent"])}
    backend = MemoryBackend(Generation(0, dense, summary, bm25, windows))
    retriever = HybridRetriever(TableEmbedder(queries), backend, candidates=20)
    return retriever, queries, dense, bm25


def test_dense_only_weights_give_the_dense_ranking(toy_retriever):
    retriever, queries, dense, _ = toy_retriever
    for q, qv in queries.items():
        got = [s.id for s in retriever.search(q, 10, weights=FusionWeights(1, 0, 0))]
        assert got == dense.search(qv, 10)[0].tolist()


def test_bm25_only_weights_give_the_bm25_ranking(toy_retriever):
    retriever, queries, _, bm25 = toy_retriever
    for q in queries:
        raw = bm25.scores(index_terms(q))
        expected = bm25.ids[np.argsort(-raw, kind="stable")][:5].tolist()
        got = retriever.search(q, 5, weights=FusionWeights(0, 0, 1))
        assert [s.id for s in got] == expected
        assert all(s.scores["bm25"] == pytest.approx(raw[bm25.ids == s.id][0]) for s in got)


def test_hits_carry_the_fused_score_and_every_candidate_is_scored_by_every_signal(toy_retriever):
    retriever, queries, dense, _ = toy_retriever
    w = FusionWeights(0.3, 0.15, 0.55)
    for q, qv in queries.items():
        hits = retriever.search(q, 20, weights=w)
        cands = retriever.candidates(q, 20)
        fused = dict(zip(cands.ids.tolist(), ScoreFusion(w).fuse(cands).tolist(), strict=True))
        assert all(h.score == pytest.approx(fused[h.id], abs=1e-6) for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        for h in hits:  # exact dense score even for ids that only BM25 proposed
            assert set(h.scores) == {"dense", "summary", "bm25", "bm25_window"}
            assert h.scores["dense"] == pytest.approx(
                float(dense.vectors_of([h.id])[0] @ qv), abs=1e-5
            )


# -- the index with HNSW and rerankers ----------------------------------------------------------
def test_index_with_hnsw_persists_and_follows_deletions(docs: Path, index_dir: Path):
    with polisum.Index.open(index_dir, vector_index="hnsw") as idx:
        idx.ingest(docs)
        assert idx.backend.current().paragraphs.kind == "hnsw"
        assert idx.search("When do libraries close?", k=1)[0].text == EN_LIBRARY
    (docs / "city.txt").unlink()
    with polisum.Index.open(index_dir, vector_index="hnsw") as idx:
        idx.ingest(docs)
        current = idx.backend.current()
        paragraphs, summaries, bm25 = current.paragraphs, current.summaries, current.bm25
        db_ids = sorted(r[0] for r in idx.store._db.execute("SELECT id FROM chunks"))
        assert paragraphs.ids.tolist() == db_ids == bm25.ids.tolist()
        assert current.windows.ids.tolist() == db_ids
        assert summaries.ids.tolist() == db_ids
        assert all("city.txt" not in h.source for h in idx.search("libraries", k=5))
    with polisum.Index.open(index_dir, vector_index="flat") as idx:  # setting changed: rebuilt
        assert idx.backend.current().paragraphs.kind == "flat"
        assert idx.search("청년 교통비는 얼마나 돌려주나요?", k=1)[0].text == KO_BUS


class ReverseReranker:
    """Prefers whatever the first stage ranked last: any reordering must come from here."""

    name = "reverse"

    def score(self, query, passages):
        return np.arange(len(passages), dtype=np.float32)


def test_reranker_reorders_the_first_stage(docs: Path, index_dir: Path):
    with polisum.Index.open(index_dir) as idx:
        idx.ingest(docs)
        first = idx.search("청년 월세 지원", k=4)
        idx.components.reranker = ReverseReranker()
        reranked = idx.search("청년 월세 지원", k=2)
    assert [h.chunk_id for h in reranked] == [h.chunk_id for h in first[::-1][:2]]
    assert reranked[0].scores["rerank"] == 3.0 and "fused" in reranked[0].scores


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory) -> Path:
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("ce")
    texts = (KO_RENT, KO_BUS, EN_LIBRARY)
    words = sorted({w.strip(".,").lower() for t in texts for w in t.split()})
    (folder / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]), encoding="utf-8"
    )
    BertTokenizerFast(str(folder / "vocab.txt")).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(words) + 5,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=1,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def test_cross_encoder_reranker_from_config_orders_by_its_own_scores(
    docs: Path, index_dir: Path, tiny_cross_encoder: Path
):
    from sentence_transformers import CrossEncoder

    with polisum.Index.open(index_dir, rerank=f"st:{tiny_cross_encoder}", rerank_depth=4) as idx:
        idx.ingest(docs)
        hits = idx.search("청년 월세 지원", k=4)
    scores = CrossEncoder(str(tiny_cross_encoder), device="cpu").predict(
        [("청년 월세 지원", h.text) for h in hits]
    )
    assert len(hits) == 4
    np.testing.assert_allclose([h.score for h in hits], scores, rtol=1e-4, atol=1e-5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_unknown_or_missing_reranker_is_a_clear_error(tmp_path: Path):
    with pytest.raises(RerankerError, match="unknown reranker"):
        load_reranker("colbert:x")
    with pytest.raises(RerankerError, match="cannot load cross-encoder"):
        load_reranker(f"st:{tmp_path / 'nothing-here'}")
    assert load_reranker(None) is None and load_reranker("none") is None


# -- polisum eval retrieval -------------------------------------------------------------------
def test_eval_retrieval_jsonl_gives_the_expected_numbers(docs: Path, index_dir: Path):
    with polisum.Index.open(index_dir) as idx:
        idx.ingest(docs)
        bus_chunk = idx.search("청년 교통비는 얼마나 돌려주나요?", k=1)[0].chunk_id
    qa = docs.parent / "qa.jsonl"
    rows = [
        {"query": "청년 교통비는 얼마나 돌려주나요?", "gold": ["docs/youth.md"]},  # rank 1
        {"query": "When do libraries close?", "gold": [str(docs / "city.txt")]},  # rank 1
        {"query": "When do libraries close?", "gold": ["youth.md"]},  # rank 2 of 2 documents
        {"query": "청년 교통비는 얼마나 돌려주나요?", "gold": [bus_chunk]},  # chunk, rank 1
        {"query": "청년 월세", "gold": ["nope.txt"]},  # not in the index: a miss
    ]
    qa.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    result = CliRunner().invoke(
        app, ["eval", "retrieval", "--qa", str(qa), "--index", str(index_dir), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    m = data["metrics"]
    assert data["questions"] == 5 and data["unresolved_gold"] == 1
    assert m["R@1"] == pytest.approx(3 / 5)
    assert m["R@5"] == pytest.approx(4 / 5) == m["R@10"]
    assert m["MRR@10"] == pytest.approx((3 + 0.5) / 5, abs=1e-4)
    assert m["nDCG@10"] == pytest.approx((3 + 1 / math.log2(3)) / 5, abs=1e-4)


def test_eval_retrieval_squad_builds_its_own_index_and_rejects_bad_lines(tmp_path: Path):
    squad = {
        "data": [
            {
                "paragraphs": [
                    {"context": KO_RENT, "qas": [{"question": "무주택 청년 월세 지원 금액은?"}]},
                    {"context": EN_LIBRARY, "qas": [{"question": "How many books can I borrow?"}]},
                ]
            }
        ]
    }
    qa = tmp_path / "squad.json"
    qa.write_text(json.dumps(squad, ensure_ascii=False), encoding="utf-8")
    work = tmp_path / "work"
    args = ["eval", "retrieval", "--qa", str(qa), "--format", "squad", "--workdir", str(work)]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"]["R@1"] == 1.0
    assert (work / ".polisum" / "meta.sqlite").exists()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "x", "gold": ["a"]}\n{"question": "y"}\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["eval", "retrieval", "--qa", str(bad), "--index", str(work)])
    assert result.exit_code == 2 and "bad.jsonl:2" in result.output


def test_bad_vector_index_setting_names_the_config_file(tmp_path: Path):
    from polisum.config import Config, ConfigError

    (tmp_path / "polisum.toml").write_text('[retrieval]\nvector_index = "annoy"\n')
    with pytest.raises(ConfigError, match=r"polisum\.toml: vector_index must be"):
        Config.load(cwd=tmp_path)


def test_batched_terms_equal_one_at_a_time():
    from polisum.text import terms, terms_many

    texts = [
        "서울시는 무주택 청년에게 월 최대 20만 원의 월세를 지원한다.",
        "The municipal solar program installs rooftop panels on public schools.",
        "",
        "GPT-4와 라마2를 비교한 연구진은 2023년에 결과를 발표했다.",
    ]
    assert terms_many(texts) == [terms(t) for t in texts]
    first = terms_many(texts)[0]
    assert {"청년", "월세", "지원"} <= set(first) and "에게" not in first  # content, no particles
    assert terms_many([]) == []
