"""The Milvus collections of an index: schemas, the generation state every query reads first,
and filter expressions.

Three collections per index (``name`` is ``milvus_collection``):

- ``name``: one row per chunk *version*: the chunk's row id, document id, source, page,
  section, text, summary, paragraph vector, summary vector, two BM25 sparse vectors (the
  chunk's terms, and its context window's: :data:`LEXICAL`, polisum.index.bm25_sparse), and the
  generations it is visible in: ``gen_from`` (the publish
  that wrote it) to ``gen_to`` (the publish that replaced or removed it, exclusive). The
  primary key is ``gen_from << 40 | row id``: a chunk whose summary changed has two versions
  while queries still read the old generation.
- ``name_terms``: the BM25 vocabulary and its document frequencies (among chunks, and among
  context windows), versioned the same way.
- ``name_meta``: ``info`` (embedder, index identity), ``current`` (the generation queries read
  and its statistics) and ``prepared`` (a published generation waiting for the store's commit).

A query reads ``current`` once and then filters every search by that generation, so it sees one
complete generation however far an ingest has got with the next one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from polisum.errors import EmbedderMismatchError
from polisum.index.backend import WINDOW
from polisum.index.bm25 import DELTA, K1, METHOD, B
from polisum.index.milvus_conn import MilvusError

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from polisum.index.backend import SearchFilter
    from polisum.index.milvus_publish import Names

# The layout of the collections. 2: context-window BM25 (a collection of format 1 is rebuilt
# from the store by the ingest worker's next ingest or ``polisum index sync``).
FORMAT = 2
# gen_to of a row no publish has replaced (2**53: Milvus Lite compares integers as doubles)
FOREVER = 2**53
ROW_BITS = 40  # primary key = generation << ROW_BITS | row id
DUMMY_DIM = 2  # Milvus needs a vector field in every collection; the helpers have a dummy one
TEXT_BYTES = 65535  # Milvus's VARCHAR limit
# Every request sees every write acknowledged before it, another process's included: a replica
# reading the new ``current`` record finds all the rows of that generation.
STRONG = "Strong"


@dataclass(frozen=True)
class Lexical:
    """One BM25 signal as the collections hold it: the names of its fields and statistics.

    Both signals share one vocabulary (term ids, ``name_terms`` rows): every term of a context
    window is a term of a chunk of the same document, and every chunk's terms are in its own
    window. Each has its own document frequencies and avgdl (a window corpus has one window per
    chunk, so the same number of documents)."""

    signal: str  # its name in Candidates.signals
    record: str  # the key of its terms in a chunk record the publisher reads from the store
    vector: str  # sparse vector field of a chunk row
    dl: str  # document length field (terms)
    avgdl: str  # the avgdl the sparse weights were made with
    exact: str  # term frequencies recoverable from the weights
    df: str  # document frequency field of a vocabulary row
    total: str  # the State attribute summing the document lengths


BM25 = Lexical("bm25", "terms", "sparse", "dl", "bm25_avgdl", "exact_tf", "df", "terms")
WINDOW_BM25 = Lexical(
    WINDOW, "window", "window", "window_dl", "window_avgdl", "window_exact_tf", "window_df",
    "window_terms",
)  # fmt: skip
LEXICAL = (BM25, WINDOW_BM25)


# -- schemas ------------------------------------------------------------------------------------
def chunk_schema(dim: int):
    from pymilvus import DataType, MilvusClient

    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("pk", DataType.INT64, is_primary=True)
    s.add_field("id", DataType.INT64)  # the chunk's row id in the store
    s.add_field("chunk_id", DataType.VARCHAR, max_length=512)
    s.add_field("document_id", DataType.INT64)
    s.add_field("source", DataType.VARCHAR, max_length=TEXT_BYTES)
    s.add_field("ext", DataType.VARCHAR, max_length=256)  # lower-cased suffix, for file types
    s.add_field("section", DataType.VARCHAR, max_length=TEXT_BYTES, nullable=True)
    s.add_field("page", DataType.INT64, nullable=True)
    s.add_field("text", DataType.VARCHAR, max_length=TEXT_BYTES)
    s.add_field("summary", DataType.VARCHAR, max_length=TEXT_BYTES, nullable=True)
    s.add_field("start_char", DataType.INT64)
    s.add_field("end_char", DataType.INT64)
    s.add_field("has_summary", DataType.BOOL)
    for lex in LEXICAL:
        s.add_field(lex.dl, DataType.INT64)  # BM25 document length (terms)
        s.add_field(lex.avgdl, DataType.DOUBLE)  # the avgdl the sparse weights were made with
        s.add_field(lex.exact, DataType.BOOL)  # term frequencies recoverable from the weights
    s.add_field("gen_from", DataType.INT64)
    s.add_field("gen_to", DataType.INT64)
    s.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
    s.add_field("summary_vector", DataType.FLOAT_VECTOR, dim=dim)  # zeros: no summary
    for lex in LEXICAL:
        s.add_field(lex.vector, DataType.SPARSE_FLOAT_VECTOR)
    return s


def terms_schema():
    from pymilvus import DataType, MilvusClient

    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("pk", DataType.INT64, is_primary=True)
    # Looked up by a 64-bit hash of the term (no string to quote into a filter), then compared
    s.add_field("term_key", DataType.INT64)
    s.add_field("term", DataType.VARCHAR, max_length=TEXT_BYTES)
    s.add_field("term_id", DataType.INT64)
    for lex in LEXICAL:
        s.add_field(lex.df, DataType.INT64)
    s.add_field("gen_from", DataType.INT64)
    s.add_field("gen_to", DataType.INT64)
    s.add_field("dummy", DataType.FLOAT_VECTOR, dim=DUMMY_DIM)
    return s


def meta_schema():
    from pymilvus import DataType, MilvusClient

    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("key", DataType.VARCHAR, is_primary=True, max_length=64)
    s.add_field("value", DataType.VARCHAR, max_length=TEXT_BYTES)
    s.add_field("dummy", DataType.FLOAT_VECTOR, dim=DUMMY_DIM)
    return s


# Every filter has the visibility fields in it: indexed, so that a filter is answered from
# indexes (Milvus Lite evaluates a filter row by row unless every field in it is indexed).
VISIBILITY_FIELDS = ("gen_from", "gen_to")


def vector_index_params(client: MilvusClient, vector_index: str):
    """Exact search for ``flat``; HNSW (as the local backend's) otherwise: a Milvus collection
    grows without a rebuild, so ``auto`` means HNSW from the start (Milvus searches a segment
    still being filled exactly anyway)."""
    from polisum.index.vectors import HNSW_EF_CONSTRUCTION, HNSW_M

    p = client.prepare_index_params()
    for name in ("dense", "summary_vector"):
        if vector_index == "flat":
            p.add_index(name, index_type="FLAT", metric_type="IP")
        else:
            p.add_index(
                name,
                index_type="HNSW",
                metric_type="IP",
                params={"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION},
            )
    for lex in LEXICAL:
        p.add_index(lex.vector, index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
    for name in (*VISIBILITY_FIELDS, "id", "has_summary", "source", "ext"):
        p.add_index(name, index_type="INVERTED")
    return p


def helper_index_params(client: MilvusClient, *scalar: str):
    p = client.prepare_index_params()
    p.add_index("dummy", index_type="FLAT", metric_type="L2")
    for name in scalar:
        p.add_index(name, index_type="INVERTED")
    return p


def collections(names: Names, dim: int, client: MilvusClient, vector_index: str):
    """(name, schema, index parameters) of the three collections of an index."""
    return (
        (names.chunks, chunk_schema(dim), vector_index_params(client, vector_index)),
        (
            names.terms,
            terms_schema(),
            helper_index_params(client, "term_key", "term_id", *VISIBILITY_FIELDS),
        ),
        (names.meta, meta_schema(), helper_index_params(client)),
    )


# -- the info record ---------------------------------------------------------------------------
# What the sparse weights of a collection were made with (recorded in its ``info``).
BM25_PARAMS = {"method": METHOD, "k1": K1, "b": B, "delta": DELTA}


def outdated(info: Mapping[str, Any]) -> bool:
    """The collection was written by an earlier polisum in an older layout: the ingest worker
    rebuilds it from the store (its next ingest, or ``polisum index sync``)."""
    fmt = info.get("format")
    return type(fmt) is int and 0 < fmt < FORMAT


def lexical_of(info: Mapping[str, Any]) -> tuple[Lexical, ...]:
    """The BM25 signals a collection holds: one of format 1 has the chunks' only (no context
    windows), and answers with those until the ingest worker rebuilds it."""
    return (BM25,) if outdated(info) else LEXICAL


def check_info(info: Mapping[str, Any], meta: Mapping[str, str] | None, where: str) -> None:
    """The collection (``info``) must hold the index whose store records ``meta``, built with
    its embedder (``where``: the collection, named for an error message). A query-only replica
    (``meta`` None) must score BM25 as the collection was weighted."""
    if info.get("format") != FORMAT and not outdated(info):
        raise MilvusError(
            f"collection {where} was not written by this polisum (format "
            f"{info.get('format')}, this one writes {FORMAT}); choose another "
            "milvus_collection or rebuild it with `polisum ingest FOLDER --rebuild`"
        )
    if meta is None:
        if info.get("bm25") != BM25_PARAMS:
            raise MilvusError(
                f"collection {where} was weighted for BM25 {info.get('bm25')}, this polisum "
                f"scores with {BM25_PARAMS}: run `polisum index sync` with this version on the "
                "ingest worker"
            )
        return
    wanted = (meta.get("embedder"), meta.get("embedder_dim"))
    built = (info.get("embedder"), str(info.get("embedder_dim")))
    if wanted[0] and wanted != built:
        raise EmbedderMismatchError(
            f"collection {where} was built with embedder '{built[0]}' ({built[1]}-d), this "
            f"index uses '{wanted[0]}' ({wanted[1]}-d): use another milvus_collection, or "
            "rebuild it with `polisum ingest FOLDER --rebuild`"
        )
    if meta.get("index_id") and info.get("index_id") != meta.get("index_id"):
        raise MilvusError(
            f"collection {where} holds another index (published from another store); set "
            "milvus_collection to a name of its own, or replace it with "
            "`polisum ingest FOLDER --rebuild`"
        )


# -- state ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class State:
    """A generation of the collection: which rows are visible, and the BM25 statistics its
    queries weight terms with."""

    generation: int  # the collection's own publish counter (rows' gen_from / gen_to)
    floor: int  # rows written before this generation are not part of it (a full rebuild)
    store_generation: int  # the store generation it was published from
    chunks: int
    terms: int  # sum of the chunks' BM25 lengths
    summaries: int  # chunks with a summary vector
    next_term: int  # the next free term id
    id_sum: int  # sum of the chunks' row ids: with ``chunks``, a cheap check against the store
    incarnation: str = ""  # which creation of the collection (generations restart at a rebuild)
    window_terms: int = 0  # sum of the chunks' context-window lengths

    def avgdl(self, lex: Lexical) -> float:
        """The average document length of ``lex``'s corpus in this generation."""
        return getattr(self, lex.total) / self.chunks if self.chunks else 0.0

    @property
    def visible(self) -> str:
        """The filter expression of this generation's rows."""
        g = self.generation
        return f"gen_from >= {self.floor} and gen_from <= {g} and gen_to > {g}"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> State:
        return cls(**json.loads(text))


