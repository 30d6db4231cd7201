"""ServeSettings (keys, loopback rule, limits, environment) and the `polisum serve` command."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from polisum.cli import app as cli
from polisum.serve.settings import (
    ApiKeys,
    ServeSettings,
    ServeSettingsError,
    is_loopback,
    read_keys_file,
)

KEY_A = "a" * 24
KEY_B = "b" * 24


@pytest.mark.parametrize(
    "host, loopback",
    [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("0.0.0.0", False), ("::", False), ("192.168.0.4", False),
     ("example.org", False)],
)  # fmt: skip
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_non_loopback_without_keys_is_refused_with_what_to_do():
    with pytest.raises(ServeSettingsError) as caught:
        ServeSettings(host="0.0.0.0")
    message = str(caught.value)
    assert "0.0.0.0" in message and "--keys-file" in message and "127.0.0.1" in message
    assert ServeSettings(host="0.0.0.0", read_keys=(KEY_A,)).host == "0.0.0.0"


def test_short_keys_are_refused_and_keys_never_show_in_repr():
    with pytest.raises(ServeSettingsError, match="shorter than 16"):
        ServeSettings(admin_keys=("short",))
    settings = ServeSettings(read_keys=(KEY_A,), admin_keys=(KEY_B,))
    assert KEY_A not in repr(settings) and KEY_B not in str(settings.model_dump())


def test_keys_file_and_environment_roles(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text(f"# team keys\nread {KEY_A}\n\nadmin {KEY_B}\n", encoding="utf-8")
    env = {"POLISUM_READ_KEYS": "c" * 20 + ", " + "d" * 20}
    settings = ServeSettings.load(keys_file=keys, environ=env)
    roles = settings.api_keys()
    assert roles.role_of(KEY_A) == "read" and roles.role_of(KEY_B) == "admin"
    assert roles.role_of("c" * 20) == "read" and roles.role_of("d" * 20) == "read"
    assert roles.role_of("e" * 20) is None and roles.required
    assert KEY_A not in str(roles)  # digests only
    assert not ApiKeys().required


def test_a_bad_keys_file_line_is_named_without_echoing_it(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text(f"read {KEY_A}\nwrite {KEY_B}\n", encoding="utf-8")
    with pytest.raises(ServeSettingsError) as caught:
        read_keys_file(keys)
    assert ":2:" in str(caught.value) and KEY_B not in str(caught.value)


def test_limits_from_flags_over_environment_over_defaults(tmp_path):
    env = {"POLISUM_SERVE_MAX_K": "20", "POLISUM_SERVE_MAX_QUERY_CHARS": "500"}
    settings = ServeSettings.load(limits={"max_k": "7"}, environ=env)
    assert settings.limits.max_k == 7 and settings.limits.max_query_chars == 500
    assert settings.limits.max_files_per_upload == 32
    with pytest.raises(ServeSettingsError, match="unknown limit 'max_kk'"):
        ServeSettings.load(limits={"max_kk": "1"}, environ={})
    with pytest.raises(ServeSettingsError, match="max_k"):
        ServeSettings.load(limits={"max_k": "0"}, environ={})


def test_environment_gives_roots_cors_and_image_model(tmp_path):
    env = {
        "POLISUM_INGEST_ROOTS": f"{tmp_path / 'a'}:{tmp_path / 'b'}",
        "POLISUM_CORS_ORIGINS": "https://a.example, https://b.example",
        "POLISUM_SD_MODEL": "/models/sd35",
    }
    settings = ServeSettings.load(environ=env)
    assert settings.allowed_ingest_roots == (tmp_path / "a", tmp_path / "b")
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.image_model == "/models/sd35"
    assert ServeSettings.load(environ={}).cors_origins == ()  # CORS is off by default


def test_cli_refuses_a_public_address_without_keys(tmp_path):
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--index", str(tmp_path)])
    assert result.exit_code == 2
    assert "refusing to serve on 0.0.0.0 without API keys" in result.output


def test_cli_without_the_serve_extra_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn → ImportError
    result = CliRunner().invoke(cli, ["serve", "--index", str(tmp_path / ".polisum")])
    assert result.exit_code == 2
    assert "pip install 'polisum[serve]'" in result.output


def test_cli_rejects_a_malformed_limit(tmp_path):
    result = CliRunner().invoke(cli, ["serve", "--limit", "max_k", "--index", str(tmp_path)])
    assert result.exit_code == 2 and "NAME=VALUE" in result.output
