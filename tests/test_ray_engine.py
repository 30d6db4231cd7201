"""The Ray engine (issue 17) on a local Ray with two CPUs: the same chunks, summaries and vectors
as the local engine, incremental re-ingest, a worker killed mid-run, the driver SIGKILLed and
rerun without repeating model work, bad files among good ones; and its settings."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import polisum
from polisum.components import Choice, Components
from polisum.config import Config, ConfigError
from polisum.ingest import FileJob
from tests.test_ingest import assert_consistent, expected_chunk_ids

ray = pytest.importorskip("ray")
from polisum.ingest.ray_engine import RayEngine, RayEngineError  # noqa: E402

pytestmark = pytest.mark.slow

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
# A small subset of the shared documents: English DOCX and Markdown, a Korean PDF (20 chunks).
SHARED_DOCS = [
    "docs_en/codeblock.md",
    "docs_en/handbook-1p.docx",
    "docs_ko/insurance_terms_korean_texts_two_page.pdf",
]


@pytest.fixture(scope="module")
def cluster() -> str:
    """One local Ray for the module, two CPUs; its address lets a CLI subprocess join it."""
    started = not ray.is_initialized()
    if started:
        # On a shared machine, Ray's memory monitor (it watches the whole machine) would kill
        # this module's workers for other processes' memory (the kill test kills them on
        # purpose), and Ray's default worker niceness (15) would starve them.
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            _system_config={"memory_monitor_refresh_ms": 0, "worker_niceness": 0},
        )
    yield ray.get_runtime_context().gcs_address
    if started:
        ray.shutdown()


def open_index(path: Path, engine: str, cluster: str | None = None) -> polisum.Index:
    return polisum.Index.open(path, ocr="off", engine=engine, ray_address=cluster)


def ray_engine(idx: polisum.Index, cluster: str, **options) -> RayEngine:
    """A Ray engine for ``idx``'s models, kept by the test to read what it computed."""
    c = idx.components
    return RayEngine(cluster, summarizer=c.summarizer_choice, embedder=c.embedder_choice, **options)


def snapshot(idx: polisum.Index) -> dict:
    """What an engine decides: chunk ids with their text, summary and terms; every vector a
    chunk uses; each document's status and reason."""
    db = idx.store._db
    chunks = {
        row[0]: row[1:]
        for row in db.execute(
            "SELECT chunk_id, COALESCE(vector_hash, text_hash), summary, summary_hash, terms,"
            " summary_info FROM chunks"
        )
    }
    used = {
        h
        for vector_hash, _, summary_hash, _, _ in chunks.values()
        for h in (vector_hash, summary_hash)
        if h
    }
    vectors = {
        h: np.frombuffer(v, dtype="<f4")
        for h, v in db.execute("SELECT text_hash, vector FROM embeddings")
        if h in used
    }
    assert used == set(vectors), "a chunk without its vector"
    documents = {d.source: (d.status, d.error, d.n_chunks) for d in idx.documents()}
    return {"chunks": chunks, "vectors": vectors, "documents": documents}


def assert_same(a: dict, b: dict) -> None:
    assert a["documents"] == b["documents"]
    assert a["chunks"] == b["chunks"]  # same ids, summaries, terms, summary provenance
    assert a["vectors"].keys() == b["vectors"].keys()
    for h, v in a["vectors"].items():
        np.testing.assert_allclose(v, b["vectors"][h], atol=1e-5)


def cached(idx: polisum.Index, table: str) -> set[str]:
    return {h for (h,) in idx.store._db.execute(f"SELECT text_hash FROM {table}")}


def write_reports(docs: Path, files: int, paragraphs: int, tag: str = "") -> None:
    """Short English paragraphs (fast to embed), each long enough to be a chunk of its own and
    short enough to be its own extractive summary (one vector per chunk)."""
    docs.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        text = "\n\n".join(
            f"Report {i}{tag} paragraph {j}: the council approved budget line {i * 100 + j} "
            f"for the district library, the bus depot and the school roofs in year {2000 + j}."
            for j in range(paragraphs)
        )
        (docs / f"report{i}.txt").write_text(text, encoding="utf-8")


# -- the same results as the local engine -------------------------------------------------------
def test_same_chunks_summaries_and_vectors_as_the_local_engine(tmp_path: Path, cluster: str):
    results, parse_progress = {}, []
    for engine in ("local", "ray"):
        project = tmp_path / engine
        (project / "docs").mkdir(parents=True)
        for name in SHARED_DOCS:
            shutil.copy(SHARED / name, project / "docs")
        with open_index(project / ".polisum", engine, cluster) as idx:

            def record(event, engine=engine):
                if engine == "ray" and event.stage == "parse":
                    parse_progress.append(event.done)

            report = idx.ingest(project / "docs", on_progress=record)
            assert (report.new, report.failed) == (3, 0)
            assert assert_consistent(idx) == expected_chunk_ids(project / "docs", project)
            results[engine] = snapshot(idx)
    assert len(results["ray"]["chunks"]) == 20
    assert_same(results["local"], results["ray"])
    # parse progress streams from Ray file by file, not once at the end
    assert parse_progress[-1] == 3 and {1, 2} <= set(parse_progress)


