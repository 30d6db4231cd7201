"""`polisum summarize FILE`: the paragraph summaries of one document, as ingest would make them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from polisum.api import Index
from polisum.commands._common import (
    ConfigOpt,
    IndexOpt,
    JsonOpt,
    RichProgress,
    announce_remote,
    err,
    fail,
    load_config,
    out,
    print_json,
    safe,
    user_errors,
)
from polisum.components import Components
from polisum.errors import IndexNotFoundError, PolisumError
from polisum.ingest import FileJob, LocalEngine, ParseSettings, cached_summaries, parse_file
from polisum.progress import Stage
from polisum.types import text_hash

app = typer.Typer()

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
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Print the summary of every paragraph of FILE. Uses (and fills) the summary cache of the
    index when there is one, so summaries of an ingested document come back at once. FILE is
    read exactly as `polisum ingest` reads it (same loaders, OCR and chunking settings)."""
    if not file.is_file():
        fail(f"{file}: not a file")
    settings = load_config(
        index,
        config,
        summarizer=summarizer,
        summarizer_adapter=adapter,
        summarizer_base_url=base_url,
    )
    idx: Index | None = None
    try:
        idx = Index.open(config=settings, create=False)
    except IndexNotFoundError:
        idx = None
    except PolisumError as exc:  # an unreadable index must not stop a one-file summary
        err.print(f"[yellow]not using the index cache:[/] {safe(exc)}")
    try:
        with user_errors():
            components = idx.components if idx is not None else Components(settings)
            model = components.summarizer
            if not as_json:
                announce_remote(components)
        parsed = parse_file(ParseSettings.from_config(settings), FileJob(file, str(file)))
        if parsed.error:
            fail(f"{file}: {parsed.error}")
        made = {}
        if model is not None:
            texts = {text_hash(c.text): c.text for c in parsed.chunks}
            with RichProgress(enabled=not (quiet or as_json)) as progress, user_errors():
                stage = Stage("summarize", progress)
                made = cached_summaries(
                    model, texts, idx.store if idx else None, LocalEngine(), stage
                )
    finally:
        if idx is not None:
            idx.close()
    rows: list[dict[str, Any]] = []
    for c in parsed.chunks:
        m = made.get(text_hash(c.text))
        rows.append(
            {
                "ordinal": c.ordinal,
                "section": c.section,
                "page": c.page,
                "text": c.text,
                "summary": m.summary if m else None,
                **(m.info() if m else {}),
            }
        )
    name = model.name if model is not None else "none"
    if as_json:
        print_json({"source": str(file), "summarizer": name, "paragraphs": rows})
        return
    out.print(f"[bold]{safe(file)}[/] · {len(rows)} paragraphs · [dim]{safe(name)}[/]")
    for row in rows:
        where = " · ".join(
            str(x) for x in (row["section"], f"p.{row['page']}" if row["page"] else None) if x
        )
        out.print(f"\n[bold cyan]{row['ordinal'] + 1}.[/] [dim]{safe(where)}[/]")
        out.print(f"   {safe(row['summary'] or '(no summary)')}")
        if row.get("fallback"):
            out.print(f"   [yellow]extractive fallback:[/] {safe(row['fallback'])}")
        if row.get("dropped"):
            out.print(f"   [yellow]dropped {len(row['dropped'])} unsupported sentence(s)[/]")
