"""`polisum eval retrieval --qa FILE [--format korquad|squad|jsonl]`: R@1/5/10, MRR@10, nDCG@10.

korquad/squad: every paragraph of the file becomes one document (a .txt file in a scratch
folder, ingested like any user folder, so reruns reuse the index); a question's gold is its
paragraph. jsonl: one ``{"query": ..., "gold": [source path or chunk id, ...]}`` per line,
evaluated against an existing index (``--docs FOLDER`` ingests a folder first).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from polisum.commands._common import (
    IndexOpt,
    JsonOpt,
    RichProgress,
    err,
    fail,
    open_index,
    out,
    print_json,
    safe,
    user_errors,
)
from polisum.eval.qa import evaluate, load_jsonl, load_squad, write_paragraphs

eval_app = typer.Typer()


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
        fail(f"--format must be korquad, squad or jsonl, not {fmt!r}")
    if not qa.is_file():
        fail(f"{qa}: no such file")
    with user_errors():
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
    items = items[:limit] if limit else items
    with open_index(index, create=corpus is not None) as idx, user_errors():
        if corpus is not None:
            if not corpus.is_dir():
                fail(f"{corpus}: not a folder")
            with RichProgress(enabled=not as_json) as progress:
                report = idx.ingest(corpus, on_progress=progress)
            if report.ingested == 0 and report.unchanged == 0:
                fail(f"{corpus}: nothing could be ingested")
        if idx.store.count_chunks() == 0:
            fail(f"index {idx.path} is empty: ingest documents first (or pass --docs)")
        with RichProgress(enabled=not as_json) as progress:
            result = evaluate(idx, items, base, on_progress=progress)
    if as_json:
        print_json(result)
        return
    if result["unresolved_gold"]:
        err.print(
            f"[yellow]{result['unresolved_gold']} gold entries match no chunk id or indexed "
            "source; their questions count as misses[/]"
        )
    where = f"{safe(qa)} · {result['questions']} questions"
    table = Table(title=f"{where} · index {safe(result['index'])}")
    for name in result["metrics"]:
        table.add_column(name, justify="right")
    table.add_row(*(f"{v:.3f}" for v in result["metrics"].values()))
    out.print(table)
    out.print(f"query p50 {result['query_ms_p50']} ms, p95 {result['query_ms_p95']} ms")
