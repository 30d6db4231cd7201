"""Repairs for the text layers of Korean PDFs (mostly made from HWP by Hancom's PDF writer).

What goes wrong, and what is done here:

* **Line wraps.** Hangul is wrapped at any syllable, not only at spaces: "해소\\n하기" is one
  word, "보장을 \\n위한" two. A line that ends in a space was broken at a space; one that does
  not is ambiguous ("추진하는\\n한편" is two words), so Kiwi's spacing model decides for the two
  words around the break only (run on whole paragraphs it also splits compound nouns).
  Latin text joins with a space; a soft hyphen (PDFium marks it ``\\x02``/U+FFFE) without.
* **Compatibility ideographs.** Hanja sometimes come out as Kangxi radicals ("공과⼤" for 大);
  those blocks are NFKC-normalised (not the whole text: that would also turn ① into 1).
* **Broken spacing.** Justified lines come out with runs of spaces or tabs between words
  ("보험계약(이하  ‘계약’이라  합니다)"): runs collapse to one space.
* **Letter-spaced words.** Titles and table headers are spaced out glyph by glyph
  ("구   분", "제 안 요 청 서", or glyphs separated by tabs); a short line made only of single
  syllables, or syllables separated by tabs or 2+ spaces, is joined ("구분", "제안요청서").
* **Symbol-font bullets.** Bullets drawn with Wingdings come out as the Latin letter of their
  code ("n 영국 ..." for ■); the PDF loader passes which characters came from such fonts and
  they are mapped to the symbol they show.
"""

from __future__ import annotations

import re
import unicodedata

from polisum.text import kiwi_space

# Wingdings code → the symbol it draws (the bullets Korean reports use); others → "•".
WINGDINGS = {
    "n": "■",
    "o": "□",
    "q": "❑",
    "p": "◻",
    "l": "●",
    "¡": "○",
    "§": "▪",
    "Ÿ": "•",
    "ü": "✓",
    "Ø": "➢",
    "ð": "➔",
    "à": "➔",
    "è": "➔",
    "£": "□",
    "m": "❍",
    "u": "◆",
    "v": "❖",
    "w": "⬥",
    "r": "❒",
}


def symbol_char(ch: str) -> str:
    return WINGDINGS.get(ch, "•")


def is_hangul(ch: str) -> bool:
    return "\uac00" <= ch <= "\ud7a3" or "\u3131" <= ch <= "\u318e"


_RUNS = re.compile(r"[ \t\u00a0\u3000]{2,}|\t")
# Syllables separated by a tab or 2+ spaces ("구   분", "디\t지\t털").
_SYL = "[\uac00-\ud7a3]"
_WIDE_SPACED = re.compile(rf"(?<!{_SYL}){_SYL}(?:(?:\t|[ \u00a0\u3000]{{2,}}){_SYL})+(?!{_SYL})")
_SINGLE_SPACED_LINE = re.compile(r"^[\uac00-\ud7a3](?: [\uac00-\ud7a3]){2,}$")
MAX_SPACED_LINE = 30


def join_spaced_syllables(line: str) -> str:
    """Undo letter-spacing: "구   분" → "구분"; a short all-single-syllable line too."""
    line = _WIDE_SPACED.sub(lambda m: re.sub(r"\s+", "", m.group(0)), line)
    stripped = line.strip()
    if len(stripped) <= MAX_SPACED_LINE and _SINGLE_SPACED_LINE.match(stripped):
        return stripped.replace(" ", "")
    return line


SOFT_HYPHENS = "\x02\ufffe\u00ad"
# Hancom writes its product name 한글 with the archaic vowel arae-a, as old-Hangul jamo
# ("ᄒᆞᆫ글") or as a private-use glyph (U+F53A): both are read as 한 so "한글" finds them.
_HAN_VARIANTS = re.compile("\uf53a|\u1112\u119e\u11ab")


def normalize_variants(text: str) -> str:
    return _HAN_VARIANTS.sub("한", text)


_RADICALS = re.compile(r"[\u2e80-\u2fdf]")


def _visible(ch: str) -> str:
    """Symbol-font characters stored in the private use area as U+F020–U+F0FF (Word and HWP
    do this for Wingdings/Symbol) become the symbol; other private-use glyphs, control codes
    and U+FFFD carry no readable text and are dropped."""
    code = ord(ch)
    if code < 32:
        return ch if ch == "\t" else ""
    if 0xF020 <= code <= 0xF0FF:
        return symbol_char(chr(code - 0xF000))
    if 0xE000 <= code <= 0xF8FF or ch in "\ufffd\ufffe":
        return ""
    return ch


def repair_line(line: str) -> str:
    """One line of PDF/HWP text → readable: control characters and unmapped glyphs out,
    symbol-font bullets mapped, radicals normalised, letter-spacing undone, runs of
    spaces/tabs collapsed."""
    line = normalize_variants(line)  # before the private-use glyphs are dropped
    line = "".join(_visible(ch) for ch in line)
    line = _RADICALS.sub(lambda m: unicodedata.normalize("NFKC", m.group(0)), line)
    line = join_spaced_syllables(line)
    return _RUNS.sub(" ", line)


def join_lines(lines: list[str]) -> str:
    """Lines of one paragraph → one string, joining Korean wraps without a space (see above).

    Lines are raw (before :func:`repair_line`): a trailing space or ``\\x02`` still tells how
    the line ended.
    """
    out = ""
    prev = ""
    for raw in lines:
        line = repair_line(raw.rstrip(SOFT_HYPHENS)).strip()
        if not line:
            continue
        if out:
            if prev.rstrip().endswith(tuple(SOFT_HYPHENS)):
                sep = ""  # soft hyphen at the wrap: one word
            elif out.endswith("-") and out[-2:-1].isalpha() and line[0].islower():
                sep = ""  # "dual-" + "encoder": a hyphenated word wrapped at its hyphen
            elif is_hangul(out[-1]) and is_hangul(line[0]) and not prev[-1:].isspace():
                sep = " " if _space_between(out, line) else ""
            else:
                sep = " "
            out += sep + line
        else:
            out = line
        prev = raw
    return out


# Characters of each word Kiwi sees around a wrap. Korean words (eojeol) are rarely over 20
# characters; a "word" of a whole paragraph without spaces, growing by one line per wrap, would
# otherwise be re-analysed at every wrap (quadratic: Kiwi spaces ~20,000 characters a second).
MAX_SPACING_CONTEXT = 40


def _space_between(before: str, after: str) -> bool:
    """Is the wrap between these two Hangul words a word boundary? Kiwi's spacing model looks
    at the last word before and the first word after the break."""
    left = before[-MAX_SPACING_CONTEXT:].rsplit(" ", 1)[-1]
    right = after[:MAX_SPACING_CONTEXT].split(" ", 1)[0]
    spaced = kiwi_space(left + right)
    # Kiwi may also split inside either word: look only at the point where they meet.
    seen = 0
    for ch in spaced:
        if seen == len(left):
            return ch == " "
        if ch != " ":
            seen += 1
    return False
