"""DOCX read with python-docx's XML layer: structure from generated files, and hostile packages
(zip directories that lie, inflate bombs, XML entities) refused quickly in bounded memory."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import docx
import pytest
from docx.enum.style import WD_STYLE_TYPE
from docx.oxml import parse_xml
from docx.oxml.ns import nsdecls

from polisum.loaders import DocxLoader, LoadError, safezip
from polisum.loaders import docx as docx_loader
from polisum.types import Document

MC_NS = (
    'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
    'xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape" '
    'xmlns:v="urn:schemas-microsoft-com:vml"'
)


def load(document: docx.document.Document, path: Path) -> Document:
    document.save(path)
    return DocxLoader().load(path)


def element(doc: Document, phrase: str):
    return next(el for el in doc.elements if phrase in el.text)


def test_headings_from_styles_outline_levels_and_korean_style_names(tmp_path: Path):
    d = docx.Document()
    d.add_heading("Annual plan", level=1)
    d.add_paragraph("Intro paragraph.")
    d.add_heading("Budget", level=2)
    d.add_paragraph("Budget paragraph.")
    korean = d.styles.add_style("제목 2", WD_STYLE_TYPE.PARAGRAPH)  # a style named, not built in
    d.add_paragraph("예산 세부", style=korean)
    d.add_paragraph("세부 내용입니다.")
    custom = d.styles.add_style("Chapter", WD_STYLE_TYPE.PARAGRAPH)
    custom.element.get_or_add_pPr().append(parse_xml(f'<w:outlineLvl {nsdecls("w")} w:val="0"/>'))
    d.add_paragraph("Second chapter", style=custom)
    direct = d.add_paragraph("Direct outline")  # outline level set on the paragraph itself
    direct._p.get_or_add_pPr().append(parse_xml(f'<w:outlineLvl {nsdecls("w")} w:val="1"/>'))
    d.add_paragraph("Closing paragraph.")
    doc = load(d, tmp_path / "h.docx")
    assert element(doc, "Intro paragraph").section == "Annual plan"
    assert element(doc, "Budget paragraph").section == "Annual plan > Budget"
    assert element(doc, "세부 내용").section == "Annual plan > 예산 세부"
    assert element(doc, "Closing").section == "Second chapter > Direct outline"
    assert [el.kind for el in doc.elements].count("heading") == 5
    assert doc.metadata == {"format": "docx", "pages": 1}


def test_numbered_and_bulleted_paragraphs_form_one_list(tmp_path: Path):
    d = docx.Document()
    d.add_paragraph("Steps:")
    d.add_paragraph("first step", style="List Number")
    d.add_paragraph("second step", style="List Number")
    d.add_paragraph("a bullet", style="List Bullet")
    d.add_paragraph("After the list.")
    doc = load(d, tmp_path / "l.docx")
    assert [(el.kind, el.text) for el in doc.elements] == [
        ("paragraph", "Steps:"),
        ("list", "first step\nsecond step\na bullet"),
        ("paragraph", "After the list."),
    ]


def test_merged_and_nested_table_cells(tmp_path: Path):
    d = docx.Document()
    t = d.add_table(rows=4, cols=3)
    for c, text in enumerate(["Region", "City", "Amount"]):
        t.cell(0, c).text = text
    t.cell(1, 0).merge(t.cell(2, 0)).text = "Seoul"  # vertical merge (vMerge)
    t.cell(1, 1).text, t.cell(1, 2).text = "Gangnam", "12"
    t.cell(2, 1).text, t.cell(2, 2).text = "Mapo", "9"
    t.cell(3, 0).merge(t.cell(3, 1)).text = "Total"  # horizontal merge (gridSpan)
    inner = t.cell(3, 2).add_table(rows=2, cols=2)  # a table inside a cell
    for (r, c), text in {(0, 0): "x1", (0, 1): "y1", (1, 0): "x2", (1, 1): "y2"}.items():
        inner.cell(r, c).text = text
    t.cell(3, 2).paragraphs[0].text = "21"
    long_label = "A long merged description " * 5
    t2 = d.add_table(rows=2, cols=2)
    t2.cell(0, 0).merge(t2.cell(1, 0)).text = long_label
    t2.cell(0, 1).text, t2.cell(1, 1).text = "first", "second"
    doc = load(d, tmp_path / "t.docx")
    tables = [el for el in doc.elements if el.kind == "table"]
    assert tables[0].text.split("\n") == [
        "Region | City | Amount",
        "Seoul | Gangnam | 12",
        "Seoul | Mapo | 9",  # a short merged label repeats in each row it spans
        "Total | 21 x1; y1 / x2; y2",  # spanned columns written once; nested table inline
    ]
    # long merged text is written once, not copied into every row
    assert tables[1].text.split("\n") == [f"{long_label.strip()} | first", " | second"]
    assert doc.text.count("Seoul") == 2 and doc.text.count("x1") == 1


def test_pages_from_hard_and_rendered_breaks(tmp_path: Path):
    d = docx.Document()
    d.add_paragraph("Page one.")
    d.add_page_break()
    # Word records the page it laid out right after a hard break too: the same boundary.
    second = d.add_paragraph()
    second._p.append(parse_xml(f"<w:r {nsdecls('w')}><w:lastRenderedPageBreak/></w:r>"))
    second.add_run("Page two.")
    flowing = d.add_paragraph("Still page two, ")
    flowing._p.append(  # a boundary Word found while laying out this paragraph
        parse_xml(f"<w:r {nsdecls('w')}><w:lastRenderedPageBreak/><w:t>then three</w:t></w:r>")
    )
    d.add_paragraph("Page three.")
    d.add_section()  # a section break starting on a new page
    d.add_paragraph("Page four.")
    d.sections[0].header.paragraphs[0].text = "RUNNING HEADER"
    d.sections[0].footer.paragraphs[0].text = "RUNNING FOOTER"
    doc = load(d, tmp_path / "p.docx")
    pages = {el.text.split(",")[0].rstrip("."): el.page for el in doc.elements}
    assert pages == {"Page one": 1, "Page two": 2, "Still page two": 2, "Page three": 3,
                     "Page four": 4}  # fmt: skip
    assert doc.metadata["pages"] == 4
    assert "RUNNING" not in doc.text  # headers and footers are not body text


def test_content_controls_text_boxes_and_tracked_changes(tmp_path: Path):
    d = docx.Document()
    d.add_paragraph("Before.")
    body = d.element.body
    body.insert(
        len(body) - 1,
        parse_xml(
            f'<w:sdt {nsdecls("w")}><w:sdtPr><w:alias w:val="hidden name"/></w:sdtPr>'
            "<w:sdtContent><w:p><w:r><w:t>Block control text</w:t></w:r></w:p>"
            "</w:sdtContent></w:sdt>"
        ),
    )
    p = d.add_paragraph("Anchor ")
    for xml in (
        f"<w:sdt {nsdecls('w')}><w:sdtContent><w:r><w:t>inline control</w:t></w:r>"
        "</w:sdtContent></w:sdt>",
        f'<w:ins {nsdecls("w")} w:id="1" w:author="a"><w:r><w:t> inserted</w:t></w:r></w:ins>',
        f'<w:del {nsdecls("w")} w:id="2" w:author="a"><w:r><w:delText>GONE</w:delText></w:r>'
        "</w:del>",
        f'<w:r {nsdecls("w")} {MC_NS}><mc:AlternateContent><mc:Choice Requires="wps">'
        "<w:drawing><wps:txbx><w:txbxContent><w:p><w:r><w:t>Text box body</w:t></w:r></w:p>"
        "</w:txbxContent></wps:txbx></w:drawing></mc:Choice><mc:Fallback><w:pict><v:textbox>"
        "<w:txbxContent><w:p><w:r><w:t>Text box body</w:t></w:r></w:p></w:txbxContent>"
        "</v:textbox></w:pict></mc:Fallback></mc:AlternateContent></w:r>",
    ):
        p._p.append(parse_xml(xml))
    doc = load(d, tmp_path / "c.docx")
    assert [el.text for el in doc.elements] == [
        "Before.",
        "Block control text",
        "Anchor inline control inserted",
        "Text box body",  # once: the VML fallback copy is skipped
    ]
    assert "GONE" not in doc.text and "hidden name" not in doc.text


# --- hostile packages --------------------------------------------------------------------

DOC_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
    b"<w:body>"
)
DOC_TAIL = b"</w:body></w:document>"


def write_docx(
    path: Path, *document_xml: bytes, method: int = zipfile.ZIP_DEFLATED, repeat: int = 1
) -> None:
    """A minimal DOCX; ``document_xml`` pieces are written in turn, the middle one ``repeat``
    times (streamed: a large member never sits in memory)."""
    with zipfile.ZipFile(path, "w", method) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("word/document.xml", "w", force_zip64=True) as fh:
            for i, piece in enumerate(document_xml):
                for _ in range(repeat if i == 1 else 1):
                    fh.write(piece)


def paragraphs(n: int) -> bytes:
    return b"".join(b"<w:p><w:r><w:t>Paragraph %d of many.</w:t></w:r></w:p>" % i for i in range(n))


def understate_size(path: Path, member: str, declared: int) -> None:
    """Rewrite the uncompressed size of ``member`` in its local header and in the central
    directory, as a hostile or damaged zip would."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    local = data.index(b"PK\x03\x04")
    while data[local + 30 : local + 30 + len(name)] != name:
        local = data.index(b"PK\x03\x04", local + 4)
    data[local + 22 : local + 26] = declared.to_bytes(4, "little")
    central = data.index(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len(name)] != name:
        central = data.index(b"PK\x01\x02", central + 4)
    data[central + 24 : central + 28] = declared.to_bytes(4, "little")
    path.write_bytes(bytes(data))


