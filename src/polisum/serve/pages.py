"""PDF pages as PNGs (citation previews), rendered with pypdfium2 in a child process.

Why a child process: PDFium is not thread-safe, and the ingest thread may be parsing a PDF
with it at the same moment; a hostile PDF also gets a time limit (killed on timeout) and a
memory limit (RLIMIT_AS) there without touching the server. The page is scaled to the width
asked for, bounded in scale and in pixels. Results are cached by (file hash, page, width).

Run as ``python -m polisum.serve.pages FILE PAGE WIDTH MAX_PIXELS``: the PNG on stdout.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

MAX_SCALE = 4.0  # 288 dpi: more only magnifies
TIMEOUT_S = 20.0
MEMORY_BYTES = 2 * 1024**3
EXIT_NO_PAGE = 3
EXIT_BAD_PDF = 4


class PageError(Exception):
    """The page cannot be shown; ``status`` is the HTTP status (404, 422, 504)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@functools.lru_cache(maxsize=64)
def render_page(path: str, content_hash: str, page: int, width: int, max_pixels: int) -> bytes:
    """PNG bytes of 1-based ``page`` of the PDF at ``path``, ``width`` pixels wide (less when
    the page would exceed ``max_pixels``). ``content_hash`` is only the cache key."""
    del content_hash
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, *sys.path])}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "polisum.serve.pages", path, str(page), str(width),
             str(max_pixels)],
            capture_output=True,
            timeout=TIMEOUT_S,
            env=env,
            check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise PageError(f"rendering page {page} took longer than {TIMEOUT_S:.0f} s", 504) from None
    if proc.returncode == EXIT_NO_PAGE:
        raise PageError(proc.stderr.decode("utf-8", "replace").strip(), 404)
    if proc.returncode != 0 or not proc.stdout.startswith(b"\x89PNG"):
        reason = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["failed"]
        raise PageError(f"cannot render page {page}: {reason[0]}", 422)
    return proc.stdout


def _limit_memory() -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    except (ImportError, ValueError, OSError):  # not on this platform: the timeout remains
        pass


def main(argv: list[str]) -> int:
    _limit_memory()
    import pypdfium2 as pdfium

    path, page, width, max_pixels = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    try:
        pdf = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        sys.stderr.write(f"not a readable PDF ({exc})\n")
        return EXIT_BAD_PDF
    try:
        if not 1 <= page <= len(pdf):
            sys.stderr.write(f"page {page} does not exist (the document has {len(pdf)} pages)\n")
            return EXIT_NO_PAGE
        pdf_page = pdf[page - 1]
        w_pt, h_pt = pdf_page.get_size()
        scale = min(width / max(w_pt, 1.0), MAX_SCALE)
        if scale * w_pt * scale * h_pt > max_pixels:
            scale = (max_pixels / max(w_pt * h_pt, 1.0)) ** 0.5
        image = pdf_page.render(scale=max(scale, 0.01)).to_pil()
        image.save(sys.stdout.buffer, format="PNG", optimize=False)
    finally:
        pdf.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
