"""kill -9 an ingest at every stage: the index must reopen as the old or the new state, never a
mix, and a rerun must finish the job with no duplicates."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import polisum
from tests.conftest import EN_LIBRARY, EN_SOLAR, KO_BUS, KO_RENT
from tests.test_ingest import assert_consistent, expected_chunk_ids

pytestmark = pytest.mark.slow


def _write_v1(docs: Path) -> None:
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "rent.txt").write_text(KO_RENT, encoding="utf-8")
    (docs / "bus.md").write_text(f"# 교통\n\n{KO_BUS}\n", encoding="utf-8")
    (docs / "solar.txt").write_text(EN_SOLAR, encoding="utf-8")


def _write_v2(docs: Path) -> None:
    """A change set touching every path of an ingest: add, modify, delete."""
    (docs / "rent.txt").write_text(
        KO_RENT + "\n\n추가된 문단: 신청 기간은 매년 3월이다.", encoding="utf-8"
    )
    (docs / "bus.md").unlink()
    (docs / "library.txt").write_text(EN_LIBRARY, encoding="utf-8")
    for i in range(6):  # enough new paragraphs for more than one embedding batch
        paragraphs = [
            f"Report {i} paragraph {j}: budget line {i * 100 + j} is approved." for j in range(12)
        ]
        (docs / f"report{i}.txt").write_text("\n\n".join(paragraphs), encoding="utf-8")


def _ingest(project: Path, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "POLISUM_CRASH_AT": crash_at or ""}
    return subprocess.run(
        [sys.executable, "-m", "polisum.cli", "ingest", "docs", "-q", "--json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def states(tmp_path_factory) -> dict[str, set[str]]:
    """Chunk-id sets of the old (v1) and new (v2) folder, from the chunker alone."""
    root = tmp_path_factory.mktemp("reference")
    docs = root / "docs"
    _write_v1(docs)
    old = expected_chunk_ids(docs, root)
    _write_v2(docs)
    return {"old": old, "new": expected_chunk_ids(docs, root)}


@pytest.mark.parametrize(
    ("point", "state_after_crash"),
    [
        ("after_parse", "old"),
        ("during_embed", "old"),
        ("before_publish", "old"),
        ("during_publish", "old"),
        ("after_publish", "new"),
        ("after_index_write", "new"),
    ],
)
def test_kill_at_each_stage_leaves_old_or_new_state_and_rerun_completes(
    tmp_path: Path, states, point: str, state_after_crash: str
):
    project = tmp_path / "proj"
    _write_v1(project / "docs")
    first = _ingest(project)
    assert first.returncode == 0, first.stderr
    _write_v2(project / "docs")

    crashed = _ingest(project, crash_at=point)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr

    with polisum.Index.open(project / ".polisum", create=False) as idx:
        assert assert_consistent(idx) == states[state_after_crash]
        assert idx.search("월세 지원", k=1)  # queries work on the recovered index

    rerun = _ingest(project)
    assert rerun.returncode == 0, rerun.stderr
    with polisum.Index.open(project / ".polisum", create=False) as idx:
        assert assert_consistent(idx) == states["new"]
        hit = idx.search("When do city libraries close?", k=1)[0]
        assert hit.source == "docs/library.txt"


def test_model_work_survives_a_crash(tmp_path: Path):
    """Vectors embedded before the kill are reused by the rerun instead of recomputed."""
    project = tmp_path / "proj"
    _write_v1(project / "docs")
    _write_v2(project / "docs")
    assert _ingest(project, crash_at="before_publish").returncode == -signal.SIGKILL
    with polisum.Index.open(project / ".polisum", create=False) as idx:
        cached = idx.store._db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
        assert idx.store.count_chunks() == 0 and cached > 0


@pytest.mark.parametrize("delay", [1.0, 2.5, 4.0, 6.0])
def test_kill_at_random_moments(tmp_path: Path, states, delay: float):
    project = tmp_path / "proj"
    _write_v1(project / "docs")
    assert _ingest(project).returncode == 0
    _write_v2(project / "docs")
    proc = subprocess.Popen(
        [sys.executable, "-m", "polisum.cli", "ingest", "docs", "-q"],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with polisum.Index.open(project / ".polisum", create=False) as idx:
        assert assert_consistent(idx) in (states["old"], states["new"])
    assert _ingest(project).returncode == 0
    with polisum.Index.open(project / ".polisum", create=False) as idx:
        assert assert_consistent(idx) == states["new"]
    shutil.rmtree(project)
