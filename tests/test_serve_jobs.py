"""Writes through the API: uploads, deletes and ingests as jobs on one writer, queued in order,
never interleaved, while searches keep being served."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("fastapi")

from tests.serve_support import (
    ADMIN,
    ADMIN_KEY,
    READ,
    READ_KEY,
    assert_problem,
    client_for,
    indexed_project,
    open_index,
    wait_job,
    write_docs,
)
from tests.test_ingest import assert_consistent

UPLOAD_TEXT = "The lunar rover survey maps craters near the south pole with ground radar.\n"


@pytest.fixture(scope="module")
def seed(tmp_path_factory):
    """A project (docs + index) built once; each test writes to a copy of it."""
    root = tmp_path_factory.mktemp("seed")
    with indexed_project(root):
        return root


@pytest.fixture
def project(seed, tmp_path):
    root = tmp_path / "project"
    shutil.copytree(seed, root, symlinks=True)
    (root / ".polisum" / "lock").unlink(missing_ok=True)
    index = open_index(root)
    yield root, index
    index.close()


def keyed(index, **settings):
    return client_for(index, read_keys=(READ_KEY,), admin_keys=(ADMIN_KEY,), **settings)


def sources(client) -> set[str]:
    return {d["source"] for d in client.get("/v1/documents", headers=READ).json()["documents"]}


def hit_sources(client, query: str) -> list[str]:
    hits = client.post("/v1/search", json={"query": query, "k": 3}, headers=READ).json()["hits"]
    return [h["source"] for h in hits]


def test_upload_is_ingested_then_delete_removes_document_and_file(project):
    root, index = project
    uploads = index.path / "uploads"
    with keyed(index) as c:
        before = sources(c)
        markdown = f"# Lunar\n\n{UPLOAD_TEXT}".encode()
        files = [
            ("files", ("../../../escape.md", markdown, "text/markdown")),
            ("files", ("/etc/notes.txt", UPLOAD_TEXT.encode(), "text/plain")),
        ]
        accepted = c.post("/v1/documents", files=files, headers=ADMIN)
        assert accepted.status_code == 202
        job = wait_job(c, accepted.json()["job"]["id"], READ)
        assert job["state"] == "done", job
        assert [(f["name"], f["status"]) for f in job["files"]] == [
            ("escape.md", "ok"),
            ("notes.txt", "ok"),
        ]
        assert job["report"]["files"]["new"] == 2 and {s["stage"] for s in job["stages"]} >= {
            "parse", "embed"
        }  # fmt: skip
        # Files landed in the uploads folder and nowhere else; the user's folder was not pruned.
        assert sorted(p.name for p in uploads.iterdir() if not p.name.startswith(".")) == [
            "escape.md", "notes.txt"
        ]  # fmt: skip
        assert not (root / "escape.md").exists() and not (root.parent / "escape.md").exists()
        assert sources(c) >= before
        assert hit_sources(c, "lunar rover craters radar")[0].endswith("uploads/escape.md")

        doc = job["files"][0]["document_id"]
        deleted = c.delete(f"/v1/documents/{doc}", headers=ADMIN)
        assert deleted.status_code == 202
        job = wait_job(c, deleted.json()["job"]["id"], READ)
        assert job["state"] == "done" and job["files"][0]["status"] == "removed"
        assert not (uploads / "escape.md").exists() and (uploads / "notes.txt").exists()
        assert all(not s.endswith("escape.md") for s in sources(c))
        assert_problem(c.get(f"/v1/documents/{doc}", headers=READ), 404)


def test_deleting_a_user_folder_document_keeps_its_file(project):
    root, index = project
    with keyed(index) as c:
        doc = next(d for d in c.get("/v1/documents", headers=READ).json()["documents"]
                   if d["source"].endswith("city.txt"))  # fmt: skip
        assert doc["uploaded"] is False
        deleted = c.delete(f"/v1/documents/{doc['id']}", headers=ADMIN).json()["job"]
        job = wait_job(c, deleted["id"], READ)
        assert job["state"] == "done"
        assert (root / "docs" / "city.txt").exists()
        assert doc["source"] not in sources(c)


def test_index_remove_publishes_one_removal_consistently(project):
    _, index = project
    city = next(d for d in index.documents() if d.source.endswith("city.txt"))
    with index.store.read() as view:
        generation = view.generation
    assert index.remove(city.source) is True
    assert city.source not in {d.source for d in index.documents()}
    with index.store.read() as view:
        assert view.generation == generation + 1
    kept = assert_consistent(index)  # SQLite, FAISS and BM25 agree on what is left
    assert kept and all(h.source != city.source for h in index.search("library hours", k=5))
    assert index.remove(city.source) is False  # nothing left to remove: nothing published


def test_upload_limits_through_http_leave_nothing_behind(project):
    _, index = project
    limits = {"max_upload_bytes": 2000, "max_files_per_upload": 2}
    with keyed(index, limits=limits) as c:
        big = c.post("/v1/documents", files={"files": ("big.md", b"x" * 5000)}, headers=ADMIN)
        assert "big.md" in assert_problem(big, 413)["detail"]
        many = [("files", (f"{i}.md", b"# x")) for i in range(3)]
        assert_problem(c.post("/v1/documents", files=many, headers=ADMIN), 413)
        exe = c.post("/v1/documents", files={"files": ("run.exe", b"MZ")}, headers=ADMIN)
        assert_problem(exe, 415)
        assert_problem(c.post("/v1/documents", json={"files": []}, headers=ADMIN), 415)
    staged = index.path / "uploads" / ".incoming"
    assert not staged.exists() or not any(staged.rglob("*.part"))
    assert not any((index.path / "uploads").glob("*.md"))


def hold_writer(client) -> threading.Event:
    """Occupy the writer with a job that waits for the returned event (a long ingest)."""
    gate = threading.Event()
    client.app.state.polisum.jobs.submit("ingest", "held", lambda job: gate.wait(60))
    return gate


def test_writes_are_queued_in_order_and_never_interleave(project):
    root, index = project
    extra = write_docs(root / "docs" / "more")
    with keyed(index, allowed_ingest_roots=(root,)) as c:
        gate = hold_writer(c)
        first = c.post("/v1/ingest", json={"path": str(extra)}, headers=ADMIN).json()["job"]
        doc = next(iter(c.get("/v1/documents", headers=READ).json()["documents"]))
        second = c.delete(f"/v1/documents/{doc['id']}", headers=ADMIN).json()["job"]
        assert (first["state"], first["position"]) == ("queued", 1)
        assert (second["state"], second["position"]) == ("queued", 2)
        assert c.get("/v1/status", headers=READ).json()["service"]["writer"]["queued"] == 2
        gate.set()
        done = [wait_job(c, j["id"], READ) for j in (first, second)]
        assert [j["state"] for j in done] == ["done", "done"]
        assert done[0]["finished_at"] <= done[1]["started_at"]
        listed = [j["id"] for j in c.get("/v1/jobs", headers=READ).json()["jobs"]]
        assert listed.index(second["id"]) < listed.index(first["id"])  # newest first
        assert any(s.startswith("docs/more/") for s in sources(c))


def test_a_full_queue_is_429(project):
    root, index = project
    with keyed(index, allowed_ingest_roots=(root,), limits={"max_queued_jobs": 1}) as c:
        gate = hold_writer(c)
        time.sleep(0.1)  # the held job is running, the queue is empty
        ok = c.post("/v1/ingest", json={"path": str(root / "docs")}, headers=ADMIN)
        assert ok.status_code == 202
        full = c.post("/v1/ingest", json={"path": str(root / "docs")}, headers=ADMIN)
        assert "waiting" in assert_problem(full, 429)["detail"]
        upload = c.post("/v1/documents", files={"files": ("a.md", b"# a")}, headers=ADMIN)
        assert_problem(upload, 429)
        gate.set()
        wait_job(c, ok.json()["job"]["id"], READ)


def test_a_writer_in_another_process_fails_the_job_with_its_reason(project):
    root, index = project
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom pathlib import Path\nfrom polisum.index.lock import WriteLock\n"
         f"with WriteLock(Path({str(index.path)!r})).hold():\n"
         "    print('held', flush=True)\n    time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with keyed(index, allowed_ingest_roots=(root,)) as c:
            job = c.post("/v1/ingest", json={"path": str(root / "docs")}, headers=ADMIN)
            failed = wait_job(c, job.json()["job"]["id"], READ)
            assert failed["state"] == "failed"
            assert "another ingest is writing" in failed["error"]
            assert hit_sources(c, "rooftop solar panels")  # reads go on
    finally:
        holder.kill()
        holder.wait()


def test_search_is_served_from_the_last_generation_during_an_ingest(project):
    root, index = project
    bulk = root / "bulk"
    bulk.mkdir()
    for i in range(40):
        (bulk / f"note{i:03d}.txt").write_text(
            f"Field note {i}: the harbour crane {i} lifted containers of rice and steel.\n\n"
            f"Inspection {i} found the crane cable worn after {i + 3} years of service.\n",
            encoding="utf-8",
        )
    with keyed(index, allowed_ingest_roots=(root,)) as c:
        generation = c.get("/v1/documents", headers=READ).json()["generation"]
        job = c.post("/v1/ingest", json={"path": str(bulk)}, headers=ADMIN).json()["job"]
        while c.get(f"/v1/jobs/{job['id']}", headers=READ).json()["state"] == "queued":
            time.sleep(0.01)
        during, failures = [], []

        def searcher() -> None:
            while c.get(f"/v1/jobs/{job['id']}", headers=READ).json()["state"] == "running":
                response = c.post(
                    "/v1/search", json={"query": "rooftop solar panels", "k": 3}, headers=READ
                )
                if response.status_code != 200 or not response.json()["hits"]:
                    failures.append(response.text)
                during.append(response.status_code)

        threads = [threading.Thread(target=searcher) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not failures
        assert len(during) >= 3  # searches really ran while the ingest did
        after = c.get("/v1/documents", headers=READ).json()
        assert after["generation"] > generation
        assert sum(d["source"].startswith("bulk/") for d in after["documents"]) == 40
        assert hit_sources(c, "harbour crane cable worn")[0].startswith("bulk/")
