"""Issue 13: real folders never stop an ingest — file names, per-file limits, consistent reads
during publishes, damaged or future-version indexes, a full disk, crashes between batches."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import polisum
from polisum.cli import app
from polisum.errors import DiskFullError, IndexDamagedError
from tests.conftest import EN_LIBRARY, EN_SOLAR, KO_BUS, KO_RENT
from tests.test_ingest import assert_consistent
from tests.test_loaders_docx import DOC_HEAD, DOC_TAIL, paragraphs, write_docx

runner = CliRunner()


# -- file names ---------------------------------------------------------------------------------
def test_cp949_and_euc_kr_names_are_stored_decoded_and_never_collide(tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    names = {
        "예산.txt".encode("cp949"): KO_RENT,  # what unzip makes of a Korean Windows zip
        "가산.txt".encode("cp949"): KO_BUS,  # the same replacement-character name as 예산
        "예산.txt".encode(): EN_LIBRARY,  # the real UTF-8 name: must stay apart
        b"\xff\xfe.txt": EN_SOLAR,  # decodes in no Korean code page
    }
    for raw, text in names.items():
        with open(os.path.join(os.fsencode(docs), raw), "w", encoding="utf-8") as fh:
            fh.write(text)
    with polisum.Index.open(tmp_path / ".polisum") as idx:
        report = idx.ingest(docs)
        assert (report.new, report.failed) == (4, 0)
        sources = {d.source for d in idx.documents()}
        assert sources == {
            "docs/‹cp949›예산.txt",
            "docs/‹cp949›가산.txt",
            "docs/예산.txt",
            "docs/‹bytes›\\xff\\xfe.txt",
        }
        hit = idx.search("청년 교통비", k=1)[0]
        assert hit.source == "docs/‹cp949›가산.txt" and hit.text == KO_BUS
        assert idx.ingest(docs).unchanged == 4  # a rerun finds every file under its name
        (docs / os.fsdecode("가산.txt".encode("cp949"))).unlink()
        assert idx.ingest(docs).removed == 1


def test_symlinks_inside_the_folder_are_followed(tmp_path: Path):
    docs = tmp_path / "docs"
    (docs / "real").mkdir(parents=True)
    (docs / "real" / "bus.txt").write_text(KO_BUS, encoding="utf-8")
    (docs / "alias.txt").symlink_to(docs / "real" / "bus.txt")
    with polisum.Index.open(tmp_path / ".polisum") as idx:
        report = idx.ingest(docs)
        assert report.failed == 0
        assert {d.source for d in idx.documents()} == {"docs/alias.txt", "docs/real/bus.txt"}


# -- per-file limits in the worker processes --------------------------------------------------
@pytest.fixture(scope="module")
def long_docx(tmp_path_factory) -> Path:
    """A valid 80,000-paragraph DOCX: seconds and ~100 MiB to read."""
    folder = tmp_path_factory.mktemp("long")
    write_docx(folder / "long.docx", DOC_HEAD + paragraphs(80_000) + DOC_TAIL)
    (folder / "small.txt").write_text(EN_LIBRARY, encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        ({"parse_timeout": 0.2}, "timed out after 0.2 s (limit per file)"),
        ({"parse_memory_mb": 64}, "needs more than 64 MiB of memory (limit per file)"),
    ],
)
def test_a_file_past_its_limit_fails_alone(long_docx: Path, tmp_path: Path, limits, reason):
    with polisum.Index.open(tmp_path / ".polisum", **limits) as idx:
        report = idx.ingest(long_docx)
        assert report.new == 1 and report.failed == 1
        assert [(f.source.rsplit("/", 1)[-1], f.reason) for f in report.failures] == [
            ("long.docx", reason)
        ]
        assert idx.search("When do libraries close?", k=1)[0].text == EN_LIBRARY
        again = idx.ingest(long_docx)  # recorded: not retried while unchanged
        assert again.failed == 0 and again.unchanged == 2


# -- readers during publishes -------------------------------------------------------------------
def test_searches_during_repeated_publishes_never_see_empty_or_mixed_results(tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "stable.txt").write_text(EN_LIBRARY, encoding="utf-8")
    (docs / "moving.txt").write_text(KO_RENT, encoding="utf-8")
    index = tmp_path / ".polisum"
    with polisum.Index.open(index) as idx:
        idx.ingest(docs)
    stop = threading.Event()
    problems: list[str] = []
    searches = 0

    def reader() -> None:
        nonlocal searches
        with polisum.Index.open(index, create=False) as idx:
            while not stop.is_set():
                hits = idx.search("When do libraries close? 월세", k=5)
                searches += 1
                if not any(h.text == EN_LIBRARY for h in hits):
                    problems.append(f"stable document missing: {[h.source for h in hits]}")
                if len({h.chunk_id for h in hits}) != len(hits):
                    problems.append("a chunk twice")
                with idx.store.read() as view:  # the counts a reader sees agree with each other
                    n_docs, n_chunks = len(view.documents()), view.count_chunks()
                if n_docs != 2 or n_chunks != 2:
                    problems.append(f"mixed state: {n_docs} documents, {n_chunks} chunks")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        with polisum.Index.open(index, parse_workers=0) as writer:
            for i in range(12):  # each rerun replaces moving.txt: one publish each
                text = (KO_RENT, KO_BUS, EN_SOLAR)[i % 3] + f" 판 {i}."
                (docs / "moving.txt").write_text(text, encoding="utf-8")
                assert writer.ingest(docs).changed == 1
    finally:
        stop.set()
        thread.join()
    assert searches > 12 and problems == []


# -- damaged, future-version and full indexes ---------------------------------------------------
def test_a_damaged_index_is_one_clear_line_and_rebuild_moves_it_aside(docs: Path, tmp_path: Path):
    index = tmp_path / "idx"
    assert runner.invoke(app, ["ingest", str(docs), "--index", str(index), "-q"]).exit_code == 0
    db = index / "meta.sqlite"
    for part in index.glob("meta.sqlite-*"):
        part.unlink()
    db.write_bytes(b"this is not a database" * 100)
    result = runner.invoke(app, ["status", "--index", str(index)])
    assert result.exit_code == 2
    assert "the index database is damaged" in result.stderr and "--rebuild" in result.stderr
    assert "Traceback" not in result.output
    with pytest.raises(IndexDamagedError):
        polisum.Index.open(index)
    rebuilt = runner.invoke(app, ["ingest", str(docs), "--index", str(index), "--rebuild", "-q"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert len(list(index.glob("meta.sqlite.damaged-*"))) == 1
    result = runner.invoke(app, ["query", "청년 교통비", "--index", str(index), "--json"])
    assert result.exit_code == 0 and "교통비" in result.stdout


def test_a_future_version_index_says_so(docs: Path, tmp_path: Path):
    index = tmp_path / "idx"
    with polisum.Index.open(index) as idx:
        idx.ingest(docs)
    with sqlite3.connect(index / "meta.sqlite") as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    result = runner.invoke(app, ["status", "--index", str(index)])
    assert result.exit_code == 2
    assert "schema version 99" in result.stderr and "another polisum version" in result.stderr


def test_a_full_disk_is_one_clear_line_and_leaves_the_index_as_it_was(docs: Path, tmp_path: Path):
    index = tmp_path / "idx"
    with polisum.Index.open(index) as idx:
        idx.ingest(docs)
        before = assert_consistent(idx)
        generation = idx.store.generation
        pages = idx.store._db.execute("PRAGMA page_count").fetchone()[0]
        # SQLite reports SQLITE_FULL exactly as on a full disk once the file may not grow.
        idx.store._db.execute(f"PRAGMA max_page_count = {pages + 1}")
        (docs / "more.txt").write_text("새 문서. " * 4000, encoding="utf-8")
        with pytest.raises(DiskFullError, match="no space left to write the index"):
            idx.ingest(docs)
        assert idx.store.generation == generation
        assert assert_consistent(idx) == before
        assert not list(index.glob(".bm25*"))  # no staging folder left behind


# -- crashes between batches --------------------------------------------------------------------
def _write_many(docs: Path, tag: str) -> None:
    docs.mkdir(parents=True, exist_ok=True)
    for i in range(16):
        text = f"Report {i} ({tag}): the budget line {i * 7} for district {i} is approved."
        (docs / f"r{i:02d}.txt").write_text(text, encoding="utf-8")


@pytest.mark.slow
@pytest.mark.parametrize("delay", [2.0, 4.5])
def test_kill_between_batches_keeps_complete_generations(tmp_path: Path, delay: float):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "polisum.toml").write_text("[limits]\nbatch_files = 3\n", encoding="utf-8")
    _write_many(project / "docs", "v1")
    ingest = [sys.executable, "-m", "polisum.cli", "ingest", "docs", "-q"]
    assert subprocess.run(ingest, cwd=project, capture_output=True).returncode == 0
    _write_many(project / "docs", "v2")
    proc = subprocess.Popen(ingest, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(delay + random.random())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with polisum.Index.open(project / ".polisum", create=False) as idx:
        held = assert_consistent(idx)  # a complete generation: some batches in, none torn
        assert len(held) == 16
        assert idx.search("budget line for district", k=3)
    assert subprocess.run(ingest, cwd=project, capture_output=True).returncode == 0
    with polisum.Index.open(project / ".polisum", create=False) as idx:
        assert len(assert_consistent(idx)) == 16
        texts = [r[0] for r in idx.store._db.execute("SELECT text FROM chunks")]
        assert all("(v2)" in t for t in texts)
    shutil.rmtree(project)
