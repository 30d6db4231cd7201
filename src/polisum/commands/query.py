"""`polisum query TEXT [--answer]`."""

from __future__ import annotations

from typing import Annotated

import typer

from polisum.commands._common import (
    ConfigOpt,
    IndexOpt,
    JsonOpt,
    open_index,
    out,
    print_json,
    safe,
    user_errors,
)
from polisum.commands.chat import AdapterOpt, BaseUrlOpt, GeneratorOpt, answer_command

app = typer.Typer()


@app.command()
def query(
    text: Annotated[str, typer.Argument(help="What to search for.")],
    index: IndexOpt = None,
    config: ConfigOpt = None,
    k: Annotated[
        int | None, typer.Option("-k", "--top-k", min=1, help="Number of results.")
    ] = None,
    as_json: JsonOpt = False,
    answer: Annotated[
        bool, typer.Option("--answer", help="Answer from the results, citing them as \\[n].")
    ] = False,
    generator: GeneratorOpt = None,
    adapter: AdapterOpt = None,
    base_url: BaseUrlOpt = None,
) -> None:
    """Find the paragraphs that best match TEXT (hybrid dense + BM25); --answer answers."""
    if answer:
        answer_command(text, index, config, k, as_json, generator, adapter, base_url)
        return
    with open_index(index, create=False, config_file=config) as idx, user_errors():
        hits = idx.search(text, k=k)
    if as_json:
        print_json({"query": text, "hits": [h.to_dict() for h in hits]})
        return
    if not hits:
        out.print("no results")
        return
    for rank, hit in enumerate(hits, 1):
        where = hit.source + (f" p.{hit.page}" if hit.page else "")
        if hit.section:
            where += f" · {hit.section}"
        out.print(f"[bold cyan]{rank}.[/] [bold]{safe(where)}[/]  [dim]score {hit.score:.3f}[/]")
        if hit.summary and hit.summary != hit.text:
            out.print(f"   [green]summary:[/] {safe(hit.summary)}")
        body = hit.text if len(hit.text) <= 600 else hit.text[:600] + "…"
        out.print("   " + safe(body).replace("\n", "\n   "))
        out.print()
