"""HTML on lxml: encodings, depth (nothing lost at any nesting), tables with spans, lists,
boilerplate, layout tables and the bounds on what a page may cost."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from polisum.loaders import HtmlLoader, LoadError, tables
from polisum.loaders import html as html_loader
from polisum.types import Document


def load(tmp_path: Path, markup: str | bytes, name: str = "page.html") -> Document:
    path = tmp_path / name
    path.write_bytes(markup.encode("utf-8") if isinstance(markup, str) else markup)
    return HtmlLoader().load(path)


def texts(doc: Document) -> list[tuple[str, str]]:
    return [(el.kind, el.text) for el in doc.elements]


EUC_KR_META = '<meta http-equiv="Content-Type" content="text/html; charset=euc-kr">'
WESTERN = "<h1>Café menu</h1><p>Crème brûlée — “best” in town… naïve, €5</p>"
KOREAN = "<h1>청년 정책</h1><p>서울시는 무주택 청년에게 월 최대 20만 원의 월세를 지원한다.</p>"


@pytest.mark.parametrize(
    ("markup", "encoding", "expected"),
    [
        (WESTERN, "cp1252", "cp1252"),  # undeclared: the web's default for Western pages
        ('<meta charset="windows-1252">' + WESTERN, "cp1252", "windows-1252"),
        (EUC_KR_META + KOREAN, "euc-kr", "cp949"),
        (KOREAN, "cp949", "cp949"),  # undeclared Korean
        (KOREAN, "utf-8-sig", "utf-8-sig"),
    ],
)
def test_encodings(tmp_path: Path, markup: str, encoding: str, expected: str):
    doc = load(tmp_path, markup.encode(encoding))
    assert doc.metadata == {"format": "html", "encoding": expected}
    body = re.sub(r"<[^>]+>", "\n", markup).split("\n")
    assert [el.text for el in doc.elements] == [line for line in body if line]


def test_400_levels_of_unclosed_tags_lose_nothing(tmp_path: Path):
    """Old Korean pages: hundreds of unclosed <div>/<font>. libxml2 without its huge mode
    dropped everything below 254 levels and reported success."""
    words = [f"word{i}" for i in range(400)]
    markup = "<html><body><h1>옛 페이지</h1>"
    markup += "".join(f"<div><font color=red>{w} " for w in words) + "<p>마지막 문단</p>"
    doc = load(tmp_path, markup)
    found = re.findall(r"word\d+", doc.text)
    assert found == words
    assert doc.elements[-1].text == "마지막 문단" and doc.elements[-1].section == "옛 페이지"
    assert "warnings" not in doc.metadata


def test_deeper_than_libxml2_builds_is_read_flat_and_says_so(tmp_path: Path):
    words = [f"word{i}" for i in range(3000)]
    markup = "<h1>Deep</h1><script>var hidden = 1;</script>"
    markup += "".join(f"<div>{w} " for w in words) + "<p>The end.</p>"
    doc = load(tmp_path, markup)
    assert re.findall(r"word\d+", doc.text) == words
    assert doc.elements[-1].text == "The end." and doc.elements[-1].section == "Deep"
    assert "hidden" not in doc.text
    assert "nested deeper than 2048" in doc.metadata["warnings"][0]


def test_rowspan_colspan_and_nested_tables(tmp_path: Path):
    doc = load(
        tmp_path,
        """<h2>Spending</h2><table><caption>Seoul, 2024</caption>
        <thead><tr><th>District</th><th>Item</th><th>KRW</th></tr></thead>
        <tbody><tr><td rowspan="2">Gangnam</td><td>Parks</td><td>12</td></tr>
        <tr><td>Roads</td><td>9</td></tr>
        <tr><td colspan="2">Total</td><td>21
          <table><tr><td>Q1</td><td>10</td></tr><tr><td>Q2</td><td>11</td></tr></table>
        </td></tr>
        <tr><td>Mapo</td><td rowspan="0">unspent</td><td>0</td></tr>
        <tr><td>Jung</td><td>1</td></tr></tbody></table>""",
    )
    assert texts(doc) == [
        ("heading", "Spending"),
        ("paragraph", "Seoul, 2024"),
        (
            "table",
            "District | Item | KRW\n"
            "Gangnam | Parks | 12\n"
            "Gangnam | Roads | 9\n"  # rowspan: the label repeats in the rows it spans
            "Total | 21 Q1; 10 / Q2; 11\n"  # colspan: written once; nested table inline
            "Mapo | unspent | 0\n"
            "Jung | unspent | 1",  # rowspan=0: to the end of the table
        ),
    ]
    assert all(el.section == "Spending" for el in doc.elements[1:])


def test_headings_lists_breaks_and_preformatted_text(tmp_path: Path):
    doc = load(
        tmp_path,
        """<h1>Guide</h1><p>Intro with<br>a line break.</p><h2>Steps</h2>
        <ol><li>Open the <b>form</b></li><li>Fill it<ul><li>name</li><li>date</li></ul></li></ol>
        <h3>Example</h3><pre>code  kept
  indented</pre><h2>After</h2><p>Done.</p>""",
    )
    assert [(el.kind, el.text, el.section) for el in doc.elements] == [
        ("heading", "Guide", "Guide"),
        ("paragraph", "Intro with\na line break.", "Guide"),
        ("heading", "Steps", "Guide > Steps"),
        ("list", "Open the form\nFill it\nname\ndate", "Guide > Steps"),
        ("heading", "Example", "Guide > Steps > Example"),
        ("code", "code  kept\n  indented", "Guide > Steps > Example"),
        ("heading", "After", "Guide > After"),
        ("paragraph", "Done.", "Guide > After"),
    ]


def test_boilerplate_is_dropped_where_safe(tmp_path: Path):
    doc = load(
        tmp_path,
        """<?xml version="1.0" encoding="utf-8"?><html><head><title>Tab title</title>
        <style>p { color: red }</style></head><body>
        <nav><a>Home</a> <a>About</a></nav><header><p>Site banner</p></header>
        <div style="display:none"><ix:header>hidden XBRL facts</ix:header></div>
        <main><article><header><h1>Article title</h1></header><p>Body text.</p>
        <script>document.write("script text")</script><noscript>Enable JS</noscript>
        <p hidden>Hidden paragraph</p><div role="navigation">Breadcrumbs</div></article></main>
        <footer>Copyright 2024</footer></body></html>""",
    )
    assert texts(doc) == [("heading", "Article title"), ("paragraph", "Body text.")]
    nav_only = load(tmp_path, "<nav><p>Only a menu here</p></nav>", "nav.html")
    assert texts(nav_only) == [("paragraph", "Only a menu here")]  # kept when it is all


def test_layout_tables_are_read_as_paragraphs(tmp_path: Path):
    long_text = "This paragraph of the page body is long enough to be prose, not a cell. " * 20
    doc = load(
        tmp_path,
        f"""<table width="800"><tr><td><img src="logo.gif"></td></tr>
        <tr><td><table><tr><td>Menu A</td><td>Menu B</td></tr></table></td>
        <td><h2>News</h2><p>{long_text}</p><p>Second paragraph.</p></td></tr></table>""",
    )
    assert texts(doc) == [
        ("table", "Menu A | Menu B"),
        ("heading", "News"),
        ("paragraph", long_text.strip()),
        ("paragraph", "Second paragraph."),
    ]


def test_bounds_give_a_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    markup = "<ul>" + "<li>item</li>" * 5000 + "</ul>"
    assert load(tmp_path, markup).elements[0].text.count("item") == 5000
    monkeypatch.setattr(html_loader, "MAX_HTML_ELEMENTS", 1000)
    with pytest.raises(LoadError, match=r"HTML has more than 1,000 elements"):
        load(tmp_path, markup)
    monkeypatch.setattr(html_loader, "MAX_HTML_BYTES", 1000)
    with pytest.raises(LoadError, match=r"HTML too large to parse"):
        load(tmp_path, markup)


def test_hostile_spans_stay_bounded(tmp_path: Path):
    """Each row's cell spans every row below: the grid would grow quadratically."""
    n = 3000
    rows = "".join(f"<tr><td colspan=999999 rowspan=999999>{i}</td></tr>" for i in range(n))
    start = time.perf_counter()
    doc = load(tmp_path, f"<table><tr><td>a</td><td>b</td></tr>{rows}</table>")
    assert time.perf_counter() - start < 10
    lines = doc.elements[0].text.split("\n")
    assert lines[0] == "a | b"
    assert lines[2] == "0 | 1"  # spans are honoured while the grid stays small ...
    assert lines[-1] == str(n - 1)  # ... and ignored past 8 positions per cell
    assert sum(line.count("|") + 1 for line in lines) < tables.GRID_CELLS_PER_CELL * (n + 2) + 64
