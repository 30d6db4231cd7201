"""The polisum[unstructured] extra: PPTX/XLSX/RTF/EML through unstructured, offline, with
slides and sheets as sections; and the reason given when the extra is not installed."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from polisum.loaders import LoadError, UnstructuredLoader, default_registry
from polisum.loaders import _unstructured as glue

pytest.importorskip("unstructured", reason="the polisum[unstructured] extra is not installed")
pptx = pytest.importorskip("pptx")
openpyxl = pytest.importorskip("openpyxl")


def make_pptx(path: Path) -> Path:
    from pptx.util import Inches

    deck = pptx.Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[1])
    first.shapes.title.text = "Quarterly results"
    first.placeholders[1].text = "Revenue grew by twelve percent over the year."
    second = deck.slides.add_slide(deck.slide_layouts[5])
    second.shapes.title.text = "Budget by district"
    shape = second.shapes.add_table(3, 3, Inches(1), Inches(2), Inches(6), Inches(2))
    for r, row in enumerate([["District", "Item", "KRW"], ["Gangnam", "Parks", "12"],
                             ["Mapo", "Roads", "9"]]):  # fmt: skip
        for c, value in enumerate(row):
            shape.table.cell(r, c).text = value
    deck.save(path)
    return path


def make_xlsx(path: Path) -> Path:
    book = openpyxl.Workbook()
    budget = book.active
    budget.title = "Budget"
    for row in [["District", "Item", "KRW"], ["Gangnam", "Parks", 12], ["Mapo", "Roads", 9]]:
        budget.append(row)
    staff = book.create_sheet("Staff")
    staff.append(["Name", "Role"])
    staff.append(["Kim", "Analyst"])
    book.save(path)
    return path


def test_pptx_slides_are_sections_and_pages(tmp_path: Path):
    doc = default_registry().load(make_pptx(tmp_path / "deck.pptx"))
    assert doc.metadata == {"format": "pptx"}
    body = next(el for el in doc.elements if "twelve percent" in el.text)
    assert body.page == 1 and body.section.startswith("Slide 1 > Quarterly results")
    table = next(el for el in doc.elements if el.kind == "table")
    assert table.page == 2 and table.section == "Slide 2 > Budget by district"
    assert table.text.split("\n") == ["District | Item | KRW", "Gangnam | Parks | 12",
                                      "Mapo | Roads | 9"]  # fmt: skip


def test_xlsx_sheets_are_sections(tmp_path: Path):
    doc = default_registry().load(make_xlsx(tmp_path / "book.xlsx"))
    assert [(el.kind, el.section, el.text) for el in doc.elements] == [
        ("table", "Budget", "District | Item | KRW\nGangnam | Parks | 12\nMapo | Roads | 9"),
        ("table", "Staff", "Name | Role\nKim | Analyst"),
    ]


def test_mail_subject_is_the_section(tmp_path: Path):
    path = tmp_path / "note.eml"
    path.write_text(
        "From: a@example.com\nTo: b@example.com\nSubject: Budget meeting\n"
        "Content-Type: text/plain\n\nThe budget meeting moved to Friday.\n"
    )
    doc = default_registry().load(path)
    assert [(el.kind, el.section, el.text) for el in doc.elements] == [
        ("paragraph", "Budget meeting", "The budget meeting moved to Friday.")
    ]


def test_rtf_through_pandoc(tmp_path: Path):
    pytest.importorskip("pypandoc")
    path = tmp_path / "note.rtf"
    path.write_text(r"{\rtf1\ansi\pard Solar panels cut school electricity bills.\par}")
    doc = default_registry().load(path)
    assert doc.text == "Solar panels cut school electricity bills."


def test_without_the_extra_files_fail_with_the_reason(tmp_path: Path, monkeypatch):
    """The test venv has unstructured; hide it as a fresh install without the extra would."""
    path = make_pptx(tmp_path / "deck.pptx")
    monkeypatch.setattr(glue, "_ready", False)
    for name in [m for m in sys.modules if m == "unstructured" or m.startswith("unstructured.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "unstructured", None)  # import fails
    registry = default_registry()
    assert registry.supports(path)  # registered, so reported rather than skipped
    with pytest.raises(LoadError) as info:
        registry.load(path)
    assert info.value.reason == (
        "PPTX needs polisum[unstructured]: pip install 'polisum[unstructured]'"
    )


def test_damaged_and_hostile_packages_are_refused_before_the_library(tmp_path: Path):
    junk = tmp_path / "junk.xlsx"
    junk.write_bytes(b"PK\x03\x04" + bytes(200))
    with pytest.raises(LoadError, match="damaged XLSX"):
        UnstructuredLoader().load(junk)
    lying = tmp_path / "lying.pptx"
    with zipfile.ZipFile(lying, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("ppt/presentation.xml", "<p/>")
        z.writestr("ppt/media/blob.bin", bytes(8 * 2**20))
    with pytest.raises(LoadError, match=r"blob\.bin inflates more than 100:1"):
        UnstructuredLoader().load(lying)


def test_extra_runs_without_network(tmp_path: Path):
    """A fresh process with sockets disabled reads a PPTX: no telemetry, no model download."""
    path = make_pptx(tmp_path / "deck.pptx")
    code = (
        "import socket, sys\n"
        "attempts = []\n"
        "def refuse(*a, **k):\n"
        "    attempts.append(repr(a[:2]))\n"
        "    raise OSError('network used')\n"
        "socket.socket.connect = refuse\n"
        "socket.getaddrinfo = refuse\n"
        "from pathlib import Path\n"
        "from polisum.loaders import default_registry\n"
        "assert default_registry().load(Path(sys.argv[1])).elements\n"
        "print('ok' if not attempts else attempts)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DO_NOT_TRACK", "SCARF_NO_ANALYTICS")}
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
