"""Retrieval evaluation on question files: SQuAD/KorQuAD (every paragraph becomes a document,
its questions' gold) or JSONL (``{"query", "gold": [source path or chunk id, ...]}``) against an
index, scored with R@1/5/10, MRR@10 and nDCG@10 (`polisum eval retrieval`)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from polisum.errors import PolisumError
from polisum.eval.retrieval import retrieval_metrics
from polisum.ingest import source_name
from polisum.jsonl import JsonlError, read_jsonl
from polisum.progress import OnProgress, Stage

if TYPE_CHECKING:
    from polisum.api import Index

QAFormat = Literal["korquad", "squad", "jsonl"]
# Hits fetched per query: document-level gold needs 10 distinct documents after merging the
# chunks of one document.
SEARCH_DEPTH = 40


class QAFileError(PolisumError, ValueError):
    pass


@dataclass(frozen=True)
class QAItem:
    query: str
    gold: tuple[str, ...]  # chunk ids, or document paths (relative to the corpus folder)


def load_squad(path: Path) -> tuple[dict[str, str], list[QAItem]]:
    """Paragraphs (file name → text) and questions of a SQuAD/KorQuAD-format JSON file.
    SQuAD 2.0 questions marked impossible have no gold paragraph and are skipped."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        articles = data["data"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise QAFileError(f"{path}: not a SQuAD/KorQuAD JSON file ({exc})") from exc
    paragraphs: dict[str, str] = {}
    items: list[QAItem] = []
    for ai, article in enumerate(articles):
        for pi, para in enumerate(article.get("paragraphs", [])):
            name = f"a{ai:04d}p{pi:03d}.txt"
            paragraphs[name] = para["context"]
            items.extend(
                QAItem(qa["question"], (name,))
                for qa in para.get("qas", [])
                if not qa.get("is_impossible")
            )
    if not items:
        raise QAFileError(f"{path}: no answerable questions found")
    return paragraphs, items


def load_jsonl(path: Path) -> list[QAItem]:
    """``{"query": ..., "gold": [source path or chunk id, ...]}`` per line."""
    items: list[QAItem] = []
    try:
        rows = read_jsonl(path)
    except JsonlError as exc:
        raise QAFileError(str(exc)) from None
    for n, row in rows:
        query, gold = row.get("query"), row.get("gold")
        if isinstance(gold, str):
            gold = [gold]
        if not isinstance(query, str) or not query.strip() or not gold:
            raise QAFileError(f'{path}:{n}: expected {{"query": "...", "gold": [...]}}')
        items.append(QAItem(query, tuple(str(g) for g in gold)))
    if not items:
        raise QAFileError(f"{path}: no questions")
    return items


def write_paragraphs(paragraphs: dict[str, str], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in paragraphs.items():
        path = folder / name
        # Rewriting unchanged files would change their mtime and force a content-hash check.
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


class GoldResolver:
    """Maps gold strings to what hits carry: a chunk id, or the index's name for a source."""

    def __init__(self, idx: Index, base: Path | None) -> None:
        self.idx = idx
        self.base = base
        with idx.store.read() as view:
            self.chunk_ids = view.chunk_ids()
            self.sources = {d.source for d in view.documents()}

    def resolve(self, gold: str) -> tuple[str, str] | None:
        """("chunk", id) or ("source", name); None when nothing in the index matches."""
        if gold in self.chunk_ids:
            return "chunk", gold
        if gold in self.sources:
            return "source", gold
        for base in (self.base, Path.cwd()):
            if base is None:
                continue
            name = source_name((base / gold).resolve(), self.idx.project_root)
            if name in self.sources:
                return "source", name
        suffix = "/" + gold.lstrip("./")
        matches = [s for s in self.sources if s.endswith(suffix)]
        return ("source", matches[0]) if len(matches) == 1 else None


def evaluate(
    idx: Index, items: list[QAItem], base: Path | None, on_progress: OnProgress | None = None
) -> dict:
    """R@1/5/10, MRR@10 and nDCG@10 of ``idx`` on ``items``, with query latency."""
    resolver = GoldResolver(idx, base)
    rankings: list[list[str]] = []
    golds: list[set[str]] = []
    unresolved = 0
    latencies: list[float] = []
    stage = Stage("queries", on_progress, total=len(items))
    for item in items:
        resolved = [resolver.resolve(g) for g in item.gold]
        unresolved += sum(r is None for r in resolved)
        kinds = {r[0] for r in resolved if r}
        t = time.perf_counter()
        hits = idx.search(item.query, k=SEARCH_DEPTH)
        latencies.append(time.perf_counter() - t)
        # Chunk-level gold ranks chunks; document-level gold ranks documents (a
        # document's best chunk stands for it). Unmatched gold stays and counts as missed.
        level = "chunk" if kinds == {"chunk"} else "source"
        rankings.append([h.chunk_id if level == "chunk" else h.source for h in hits])
        golds.append({r[1] for r in resolved if r} or {f"<missing:{g}>" for g in item.gold})
        stage.advance()
    per_query = retrieval_metrics(rankings, golds, ks=(1, 5, 10), cutoff=10)
    return {
        "index": str(idx.path),
        "questions": len(items),
        "unresolved_gold": unresolved,
        "metrics": {name: round(float(np.mean(v)), 4) for name, v in per_query.items()},
        "query_ms_p50": round(float(np.percentile(latencies, 50)) * 1000, 1),
        "query_ms_p95": round(float(np.percentile(latencies, 95)) * 1000, 1),
    }