# Loads a file in a fresh process and prints: seconds, peak-memory growth (MiB), outcome.
MEASURE = """
import resource, sys, time
from pathlib import Path
from polisum.loaders import LoadError, default_registry
reg = default_registry()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
try:
    doc = reg.load(Path(sys.argv[1]))
    outcome = f"ok {len(doc.text)}"
except LoadError as exc:
    outcome = "error " + exc.reason
seconds = time.perf_counter() - t
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024
print(f"{seconds:.2f} {grown} {outcome}")
"""


def measure(path: Path) -> tuple[float, int, str]:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    seconds, grown, outcome = out.stdout.strip().split(" ", 2)
    return float(seconds), int(grown), outcome


def test_4mib_of_paragraph_xml_in_a_small_file_fails_fast(tmp_path: Path):
    """Issue 13: 4 MiB of repeated paragraph XML in a ~12 KB file took 46 s and 827 MB."""
    path = tmp_path / "bomb.docx"
    spam = b"<w:p><w:r><w:t>spam</w:t></w:r></w:p>"
    write_docx(path, DOC_HEAD, spam, DOC_TAIL, repeat=4 * 2**20 // len(spam))
    assert path.stat().st_size < 20_000
    seconds, grown, outcome = measure(path)
    assert outcome.startswith("error word/document.xml inflates more than 100:1"), outcome
    assert seconds < 2 and grown < 32, (seconds, grown)


def test_member_larger_than_its_declared_size_is_refused_while_inflating(tmp_path: Path):
    """Issue 13: the zip directory says 4 KiB, the member inflates to 256 MiB; the old reader
    inflated it whole (up to 2 GiB) before checking."""
    path = tmp_path / "lying.docx"
    write_docx(path, DOC_HEAD + b"<!--", b" " * 2**20, b"-->" + DOC_TAIL, repeat=256)
    understate_size(path, "word/document.xml", 4096)
    seconds, grown, outcome = measure(path)
    assert outcome == (
        "error word/document.xml is larger than its declared size (4 KiB): "
        "a damaged or hostile file"
    ), outcome
    assert seconds < 2 and grown < 32, (seconds, grown)


def test_large_real_document_loads_in_bounded_time(tmp_path: Path):
    """The same amount of XML with ordinary compression is a document, not a bomb."""
    path = tmp_path / "long.docx"
    write_docx(path, DOC_HEAD + paragraphs(80_000) + DOC_TAIL)
    seconds, grown, outcome = measure(path)
    assert outcome.startswith("ok "), outcome
    assert int(outcome.split()[1]) > 80_000 * 15
    assert seconds < 15 and grown < 400, (seconds, grown)


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        (  # XXE: an external entity naming a local file
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            + DOC_HEAD.split(b"\n", 1)[1]
            + b"<w:p><w:r><w:t>&x;</w:t></w:r></w:p>"
            + DOC_TAIL,
            "declares a DTD",
        ),
        (  # billion laughs
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
            + b"".join(
                b'<!ENTITY %s "%s">' % (bytes([98 + i]), (b"&%s;" % bytes([97 + i])) * 10)
                for i in range(8)
            )
            + b"]>"
            + DOC_HEAD.split(b"\n", 1)[1]
            + b"<w:p><w:r><w:t>&i;</w:t></w:r></w:p>"
            + DOC_TAIL,
            "declares a DTD|entity amplification",
        ),
        (b"<w:document><unclosed>", "damaged DOCX part word/document.xml: not well-formed"),
    ],
)
def test_xml_entities_and_broken_xml_are_refused(tmp_path: Path, xml: bytes, reason: str):
    path = tmp_path / "x.docx"
    write_docx(path, xml)
    with pytest.raises(LoadError) as info:
        DocxLoader().load(path)
    assert re.search(reason, info.value.reason), info.value.reason
    assert "root:" not in info.value.reason


