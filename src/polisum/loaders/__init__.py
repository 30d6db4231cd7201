"""Loaders turn files into Documents. Each format is one module behind the Loader protocol."""

from __future__ import annotations

from pathlib import Path

from polisum.loaders.base import DEFAULT_MAX_BYTES, Loader, LoadError, check_readable
from polisum.loaders.docx import DocxLoader
from polisum.loaders.html import HtmlLoader
from polisum.loaders.hwp import HwpLoader
from polisum.loaders.hwpx import HwpxLoader
from polisum.loaders.ocr import OcrError, TesseractOCR, load_ocr
from polisum.loaders.office import UnstructuredLoader
from polisum.loaders.pdf import PdfLoader
from polisum.loaders.text import MarkdownLoader, TextLoader, decode_text
from polisum.types import Document

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DocxLoader",
    "HtmlLoader",
    "HwpLoader",
    "HwpxLoader",
    "LoadError",
    "Loader",
    "LoaderRegistry",
    "MarkdownLoader",
    "OcrError",
    "PdfLoader",
    "TesseractOCR",
    "TextLoader",
    "UnstructuredLoader",
    "check_readable",
    "decode_text",
    "default_registry",
    "load_ocr",
]


class LoaderRegistry:
    """Maps file extensions to loaders. New formats register here without touching callers."""

    def __init__(self, loaders: list[Loader] | None = None) -> None:
        self._by_ext: dict[str, Loader] = {}
        for loader in loaders or []:
            self.register(loader)

    def register(self, loader: Loader) -> None:
        for ext in loader.extensions:
            self._by_ext[ext.lower()] = loader

    @property
    def extensions(self) -> frozenset[str]:
        return frozenset(self._by_ext)

    def supports(self, path: Path) -> bool:
        return path.suffix.lower() in self._by_ext

    def load(self, path: Path) -> Document:
        loader = self._by_ext.get(path.suffix.lower())
        if loader is None:
            raise LoadError(path, f"unsupported file type '{path.suffix or '(none)'}'")
        return loader.load(path)


def default_registry(
    max_bytes: int = DEFAULT_MAX_BYTES, ocr: TesseractOCR | None = None
) -> LoaderRegistry:
    """Every format polisum reads; ``ocr`` reads scanned PDF pages (see ``load_ocr``).
    PPTX, XLSX, ODT, RTF, EPUB, EML and MSG need the ``polisum[unstructured]`` extra; without
    it they fail with that reason instead of being skipped."""
    return LoaderRegistry(
        [
            TextLoader(max_bytes),
            MarkdownLoader(max_bytes),
            PdfLoader(max_bytes, ocr),
            DocxLoader(max_bytes),
            HtmlLoader(max_bytes),
            HwpLoader(max_bytes),
            HwpxLoader(max_bytes),
            UnstructuredLoader(max_bytes),
        ]
    )
