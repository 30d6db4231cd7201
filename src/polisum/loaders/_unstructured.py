"""unstructured, made to run offline, and its elements turned into polisum blocks.

unstructured 0.27 reaches the network twice on a fresh machine:

* ``import unstructured`` sends a telemetry ping (and runs ``nvidia-smi``) unless
  ``DO_NOT_TRACK``/``SCARF_NO_ANALYTICS`` is set, and prints a sales notice unless
  ``UNSTRUCTURED_DISABLE_NOTICE=1``;
* the first partition call downloads the spaCy model ``en_core_web_sm`` from GitHub (it is not
  on PyPI) and fails without network.

The partitioners polisum uses (DOCX, HTML) take headings, lists and tables from the markup
(Word paragraph styles, ``<h1>``–``<h6>``, ``<li>``, ``<table>``). spaCy only serves the text
heuristics that label an unstyled paragraph ``NarrativeText`` rather than ``Text``: a
difference polisum ignores, since both become paragraphs. So instead of a 13 MB model we give
unstructured spaCy's rule-based English pipeline (tokenizer + sentencizer, part of spaCy
itself): it needs no download, and the model installer is replaced by a clear error.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterable
from typing import Any

from polisum.loaders.structure import (
    Block,
    SectionPath,
    guess_caps_heading_level,
    guess_heading_level,
)
from polisum.loaders.tables import html_table_rows, rows_to_text

_lock = threading.Lock()
_ready = False

# Element categories that carry no body text (or repeat on every page).
_SKIP = {"Header", "Footer", "PageBreak", "Image", "PageNumber", "Picture"}
_LIST = {"ListItem", "List-item"}
_CODE = {"CodeSnippet"}


def _rule_based_nlp() -> Any:
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return nlp


def _refuse_download() -> None:
    raise RuntimeError(
        "unstructured tried to download a spaCy model; polisum runs offline and should have "
        "replaced its NLP pipeline (polisum.loaders._unstructured)"
    )


def ensure_offline() -> None:
    """Configure unstructured once per process, before its first import."""
    global _ready
    if _ready:
        return
    with _lock:
        if _ready:
            return
        for name, value in (
            ("DO_NOT_TRACK", "true"),
            ("SCARF_NO_ANALYTICS", "true"),
            ("UNSTRUCTURED_DISABLE_NOTICE", "1"),
        ):
            os.environ.setdefault(name, value)
        import unstructured.nlp.tokenize as tokenize

        # Fail loudly if an unstructured upgrade moves these hooks: the tests catch it.
        if not hasattr(tokenize, "_get_nlp") or not hasattr(tokenize, "_install_spacy_model"):
            raise RuntimeError("unsupported unstructured version: spaCy hooks not found")
        tokenize._get_nlp = functools.lru_cache(maxsize=1)(_rule_based_nlp)
        tokenize._install_spacy_model = _refuse_download
        _ready = True


# Metadata passed to every partition call: fixed languages skip per-document language
# detection (langdetect), which polisum does not use.
PARTITION_KWARGS: dict[str, Any] = {"languages": ["kor", "eng"]}


def table_text(element: Any) -> str:
    html = getattr(element.metadata, "text_as_html", None)
    if html:
        text = rows_to_text(html_table_rows(html))
        if text:
            return text
    return element.text


def elements_to_blocks(elements: Iterable[Any], *, pages: bool) -> list[Block]:
    """unstructured elements → blocks: Titles set the section path (by ``category_depth``),
    consecutive list items form one list block, tables become " | " rows.

    A file with no heading markup at all (common: Word files formatted by hand) gets its
    sections from numbered or ALL-CAPS short lines instead (see ``structure``)."""
    elements = list(elements)
    guess = not any(el.category == "Title" for el in elements)
    sections = SectionPath()
    blocks: list[Block] = []
    list_items: list[str] = []
    list_page: int | None = None

    def flush_list() -> None:
        nonlocal list_items
        if list_items:
            blocks.append(Block("\n".join(list_items), "list", sections.path, list_page))
            list_items = []

    for el in elements:
        category = el.category
        if category in _SKIP:
            continue
        page = el.metadata.page_number if pages else None
        if category in _LIST:
            text = el.text.strip()
            if text:
                if list_items and page != list_page:
                    flush_list()
                list_page = page
                list_items.append(text)
            continue
        flush_list()
        if category == "Title":
            depth = el.metadata.category_depth or 0
            sections.push(depth + 1, el.text)
            blocks.append(Block(el.text, "heading", sections.path, page))
        elif category == "Table":
            blocks.append(Block(table_text(el), "table", sections.path, page))
        elif category in _CODE:
            blocks.append(Block(el.text, "code", sections.path, page))
        else:
            level = (
                (guess_heading_level(el.text) or guess_caps_heading_level(el.text))
                if guess
                else None
            )
            if level:
                sections.push(level, el.text)
                blocks.append(Block(el.text, "heading", sections.path, page))
            else:
                blocks.append(Block(el.text, "paragraph", sections.path, page))
    flush_list()
    return blocks
