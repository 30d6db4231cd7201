"""`polisum status`: what is indexed, which components are in effect, and what failed."""

from __future__ import annotations

import typer
from rich.table import Table

from polisum.commands._common import (
    BackendOpt,
    ConfigOpt,
    IndexOpt,
    JsonOpt,
    MilvusCollectionOpt,
    MilvusUriOpt,
    open_index,
    out,
    print_json,
    safe,
    user_errors,
)

app = typer.Typer()


@app.command()
def status(
    index: IndexOpt = None,
    config: ConfigOpt = None,
    backend: BackendOpt = None,
    milvus_uri: MilvusUriOpt = None,
    milvus_collection: MilvusCollectionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show what is indexed: each document, its chunk count, and why it failed if it did."""
    flags = {"backend": backend, "milvus_uri": milvus_uri, "milvus_collection": milvus_collection}
    with open_index(index, create=False, config_file=config, **flags) as idx, user_errors():
        info = idx.info()
        docs = [] if idx.query_only else idx.documents()
    if as_json:
        print_json({**info, "documents": [d.to_dict() for d in docs]})
        return
    for role, choice in info["components"].items():
        what = choice["spec"] or "none"
        if choice["endpoint"]:
            what += f" at {choice['endpoint']}"
        out.print(f"[dim]{role}:[/] {safe(what)} [dim]({safe(choice['origin'])})[/]")
    out.print(f"[dim]index backend:[/] {safe(_describe_backend(info['backend']))}")
    if info.get("query_only"):
        out.print(f"query-only replica · {info['chunks']} chunks · generation {info['generation']}")
        return
    table = Table(title=f"{safe(info['index'])} · {info['chunks']} chunks")
    table.add_column("source")
    table.add_column("chunks", justify="right")
    table.add_column("status")
    for d in docs:
        state = "[green]ok[/]" if d.status == "ok" else f"[red]failed:[/] {safe(d.error or '')}"
        table.add_row(safe(d.source), str(d.n_chunks), state)
    out.print(table)


def _describe_backend(b: dict) -> str:
    """One line: where queries read from, and whether it holds what the store holds."""
    if b["backend"] != "milvus":
        return f"{b['backend']} · generation {b['generation']} · {b['chunks']} chunks"
    line = (
        f"milvus at {b['uri']} · collection {b['collection']} · generation {b['generation']} "
        f"(store generation {b['store_generation']}) · {b.get('rows', 0)} rows"
    )
    if "in_sync" in b:
        line += (
            " · matches the store"
            if b["in_sync"]
            else f" · OUT OF SYNC: {b['sync_problem']} (run `polisum index sync`)"
        )
    return line
