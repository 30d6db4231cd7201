"""Hostile files, made here: every reader stops in bounded time and memory, with a reason or
with the good text kept (issue 13). Each load runs in a child process that reports its time
and memory growth; the child's address space is capped too, so a regression fails the test
instead of exhausting the machine.

Before these bounds (measured on the 2-core dev machine): text boxes nested 18 deep took 4.5 s
and doubled per level; a 240 × 240 ruled grid took 212 s on one page; an HWP section of zero
bytes ran out of memory; a 2,000-space paragraph took 27 s in the heading guess.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from polisum import text as text_mod
from polisum.chunking import ParagraphChunker
from polisum.loaders import LoadError, PdfLoader, TextLoader, hwpx, load_ocr, pdf
from polisum.loaders.structure import guess_heading_level
from polisum.types import Document, Element
from tests import hostile_files as H

# Measured here: every load below takes under 2.5 s (the slowest counts a million empty HWP
# records) and grows memory by under 100 MiB (the HWP stream cap is 32 MiB); the bounds
# leave room for a loaded machine.
MAX_SECONDS = 5.0
MAX_GROWTH_MIB = 160
# The child's address space: imports and Kiwi reserve ~2 GiB of it before any file is read.
CHILD_ADDRESS_SPACE = 6 * 2**30

CHILD = """
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
from pathlib import Path
import pdfplumber.table  # imported on the first ruled page: not a cost of the file
from polisum.loaders import LoadError, default_registry, load_ocr
from polisum.text import warm_kiwi
warm_kiwi()  # the Korean line-join loads it on first use
registry = default_registry(ocr=load_ocr("tesseract", "eng") if sys.argv[2] == "ocr" else None)

