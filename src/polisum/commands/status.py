"""`polisum status`: what is indexed, which components are in effect, and what failed."""

from __future__ import annotations

import typer
from rich.table import Table

from polisum.commands._common import ConfigOpt, IndexOpt, JsonOpt, open_index, out, print_json, safe

app = typer.Typer()


@app.command()
def status(index: IndexOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Show what is indexed: each document, its chunk count, and why it failed if it did."""
    with open_index(index, create=False, config_file=config) as idx:
        info = idx.info()
        docs = idx.documents()
    if as_json:
        print_json({**info, "documents": [d.to_dict() for d in docs]})
        return
    for role, choice in info["components"].items():
        what = choice["spec"] or "none"
        if choice["endpoint"]:
            what += f" at {choice['endpoint']}"
        out.print(f"[dim]{role}:[/] {safe(what)} [dim]({safe(choice['origin'])})[/]")
    table = Table(title=f"{safe(info['index'])} · {info['chunks']} chunks")
    table.add_column("source")
    table.add_column("chunks", justify="right")
    table.add_column("status")
    for d in docs:
        state = "[green]ok[/]" if d.status == "ok" else f"[red]failed:[/] {safe(d.error or '')}"
        table.add_row(safe(d.source), str(d.n_chunks), state)
    out.print(table)