# -- incremental ----------------------------------------------------------------------------------
def test_incremental_reingest_repeats_no_model_work(tmp_path: Path, cluster: str):
    project = tmp_path / "proj"
    docs = project / "docs"
    write_reports(docs, files=4, paragraphs=3)
    with open_index(project / ".polisum", "ray", cluster) as idx:
        assert idx.ingest(docs).new == 4
        summaries_before, vectors_before = cached(idx, "summaries"), cached(idx, "embeddings")

        (docs / "report0.txt").unlink()
        with (docs / "report1.txt").open("a", encoding="utf-8") as f:
            f.write("\n\nAn added paragraph: the library opens on Sundays from next spring on.")
        write_reports(docs / "new", files=2, paragraphs=2, tag="-new")
        engine = ray_engine(idx, cluster)
        try:
            report = idx.ingest(docs, engine=engine)
        finally:
            engine.close()
        assert (report.new, report.changed, report.removed, report.unchanged) == (2, 1, 1, 2)
        ray_state = snapshot(idx)
        rows = list(idx.store._db.execute("SELECT text_hash, summary_hash FROM chunks"))
    # only what no cache held was computed: new paragraphs and the summaries of those
    assert engine.computed["parse"] == 3  # the changed file and the two new ones
    assert engine.computed["summarize"] == len({t for t, _ in rows} - summaries_before) == 5
    needed = {h for row in rows for h in row}
    assert engine.computed["embed"] == len(needed - vectors_before) == 5

    fresh = tmp_path / "fresh"
    shutil.copytree(docs, fresh / "docs")
    with open_index(fresh / ".polisum", "local") as idx:
        idx.ingest(fresh / "docs")
        assert_same(snapshot(idx), ray_state)


# -- failures -------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["summarize", "embed"])
def test_a_worker_killed_mid_run_is_restarted_and_the_ingest_completes(
    tmp_path: Path, cluster: str, role: str
):
    project = tmp_path / "proj"
    write_reports(project / "docs", files=4, paragraphs=4)
    with open_index(project / ".polisum", "ray", cluster) as idx:
        engine = ray_engine(idx, cluster, summary_batch=4, embed_batch=4)
        killed: list[int] = []

        def kill_after_first_batch(event) -> None:
            # the first batch came back; the actor is busy with the next ones
            if event.stage == role and event.done >= 4 and not killed:
                pid = engine.actor_pids(role)[0]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        try:
            report = idx.ingest(project / "docs", engine=engine, on_progress=kill_after_first_batch)
            restarted = engine.actor_pids(role, live=True)
        finally:
            engine.close()
        assert killed and restarted and restarted[0] != killed[0]
        assert (report.new, report.failed) == (4, 0)
        assert_consistent(idx)
        ray_state = snapshot(idx)
    with open_index(tmp_path / "local" / ".polisum", "local") as idx:
        shutil.copytree(project / "docs", tmp_path / "local" / "docs")
        idx.ingest(tmp_path / "local" / "docs")
        assert_same(snapshot(idx), ray_state)


