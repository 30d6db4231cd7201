"""`polisum index sync`: bring the index backend to the store's committed state."""

from __future__ import annotations

import typer

from polisum.commands._common import (
    BackendOpt,
    ConfigOpt,
    IndexOpt,
    JsonOpt,
    MilvusCollectionOpt,
    MilvusUriOpt,
    err,
    open_index,
    print_json,
    user_errors,
)

index_app = typer.Typer(help="Maintain the index backend.", no_args_is_help=True)

_DONE = {
    "none": "already in sync",
    "switched": "switched queries to the generation an interrupted ingest had published",
    "rebuilt": "published the store's state again",
}


@index_app.command("sync")
def sync(
    index: IndexOpt = None,
    config: ConfigOpt = None,
    backend: BackendOpt = None,
    milvus_uri: MilvusUriOpt = None,
    milvus_collection: MilvusCollectionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Complete or redo a publish that a crash interrupted (an ingest does this first too)."""
    flags = {"backend": backend, "milvus_uri": milvus_uri, "milvus_collection": milvus_collection}
    with open_index(index, create=False, config_file=config, **flags) as idx, user_errors():
        done = idx.sync()
    if as_json:
        print_json(done)
        return
    err.print(f"{done['backend']}: {_DONE[done['action']]} (store generation {done['generation']})")
