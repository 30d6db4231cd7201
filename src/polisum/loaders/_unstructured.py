"""unstructured, made to run offline, and its elements turned into polisum parts.

unstructured 0.27 reaches the network twice on a fresh machine:

* ``import unstructured`` sends a telemetry ping (and runs ``nvidia-smi``) unless
  ``DO_NOT_TRACK``/``SCARF_NO_ANALYTICS`` is set, and prints a sales notice unless
  ``UNSTRUCTURED_DISABLE_NOTICE=1``;
* the first partition call downloads the spaCy model ``en_core_web_sm`` from GitHub (it is not
  on PyPI) and fails without network.

unstructured is the optional extra ``polisum[unstructured]`` (see ``polisum.loaders.office``)
for the formats polisum has no reader of its own for. Those partitioners take headings, lists
and tables from the markup (slide titles, Word paragraph styles of the DOCX that pandoc makes
of an ODT, ``<h1>``–``<h6>`` of the HTML it makes of RTF and EPUB). spaCy only serves the text
heuristics that label an unstyled paragraph ``NarrativeText`` rather than ``Text``: a
difference polisum ignores, since both become paragraphs. So instead of a 13 MB model we give
unstructured spaCy's rule-based English pipeline (tokenizer + sentencizer, part of spaCy
itself): it needs no download, and the model installer is replaced by a clear error.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

from polisum.loaders.structure import Part
from polisum.loaders.tables import html_table_rows, rows_to_text
from polisum.types import ElementKind

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


def elements_to_parts(
    elements: Iterable[Any],
    *,
    pages: bool,
    unit: Callable[[Any], str | None] | None = None,
    titles: bool = True,
) -> list[Part]:
    """unstructured elements → parts for :func:`~polisum.loaders.structure.sectioned_blocks`:
    Titles are headings by ``category_depth``, list items lists, tables " | " rows.
    ``unit`` names the slide or sheet an element is on; each new one starts a section.
    ``titles=False`` reads Titles as paragraphs (unstructured calls any short line a Title)."""
    parts: list[Part] = []
    current: str | None = None
    for el in elements:
        category = el.category
        if category in _SKIP:
            continue
        page = el.metadata.page_number if pages else None
        name = unit(el) if unit else None
        if name and name != current:
            parts.append(Part("paragraph", "", page, starts=name))
            current = name
        if category == "Title" and titles:
            parts.append(Part("paragraph", el.text, page, (el.metadata.category_depth or 0) + 1))
        elif category == "Table":
            parts.append(Part("table", table_text(el), page))
        else:
            kind: ElementKind = (
                "list" if category in _LIST else "code" if category in _CODE else "paragraph"
            )
            parts.append(Part(kind, el.text, page))
    return parts
