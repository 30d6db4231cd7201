"""Formats polisum has no reader of its own for, read through the optional extra
``polisum[unstructured]`` (unstructured 0.27's partitioners, run offline by
:mod:`polisum.loaders._unstructured`).

======  ==================  ==========================================================
 ext    partitioner         section of an element / what it needs beyond unstructured
======  ==================  ==========================================================
.pptx   partition_pptx      "Slide N > slide title"; python-pptx
.xlsx   partition_xlsx      the sheet name; openpyxl, pandas
.odt    partition_odt       headings; pandoc (converts to DOCX)
.rtf    partition_rtf       headings; pandoc (converts to HTML)
.epub   partition_epub      headings; pandoc (converts to HTML)
.eml    partition_email     the subject
.msg    partition_msg       the subject; python-oxmsg
======  ==================  ==========================================================

All of these install from PyPI as wheels, pandoc included (``pypandoc-binary``, which
unstructured's own extras name): none needs a system program. Without the extra such files are
still registered, and each fails with the reason "needs polisum[unstructured]" rather than
being skipped in silence. Zip-packaged files are streamed through :mod:`safezip`'s member
checks first, so the libraries that read them afterwards get no more out of a member than its
zip directory declares.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polisum.loaders.base import DEFAULT_MAX_BYTES, LoadError, check_readable, one_line
from polisum.loaders.safezip import check_members, open_ooxml
from polisum.loaders.structure import build_document, sectioned_blocks
from polisum.types import Document

EXTRA_HINT = "pip install 'polisum[unstructured]'"


@dataclass(frozen=True)
class _Format:
    name: str  # as in reasons: "PPTX"
    module: str  # unstructured.partition.<module>
    function: str
    zip_main_part: str | None = None  # zip-packaged: the part every such file has
    pages: bool = False  # page_number is a real page (a slide)
    unit: Callable[[Any], str | None] | None = None  # the slide/sheet/message an element is in
    titles: bool = True  # unstructured's Titles are headings (not in mail: short lines)


def _slide(el: Any) -> str | None:
    number = el.metadata.page_number
    return f"Slide {number}" if number else None


def _sheet(el: Any) -> str | None:
    return el.metadata.page_name or None


def _subject(el: Any) -> str | None:
    return getattr(el.metadata, "subject", None) or None


FORMATS: dict[str, _Format] = {
    ".pptx": _Format("PPTX", "pptx", "partition_pptx", "ppt/presentation.xml", True, _slide),
    ".xlsx": _Format("XLSX", "xlsx", "partition_xlsx", "xl/workbook.xml", False, _sheet),
    ".odt": _Format("ODT", "odt", "partition_odt", "content.xml"),
    ".rtf": _Format("RTF", "rtf", "partition_rtf"),
    ".epub": _Format("EPUB", "epub", "partition_epub", "META-INF/container.xml"),
    ".eml": _Format("EML", "email", "partition_email", unit=_subject, titles=False),
    ".msg": _Format("MSG", "msg", "partition_msg", unit=_subject, titles=False),
}


class UnstructuredLoader:
    """PPTX, XLSX, ODT, RTF, EPUB, EML and MSG through ``polisum[unstructured]``."""

    extensions: tuple[str, ...] = tuple(FORMATS)

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes

    def load(self, path: Path) -> Document:
        check_readable(path, self.max_bytes)
        fmt = FORMATS[path.suffix.lower()]
        partition = _partitioner(path, fmt)
        if fmt.zip_main_part:
            with open_ooxml(path, fmt.zip_main_part, fmt.name) as archive:
                check_members(archive)
        # Imported here: _unstructured's names are only needed once the extra is known to be in.
        from polisum.loaders._unstructured import PARTITION_KWARGS, elements_to_parts

        kwargs = dict(PARTITION_KWARGS)
        if fmt.module in ("pptx", "xlsx", "odt"):
            kwargs["infer_table_structure"] = True
        try:
            # A file object, not the name: names that are not valid UTF-8 stay openable.
            with open(path, "rb") as fh:
                elements = partition(file=fh, **kwargs)
        except ImportError as exc:  # a dependency of this one partitioner
            reason = f"{fmt.name} needs polisum[unstructured] ({one_line(exc, 80)})"
            raise LoadError(path, reason) from exc
        except OSError as exc:
            if "pandoc" in str(exc).lower():
                raise LoadError(
                    path, f"{fmt.name} needs pandoc: pip install pypandoc-binary ({EXTRA_HINT})"
                ) from exc
            raise LoadError(path, f"unreadable {fmt.name} ({one_line(exc)})") from exc
        except Exception as exc:
            # Only library code runs in this call; the parsers under unstructured fail on
            # damaged files with whatever error the missing piece causes.
            raise LoadError(path, f"unreadable {fmt.name} ({one_line(exc)})") from exc
        parts = elements_to_parts(elements, pages=fmt.pages, unit=fmt.unit, titles=fmt.titles)
        metadata = {"format": fmt.name.lower()}
        return build_document(path, sectioned_blocks(parts), metadata, what=fmt.name)


def _partitioner(path: Path, fmt: _Format) -> Callable[..., Any]:
    """unstructured's partition function for the format, or LoadError saying how to get it."""
    try:
        from polisum.loaders._unstructured import ensure_offline

        ensure_offline()
        module = importlib.import_module(f"unstructured.partition.{fmt.module}")
    except ImportError as exc:
        raise LoadError(path, f"{fmt.name} needs polisum[unstructured]: {EXTRA_HINT}") from exc
    except RuntimeError as exc:  # ensure_offline: an unstructured release it does not know
        raise LoadError(path, f"{fmt.name}: {exc} (polisum[unstructured] needs 0.27.x)") from exc
    return getattr(module, fmt.function)
