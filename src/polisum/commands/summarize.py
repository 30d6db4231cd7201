"""`polisum summarize FILE`: the paragraph summaries of one document, as ingest would make them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from polisum.api import Index, IndexNotFoundError
from polisum.chunking import ParagraphChunker
from polisum.cli import IndexOpt, JsonOpt, _fail, _print_json, app, err, out
from polisum.config import Config, ConfigError
from polisum.loaders import LoadError, default_registry
from polisum.pipeline import _progress, summarize_cached
from polisum.summarize import SummarizerError, load_summarizer
from polisum.types import text_hash

SummarizerOpt = Annotated[
    str | None,
    typer.Option(
        "--summarizer",
        help="extractive, hf:MODEL_ID_OR_PATH, gguf:PATH or openai:MODEL (default: the index's).",
    ),
]
AdapterOpt = Annotated[
    str | None, typer.Option("--adapter", help="PEFT adapter folder for an hf: summarizer.")
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option("--base-url", help="OpenAI-compatible server for an openai: summarizer."),
]


@app.command("summarize")
def summarize_command(
    file: Annotated[Path, typer.Argument(help="The document to summarize.")],
    summarizer: SummarizerOpt = None,
    adapter: AdapterOpt = None,
    base_url: BaseUrlOpt = None,
    index: IndexOpt = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Print the summary of every paragraph of FILE. Uses (and fills) the summary cache of the
    index when there is one, so summaries of an ingested document come back at once."""
    if not file.is_file():
        _fail(f"{file}: not a file")
    try:
        config = Config.load(index=index).with_overrides(
            summarizer=summarizer, summarizer_adapter=adapter, summarizer_base_url=base_url
        )
    except ConfigError as exc:
        _fail(str(exc))
        raise
    idx: Index | None = None
    try:
        idx = Index.open(config=config, create=False)
    except IndexNotFoundError:
        idx = None
    except Exception as exc:  # an unreadable index must not stop a one-file summary
        err.print(f"[yellow]not using the index cache:[/] {escape(str(exc))}")
    try:
        if idx is not None:
            model = idx.summarizer
        else:
            model = load_summarizer(
                config.summarizer or "extractive",
                adapter=config.summarizer_adapter,
                base_url=config.summarizer_base_url,
            )
    except SummarizerError as exc:
        _fail(str(exc))
        raise
    registry = default_registry(config.max_file_bytes)
    try:
        document = registry.load(file)
    except LoadError as exc:
        _fail(f"{file}: {exc.reason}")
        raise
    chunks = ParagraphChunker(config.min_chars, config.max_chars).chunk(document, str(file))
    if not chunks:
        _fail(f"{file}: no text found")
    rows: list[dict[str, Any]] = []
    try:
        if model is not None:
            texts = {text_hash(c.text): c.text for c in chunks}
            with _progress(not (quiet or as_json)) as bar:
                task = bar.add_task("summarize", total=None, tokens=0)
                done = {"tokens": 0}

                def on_batch(n: int, tokens: int) -> None:
                    done["tokens"] += tokens
                    bar.update(task, advance=n, tokens=done["tokens"])

                made = summarize_cached(
                    model,
                    texts,
                    idx.store if idx is not None else None,
                    lambda total: bar.update(task, total=total),
                    on_batch,
                )
        else:
            made = {}
        for c in chunks:
            m = made.get(text_hash(c.text))
            info = (m.info if m else None) or {}
            rows.append(
                {
                    "ordinal": c.ordinal,
                    "section": c.section,
                    "page": c.page,
                    "text": c.text,
                    "summary": m.summary if m else None,
                    **info,
                }
            )
    finally:
        if idx is not None:
            idx.close()
    name = model.name if model is not None else "none"
    if as_json:
        _print_json({"source": str(file), "summarizer": name, "paragraphs": rows})
        return
    out.print(f"[bold]{escape(str(file))}[/] · {len(rows)} paragraphs · [dim]{escape(name)}[/]")
    for row in rows:
        where = " · ".join(
            str(x) for x in (row["section"], f"p.{row['page']}" if row["page"] else None) if x
        )
        out.print(f"\n[bold cyan]{row['ordinal'] + 1}.[/] [dim]{escape(where)}[/]")
        out.print(f"   {escape(row['summary'] or '(no summary)')}")
        if row.get("fallback"):
            out.print(f"   [yellow]extractive fallback:[/] {escape(row['fallback'])}")
        if row.get("dropped"):
            out.print(f"   [yellow]dropped {len(row['dropped'])} unsupported sentence(s)[/]")
