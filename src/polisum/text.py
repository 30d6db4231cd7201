"""Korean-aware text processing shared by the chunker, summarizer and BM25: sentences and terms.

``terms`` (content morphemes) serve summaries and chat; ``index_terms`` (the same, normalised for
matching) are what BM25 indexes and queries with.

Kiwi (kiwipiepy) does both Korean morphology and sentence splitting and copes with mixed
Korean/English text, so one analyser serves every language the package targets.
"""

from __future__ import annotations

import re
import sys
import threading
from dataclasses import dataclass
from functools import lru_cache

import Stemmer
from kiwipiepy import Kiwi, Token

# Morpheme tags that carry meaning for lexical matching. Particles (J*), endings (E*),
# most affixes and punctuation are dropped: Korean attaches them to every noun and verb, so
# keeping them makes BM25 match on grammar instead of content. Prefix matching keeps Kiwi's
# irregular-verb tags (VV-I, VA-I). Measured on KorQuAD: +0.005 R@1 over all morphemes.
_CONTENT_TAG_PREFIXES = (
    "NN", "NR", "NP", "VV", "VA", "XR", "XSN", "SL", "SH", "SN", "MAG", "W_",
)  # fmt: skip


@lru_cache(maxsize=1)
def english_stopwords() -> frozenset[str]:
    """bm25s's English stopwords. Imported on first use: importing the bm25s package costs
    ~90 ms of every CLI start, and most commands never tokenize English."""
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


_HANGUL = re.compile(r"[\uac00-\ud7a3]")
# Kiwi objects are not documented as thread-safe: every call goes through the functions below,
# which hold this lock. No other module touches Kiwi directly.
_lock = threading.Lock()


@lru_cache(maxsize=1)
def _kiwi() -> Kiwi:
    """One Kiwi per process: loading its model takes about a second."""
    return Kiwi()


def warm_kiwi() -> None:
    """Load Kiwi's model now (about a second), without analysing anything."""
    _kiwi()


def kiwi_tokens(text: str) -> list[Token]:
    """Kiwi's morphemes of ``text`` (form, tag, offsets)."""
    with _lock:
        return list(_kiwi().tokenize(text))


def kiwi_tokens_many(texts: list[str]) -> list[list[Token]]:
    """``kiwi_tokens`` of many texts, analysed on Kiwi's worker threads (one per core)."""
    if not texts:
        return []
    with _lock:
        return [list(tokens) for tokens in _kiwi().tokenize(texts)]


def kiwi_space(text: str) -> str:
    """Kiwi's word spacing of ``text``, keeping the spaces already there."""
    with _lock:
        return _kiwi().space(text, reset_whitespace=False)


def has_hangul(text: str) -> bool:
    return _HANGUL.search(text) is not None


def detect_language(text: str) -> str:
    """'ko' when Hangul makes up a fair share of the letters, else 'en' (the other target)."""
    letters = sum(c.isalpha() for c in text)
    if not letters:
        return "en"
    hangul = len(_HANGUL.findall(text))
    return "ko" if hangul / letters > 0.2 else "en"


@dataclass(frozen=True)
class Sentence:
    text: str
    start: int
    end: int


# Kiwi's sentence splitter is super-linear in the length of one input (measured: a 160,000-
# character paragraph 1.9 s, 640,000 characters 35 s; one 160,000-character word 18 s), and
# loaders can produce one paragraph of megabytes (a text file without blank lines, a forged
# record). Longer texts go to Kiwi in windows of at most this many characters, where it runs at
# a steady 3-10 µs a character; KorQuAD's longest paragraph has 2,946.
SENTENCE_WINDOW = 10_000


def split_sentences(text: str) -> list[Sentence]:
    """Sentences with offsets into ``text``.

    Kiwi handles Korean sentence endings and English abbreviations alike."""
    if not text.strip():
        return []
    if len(text) > SENTENCE_WINDOW:
        return _split_windowed(text)
    with _lock:
        sents = _kiwi().split_into_sents(text)
    return _sentences(sents)


def split_sentences_many(texts: list[str]) -> list[list[Sentence]]:
    """``split_sentences`` of many texts, batched on Kiwi's worker threads."""
    todo = [i for i, t in enumerate(texts) if t.strip() and len(t) <= SENTENCE_WINDOW]
    out: list[list[Sentence]] = [
        _split_windowed(t) if len(t) > SENTENCE_WINDOW and t.strip() else [] for t in texts
    ]
    if not todo:
        return out
    with _lock:
        results = list(_kiwi().split_into_sents([texts[i] for i in todo]))
    for i, sents in zip(todo, results, strict=True):
        out[i] = _sentences(sents)
    return out


