"""A corpus of bad inputs, made by the tests themselves: each file gets its one-line reason in
the ingest report and in ``polisum ingest --json``, and everything else is still ingested."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

import polisum
from polisum.cli import app
from polisum.loaders import DEFAULT_MAX_BYTES, LoadError, default_registry

GOOD_PDF_TEXT = "Municipal solar panels cut school electricity bills by a third."
GOOD_MD = (
    "# 청년 정책\n\n## 월세 지원\n\n서울시는 무주택 청년에게 월 최대 20만 원의 월세를 지원한다.\n"
)


def make_pdf(pages: list[str | bytes | None], *, padding: int = 0) -> bytes:
    """A minimal valid PDF: one Helvetica text line per page, a raw content stream (bytes;
    font /F1 is Helvetica), or (None) a page that only draws an image. ``padding`` adds an
    unreferenced stream of that many zero bytes."""
    objects: list[bytes] = [b"", b""]  # 1: catalog, 2: page tree (filled below)
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")  # 3
    kids = []
    for text in pages:
        if isinstance(text, bytes):
            content = text
        elif text is None:  # an 8x8 grey inline image scaled over the page: a "scan"
            content = (
                b"q 500 0 0 700 50 50 cm BI /W 8 /H 8 /CS /G /BPC 8 ID "
                + bytes(range(64))
                + b" EI Q"
            )
        else:
            escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            content = b"BT /F1 12 Tf 72 720 Td (" + escaped.encode("latin-1") + b") Tj ET"
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
        content_no = len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 3 0 R >> >> >>" % content_no
        )
        kids.append(len(objects))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids),
        len(kids),
    )
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    if padding:  # kept small here; the sparse large file is written by write_big_pdf
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n<< /Length %d >>\nstream\n" % (len(objects) + 1, padding))
        out.write(bytes(padding) + b"\nendstream\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(offsets) + 1, xref)
    )
    return out.getvalue()


def write_big_pdf(path: Path, size: int) -> None:
    """A valid PDF of about ``size`` bytes, mostly an unreferenced stream left as a sparse
    hole (no disk, no memory), then the xref that points past it."""
    small = make_pdf([GOOD_PDF_TEXT])
    head, _, _ = small.partition(b"xref\n")
    offsets = [int(m) for m in _xref_offsets(small)]
    with open(path, "wb") as fh:
        fh.write(head)
        big_no = len(offsets) + 1
        offsets.append(fh.tell())
        fh.write(b"%d 0 obj\n<< /Length %d >>\nstream\n" % (big_no, size))
        fh.seek(size, os.SEEK_CUR)
        fh.write(b"\nendstream\nendobj\n")
        xref = fh.tell()
        fh.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1))
        for off in offsets:
            fh.write(b"%010d 00000 n \n" % off)
        fh.write(
            b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (len(offsets) + 1, xref)
        )


def _xref_offsets(pdf: bytes) -> list[bytes]:
    table = pdf.split(b"xref\n", 1)[1].split(b"trailer", 1)[0].splitlines()[2:]
    return [line.split()[0] for line in table]


def make_encrypted_pdf() -> bytes:
    pypdf = pytest.importorskip("pypdf")
    reader = pypdf.PdfReader(io.BytesIO(make_pdf(["Secret budget figures for 2025."])))
    writer = pypdf.PdfWriter()
    for page in reader.pages:
        writer.add_page(page)
    writer.encrypt(user_password="s3cret", owner_password="owner", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


JUNK = bytes((i * 7919 + 13) % 256 for i in range(4096))

# file name → the words its reason must contain (None: it must be ingested)
EXPECTED: dict[str, str | None] = {
    "good.md": None,
    "good.pdf": None,
    "big-valid.pdf": None,
    "empty.pdf": "empty file",
    "empty.hwp": "empty file",
    "junk.pdf": "not a PDF file",
    "junk.docx": "not a DOCX file",
    "junk.hwp": "not an HWP file",
    "junk.hwpx": "not a HWPX file",
    "junk.html": "binary",
    "truncated.pdf": "truncated PDF",
    "damaged.pdf": "damaged PDF",
    "encrypted.pdf": "encrypted PDF: needs a password",
    "scanned.pdf": "needs OCR",
    "locked.docx": "password-protected DOCX",
    "no-body.hwpx": "zip archive without Contents/header.xml",
    "broken-xml.docx": "damaged DOCX",
    "too-large.pdf": "file too large (201 MiB > limit 200 MiB)",
    "loop.pdf": "cannot read file: Too many levels of symbolic links",
    "gone.hwpx": "cannot read file: No such file or directory",
}
NON_UTF8_NAME = b"\xff\xfe-notes.md"


@pytest.fixture(scope="module", autouse=True)
def no_ocr():
    """The scan's reason is "needs OCR" only where no OCR engine runs (tests/test_ocr.py
    covers the engine); the environment carries it into CLI subprocesses too."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POLISUM_OCR", "off")
        yield


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bad") / "docs"
    folder.mkdir()
    good_pdf = make_pdf([GOOD_PDF_TEXT, "Second page about library opening hours."])
    files = {
        "good.md": GOOD_MD.encode(),
        "good.pdf": good_pdf,
        "empty.pdf": b"",
        "empty.hwp": b"",
        "junk.pdf": JUNK,
        "junk.docx": JUNK,
        "junk.hwp": JUNK,
        "junk.hwpx": JUNK,
        "junk.html": JUNK,
        "truncated.pdf": good_pdf[: len(good_pdf) // 2],
        "damaged.pdf": b"%PDF-1.4\n" + JUNK + b"\n%%EOF\n",
        "encrypted.pdf": make_encrypted_pdf(),
        "scanned.pdf": make_pdf([None, None]),
        "locked.docx": bytes.fromhex("d0cf11e0a1b11ae1") + JUNK,
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    with zipfile.ZipFile(folder / "no-body.hwpx", "w") as z:
        z.writestr("mimetype", "application/hwp+zip")
    with zipfile.ZipFile(folder / "broken-xml.docx", "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:document><unclosed>")
    write_big_pdf(folder / "big-valid.pdf", 190 * 2**20)
    with open(folder / "too-large.pdf", "wb") as fh:  # sparse: no disk used
        fh.truncate(201 * 2**20)
    os.symlink("loop.pdf", folder / "loop.pdf")
    os.symlink("does-not-exist.hwpx", folder / "gone.hwpx")
    with open(os.path.join(os.fsencode(folder), NON_UTF8_NAME), "wb") as fh:
        fh.write(GOOD_MD.encode())
    return folder


def _reasons(failures: list) -> dict[str, str]:
    return {Path(f["source"]).name: f["reason"] for f in failures}


def _check(reasons: dict[str, str]) -> None:
    for name, words in EXPECTED.items():
        if words is None:
            assert name not in reasons, f"{name} should be ingested: {reasons.get(name)}"
        else:
            assert name in reasons, f"{name} was not reported"
            assert words in reasons[name], f"{name}: {reasons[name]!r}"
    for reason in reasons.values():
        assert "\n" not in reason and len(reason) < 200
        assert not reason.startswith("unexpected"), reason


@pytest.mark.parametrize("name", [n for n, w in EXPECTED.items() if w and "cannot read" not in w])
def test_loader_reason(corpus: Path, name: str):
    with pytest.raises(LoadError) as info:
        default_registry().load(corpus / name)
    assert EXPECTED[name] in info.value.reason


def test_index_ingest_reports_each_bad_file_and_ingests_the_rest(corpus: Path, tmp_path: Path):
    with polisum.Index.open(tmp_path / "idx") as idx:
        report = idx.ingest(corpus)
        reasons = _reasons([f.to_dict() for f in report.failures])
        _check(reasons)
        assert report.new == 4  # good.md, good.pdf, big-valid.pdf, the non-UTF-8 name
        assert report.failed == len(reasons) == sum(1 for w in EXPECTED.values() if w)
        sources = {d.source for d in idx.store.documents() if d.status == "ok"}
        # issue 13: stored losslessly, the undecodable bytes escaped (was: replaced by U+FFFD)
        assert any(s.endswith("‹bytes›\\xff\\xfe-notes.md") for s in sources)
        hit = idx.search("school electricity bills solar", k=1)[0]
        assert hit.source.endswith(".pdf") and hit.page == 1 and "solar panels" in hit.text


def test_cli_json_reports_the_same_reasons(corpus: Path, tmp_path: Path):
    result = CliRunner().invoke(
        app, ["ingest", str(corpus), "--index", str(tmp_path / "i"), "--json"]
    )
    assert result.exit_code == 0, result.output  # some files failed, the others are in
    report = json.loads(result.stdout)
    _check(_reasons(report["failures"]))
    assert report["files"]["new"] == 4


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file anyway")
def test_permission_denied(tmp_path: Path):
    path = tmp_path / "secret.pdf"
    path.write_bytes(make_pdf([GOOD_PDF_TEXT]))
    path.chmod(0)
    with pytest.raises(LoadError, match="permission denied"):
        default_registry().load(path)


def test_large_valid_pdf_loads_in_bounded_memory(corpus: Path):
    """190 MiB on disk, a few KiB of it read: peak memory must not grow by the file size."""
    code = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from polisum.loaders import default_registry\n"
        "reg = default_registry()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "doc = reg.load(Path(sys.argv[1]))\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "assert 'school electricity bills' in doc.text\n"
        "print((after - before) // 1024)\n"
    )
    path = corpus / "big-valid.pdf"
    assert path.stat().st_size > 190 * 2**20 and path.stat().st_size < DEFAULT_MAX_BYTES
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    grown_mib = int(out.stdout.strip())
    assert grown_mib < 64, f"peak memory grew by {grown_mib} MiB"
