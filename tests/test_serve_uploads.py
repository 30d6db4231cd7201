"""Upload names made safe, and multipart bodies streamed to disk under their caps."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

pytest.importorskip("python_multipart")

from polisum.serve.uploads import (
    MAX_NAME_BYTES,
    MultipartUpload,
    UploadError,
    safe_upload_name,
)


@pytest.mark.parametrize(
    "given, expected",
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd.md", "passwd.md"),
        ("/etc/cron.d/evil.md", "evil.md"),
        ("C:\\Users\\me\\Documents\\예산.hwp", "예산.hwp"),
        ("..\\..\\boot.ini.txt", "boot.ini.txt"),
        ("..", None),
        ("...", None),
        ("", None),
        ("a\x00b.md", "ab.md"),
        ("new\nline\r.md", "newline.md"),
        ("\u202etxt.exe.md", "txt.exe.md"),  # a right-to-left override hides the real extension
        (".bashrc.md", "bashrc.md"),  # hidden files would be skipped by the ingest
        ('what?<is>:"this"|*.md', "what__is___this___.md"),
        ("CON.txt", "_CON.txt"),
        ("lpt1.md", "_lpt1.md"),
        ("com¹.md", "_com¹.md"),
        ("nul", "_nul"),
        ("console.md", "console.md"),
        ("trailing. . ", "trailing"),
    ],
)
def test_safe_upload_name(given, expected):
    if expected is None:
        with pytest.raises(UploadError):
            safe_upload_name(given)
    else:
        assert safe_upload_name(given) == expected


def test_safe_upload_name_normalises_unicode_to_nfc():
    nfd = unicodedata.normalize("NFD", "청년정책.md")  # what macOS sends
    assert nfd != "청년정책.md"
    assert safe_upload_name(nfd) == "청년정책.md"


def test_long_names_are_cut_to_the_byte_limit_keeping_the_extension():
    name = safe_upload_name("가" * 300 + ".pdf")
    assert name.endswith(".pdf") and len(name.encode("utf-8")) <= MAX_NAME_BYTES
    assert name.startswith("가")
    # A cut never leaves half a UTF-8 character.
    name.encode("utf-8").decode("utf-8")


def _body(parts: list[tuple[str, str | None, bytes]], boundary: str = "XyZ") -> bytes:
    out = b""
    for field, filename, data in parts:
        disposition = f'form-data; name="{field}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data
        out += b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _upload(staging: Path, **limits) -> MultipartUpload:
    options = {"max_file": 1000, "max_total": 1500, "max_files": 3} | limits
    return MultipartUpload(
        "multipart/form-data; boundary=XyZ",
        staging,
        extensions=frozenset({".md", ".pdf"}),
        **options,
    )


def _feed(upload: MultipartUpload, body: bytes, chunk: int = 7) -> None:
    for start in range(0, len(body), chunk):
        upload.feed(body[start : start + chunk])


def test_files_are_streamed_to_staging_with_safe_names(tmp_path):
    upload = _upload(tmp_path / "stage")
    body = _body([("files", "../a.md", b"# A\n" * 10), ("note", None, b"ignored"),
                  ("files", "b.pdf", b"%PDF-1.4")])  # fmt: skip
    _feed(upload, body)
    files = upload.finish()
    assert [(f.name, f.size) for f in files] == [("a.md", 40), ("b.pdf", 8)]
    assert files[0].path.read_bytes() == b"# A\n" * 10
    assert all(f.path.parent == tmp_path / "stage" for f in files)
    upload.discard()
    assert not (tmp_path / "stage").exists()


@pytest.mark.parametrize(
    "parts, status, words",
    [
        ([("files", "big.md", b"x" * 1001)], 413, "big.md"),
        ([("files", "a.md", b"x" * 900), ("files", "b.md", b"x" * 900)], 413, "per request"),
        ([("files", f"{i}.md", b"x") for i in range(4)], 413, "too many"),
        ([("files", "tool.exe", b"MZ")], 415, ".exe"),
        ([("files", "noext", b"x")], 415, "without an extension"),
        ([("other", "a.md", b"x")], 422, "'files'"),
        ([("files", "a.md", b"x"), ("files", "../a.md", b"y")], 422, "two files"),
        ([("note", None, b"just a field")], 422, "no files"),
    ],
)
def test_limits_are_checked_while_the_bytes_arrive(tmp_path, parts, status, words):
    upload = _upload(tmp_path / "stage")
    with pytest.raises(UploadError) as caught:
        _feed(upload, _body(parts))
        upload.finish()
    assert caught.value.status == status and words in str(caught.value)
    written = sum(p.stat().st_size for p in (tmp_path / "stage").glob("*"))
    assert written <= 1000 + 7  # never more than one chunk past a file's cap
    upload.discard()


def test_not_multipart_is_415(tmp_path):
    with pytest.raises(UploadError) as caught:
        MultipartUpload("application/json", tmp_path, extensions=frozenset({".md"}),
                        max_file=1, max_total=1, max_files=1)  # fmt: skip
    assert caught.value.status == 415


def test_a_body_cut_inside_a_file_is_refused(tmp_path):
    upload = _upload(tmp_path / "stage")
    _feed(upload, _body([("files", "a.md", b"x" * 100)])[:-30])
    with pytest.raises(UploadError) as caught:
        upload.finish()
    assert caught.value.status == 400
