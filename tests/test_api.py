from __future__ import annotations

from pathlib import Path

import pytest

import polisum
from tests.conftest import KO_RENT


def test_public_api_in_three_lines(docs: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    idx = polisum.Index.open()  # default: ./.polisum
    report = idx.ingest(docs)
    hits = idx.search("무주택 청년 월세", k=2)
    assert isinstance(report, polisum.IngestReport) and report.new == 2
    assert idx.path == Path(".polisum") or idx.path.resolve() == (tmp_path / ".polisum").resolve()
    hit = hits[0]
    assert isinstance(hit, polisum.Hit)
    assert hit.text == KO_RENT
    assert hit.source == "docs/youth.md"
    assert hit.page is None and hit.section == "청년 정책 > 월세 지원"
    assert hit.summary and len(hit.summary) <= 300
    assert set(hit.scores) == {"dense", "summary", "bm25", "bm25_window"}
    idx.close()


def test_open_missing_index_without_create(tmp_path: Path):
    with pytest.raises(polisum.IndexNotFoundError, match="no polisum index"):
        polisum.Index.open(tmp_path / "none", create=False)


def test_empty_index_and_empty_query(tmp_path: Path):
    with polisum.Index.open(tmp_path / "idx") as idx:
        assert idx.search("anything") == []
        assert idx.info()["chunks"] == 0


def test_concurrent_ingest_is_refused(docs: Path, tmp_path: Path):
    import fcntl

    with polisum.Index.open(tmp_path / "idx") as idx, open(tmp_path / "idx" / "lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        with pytest.raises(polisum.IndexBusyError):
            idx.ingest(docs)


def test_langchain_retriever(docs: Path, tmp_path: Path):
    pytest.importorskip("langchain_core")
    from langchain_core.documents import Document

    from polisum.langchain import PolisumRetriever

    with polisum.Index.open(tmp_path / "idx") as idx:
        idx.ingest(docs)
        retriever = PolisumRetriever(index=idx, k=2)
        results = retriever.invoke("청년 교통비")
        assert len(results) == 2 and all(isinstance(d, Document) for d in results)
        assert "교통비" in results[0].page_content
        assert results[0].metadata["section"] == "청년 정책 > 교통비"
        assert results[0].metadata["source"].endswith("youth.md")
    # a retriever made from a path owns its index
    retriever = PolisumRetriever.from_path(str(tmp_path / "idx"), k=1)
    assert len(retriever.invoke("solar")) == 1
