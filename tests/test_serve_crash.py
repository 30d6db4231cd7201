"""`polisum serve` killed in the middle of an upload's publish loses nothing: the index stays
consistent and searchable, and the upload is indexed by the next ingest of the uploads folder."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

import httpx

from polisum.api import Index
from tests.serve_support import open_index, write_docs
from tests.test_ingest import assert_consistent

SRC = Path(__file__).resolve().parents[1] / "src"


def start(index: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "polisum.cli", "serve", "--index", str(index), "--port",
         str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()
        try:
            httpx.get(f"{url}/v1/health", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("polisum serve did not start")


@pytest.mark.slow
def test_a_server_killed_mid_publish_loses_nothing(tmp_path, user_config):
    write_docs(tmp_path / "docs")
    with open_index(tmp_path) as index:
        index.ingest(tmp_path / "docs")
        before = assert_consistent(index)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), *sys.path]),
           "POLISUM_CONFIG_DIR": str(user_config)}  # fmt: skip
    index_dir = tmp_path / ".polisum"
    lunar = b"# Lunar\n\nThe lunar rover survey maps craters near the south pole with radar.\n"

    proc, url = start(index_dir, {**env, "POLISUM_CRASH_AT": "during_publish"})
    with contextlib.suppress(httpx.HTTPError):  # it may die before answering
        httpx.post(f"{url}/v1/documents", files={"files": ("lunar.md", lunar)}, timeout=30)
    assert proc.wait(60) == -9  # killed as by kill -9, inside the publish transaction

    with Index.open(index_dir, create=False) as index:
        assert assert_consistent(index) == before  # the old generation, whole
        assert index.search("rooftop solar panels", k=1)
        # The upload was already in the uploads folder: the next upload's ingest (the same
        # folder ingest, run here directly) indexes it.
        assert (index_dir / "uploads" / "lunar.md").read_bytes() == lunar
        index.ingest(index_dir / "uploads")
        assert index.search("lunar rover craters", k=1)[0].source == ".polisum/uploads/lunar.md"
        assert_consistent(index)
