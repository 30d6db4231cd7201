"""`polisum eval retrieval --qa FILE [--format korquad|squad|jsonl]`: R@1/5/10, MRR@10, nDCG@10.

korquad/squad: every paragraph of the file becomes one document (a .txt file in a scratch
folder, ingested like any user folder, so reruns reuse the index); a question's gold is its
paragraph. jsonl: one ``{"query": ..., "gold": [source path or chunk id, ...]}`` per line,
evaluated against an existing index (``--docs FOLDER`` ingests a folder first).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from polisum.api import Index
from polisum.cli import IndexOpt, JsonOpt, _fail, _open, _print_json, err, eval_app, out
from polisum.eval.retrieval import retrieval_metrics
from polisum.pipeline import source_name

QAFormat = Literal["korquad", "squad", "jsonl"]
# Hits fetched per query: document-level gold needs 10 distinct documents after merging the
# chunks of one document.
SEARCH_DEPTH = 40


class QAFileError(ValueError):
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
    items: list[QAItem] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise QAFileError(f"{path}: cannot read ({exc})") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            query, gold = row["query"], row["gold"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise QAFileError(
                f'{path}:{n}: expected {{"query": ..., "gold": [...]}} ({exc})'
            ) from exc
        if isinstance(gold, str):
            gold = [gold]
        if not isinstance(query, str) or not query.strip() or not gold:
            raise QAFileError(f"{path}:{n}: empty query or gold list")
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
        self.chunk_ids = idx.store.all_chunk_ids()
        self.sources = {d.source for d in idx.documents()}

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


def evaluate(idx: Index, items: list[QAItem], base: Path | None, progress: bool = False) -> dict:
    resolver = GoldResolver(idx, base)
    rankings: list[list[str]] = []
    golds: list[set[str]] = []
    unresolved = 0
    latencies: list[float] = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("queries", total=len(items))
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
            bar.advance(task)
    per_query = retrieval_metrics(rankings, golds, ks=(1, 5, 10), cutoff=10)
    return {
        "index": str(idx.path),
        "questions": len(items),
        "unresolved_gold": unresolved,
        "metrics": {name: round(float(np.mean(v)), 4) for name, v in per_query.items()},
        "query_ms_p50": round(float(np.percentile(latencies, 50)) * 1000, 1),
        "query_ms_p95": round(float(np.percentile(latencies, 95)) * 1000, 1),
    }


def _default_workdir(qa: Path) -> Path:
    key = hashlib.blake2b(str(qa.resolve()).encode(), digest_size=4).hexdigest()
    return Path.cwd() / ".polisum-eval" / f"{qa.stem}-{key}"


@eval_app.command("retrieval")
def eval_retrieval(
    qa: Annotated[Path, typer.Option("--qa", help="Questions with gold passages.")],
    fmt: Annotated[
        str, typer.Option("--format", help="korquad, squad (paragraphs become documents) or jsonl.")
    ] = "jsonl",
    index: IndexOpt = None,
    docs: Annotated[
        Path | None, typer.Option("--docs", help="jsonl: ingest this folder into the index first.")
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option(
            "--workdir",
            help="korquad/squad: where paragraphs and (without --index) the index are kept "
            "(default ./.polisum-eval/NAME-HASH, reused on reruns).",
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N questions.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Score retrieval on a QA file: R@1/5/10, MRR@10, nDCG@10 (builds or reuses an index)."""
    if fmt not in ("korquad", "squad", "jsonl"):
        _fail(f"--format must be korquad, squad or jsonl, not {fmt!r}")
    if not qa.is_file():
        _fail(f"{qa}: no such file")
    try:
        if fmt == "jsonl":
            items = load_jsonl(qa)
            corpus, base = docs, (docs.resolve() if docs else qa.resolve().parent)
        else:
            paragraphs, items = load_squad(qa)
            work = workdir or _default_workdir(qa)
            corpus = base = work / "docs"
            write_paragraphs(paragraphs, corpus)
            if index is None:
                index = work / ".polisum"
    except QAFileError as exc:
        _fail(str(exc))
        return
    items = items[:limit] if limit else items
    idx = _open(index, create=corpus is not None)
    with idx:
        if corpus is not None:
            if not corpus.is_dir():
                _fail(f"{corpus}: not a folder")
            report = idx.ingest(corpus, progress=not as_json)
            if report.ingested == 0 and report.unchanged == 0:
                _fail(f"{corpus}: nothing could be ingested")
        if idx.store.count_chunks() == 0:
            _fail(f"index {idx.path} is empty: ingest documents first (or pass --docs)")
        result = evaluate(idx, items, base, progress=not as_json)
    if as_json:
        _print_json(result)
        return
    if result["unresolved_gold"]:
        err.print(
            f"[yellow]{result['unresolved_gold']} gold entries match no chunk id or indexed "
            "source; their questions count as misses[/]"
        )
    where = f"{escape(str(qa))} · {result['questions']} questions"
    table = Table(title=f"{where} · index {escape(result['index'])}")
    for name in result["metrics"]:
        table.add_column(name, justify="right")
    table.add_row(*(f"{v:.3f}" for v in result["metrics"].values()))
    out.print(table)
    out.print(f"query p50 {result['query_ms_p50']} ms, p95 {result['query_ms_p95']} ms")