# -- filter expressions -----------------------------------------------------------------------
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def quote(text: str) -> str:
    """A Milvus string literal. Milvus and Milvus Lite read the C escapes \\\\ \\" \\n \\r \\t;
    other control characters have no escape both understand, so they are refused."""
    if any(ord(c) < 32 and c not in _ESCAPES for c in text) or "\x7f" in text:
        raise MilvusError(f"{text!r}: control characters cannot be used in a Milvus filter")
    return '"' + "".join(_ESCAPES.get(c, c) for c in text) + '"'


def extension(source: str) -> str:
    """The lower-cased last suffix of a source's file name (``.pdf``), "" when none."""
    name = source.rsplit("/", 1)[-1].lower()
    return name[name.rindex(".") :] if "." in name[1:] else ""


def where_expression(where: SearchFilter) -> tuple[str, bool]:
    """(a filter expression, whether candidates must still be checked with ``where.matches``).

    A source prefix is a range of strings (``prefix <= source < prefix with its last character
    incremented``): exact, where Milvus's LIKE cannot escape ``_`` and ``%``. File types are
    the ``ext`` field; a type of more than one suffix (``.tar.gz``) selects by its last one and
    the candidates are checked exactly afterwards."""
    parts: list[str] = []
    recheck = False
    if where.source_prefix:
        parts.append(f"source >= {quote(where.source_prefix)}")
        upper = _successor(where.source_prefix)
        if upper is not None:
            parts.append(f"source < {quote(upper)}")
    if where.file_types:
        # SearchFilter made every type ".suffix", lower-cased
        exts = {t[t.rindex(".") :] for t in where.file_types}
        recheck = any(t.count(".") > 1 for t in where.file_types)
        parts.append("ext in [" + ", ".join(quote(e) for e in sorted(exts)) + "]")
    return " and ".join(parts), recheck


def _successor(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix``."""
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < 0x10FFFF:
            nxt = last + 1
            if 0xD800 <= nxt <= 0xDFFF:  # surrogates are not characters
                nxt = 0xE000
            return "".join(chars) + chr(nxt)
    return None


def term_key(term: str) -> int:
    """A term's 64-bit key in the vocabulary collection."""
    digest = hashlib.blake2b(term.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def int_list(values) -> str:
    return "[" + ",".join(str(int(v)) for v in values) + "]"


def meta_value(value: Any) -> dict[str, Any]:
    return {"value": json.dumps(value), "dummy": [0.0] * DUMMY_DIM}