def test_element_cap_and_compression_method(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "many.docx"
    write_docx(path, DOC_HEAD + paragraphs(3000) + DOC_TAIL)
    monkeypatch.setattr(docx_loader, "MAX_XML_ELEMENTS", 5000)
    with pytest.raises(LoadError, match=r"more than 5,000 XML elements"):
        DocxLoader().load(path)
    bz = tmp_path / "bzip2.docx"
    write_docx(bz, DOC_HEAD + paragraphs(3) + DOC_TAIL, method=zipfile.ZIP_BZIP2)
    with pytest.raises(LoadError, match="compression method 12: only deflate"):
        DocxLoader().load(bz)


def test_read_member_checks_crc_and_limit(tmp_path: Path):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("part.xml", b"<r>" + b"x" * 5000 + b"</r>")
    data = bytearray(path.read_bytes())
    at = data.index(b"PK\x01\x02")
    data[at + 16 : at + 20] = b"\0\0\0\0"  # wrong CRC-32 in the central directory
    bad = tmp_path / "b.zip"
    bad.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as z:
        assert safezip.read_member(z, "part.xml", 10_000).startswith(b"<r>xxx")
        with pytest.raises(LoadError, match=r"part.xml unpacks to 5 KiB \(limit 4 KiB\)"):
            safezip.read_member(z, "part.xml", 4096)
    with zipfile.ZipFile(bad) as z, pytest.raises(LoadError, match=r"damaged zip member part\.xml"):
        safezip.read_member(z, "part.xml", 10_000)
