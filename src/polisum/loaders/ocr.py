"""OCR for PDF pages without a usable text layer (scans), with Tesseract.

Tesseract is the engine that works offline from a package registry: Debian ships the program
and its Korean model (``apt-get install tesseract-ocr tesseract-ocr-kor``). The PyPI OCR
packages with Korean models (EasyOCR, PaddleOCR, RapidOCR 2+) download their weights on first
use, which fails without network. The program is called directly (PNG on stdin, text on
stdout): pytesseract would add nothing but a dependency.

``ocr = "auto"`` (the default) uses Tesseract when it is installed with the configured
languages and otherwise reports scanned pages as "needs OCR"; ``"off"`` never runs it;
``"tesseract"`` requires it.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from functools import lru_cache

from polisum.errors import PolisumError
from polisum.loaders.korean_fix import join_lines

OCR_MODES = ("auto", "off", "tesseract")
INSTALL_HINT = "apt-get install tesseract-ocr tesseract-ocr-kor"
# Page images for OCR: at most this many pixels (an A2 page at 300 dpi is 35 Mpx, and its
# grayscale bitmap 35 MB; a 200-inch page would be 3.6 GB). Larger pages are rendered at a
# lower dpi, down to MIN_OCR_DPI, below which text is too small to read and the page is not
# OCR'd. Tesseract refuses images with a side over 32,767 pixels.
MAX_OCR_PIXELS = 40_000_000
MAX_OCR_SIDE = 32_000
MIN_OCR_DPI = 100


class OcrError(PolisumError, RuntimeError):
    """OCR was asked for (``ocr = "tesseract"``) and cannot run."""


class TesseractOCR:
    """Page images → text with the ``tesseract`` program."""

    def __init__(
        self,
        languages: str = "kor+eng",
        *,
        dpi: int = 300,
        binary: str = "tesseract",
        timeout_s: float = 300.0,
    ) -> None:
        self.languages = languages
        self.dpi = dpi
        self.binary = binary
        self.timeout_s = timeout_s

    @property
    def name(self) -> str:
        return f"tesseract:{self.languages}"

    def missing(self) -> str | None:
        """Why this engine cannot run here, or None when it can."""
        path = shutil.which(self.binary)
        if path is None:
            return f"'{self.binary}' is not installed ({INSTALL_HINT})"
        wanted = set(self.languages.split("+"))
        lacking = wanted - _languages(path)
        if lacking:
            langs = sorted(lacking)
            names = " ".join(f"tesseract-ocr-{lang}" for lang in langs)
            return f"Tesseract has no model for {'+'.join(langs)} (apt-get install {names})"
        return None

    def image_text(self, png: bytes, dpi: int | None = None) -> str:
        """The text of one page image (rendered at ``dpi``, by default the engine's),
        paragraphs separated by blank lines."""
        dpi = dpi or self.dpi
        try:
            proc = subprocess.run(
                [self.binary, "stdin", "stdout", "-l", self.languages, "--dpi", str(dpi)],
                input=png,
                capture_output=True,
                timeout=self.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise OcrError(f"tesseract took longer than {self.timeout_s:.0f} s on a page") from exc
        if proc.returncode != 0:
            detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise OcrError(f"tesseract failed: {detail[-1] if detail else proc.returncode}")
        return proc.stdout.decode("utf-8", "replace")


@lru_cache(maxsize=8)
def _languages(binary: str) -> frozenset[str]:
    try:
        proc = subprocess.run(
            [binary, "--list-langs"], capture_output=True, timeout=30, check=False, text=True
        )
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    # First line is a header ("List of available languages in ...").
    return frozenset(line.strip() for line in proc.stdout.splitlines()[1:] if line.strip())


def load_ocr(mode: str = "auto", languages: str = "kor+eng") -> TesseractOCR | None:
    """The OCR engine for ``mode``: None when off, or when "auto" finds none installed."""
    if mode not in OCR_MODES:
        raise OcrError(f"ocr must be one of {', '.join(OCR_MODES)}, not {mode!r}")
    if mode == "off":
        return None
    engine = TesseractOCR(languages)
    reason = engine.missing()
    if reason is None:
        return engine
    if mode == "tesseract":
        raise OcrError(f"ocr = 'tesseract' but {reason}")
    return None


def ocr_paragraphs(text: str) -> list[str]:
    """Tesseract output → paragraphs: blank lines separate them, wrapped lines are joined."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if lines:
            paragraphs.append(lines)
    return [p for p in (join_lines(lines) for lines in paragraphs) if p]


def ocr_dpi(width_pt: float, height_pt: float, dpi: float) -> float:
    """The dpi at which a page of this size renders within MAX_OCR_PIXELS and MAX_OCR_SIDE:
    ``dpi`` for ordinary pages, lower for huge ones (may fall below MIN_OCR_DPI)."""
    width, height = width_pt / 72, height_pt / 72  # inches
    fit_area = math.sqrt(MAX_OCR_PIXELS / max(width * height, 1e-9))
    fit_side = MAX_OCR_SIDE / max(width, height, 1e-9)
    return min(dpi, fit_area, fit_side)
