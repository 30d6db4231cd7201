"""OCR of scanned PDFs with Tesseract: found when installed, "needs OCR" when not, never lost.

The engine tests run where Tesseract and its Korean model are installed
(``apt-get install tesseract-ocr tesseract-ocr-kor``); the rest runs everywhere.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

import polisum
from polisum.config import Config, ConfigError
from polisum.loaders import LoadError, OcrError, PdfLoader, TesseractOCR, load_ocr

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SPRI = SHARED / "docs_ko" / "SPRI_AI_Brief_2023년12월호_F.pdf"
ENGLISH = [
    "Municipal solar panels cut school",
    "electricity bills by a third.",
    "",
    "Bike lanes opened in every district.",
]

have_tesseract = load_ocr("auto") is not None
needs_tesseract = pytest.mark.skipif(
    not have_tesseract, reason="tesseract-ocr with kor+eng is not installed"
)


def scanned_pdf(path: Path, images: list[Image.Image]) -> Path:
    """An image-only PDF (no text layer), as a scanner writes it."""
    images[0].save(path, format="PDF", save_all=True, append_images=images[1:], resolution=200)
    return path


def text_image(lines: list[str]) -> Image.Image:
    image = Image.new("L", (1700, 2200), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=56)
    for i, line in enumerate(lines):
        draw.text((150, 200 + i * 90), line, font=font, fill=0)
    return image


def rendered_page(pdf: Path, index: int) -> Image.Image:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf)
    try:
        return doc[index].render(scale=200 / 72, grayscale=True).to_pil().convert("L")
    finally:
        doc.close()


def test_without_an_engine_a_scan_needs_ocr(tmp_path: Path):
    path = scanned_pdf(tmp_path / "scan.pdf", [text_image(ENGLISH)])
    with pytest.raises(LoadError, match="needs OCR") as info:
        PdfLoader(ocr=None).load(path)
    assert "scan.pdf" in str(info.value)


def test_ocr_modes():
    assert load_ocr("off") is None
    with pytest.raises(OcrError, match="must be one of"):
        load_ocr("paddle")
    with pytest.raises(ConfigError, match="ocr must be"):
        Config(ocr="paddle")
    missing = TesseractOCR(binary="no-such-tesseract")
    assert "not installed" in (missing.missing() or "")
    assert "tesseract-ocr-kor" in (missing.missing() or "")  # the fix is in the message


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed")
def test_required_engine_without_its_language_is_a_clear_error():
    with pytest.raises(OcrError, match="no model for zzz"):
        load_ocr("tesseract", "zzz+eng")


@needs_tesseract
def test_english_scan_is_read(tmp_path: Path):
    path = scanned_pdf(tmp_path / "scan.pdf", [text_image(ENGLISH)])
    doc = PdfLoader(ocr=load_ocr("tesseract", "eng")).load(path)
    texts = [el.text for el in doc.elements]
    assert texts == [
        "Municipal solar panels cut school electricity bills by a third.",
        "Bike lanes opened in every district.",
    ]
    assert {el.page for el in doc.elements} == {1}
    assert doc.metadata["ocr_pages"] == 1 and doc.metadata["ocr"] == "tesseract:eng"


@needs_tesseract
def test_korean_scan_keeps_pages_and_reads_hangul(tmp_path: Path):
    # SPRi pages 2 (contents) and 19 (text and a table) as a two-page scan, read back against
    # the PDF's own text layer: most of its Hangul words must come out of the OCR.
    path = scanned_pdf(tmp_path / "스캔.pdf", [rendered_page(SPRI, 1), rendered_page(SPRI, 18)])
    doc = PdfLoader(ocr=load_ocr("tesseract")).load(path)
    assert doc.metadata["ocr_pages"] == 2
    reference = PdfLoader().load(SPRI)
    for scan_page, spri_page in ((1, 2), (2, 19)):
        ocr_text = "".join(el.text for el in doc.elements if el.page == scan_page)
        ocr_text = ocr_text.replace(" ", "")  # Korean spacing is not what is measured here
        words = [
            w
            for el in reference.elements
            if el.page == spri_page
            for w in re.findall(r"[가-힣]{2,}", el.text)
        ]
        recall = sum(w in ocr_text for w in words) / len(words)
        assert len(words) > 100 and recall >= 0.75, (spri_page, recall)  # measured 0.97, 0.84


@needs_tesseract
def test_ingest_ocrs_a_scan_next_to_a_text_pdf(tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    scanned_pdf(docs / "scan.pdf", [text_image(ENGLISH)])
    (docs / "note.md").write_text("# Parks\n\nThe city planted two thousand trees.\n")
    with polisum.Index.open(tmp_path / "idx", ocr="tesseract") as idx:
        report = idx.ingest(docs)
        assert report.failed == 0 and report.new == 2
        hits = idx.search("solar panels school electricity", k=1)
    assert hits[0].source.endswith("scan.pdf") and hits[0].page == 1
    with polisum.Index.open(tmp_path / "idx2", ocr="off") as idx:
        report = idx.ingest(docs)
    assert [f.reason for f in report.failures] == [
        "no text layer (scanned or image-only PDF): needs OCR"
    ]