def test_driver_killed_mid_run_leaves_the_index_and_the_rerun_repeats_no_model_work(
    tmp_path: Path, cluster: str
):
    project = tmp_path / "proj"
    write_reports(project / "docs", files=16, paragraphs=5)  # 80 chunks: 2 embedding batches
    env = {**os.environ, "POLISUM_CRASH_AT": "during_embed"}  # kill -9 after 1 embed batch
    ingest = [sys.executable, "-m", "polisum.cli", "ingest", "docs", "-q", "--json"]
    crashed = subprocess.run(
        [*ingest, "--engine", "ray", "--ray-address", cluster],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    with open_index(project / ".polisum", "ray", cluster) as idx:
        assert idx.store.count_chunks() == 0 and assert_consistent(idx) == set()
        summaries, vectors = cached(idx, "summaries"), cached(idx, "embeddings")
        assert len(summaries) == 80 and len(vectors) == 64  # the work done before the kill

        engine = ray_engine(idx, cluster)
        try:
            report = idx.ingest(project / "docs", engine=engine)
        finally:
            engine.close()
        assert report.new == 16
        assert assert_consistent(idx) == expected_chunk_ids(project / "docs", project)
        assert engine.computed["summarize"] == 0
        # every vector is made once: the rerun embedded exactly what the kill left undone
        assert engine.computed["embed"] == len(cached(idx, "embeddings") - vectors) == 80 - 64


def test_bad_files_fail_one_by_one_as_with_the_local_engine(tmp_path: Path, cluster: str):
    reports = {}
    for engine in ("local", "ray"):
        docs = tmp_path / engine / "docs"
        write_reports(docs, files=2, paragraphs=2)
        (docs / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n")
        (docs / "empty.txt").write_text("  \n", encoding="utf-8")
        (docs / "binary.docx").write_bytes(os.urandom(2048))
        with open_index(tmp_path / engine / ".polisum", engine, cluster) as idx:
            reports[engine] = idx.ingest(docs)
    local, remote = reports["local"], reports["ray"]
    assert (remote.new, remote.failed) == (2, 3)
    assert sorted((f.source, f.reason) for f in remote.failures) == sorted(
        (f.source, f.reason) for f in local.failures
    )


def test_a_folder_some_node_cannot_see_is_refused_with_the_reason(cluster: str):
    engine = RayEngine(cluster)
    missing = Path("/nonexistent-polisum-share/docs")
    with pytest.raises(RayEngineError, match=r"shared filesystem every Ray node sees: .* not vis"):
        engine.check_visible(missing, FileJob(missing / "a.txt", "docs/a.txt"))


def test_gpu_actors_on_a_cluster_without_gpus_are_refused(cluster: str):
    engine = RayEngine(cluster, embedder=Choice("embedder", "st:some/model", "test"), actor_gpus=1)
    model = SimpleNamespace(name="st:some/model")
    with pytest.raises(RayEngineError, match=r"need 1 GPUs; the Ray cluster has 0"):
        list(engine.embed(model, ["text"]))


# -- settings -------------------------------------------------------------------------------------
def test_engine_settings_flags_env_and_trust(tmp_path: Path, monkeypatch):
    config = Config().with_overrides(engine="ray", ray_address="ray://head:10001", embed_actors=3)
    components = Components(config)
    assert components.engine_choice.describe() == "engine: ray at ray://head:10001 (from argument)"
    assert components.engine_choice in components.remote()  # announced before text leaves
    engine = components.open_engine()
    assert isinstance(engine, RayEngine)
    assert (engine.address, engine.actors["embed"]) == ("ray://head:10001", 3)
    assert engine.choices["embed"] == components.embedder_choice
    assert Components(Config()).open_engine().name == "local"
    with pytest.raises(ConfigError, match="engine must be"):
        Config(engine="spark")

    # a project file may pick the engine, not the cluster its documents go to
    (tmp_path / "polisum.toml").write_text(
        'engine = "ray"\nray_address = "ray://evil:10001"\nembed_actors = 2\n', encoding="utf-8"
    )
    loaded = Config.load(cwd=tmp_path)
    assert (loaded.engine, loaded.ray_address, loaded.embed_actors) == ("ray", None, 2)
    assert any("ignored 'ray_address'" in n for n in loaded.notices)
    monkeypatch.setenv("POLISUM_RAY_ADDRESS", "auto")
    loaded = Config.load(cwd=tmp_path, summarize_actors=4)
    assert loaded.ray_address == "auto" and loaded.origin("ray_address").startswith("env")
    assert loaded.summarize_actors == 4


def test_a_file_past_the_parse_limits_fails_alone_on_ray_too(tmp_path: Path, cluster: str):
    """Ray parse tasks run their files in limited parse workers, as the local engine does."""
    from tests.test_loaders_docx import DOC_HEAD, DOC_TAIL, paragraphs, write_docx

    docs = tmp_path / "docs"
    write_reports(docs, files=1, paragraphs=2)
    write_docx(docs / "long.docx", DOC_HEAD + paragraphs(80_000) + DOC_TAIL)
    with polisum.Index.open(
        tmp_path / ".polisum", ocr="off", engine="ray", ray_address=cluster, parse_timeout=0.2
    ) as idx:
        report = idx.ingest(docs)
    assert (report.new, report.failed) == (1, 1)
    assert [(f.source, f.reason) for f in report.failures] == [
        ("docs/long.docx", "timed out after 0.2 s (limit per file)")
    ]


# -- with the Milvus backend ----------------------------------------------------------------------
def test_ray_engine_publishes_to_milvus_as_the_local_engine_does(tmp_path: Path, cluster: str):
    """The engine computes, the backend stores: a Ray ingest into a Milvus Lite collection holds
    the chunks and answers queries exactly as a local ingest into the local backend does."""
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    results, hits = {}, {}
    queries = ["budget line for the bus depot", "보험금 지급", "code block"]
    for engine, backend in (("local", "local"), ("ray", "milvus")):
        project = tmp_path / engine
        (project / "docs").mkdir(parents=True)
        for name in SHARED_DOCS:
            shutil.copy(SHARED / name, project / "docs")
        write_reports(project / "docs", files=2, paragraphs=3)
        with polisum.Index.open(
            project / ".polisum", ocr="off", engine=engine, ray_address=cluster, backend=backend
        ) as idx:
            assert idx.ingest(project / "docs").failed == 0
            assert idx.backend.name == backend
            results[engine] = snapshot(idx)
            hits[engine] = [
                [(h.chunk_id, round(h.score, 4)) for h in idx.search(q, k=5)] for q in queries
            ]
    assert_same(results["local"], results["ray"])
    assert hits["ray"] == hits["local"] and all(hits["ray"])
