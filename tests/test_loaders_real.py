"""Every real document in ../shared/data/docs_{en,ko,hwp}: phrases checked by hand against the
files, page numbers for PDFs (and the page layout saved in HWP/HWPX), sections for headed
formats, tables as " | " rows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from polisum.chunking import ParagraphChunker
from polisum.loaders import default_registry
from polisum.types import Document

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {DATA}")

FILES = sorted(
    p.relative_to(DATA).as_posix()
    for sub in ("docs_en", "docs_ko", "docs_hwp")
    for p in (DATA / sub).glob("*")
    if p.is_file()
)


@cache
def load(name: str) -> Document:
    return default_registry().load(DATA / name)


def find(doc: Document, phrase: str, kind: str | None = None):
    """The first element containing ``phrase`` (whitespace-insensitive)."""
    want = re.sub(r"\s+", " ", phrase)
    for el in doc.elements:
        if want in re.sub(r"\s+", " ", el.text) and (kind is None or el.kind == kind):
            return el
    raise AssertionError(f"{phrase!r} not found in {doc.path.name}")


# (file, phrase, page, section-or-None to check: a substring of the section path)
PHRASES = [
    (
        "docs_en/layout-parser-paper-fast.pdf",
        "Deep Learning(DL)-based approaches are the state-of-the-art for a wide range of "
        "document image analysis (DIA) tasks",
        1,
        "1 Introduction",
    ),
    (
        "docs_en/layout-parser-paper-fast.pdf",
        "A DL model hub and community platform for the easy sharing, distribution, and "
        "discussion of DIA models and pipelines",
        2,
        "1 Introduction",
    ),
    (
        "docs_en/multi-column-2p.pdf",
        "Open-domain question answering relies on efficient passage retrieval to select "
        "candidate contexts",
        1,
        "Dense Passage Retrieval for Open-Domain Question Answering",
    ),
    (
        "docs_en/multi-column-2p.pdf",
        "The problem of open-domain QA studied in this paper can be described as follows.",
        2,
        "2 Background",
    ),
    (
        "docs_en/handbook-1p.docx",
        "The United States Trustee appoints and supervises standing trustees",
        1,
        "CHAPTER 1 – INTRODUCTION > A. PURPOSE",
    ),
    (
        "docs_en/handbook-1p.docx",
        "The Bankruptcy Reform Act of 1978 removed the bankruptcy judge",
        2,
        "B. ROLE OF THE UNITED STATES TRUSTEE",
    ),
    ("docs_en/example-10k-1p.html", "Commission file number: 000-30653", None, None),
    (
        "docs_en/example-10k-1p.html",
        "Item 1A. | Risk Factors | 9",
        None,
        "TABLE OF CONTENTS",
    ),
    ("docs_en/codeblock.md", "<h1>Hello, World!</h1>", None, "HTML Example"),
    ("docs_en/codeblock.md", "<body>Don't forget me this weekend!</body>", None, "XML Example"),
    (
        "docs_ko/SPRI_AI_Brief_2023년12월호_F.pdf",
        "■ 미국 바이든 대통령이 2023년 10월 30일 연방정부 차원에서 안전하고 신뢰할 수 있는 AI "
        "개발과 사용을 보장하기 위한 행정명령을 발표",
        4,
        "미국, 안전하고 신뢰할 수 있는 AI 개발과 사용에 관한 행정명령 발표",
    ),
    (
        "docs_ko/SPRI_AI_Brief_2023년12월호_F.pdf",
        "참가한 28개국 대표들이 AI 위험 관리를 위한 ‘블레츨리 선언’을 발표",
        6,
        "영국 AI 안전성 정상회의에 참가한 28개국, AI 위험에 공동 대응 선언",
    ),
    (
        "docs_ko/SPRI_AI_Brief_2023년12월호_F.pdf",
        "구글 딥마인드 연구진은 2023년",
        19,
        "구글 딥마인드, 범용 AI 모델의 기능과 동작에 대한 분류 체계 발표",
    ),
    (
        "docs_ko/insurance_terms_korean_texts_two_page.pdf",
        "제1조(목적) 이 보험계약(이하 ‘계약’이라 합니다)은 보험계약자(이하 ‘계약자’라 "
        "합니다)와 보험회사(이하 ‘회사’라 합니다) 사이에 피보험자의 상해에 대한 위험을 "
        "보장하기 위하여 체결됩니다.",
        1,
        "【보통약관】",
    ),
    (
        "docs_ko/insurance_terms_korean_texts_two_page.pdf",
        "제4조(보험금 지급에 관한 세부규정)",
        2,
        None,
    ),
    (
        "docs_hwp/digital_gov_innovation_plan_2019.hwp",
        "○ 우리나라는 국가적 초고속 정보통신망 투자와 적극적인 공공정보화 사업 추진에 "
        "힘입어 세계 최고수준의 전자정부를 구축‧운영",
        3,
        "Ⅰ. 개 요",
    ),
    (
        "docs_hwp/digital_gov_innovation_plan_2019.hwp",
        "○ 디지털정부혁신기획단(BH), 디자인‧개발 전문가팀(한국형18F) 신설",
        6,
        "Ⅲ. 추진체계 및 일정",
    ),
    (
        "docs_hwp/hwp5_format_spec_rev1.3.hwp",
        "한글 문서 파일 형식 5.0은 파일의 크기를 최소화하기 위하여 압축 기능을 이용한다.",
        6,
        "I. 한글 5.0 파일 구조 > 개요",
    ),
    (
        "docs_hwp/hwp5_format_spec_rev1.3.hwp",
        "revision 1.0:20100701",  # the last pages, where pyhwp stops
        63,
        "변경 사항 이력",
    ),
    (
        "docs_hwp/gangbuk_festival_rfp_2023.hwpx",
        "가. 행 사 명: 제2회 가을밤의 음악축제",
        3,
        "I. 과업안내 > 1. 행사개요",
    ),
    ("docs_hwp/gangbuk_festival_rfp_2023.hwpx", "【서식 17】", 39, "Ⅵ. 제출목록 및 서식"),
]

# (file, a table row as it must read)
TABLE_ROWS = [
    (
        "docs_en/example-10k-1p.html",
        "Title of each class | Trading symbol | Name of exchange on which registered",
    ),
    ("docs_en/example-10k-1p.html", "Common stock | GLXZ | OTCQB marketplace"),
    (
        "docs_ko/SPRI_AI_Brief_2023년12월호_F.pdf",
        "4단계: 거장(숙련된 인간의 99% 이상) | 딥블루, 알파고 | 미달성",
    ),
    (
        "docs_ko/SPRI_AI_Brief_2023년12월호_F.pdf",
        "2024.1.9~12 | 미국, 라스베가스 | https://www.ces.tech/",
    ),
    ("docs_hwp/digital_gov_innovation_plan_2019.hwp", "1 | 선제적·통합적 대국민 서비스 혁신"),
    ("docs_hwp/hwp5_format_spec_rev1.3.hwp", "자료형 | 길이 | 부호 | 설명"),
    ("docs_hwp/hwp5_format_spec_rev1.3.hwp", "BYTE | 1 |  | 부호 없는 한 바이트(0～255)"),
    ("docs_hwp/gangbuk_festival_rfp_2023.hwpx", "구분 | 시간 | 비 고"),
    (
        "docs_hwp/gangbuk_festival_rfp_2023.hwpx",
        "문화 행사 | 15:00 ~ 17:30 | 소규모 문화행사(공연 제외)",
    ),
]


def test_every_shared_document_is_covered():
    covered = {f for f, *_ in PHRASES}
    assert FILES and set(FILES) == covered, set(FILES) ^ covered


@pytest.mark.parametrize("name", FILES)
def test_document_is_well_formed(name: str):
    doc = load(name)
    assert doc.elements
    for el in doc.elements:
        assert doc.text[el.start : el.end] == el.text, "elements must be slices of the text"
        assert el.text.strip() == el.text and el.text
        assert not re.search(r"[\x00-\x08\x0b-\x1f\ufffd\ue000-\uf8ff]", el.text), el.text
    if name.endswith((".pdf", ".hwp", ".hwpx", ".docx")):
        pages = [el.page for el in doc.elements]
        assert all(isinstance(p, int) and p >= 1 for p in pages)
        assert pages == sorted(pages), "pages run in reading order"
    chunks = ParagraphChunker().chunk(doc, name)
    assert chunks and all(c.text for c in chunks)


@pytest.mark.parametrize(("name", "phrase", "page", "section"), PHRASES)
def test_known_phrase_with_page_and_section(name, phrase, page, section):
    el = find(load(name), phrase)
    if page is not None:
        assert el.page == page
    if section is not None:
        assert el.section and section in el.section, el.section


@pytest.mark.parametrize(("name", "row"), TABLE_ROWS)
def test_tables_read_row_by_row(name: str, row: str):
    el = find(load(name), row, kind="table")
    assert row in el.text.split("\n")


def test_pdf_tables_keep_their_place_and_frames_stay_text():
    spri = load("docs_ko/SPRI_AI_Brief_2023년12월호_F.pdf")
    tables = [el for el in spri.elements if el.kind == "table"]
    # Two ruled tables; the boxes around the contents list and section titles are frames.
    assert [el.page for el in tables] == [19, 22]
    kinds = [(el.kind, el.text) for el in spri.elements]
    at = kinds.index(("table", tables[0].text))
    assert kinds[at - 1] == ("paragraph", "<구글 딥마인드의 범용 AI 분류 프레임워크>")  # caption
    assert tables[1].section == "Ⅱ. 주요 행사 일정"  # the heading drawn above the table
    # Cell text is read once, inside the table, not again as running text.
    assert sum("딥블루, 알파고" in el.text for el in spri.elements) == 1
    contents = find(spri, "미국, 안전하고 신뢰할 수 있는 AI 개발과 사용에 관한 행정명령 발표")
    assert contents.page == 2 and contents.kind != "table"


def test_pdf_page_counts_and_no_running_headers():
    spri = load("docs_ko/SPRI_AI_Brief_2023년12월호_F.pdf")
    assert spri.metadata["pages"] == 23
    assert max(el.page for el in spri.elements) == 23
    # the running header of odd pages and the section tabs of even pages are dropped
    assert not any(el.text.startswith("SPRi AI Brief |") for el in spri.elements)
    assert not any(
        el.text == "1. 정책/법제 2. 기업/산업 3. 기술/연구 4. 인력/교육" for el in spri.elements[4:]
    )
    assert load("docs_en/multi-column-2p.pdf").metadata["pages"] == 2


def test_korean_pdf_text_layer_is_repaired():
    spri = load("docs_ko/SPRI_AI_Brief_2023년12월호_F.pdf")
    # Wingdings bullets come out as the symbols they draw, not as the letters "n" and "£"
    assert find(spri, "■ 영국 블레츨리 파크에서 개최된 AI 안전성 정상회의에")
    assert find(spri, "□ AI 안전성 정상회의 참가국들, 블레츨리 선언 통해")
    assert not any(re.match(r"^[n£] ", el.text) for el in spri.elements)
    # a Hangul word wrapped mid-word joins; a wrap at a word boundary keeps its space
    assert find(spri, "포럼은 이러한 격차를 해소하기 위해 AI 안전 기금을 조성")
    assert find(spri, "모범사례 공유를 추진하는 한편, 첨단 AI 모델의 취약점")
    # Kangxi radicals from the text layer are normalised (⼤ → 大)
    assert find(spri, "매사추세츠 공과大(MIT)")
    insurance = load("docs_ko/insurance_terms_korean_texts_two_page.pdf")
    assert not any("  " in el.text for el in insurance.elements), "no broken double spacing"
    # wrapped lines of one paragraph are one element
    assert find(
        insurance,
        "제2조(용어의 정의) 이 계약에서 사용되는 용어의 정의는, 이 계약의 다른 "
        "조항에서 달리 정의되지 않는 한 다음과 같습니다.",
    )


def test_hwp_reads_distribution_documents_and_skips_control_data():
    spec = load("docs_hwp/hwp5_format_spec_rev1.3.hwp")
    assert spec.metadata["distribution"] is True
    assert len(spec.text) > 50_000
    plan = load("docs_hwp/digital_gov_innovation_plan_2019.hwp")
    assert plan.metadata["distribution"] is False and plan.metadata["pages"] > 15
    # inline control data (tab leaders) must not leak as CJK glyph soup
    for doc in (spec, plan):
        assert not re.search(r"[\u4e00-\u9fff]{1}[\u0200-\u02ff]", doc.text)
    # table-of-contents lines are not headings
    assert find(plan, "Ⅰ. 개요 1").kind == "paragraph"


def test_html_spacer_columns_are_dropped():
    doc = load("docs_en/example-10k-1p.html")
    assert all("|  |" not in el.text for el in doc.elements if el.kind == "table")


def test_unstructured_runs_without_network():
    """A fresh process with sockets disabled: no telemetry ping, no spaCy model download."""
    code = (
        "import socket, sys\n"
        "attempts = []\n"
        "def refuse(*a, **k):\n"
        "    attempts.append(repr(a[:2]))\n"  # recorded: the telemetry ping swallows errors
        "    raise OSError('network used')\n"
        "socket.socket.connect = refuse\n"
        "socket.getaddrinfo = refuse\n"
        "from pathlib import Path\n"
        "from polisum.loaders import default_registry\n"
        "reg = default_registry()\n"
        "for name in sys.argv[1:]:\n"
        "    assert reg.load(Path(name)).elements\n"
        "print('ok' if not attempts else attempts)\n"
    )
    files = [str(DATA / "docs_en/handbook-1p.docx"), str(DATA / "docs_en/example-10k-1p.html")]
    env = {k: v for k, v in os.environ.items() if k not in ("DO_NOT_TRACK", "SCARF_NO_ANALYTICS")}
    out = subprocess.run(
        [sys.executable, "-c", code, *files], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
