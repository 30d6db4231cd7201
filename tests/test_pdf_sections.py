"""PDF sections in generated PDFs: the outline (bookmarks) is used when there is one, chart
numbers and logo words never become headings, and a heading opens the chunk of the text it
heads instead of making a chunk of its own."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest

from polisum.chunking import ParagraphChunker
from polisum.loaders import default_registry
from polisum.loaders.structure import looks_like_heading
from polisum.types import Document
from test_bad_inputs import make_pdf

SENTENCES = [
    "The council approved the rooftop solar programme for every public school in the district.",
    "Installations finished before the winter term and produced more power than forecast.",
    "Electricity bills of the participating schools fell by about a third in the first year.",
    "Maintenance is contracted for ten years and paid from the savings on the bills.",
    "Pupils follow the output of their own panels in science lessons every week.",
    "The programme will reach the remaining libraries and sports halls next spring.",
]


def text(x: float, y: float, size: int, s: str) -> bytes:
    escaped = s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return b"BT /F1 %d Tf %.1f %.1f Td (%s) Tj ET\n" % (size, x, y, escaped.encode("latin-1"))


PLACES = ["Alder", "Birch", "Cedar", "Dogwood", "Elm", "Fir", "Ginkgo", "Hazel", "Ivy", "Juniper"]
_LINES = itertools.count()


def body_lines(n: int) -> list[str]:
    """Lines of one paragraph, none repeated anywhere (repeats would be running headers);
    only the last ends a sentence (a short line ending in a full stop ends a paragraph)."""
    lines = []
    for _ in range(n):
        i = next(_LINES)
        sentence = SENTENCES[i % len(SENTENCES)].rstrip(".")
        lines.append(f"{sentence} in {PLACES[i // len(SENTENCES) % len(PLACES)]} {i}")
    return [*lines[:-1], lines[-1] + "."]


def body(y: float, n: int = 3) -> tuple[bytes, float]:
    """A paragraph of ``n`` 10-point lines from ``y`` down; returns it and the next free y."""
    out = b"".join(text(72, y - 12 * i, 10, line) for i, line in enumerate(body_lines(n)))
    return out, y - 12 * n - 14


def page(*parts: tuple[str, int, str] | str, top: float = 740) -> bytes:
    """Parts top to bottom: ("h", size, heading text) or "p" (a body paragraph)."""
    out, y = b"", top
    for part in parts:
        if part == "p":
            chunk, y = body(y)
        else:
            _, size, title = part
            out += text(72, y, size, title)
            y -= size + 16
            continue
        out += chunk
    return out


def load_pdf(tmp_path: Path, pages: list[bytes], outline=None, name="report.pdf") -> Document:
    data = make_pdf(pages)
    if outline:
        data = with_outline(data, outline)
    path = tmp_path / name
    path.write_bytes(data)
    return default_registry().load(path)


def with_outline(data: bytes, outline: list[tuple[str, int, float | None, list]]) -> bytes:
    """Bookmarks written by pypdf: (title, 0-based page, top y or None, children)."""
    pypdf = pytest.importorskip("pypdf")
    from pypdf.generic import Fit

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(data)))

    def add(entries, parent=None):
        for title, index, top, children in entries:
            fit = Fit.xyz(left=0, top=top, zoom=0) if top is not None else Fit.fit()
            item = writer.add_outline_item(title=title, page_number=index, parent=parent, fit=fit)
            add(children, item)

    add(outline)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def sections(doc: Document) -> dict[str, str | None]:
    return {el.text: el.section for el in doc.elements}


def test_outline_gives_the_sections(tmp_path: Path):
    pages = [
        page(("h", 24, "Annual Report"), "p"),
        # Body-size headings: the layout alone would not find them, the outline does.
        page(("h", 10, "Climate action"), "p", ("h", 10, "2.1 Emissions"), "p"),
        page("p", "p", "p", top=700),  # the "Water" bookmark points at y=655, no title there
    ]
    outline = [
        ("Climate action", 1, 740, [("Emissions", 1, 650, [])]),
        ("Water", 2, 655, []),
    ]
    doc = load_pdf(tmp_path, pages, outline)
    assert doc.metadata["outline_entries"] == 3
    headings = [(el.text, el.section) for el in doc.elements if el.kind == "heading"]
    assert headings == [
        ("Annual Report", "Annual Report"),
        ("Climate action", "Climate action"),
        ("2.1 Emissions", "Climate action > Emissions"),  # the page numbers what the mark does not
    ]
    page3 = [el for el in doc.elements if el.page == 3]
    assert [el.section for el in page3] == [
        "Climate action > Emissions",  # above where the bookmark points
        "Water",
        "Water",
    ]


def test_outline_absent_layout_headings_still_nest(tmp_path: Path):
    doc = load_pdf(tmp_path, [page(("h", 24, "Annual Report"), "p", ("h", 16, "Governance"), "p")])
    assert "outline_entries" not in doc.metadata
    assert sections(doc)["Governance"] == "Annual Report > Governance"


def test_chart_numbers_and_units_are_not_headings(tmp_path: Path):
    chart = page(
        ("h", 16, "Climate strategy"),
        "p",
        ("h", 28, "19,656"),
        ("h", 20, "94 tCO2eq/yr"),
        ("h", 20, "2021 2022 2023"),
        "p",
        ("h", 16, "Water stewardship"),
        "p",
    )
    doc = load_pdf(tmp_path, [chart])
    headings = [el.text for el in doc.elements if el.kind == "heading"]
    assert headings == ["Climate strategy", "Water stewardship"]
    numbers = [el for el in doc.elements if "19,656" in el.text or "tCO2eq" in el.text]
    assert numbers and all(el.section == "Climate strategy" for el in numbers)


@pytest.mark.parametrize(
    ("line", "heading"),
    [
        ("19,656", False),
        ("94 만 tCO2eq/년", False),
        ("1,234억원", False),
        ("78.5%", False),
        ("2019 2020 2021", False),
        ("1 Introduction . . . . . . 1", False),
        ("1. 서 론", True),  # letter-spaced Korean headings are words
        ("Ⅰ. 개 요", True),
        ("온실가스 배출량 검증 의견서", True),
        ("3.1 Overview", True),
    ],
)
def test_what_can_be_a_heading(line: str, heading: bool):
    assert looks_like_heading(line) is heading


def logo_pages(ys: list[float]) -> list[bytes]:
    """One page per y: a 30-point logo word "Hway" drawn mid-stream at that height, between a
    real 16-point heading with its text and more text."""
    titles = ["Governance", "Environment", "Social", "Appendix"]
    pages = []
    for title, y in zip(titles, ys, strict=True):
        rest, _ = body(480, n=5)
        pages.append(page(("h", 16, title), "p") + text(400, y, 30, "Hway") + rest)
    return pages


@pytest.mark.parametrize(
    "ys",
    [
        [300, 300, 300, 300],  # at the same spot on every page: dropped as a running line
        [300, 250, 200, 150],  # wandering: kept as text, but never a heading
    ],
)
def test_logo_word_on_every_page_is_not_the_section(tmp_path: Path, ys: list[float]):
    doc = load_pdf(tmp_path, logo_pages(ys))
    assert not any("Hway" in (el.section or "") for el in doc.elements)
    assert [el.section for el in doc.elements if el.kind == "heading"] == [
        "Governance",
        "Environment",
        "Social",
        "Appendix",
    ]
    assert ("Hway" in doc.text) is (len(set(ys)) > 1)


def after(doc: Document, heading: str) -> str:
    """The text of the element right after a heading."""
    texts = [el.text for el in doc.elements]
    return texts[texts.index(heading) + 1]


def test_no_chunk_is_a_heading_alone(tmp_path: Path):
    pages = [
        page(("h", 24, "Annual Report"), ("h", 16, "Governance"), "p", ("h", 16, "Outlook")),
        page("p", "p"),  # Outlook's text is on the next page
    ]
    doc = load_pdf(tmp_path, pages)
    chunks = ParagraphChunker().chunk(doc, "report.pdf")
    headings = {el.text for el in doc.elements if el.kind == "heading"}
    assert headings == {"Annual Report", "Governance", "Outlook"}
    assert not [c.text for c in chunks if all(p in headings for p in c.text.split("\n\n"))]
    first, outlook = chunks[0], chunks[1]
    assert first.text.startswith("Annual Report\n\nGovernance\n\n" + after(doc, "Governance"))
    assert first.section == "Annual Report > Governance" and first.page == 1
    assert outlook.text.startswith("Outlook\n\n" + after(doc, "Outlook"))
    assert outlook.section == "Annual Report > Outlook" and outlook.page == 2


def test_title_line_opens_the_paragraph_after_it(tmp_path: Path):
    lines = [text(72, 700 - 12 * i, 10, line) for i, line in enumerate(body_lines(12))]
    doc = load_pdf(tmp_path, [text(72, 740, 20, "Solar schools") + b"".join(lines)])
    paragraph = after(doc, "Solar schools")
    # The paragraph fits a chunk, title + paragraph do not: the title used to stand alone.
    limit = len(paragraph) + 5
    chunks = ParagraphChunker(max_chars=limit).chunk(doc, "report.pdf")
    assert all(c.text != "Solar schools" for c in chunks)
    assert chunks[0].text.startswith("Solar schools\n\n" + paragraph[:200])
    assert chunks[0].section == "Solar schools"
    assert all(len(c.text) <= limit for c in chunks)
    assert chunks[-1].text.endswith(paragraph[-60:])  # nothing lost at the split
    assert doc.text[chunks[0].start : chunks[0].end] == chunks[0].text
