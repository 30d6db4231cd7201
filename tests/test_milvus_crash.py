"""The Milvus backend under kill -9 and under concurrent readers: queries always see one whole
generation (the old or the new one, never a mix, never nothing), and the next ingest or
`polisum index sync` completes what a crash interrupted."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

import polisum
from polisum.cli import app
from tests.test_crash import _ingest, _write_v1, _write_v2
from tests.test_ingest import expected_chunk_ids
from tests.test_milvus import store_ids, visible

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict:
    """v1 published to Milvus Lite, with v2's vectors and summaries already cached (the crash
    runs then do no model work), and the chunk sets of both states."""
    root = tmp_path_factory.mktemp("milvus-crash")
    scratch = root / "scratch"
    _write_v1(scratch / "docs")
    _write_v2(scratch / "docs")
    with polisum.Index.open(scratch / ".polisum") as idx:
        idx.ingest(scratch / "docs")
    new = expected_chunk_ids(scratch / "docs", scratch)
    project = root / "proj"
    _write_v1(project / "docs")
    with polisum.Index.open(project / ".polisum", backend="milvus") as idx:
        idx.ingest(project / "docs")
        old = set(visible(idx))
    db = sqlite3.connect(project / ".polisum" / "meta.sqlite")
    db.execute("ATTACH ? AS s", (str(scratch / ".polisum" / "meta.sqlite"),))
    db.execute("INSERT OR IGNORE INTO embeddings SELECT * FROM s.embeddings")
    db.execute("INSERT OR IGNORE INTO summaries SELECT * FROM s.summaries")
    db.commit()
    db.close()
    assert old == expected_chunk_ids(project / "docs", project) and old != new
    return {"project": project, "old": old, "new": new}


@pytest.mark.parametrize(
    ("point", "store_after", "queries_after"),
    [
        ("before_publish", "old", "old"),
        ("during_publish", "old", "old"),  # Milvus written, SQLite rolled back
        ("after_publish", "new", "old"),  # SQLite committed, queries not switched yet
        ("after_index_write", "new", "new"),
    ],
)
def test_kill_during_publish_leaves_a_whole_generation_and_the_rerun_completes(
    base: dict, tmp_path: Path, point: str, store_after: str, queries_after: str
):
    project = tmp_path / "proj"
    shutil.copytree(base["project"], project)
    _write_v2(project / "docs")
    crashed = _ingest(project, crash_at=point)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr

    with polisum.Index.open(project / ".polisum", create=False) as idx:
        assert idx.backend.name == "milvus"
        assert store_ids(idx) == base[store_after]
        assert set(visible(idx)) == base[queries_after]
        assert idx.search("월세 지원", k=1)  # queries work on what the crash left
        in_sync = idx.info()["backend"]["in_sync"]
        assert in_sync == (store_after == queries_after)

    if point == "after_publish":  # the store is ahead: `polisum index sync` switches
        result = CliRunner().invoke(app, ["index", "sync", "--index", str(project / ".polisum")])
        assert result.exit_code == 0, result.stderr
        assert "switched queries" in result.stderr
    else:
        assert _ingest(project).returncode == 0
    with polisum.Index.open(project / ".polisum", create=False) as idx:
        assert store_ids(idx) == set(visible(idx)) == base["new"]
        state = idx.backend._state()
        for name in (idx.backend.names.chunks, idx.backend.names.terms):
            assert (
                idx.backend.client.query(
                    name, filter=f"gen_from > {state.generation}", output_fields=["pk"]
                )
                == []
            ), "rows of an interrupted publish left behind"
        assert idx.search("When do city libraries close?", k=1)[0].source == "docs/library.txt"
        assert idx.info()["backend"]["in_sync"]


# -- readers while an ingest publishes --------------------------------------------------------
READER = """
import json, sys, time
from pathlib import Path
import polisum
out, stop = Path(sys.argv[1]), Path(sys.argv[2])
idx = polisum.Index.open(Path(sys.argv[3]), create=False)  # a replica: no local files
assert idx.query_only
with out.open("w") as f:
    print("ready", flush=True)
    while not stop.exists():
        hits = idx.search("예산 budget 청년 library", k=500)
        f.write(json.dumps(sorted(h.chunk_id for h in hits)) + "\\n")
        f.flush()
        time.sleep(0.02)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def milvus_server(tmp_path: Path):
    """A Milvus Lite gRPC server: the shape of a real deployment (several clients)."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(tmp_path / "mdata"),
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    from pymilvus import MilvusClient

    deadline = time.monotonic() + 60
    while True:
        try:
            MilvusClient(uri=uri, timeout=2).close()
            break
        except Exception:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise
            time.sleep(0.3)
    yield uri
    server.terminate()
    server.wait(timeout=30)


def test_two_replicas_read_whole_generations_while_one_worker_ingests(
    tmp_path: Path, milvus_server: str, monkeypatch
):
    project = tmp_path / "proj"
    docs = project / "docs"
    _write_v1(docs)
    settings = {"backend": "milvus", "milvus_uri": milvus_server, "milvus_collection": "live"}
    states = []
    with polisum.Index.open(project / ".polisum", **settings) as idx:
        idx.ingest(docs)
        states.append(frozenset(store_ids(idx)))

        env = {
            **os.environ,
            "POLISUM_BACKEND": "milvus",
            "POLISUM_MILVUS_URI": milvus_server,
            "POLISUM_MILVUS_COLLECTION": "live",
        }
        stop = tmp_path / "stop"
        readers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    READER,
                    str(tmp_path / f"r{i}.jsonl"),
                    str(stop),
                    str(tmp_path / f"replica{i}" / ".polisum"),
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(2)
        ]
        try:
            for r in readers:
                assert r.stdout.readline().strip() == "ready", r.stderr.read()
            for version in (_write_v2, _write_v1, _write_v2):
                if version is _write_v1:
                    shutil.rmtree(docs)
                version(docs)
                idx.ingest(docs)
                states.append(frozenset(store_ids(idx)))
                time.sleep(0.5)
        finally:
            stop.touch()
            for r in readers:
                r.wait(timeout=120)
        assert [r.returncode for r in readers] == [0, 0], [r.stderr.read() for r in readers]

    seen = []
    for i in range(2):
        lines = (tmp_path / f"r{i}.jsonl").read_text().splitlines()
        results = [frozenset(json.loads(line)) for line in lines]
        assert results and all(r in states for r in results), "a reader saw a mixed state"
        seen += results
    assert len(set(seen)) >= 2, "the readers never saw a switch"
    assert states[1] != states[0]
