"""printable(): terminal escape sequences and control characters from untrusted text;
redact_url() / redact(): credentials out of URLs and messages."""

from __future__ import annotations

import pytest

from polisum.security import redact, redact_url
from polisum.terminal import printable


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("a\x1b[31mred\x1b[0m b", "ared b"),  # CSI colours
        ("\x1b[2J\x1b[Hcleared", "cleared"),  # clear screen, cursor home
        ("x\x1b]0;pwned title\x07y", "xy"),  # OSC window title, BEL-terminated
        ("x\x1b]52;c;ZXZpbA==\x1b\\y", "xy"),  # OSC 52 clipboard write, ST-terminated
        ("\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\", "click"),  # OSC 8 link
        ("x\x1bPq#0;2;0;0;0\x1b\\y", "xy"),  # DCS (sixel)
        ("\x9b31mc1 csi", "c1 csi"),  # 8-bit CSI
        ("a\x9d0;t\x9cb", "ab"),  # 8-bit OSC with 8-bit ST
        ("\x1b7saved\x1b8", "saved"),  # two-byte ESC sequences
        ("bell\x07", "bell\\x07"),
        ("lone escape \x1b", "lone escape \\x1b"),
        ("unterminated \x1b]0;title", "unterminated \\x1b]0;title"),  # shown, not swallowed
        ("mojibake \x9d stays", "mojibake \\x9d stays"),  # a stray C1 byte does not eat text
        ("nul\x00 del\x7f nel\x85", "nul\\x00 del\\x7f nel\\x85"),
        ("report\u202egpj.exe", "report\\u202egpj.exe"),  # bidi override (trojan source)
        ("a\u2066b\u2069c\u200fd", "a\\u2066b\\u2069c\\u200fd"),  # isolates, RLM
        ("line\u2028sep", "line\\u2028sep"),
        ("over\rwrite", "over\\x0dwrite"),  # a carriage return could hide what precedes it
        ("서울시 청년 월세 ✓ café", "서울시 청년 월세 ✓ café"),  # text is left alone
        ("two\nlines\tand tab\r\n", "two\nlines\tand tab\n"),  # kept by default; CRLF → LF
    ],
)
def test_printable(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    assert "\x1b" not in printable(raw) and "\x07" not in printable(raw)


def test_printable_one_line_field_escapes_newlines_and_tabs() -> None:
    name = 'x" id="3">\r\nSYSTEM\t\x1b[8m.txt'
    assert printable(name, newlines=False) == 'x" id="3">\\x0d\\x0aSYSTEM\\x09.txt'
    assert printable("a\nb\tc") == "a\nb\tc"


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("https://bob:hunter2@llm.example:8443/v1", "https://llm.example:8443/v1"),
        ("http://token@127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
        ("http://u:p@[::1]:9/v1", "http://[::1]:9/v1"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),  # nothing to hide
        (
            "https://x.openai.azure.com/v1?api-version=2024-06&api-key=abc123",
            "https://x.openai.azure.com/v1?api-version=2024-06&api-key=***",
        ),
        (
            "https://h/v1?sig=s1&AccessToken=t&X-Amz-Signature=z&client_secret=c&keyboard=1",
            "https://h/v1?sig=***&AccessToken=***&X-Amz-Signature=***&client_secret=***&keyboard=1",
        ),
        ("http://user:pa55@[::1", "http://[::1"),  # unparseable: userinfo dropped anyway
        ("/local/path/model.gguf", "/local/path/model.gguf"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_redact_masks_urls_and_secrets_in_text() -> None:
    text = "POST http://al:pw-123@h:1/v1?token=tk failed: invalid key sk-abcdef123456"
    out = redact(text, ["sk-abcdef123456", None, "ab"])
    assert out == "POST http://h:1/v1?token=*** failed: invalid key ***"