def _split_windowed(text: str) -> list[Sentence]:
    """Sentences of a text longer than SENTENCE_WINDOW, found one window at a time. A window
    ends at a line break or space in its second half; its last sentence may be cut there, so it
    is read again at the start of the next window, unless it began in the first half (a
    sentence longer than half a window: then the cut stands). Every window thus advances at
    least half a window, and Kiwi reads each character at most about twice."""
    out: list[Sentence] = []
    pos, n, half = 0, len(text), SENTENCE_WINDOW // 2
    while pos < n:
        end = min(n, pos + SENTENCE_WINDOW)
        if end < n:
            cut = max(text.rfind("\n", pos + half, end), text.rfind(" ", pos + half, end))
            end = cut if cut > pos else end
        with _lock:
            sents = _sentences(_kiwi().split_into_sents(text[pos:end]))
        if end < n and len(sents) > 1 and sents[-1].start >= half:
            nxt = pos + sents[-1].start
            sents = sents[:-1]
        else:
            nxt = end
        out.extend(Sentence(s.text, pos + s.start, pos + s.end) for s in sents)
        pos = nxt
    return out


def _sentences(kiwi_sentences) -> list[Sentence]:
    return [Sentence(s.text, s.start, s.end) for s in kiwi_sentences if s.text.strip()]


def terms(text: str) -> list[str]:
    """Lexical terms for BM25 and lexical centrality: content morphemes, lower-cased."""
    return _content_terms(kiwi_tokens(text))


def terms_many(texts: list[str]) -> list[list[str]]:
    """``terms`` of many texts at once: Kiwi analyses a list on all its worker threads (one
    per core), about twice as fast as one text at a time on two cores."""
    return [_content_terms(tokens) for tokens in kiwi_tokens_many(texts)]


def _content_terms(tokens) -> list[str]:
    out: list[str] = []
    for tok in tokens:
        if not tok.tag.startswith(_CONTENT_TAG_PREFIXES):
            continue
        form = tok.form.lower()
        if tok.tag == "SL" and form in english_stopwords():
            continue
        out.append(sys.intern(form))  # one object per distinct term: 100k chunks' lists share
    return out


# -- BM25 index terms ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TermOptions:
    """How content morphemes become BM25 terms (benchmarks/bm25_terms.py measures each).

    ``numbers``: digit groups lose their thousands separators ("5,500" and "5500" match).
    ``compounds``: a noun compound is indexed as a whole and as its parts, however Kiwi
    happened to cut it ("정보통신산업진흥원" comes out as four nouns, "개인정보보호위원회"
    as one), so spaced and unspaced spellings of the same compound still meet.
    ``stem``: Latin-script words are Snowball-stemmed ("interventions" ~ "intervention").
    """

    numbers: bool = True
    compounds: bool = True
    stem: bool = True


DEFAULT_TERMS = TermOptions()
_NOUNS = ("NNG", "NNP")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_HANGUL_WORD = re.compile(r"^[\uac00-\ud7a3]+$")
# A one-morpheme noun this long (in syllables) may be a compound Kiwi kept whole.
_MIN_COMPOUND = 4


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    """The Snowball English stemmer (PyStemmer, the one bm25s itself uses)."""
    return Stemmer.Stemmer("english")


def index_terms(text: str, options: TermOptions = DEFAULT_TERMS) -> list[str]:
    """BM25 terms of ``text``: ``terms`` plus the normalisations of ``options``. The ingest
    indexes chunks and the retriever queries with these: both sides must match."""
    return index_terms_many([text], options)[0]


def index_terms_many(texts: list[str], options: TermOptions = DEFAULT_TERMS) -> list[list[str]]:
    """``index_terms`` of many texts, analysed on Kiwi's worker threads."""
    return [_index_terms(tokens, options) for tokens in kiwi_tokens_many(texts)]


def _index_terms(tokens: list[Token], options: TermOptions) -> list[str]:
    out: list[str] = []
    run: list[str] = []  # the noun run being read: nouns with no space between them
    run_end = -1
    for tok in tokens:
        if options.compounds and tok.tag in _NOUNS:
            if run and tok.start != run_end:
                _flush(run, out)
            run.append(tok.form)
            run_end = tok.start + tok.len
            continue
        if run:
            _flush(run, out)
        if not tok.tag.startswith(_CONTENT_TAG_PREFIXES):
            continue
        form = tok.form.lower()
        if tok.tag == "SL":
            if form in english_stopwords():
                continue
            if options.stem:
                form = _stemmer().stemWord(form)
        elif tok.tag == "SN" and options.numbers:
            form = _THOUSANDS.sub("", form)
        out.append(sys.intern(form))
    if run:
        _flush(run, out)
    return out


def _flush(run: list[str], out: list[str]) -> None:
    """Emit a noun run: each noun (a long one-morpheme compound also as its parts) and, when
    there are several, the whole compound."""
    for form in run:
        out.append(sys.intern(form))
        if len(run) == 1 and len(form) >= _MIN_COMPOUND and _HANGUL_WORD.match(form):
            out.extend(_noun_parts(form))
    if len(run) > 1:
        out.append(sys.intern("".join(run)))
    run.clear()


@lru_cache(maxsize=65536)
def _noun_parts(form: str) -> tuple[str, ...]:
    """The parts of a compound Kiwi tagged as one noun: its best analysis that cuts the word
    into nouns only, if any (cached: compounds recur)."""
    with _lock:
        analyses = _kiwi().analyze(form, top_n=3)
    for tokens, _score in analyses:
        forms = [t.form for t in tokens]
        if len(forms) > 1 and all(t.tag in _NOUNS for t in tokens) and "".join(forms) == form:
            return tuple(sys.intern(f) for f in forms)
    return ()
