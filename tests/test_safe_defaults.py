"""Issue 14 at the surfaces: an untrusted polisum.toml sends nothing anywhere, a server error
mid-answer makes the CLI fail with the message, credentials never show, and control characters
from documents or file names never reach the terminal raw."""

from __future__ import annotations

import json
import os
from pathlib import Path

from typer.testing import CliRunner

from polisum.cli import app
from polisum.config import trust
from tests.conftest import EN_LIBRARY, KO_RENT
from tests.fake_openai import chunk, completion, fake_openai, stream

runner = CliRunner()


def _folder_with_hostile_toml(tmp_path: Path, url: str) -> Path:
    """A downloaded folder: documents and a polisum.toml that names a server of its own."""
    docs = tmp_path / "downloaded"
    docs.mkdir()
    (docs / "rent.txt").write_text(KO_RENT, encoding="utf-8")
    (docs / "polisum.toml").write_text(
        f'summarizer = "openai:gpt"\nsummarizer_base_url = "{url}"\n'
        f'generator = "openai:gpt"\nbase_url = "{url}"\n',
        encoding="utf-8",
    )
    return docs


def test_an_untrusted_toml_sends_no_key_and_no_document_text(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-0123456789")
    with fake_openai(completion("Summary.")) as server:
        docs = _folder_with_hostile_toml(tmp_path, server.url)
        monkeypatch.chdir(docs)
        result = runner.invoke(app, ["ingest", ".", "--json"])
        assert result.exit_code == 0, result.output
        assert "ignored 'summarizer' from" in result.stderr
        assert "polisum config trust" in result.stderr
        answer = runner.invoke(app, ["query", "월세", "--answer", "--json"])
        assert answer.exit_code == 0
        assert json.loads(answer.stdout)["generator"] is None  # extractive, no server
        status = json.loads(runner.invoke(app, ["status", "--json"]).stdout)
        assert status["summarizer"] == "extractive"
        assert server.requests == []  # nothing reached the server: no key, no text
        # Trusted by the user, the same file is used, and the server is named before use.
        trust(docs / "polisum.toml")
        result = runner.invoke(app, ["ingest", ".", "--rebuild"])
        assert result.exit_code == 0, result.output
        assert f"sending text to summarizer: openai:gpt at {server.url}" in result.stderr
        posts = [r for r in server.requests if r.method == "POST"]
        assert posts and "월세" in json.dumps(posts[0].body, ensure_ascii=False)


def test_a_server_error_mid_answer_fails_the_command_with_its_message(docs: Path, tmp_path: Path):
    index = tmp_path / "idx"
    assert runner.invoke(app, ["ingest", str(docs), "--index", str(index), "-q"]).exit_code == 0
    events = [chunk("City "), chunk("libraries "), {"error": {"message": "CUDA out of memory"}}]
    with fake_openai(stream(events)) as server:
        args = ["query", "When do libraries close?", "--index", str(index), "--answer"]
        args += ["--generator", "openai:fake", "--base-url", server.url]
        result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert "CUDA out of memory" in result.stderr
    assert "Traceback" not in result.output


def test_credentials_in_a_server_url_are_not_stored_or_printed(docs: Path, tmp_path: Path):
    index = tmp_path / "idx"
    with fake_openai(completion("The libraries open at nine.")) as server:
        secret_url = server.url.replace("http://", "http://alice:hunter2@") + "?api_key=k-999"
        args = ["ingest", str(docs), "--index", str(index), "--summarizer", "openai:fake"]
        result = runner.invoke(app, [*args, "--base-url", secret_url])
        assert result.exit_code == 0, result.output
        assert server.requests  # it was used
    status = runner.invoke(app, ["status", "--index", str(index), "--json"])
    for text in (
        result.output,
        status.stdout,
        (index / "meta.sqlite").read_bytes().decode("latin-1"),
    ):
        assert "hunter2" not in text and "k-999" not in text


def test_control_characters_from_documents_and_names_never_reach_the_terminal(tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    hostile_name = "report\x1b]0;pwned\x07\x1b[2J.txt"
    # (Text with over 1% control characters is refused as binary: these are a few in prose.)
    hostile_text = f"{EN_LIBRARY * 3} \x1b[31mFAKE WARNING\x1b[0m \x07 \u202eevil"
    (docs / hostile_name).write_text(hostile_text, encoding="utf-8")
    (docs / "empty\x1b[1m.txt").write_bytes(b"")
    index = tmp_path / "idx"
    outputs = [
        runner.invoke(app, ["ingest", str(docs), "--index", str(index)]),
        runner.invoke(app, ["status", "--index", str(index)]),
        runner.invoke(app, ["query", "libraries", "--index", str(index)]),
        runner.invoke(app, ["query", "libraries", "--index", str(index), "--answer"]),
    ]
    for result in outputs:
        text = result.stdout + result.stderr
        assert not any(ch in text for ch in ("\x1b", "\x07", "\u202e")), repr(text[:400])
    assert "report" in outputs[1].stdout  # the name is shown, its escape sequences removed
    # --json keeps the exact text (the JSON encoder escapes control characters)
    data = runner.invoke(app, ["query", "libraries", "--index", str(index), "--json"]).stdout
    assert "\x1b" not in data and "\\u001b" in data
    assert any(h["text"] == hostile_text for h in json.loads(data)["hits"])
    assert os.path.exists(docs / hostile_name)
