from __future__ import annotations

import os
from pathlib import Path

import pytest

from polisum.loaders import LoadError, MarkdownLoader, TextLoader, decode_text, default_registry

KOREAN = "서울특별시 청년 월세 지원은 만 19세부터 34세까지의 무주택 청년에게 제공됩니다."


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [
        ("utf-8", "utf-8"),
        ("utf-8-sig", "utf-8-sig"),
        ("utf-16", "utf-16"),  # with BOM
        ("utf-16-le", "utf-16-le"),  # without BOM
        ("utf-16-be", "utf-16-be"),
        ("cp949", "cp949"),
        ("euc-kr", "cp949"),  # CP949 is a superset: decoding EUC-KR bytes as CP949 is exact
    ],
)
def test_decodes_korean_in_every_supported_encoding(tmp_path: Path, encoding: str, expected: str):
    text = f"{KOREAN}\n\n두 번째 문단입니다. Mixed English text too.\n"
    path = tmp_path / "doc.txt"
    path.write_bytes(text.encode(encoding))
    doc = TextLoader().load(path)
    assert doc.text == text
    assert doc.metadata["encoding"] == expected


def test_cp949_only_characters_decode(tmp_path: Path):
    # '똠' and '햏' exist in CP949 but not in EUC-KR's KS X 1001 set.
    text = "똠방각하와 햏자의 이야기는 확장 완성형 글자를 씁니다.\n"
    path = tmp_path / "ext.txt"
    path.write_bytes(text.encode("cp949"))
    assert TextLoader().load(path).text == text


def test_short_cp949_text_is_not_mistaken_for_chinese():
    assert decode_text("가나다".encode("cp949"))[0] == "가나다"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"\x00\x01\x02\x03binary\x00\xff\xfe\x00" * 20, "binary"),
        (b"   \n\n\t  \n", "blank"),
        (bytes(range(256)) * 40, "binary"),
    ],
)
def test_bad_text_gives_one_line_reason(tmp_path: Path, content: bytes, reason: str):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(LoadError) as info:
        TextLoader().load(path)
    assert reason in info.value.reason
    assert "\n" not in info.value.reason
    assert str(path) in str(info.value)


def test_file_over_size_limit_is_refused_without_reading(tmp_path: Path):
    path = tmp_path / "huge.txt"
    with open(path, "wb") as fh:
        fh.truncate(3 * 1024 * 1024)  # sparse: costs no disk
    with pytest.raises(LoadError, match="too large"):
        TextLoader(max_bytes=1024 * 1024).load(path)


def test_symlink_loop_and_dangling_link(tmp_path: Path):
    os.symlink(tmp_path / "b.txt", tmp_path / "a.txt")
    os.symlink(tmp_path / "a.txt", tmp_path / "b.txt")
    with pytest.raises(LoadError, match="cannot stat"):
        TextLoader().load(tmp_path / "a.txt")
    os.symlink(tmp_path / "missing.txt", tmp_path / "dangling.txt")
    with pytest.raises(LoadError, match="not found"):
        TextLoader().load(tmp_path / "dangling.txt")


def test_unreadable_file(tmp_path: Path):
    path = tmp_path / "secret.txt"
    path.write_text("hello")
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as root: permissions are not enforced")
        with pytest.raises(LoadError, match="permission denied"):
            TextLoader().load(path)
    finally:
        path.chmod(0o644)


def test_markdown_headings_become_sections_with_exact_offsets(tmp_path: Path):
    source = (
        "Intro line before any heading.\n\n"
        "# 청년 정책\n\n## 월세 지원\n\n월세를 지원한다.\n\n둘째 문단.\n\n"
        "## 교통비\n\n- 버스\n- 지하철\n\n# Appendix\n\n```\ncode block\n```\n"
    )
    path = tmp_path / "a.md"
    path.write_text(source, encoding="utf-8")
    doc = MarkdownLoader().load(path)
    got = [(e.kind, e.section, e.text) for e in doc.elements]
    assert got == [
        ("paragraph", None, "Intro line before any heading."),
        ("paragraph", "청년 정책 > 월세 지원", "월세를 지원한다."),
        ("paragraph", "청년 정책 > 월세 지원", "둘째 문단."),
        ("list", "청년 정책 > 교통비", "- 버스\n- 지하철"),
        ("code", "Appendix", "```\ncode block\n```"),
    ]
    for e in doc.elements:
        assert doc.text[e.start : e.end] == e.text


def test_registry_rejects_unknown_extension(tmp_path: Path):
    path = tmp_path / "x.xyz"
    path.write_text("hi")
    registry = default_registry()
    assert not registry.supports(path)
    with pytest.raises(LoadError, match="unsupported file type"):
        registry.load(path)