def status_mib(field):  # this process image's own figures (ru_maxrss counts the parent's)
    with open("/proc/self/status") as fh:
        line = next(line for line in fh if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024

before = status_mib("VmRSS")
start = time.perf_counter()
try:
    doc = registry.load(Path(sys.argv[1]))
    out = {{"text": doc.text, "metadata": doc.metadata}}
except LoadError as exc:
    out = {{"reason": exc.reason}}
out["seconds"] = time.perf_counter() - start
out["grown_mib"] = status_mib("VmHWM") - before
print(json.dumps(out, ensure_ascii=False))
"""


def load_bounded(path: Path, *, ocr: bool = False) -> dict:
    """Load ``path`` in a child process; assert it stayed within the bounds; its outcome."""
    code = CHILD.format(limit=CHILD_ADDRESS_SPACE)
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path), "ocr" if ocr else "-"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["seconds"] <= MAX_SECONDS, out["seconds"]
    assert out["grown_mib"] <= MAX_GROWTH_MIB, out["grown_mib"]
    return out


def warnings_of(out: dict) -> str:
    return " ".join(out["metadata"].get("warnings", []))


# ---------------------------------------------------------------------------------------- HWPX


def test_hwpx_nested_text_boxes_are_read_once_down_to_the_cap(tmp_path: Path):
    path = tmp_path / "nested.hwpx"
    path.write_bytes(H.hwpx_nested_boxes(50))
    assert path.stat().st_size < 1024
    out = load_bounded(path)
    paragraphs = out["text"].split("\n\n")
    assert paragraphs[0] == "Top paragraph before the boxes."
    # Each box once (a box's own line follows the boxes inside it), none past the cap: the
    # first box's paragraph is in the body, the boxes inside it are MAX_NESTING deep.
    boxes = [f"box level {level}" for level in range(1, hwpx.MAX_NESTING + 2)]
    assert sorted(paragraphs[1:]) == sorted(boxes)
    assert "nested deeper than 16 levels were not read" in warnings_of(out)


def test_hwpx_cell_address_of_twenty_million_costs_one_column(tmp_path: Path):
    path = tmp_path / "wide.hwpx"
    cells = [(0, 0, "구분"), (0, 20_000_000, "예산"), (1, 0, "도서관"), (1, 20_000_000, "120")]
    path.write_bytes(H.hwpx_table(cells))
    out = load_bounded(path)
    assert out["text"] == "Budget table follows.\n\n구분 | 예산\n도서관 | 120"


def test_hwpx_package_over_the_xml_cap_is_refused(tmp_path: Path, monkeypatch):
    path = tmp_path / "big.hwpx"
    path.write_bytes(H.hwpx(H.hwpx_paragraph("x" * 5000)))
    monkeypatch.setattr(hwpx, "MAX_PACKAGE_XML_BYTES", 4096)
    with pytest.raises(LoadError, match="HWPX unpacks to 0 MiB of XML"):
        hwpx.HwpxLoader().load(path)


# ------------------------------------------------------------------------------------- HWP 5


def zlib_bomb() -> bytes:
    return H.deflate_zeros(70 * 2**20)  # ~70 KB on disk


def empty_records() -> bytes:
    # A good paragraph, then 16 MiB of zero bytes: 4 million empty 4-byte records.
    return H.deflate(H.paragraph("앞 문단은 멀쩡하다.") + bytes(16 * 2**20))


def forged_text_record() -> bytes:
    # The reported file had one 64 MiB record, which the 32 MiB stream cap now refuses too;
    # a 16 MiB one (8 million characters in one paragraph) passes that and meets this cap.
    huge = H.record(H.TAG_PARA_TEXT, 1, "가".encode("utf-16-le") * 8 * 2**20)
    return H.deflate(H.paragraph("제목") + huge)


@pytest.mark.parametrize(
    ("section", "reason"),
    [
        (zlib_bomb, "stream Section0 unpacks to more than 32 MiB (damaged file or a zip bomb)"),
        (empty_records, "stream Section0 has more than 1,000,000 records (damaged file)"),
        (forged_text_record, "stream Section0 has a record of 16 MiB (limit 4 MiB): damaged file"),
    ],
)
def test_hwp_section_past_a_cap_is_refused_with_the_reason(tmp_path: Path, section, reason):
    path = tmp_path / f"{section.__name__}.hwp"
    path.write_bytes(H.hwp([section()]))
    assert path.stat().st_size < 100_000
    assert load_bounded(path)["reason"] == f"HWP {reason}"


def test_hwp_table_cell_addresses_at_the_maximum_keep_the_row(tmp_path: Path):
    path = tmp_path / "cells.hwp"
    diagonal = [(i, 65535 - i, f"c{i}") for i in range(400)]  # 400 × 400 grid positions
    table = H.table_control([(0, 0, "구분"), (0, 65535, "예산"), *diagonal[1:]])
    path.write_bytes(H.hwp([H.deflate(H.paragraph("표 앞 문단.") + table)]))
    out = load_bounded(path)
    lines = out["text"].split("\n\n")[1].split("\n")
    assert lines[0] == "구분 | 예산"
    assert lines[1:] == [f"c{i}" for i in range(1, 400)]  # past MAX_GRID_CELLS: no gaps


def test_hwp_controls_nested_a_thousand_deep_stop_at_the_cap(tmp_path: Path):
    path = tmp_path / "deep.hwp"
    body = [H.paragraph("바깥 문단.")]
    for level in range(1, 1000, 2):  # a text box control whose paragraph holds the next one
        box = f"상자 {level // 2 + 1}\r".encode("utf-16-le")
        body.append(H.record(H.TAG_CTRL_HEADER, level, b" osg" + bytes(40)))
        body.append(H.record(H.TAG_PARA_TEXT, level + 1, box))
    path.write_bytes(H.hwp([H.deflate(b"".join(body))]))
    out = load_bounded(path)
    assert out["text"].startswith("바깥 문단.\n\n상자 1\n\n상자 2")
    assert "상자 16" in out["text"] and "상자 17" not in out["text"]
    assert "nested deeper than 16 levels were not read" in warnings_of(out)


# ---------------------------------------------------------------------------------------- PDF


def test_pdf_page_with_a_240_by_240_grid_keeps_its_text_without_tables(tmp_path: Path):
    path = tmp_path / "grid.pdf"
    grid = H.ruled_grid(240, size=960)
    path.write_bytes(
        H.pdf([(grid + b"\n" + H.text_line("Ruled page notes.", 10, 980), (980, 1000))])
    )
    out = load_bounded(path)
    assert out["text"] == "Ruled page notes."
    assert "page 1: tables not detected (241 × 241 ruling lines" in warnings_of(out)


@pytest.mark.skipif(load_ocr("auto") is None, reason="tesseract-ocr is not installed")
def test_pdf_huge_scanned_page_is_not_rendered_and_the_text_pages_stay(tmp_path: Path):
    path = tmp_path / "huge.pdf"
    big = 14400  # points: a 200-inch page, 3.6 GB as a 300 dpi grayscale bitmap
    pages = [
        (H.text_line("Ordinary first page about parks."), (612, 792)),
        (H.image_over(big, big), (big, big)),
        (H.text_line("Text layer of a huge page.", 100, 14000, 40), (big, big)),
    ]
    path.write_bytes(H.pdf(pages))
    out = load_bounded(path, ocr=True)
    assert out["text"] == "Ordinary first page about parks.\n\nText layer of a huge page."
    assert "page 2 not OCR'd: 200 × 200 in is too large" in warnings_of(out)
    assert "ocr_pages" not in out["metadata"] and out["metadata"]["pages_without_text"] == 1


def test_ocr_dpi_shrinks_for_large_pages_only():
    assert pdf.ocr_dpi(612, 792, 300) == 300  # Letter: 8.7 Mpx at 300 dpi
    dpi = pdf.ocr_dpi(2000, 2000, 300)  # 27.8 in square: rendered within the pixel cap
    assert 200 < dpi < 300 and (2000 / 72 * dpi) ** 2 <= pdf.MAX_OCR_PIXELS * 1.0001
    assert pdf.ocr_dpi(14400, 14400, 300) < pdf.MIN_OCR_DPI
    assert pdf.ocr_dpi(14400, 100, 300) * 14400 / 72 <= 32_000  # Tesseract's side limit


def test_pdf_page_and_character_caps_keep_the_first_pages(tmp_path: Path, monkeypatch):
    path = tmp_path / "long.pdf"
    path.write_bytes(
        H.pdf([(H.text_line(f"Page {i} says hello."), (612, 792)) for i in range(1, 4)])
    )
    monkeypatch.setattr(pdf, "MAX_PAGES", 2)
    monkeypatch.setattr(pdf, "MAX_PAGE_CHARS", 8)
    doc = PdfLoader().load(path)
    assert doc.text == "Page 1 s\n\nPage 2 s"
    assert doc.metadata["warnings"] == [
        "pages 3 to 3 not read (limit 2 pages)",
        "page 1: only the first 8 of 18 characters read",
        "page 2: only the first 8 of 18 characters read",
    ]


# ------------------------------------------------------------------------------ text, chunking


@pytest.mark.parametrize("data", [b"abc\0" * 500, b"\0abc" * 500, bytes(2000)])
def test_text_with_nul_bytes_in_a_pattern_is_binary(tmp_path: Path, data: bytes):
    path = tmp_path / "nul.txt"
    path.write_bytes(data)
    with pytest.raises(LoadError, match="binary file"):
        TextLoader().load(path)


def test_bom_less_utf16_text_still_loads(tmp_path: Path):
    text = "서울시 청년 월세 지원. Rent support for young people in Seoul.\n" * 20
    path = tmp_path / "utf16.txt"
    path.write_bytes(text.encode("utf-16-le"))
    assert TextLoader().load(path).text == text


def test_kiwi_sees_bounded_windows_and_the_sentences_do_not_change(monkeypatch):
    sentence = "서울시는 무주택 청년에게 월세를 지원한다. The city pays part of the rent! "
    text = sentence * 1000  # one 60,000-character paragraph
    whole = text_mod._kiwi().split_into_sents(text)
    expected = [(s.text, s.start, s.end) for s in whole if s.text.strip()]
    lengths: list[int] = []
    real = text_mod._kiwi()

    class Spy:
        def split_into_sents(self, value):
            lengths.append(len(value))
            return real.split_into_sents(value)

    monkeypatch.setattr(text_mod, "_kiwi", lambda: Spy())
    got = [(s.text, s.start, s.end) for s in text_mod.split_sentences(text)]
    assert got == expected
    assert len(lengths) >= len(text) // text_mod.SENTENCE_WINDOW
    assert max(lengths) <= text_mod.SENTENCE_WINDOW
    assert sum(lengths) <= 2 * len(text)
    doc = Document(Path("x.txt"), text, [Element(text, start=0, end=len(text))])
    chunks = ParagraphChunker().chunk(doc, "x.txt")
    assert max(lengths) <= text_mod.SENTENCE_WINDOW
    assert all(text[c.start : c.end] == c.text and len(c.text) <= 1200 for c in chunks)
    assert "".join(c.text for c in chunks).replace(" ", "") == text.replace(" ", "")


def test_a_paragraph_without_spaces_is_split_in_linear_time():
    text = "x" * 200_000  # Kiwi in one call: 18 s for 160,000 characters of one "word"
    start = time.perf_counter()
    sentences = text_mod.split_sentences(text)
    assert time.perf_counter() - start < 5  # measured 0.9 s
    assert "".join(s.text for s in sentences) == text


def test_heading_guess_on_long_whitespace_runs_is_instant():
    start = time.perf_counter()
    assert guess_heading_level("가" + " " * 20_000 + "x") is None
    assert guess_heading_level("Ⅰ. 개요" + "\t" * 20_000 + "3") is None  # a contents line
    assert guess_heading_level("Ⅰ. 개요" + " " * 20_000) == 1
    assert time.perf_counter() - start < 1


def test_hwpx_outline_level_that_is_not_a_number_is_no_outline(tmp_path: Path):
    path = tmp_path / "outline.hwpx"
    header = (
        f'<hh:head xmlns:hh="{H.HH_NS}"><hh:paraPr id="7"><hh:heading type="OUTLINE" '
        'level="one"/></hh:paraPr></hh:head>'
    )
    path.write_bytes(
        H.hwpx('<hp:p paraPrIDRef="7"><hp:run><hp:t>본문</hp:t></hp:run></hp:p>', header)
    )
    doc = hwpx.HwpxLoader().load(path)
    assert [(e.text, e.kind) for e in doc.elements] == [("본문", "paragraph")]


def test_hwpx_section_is_streamed_not_held_as_a_tree(tmp_path: Path):
    # 25 MiB of section XML (line layout, as Hancom writes it): held as a tree it would take
    # ~13 times that; streamed, memory holds one paragraph at a time.
    segs = '<hp:lineseg vertpos="0" vertsize="1000" textheight="1000" baseline="850"/>' * 20
    paragraph = (
        f"<hp:p><hp:run><hp:t>문단</hp:t></hp:run><hp:linesegarray>{segs}</hp:linesegarray></hp:p>"
    )
    path = tmp_path / "long.hwpx"
    path.write_bytes(H.hwpx(paragraph * 17_000))
    out = load_bounded(path)
    assert out["text"].count("문단") == 17_000
