"""`polisum serve`: the REST API and the web app over an index.

Thin: options → ServeSettings → uvicorn. Needs the extra: ``pip install "polisum[serve]"``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from polisum.commands._common import ConfigOpt, IndexOpt, err, fail, safe, user_errors
from polisum.commands.chat import AdapterOpt, BaseUrlOpt, GeneratorOpt

app = typer.Typer()


@app.command()
def serve(
    index: IndexOpt = None,
    config: ConfigOpt = None,
    host: Annotated[str, typer.Option(help="Address to bind (loopback unless keys are set).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    keys_file: Annotated[
        Path | None,
        typer.Option(help="API keys, lines 'read KEY' / 'admin KEY' (or $POLISUM_KEYS_FILE)."),
    ] = None,
    allow_ingest_root: Annotated[
        list[Path] | None,
        typer.Option(help="A folder POST /v1/ingest may read (repeat; or $POLISUM_INGEST_ROOTS)."),
    ] = None,
    cors_origin: Annotated[
        list[str] | None, typer.Option(help="Allow browser calls from this origin (repeat).")
    ] = None,
    image_model: Annotated[
        str | None, typer.Option(help="Diffusers SD3.5 folder for /v1/images ($POLISUM_SD_MODEL).")
    ] = None,
    limit: Annotated[
        list[str] | None,
        typer.Option(help="NAME=VALUE, e.g. max_k=20 (see /v1/status for the names; repeat)."),
    ] = None,
    generator: GeneratorOpt = None,
    adapter: AdapterOpt = None,
    base_url: BaseUrlOpt = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve the REST API (/v1, docs at /docs) and the web app (/) over the index."""
    from polisum.serve.settings import ServeSettings

    limits: dict[str, str] = {}
    for item in limit or []:
        name, eq, value = item.partition("=")
        if not eq:
            fail(f"--limit {item}: expected NAME=VALUE")
        limits[name.strip()] = value.strip()
    with user_errors():
        settings = ServeSettings.load(
            keys_file=keys_file,
            limits=limits,
            index=index,
            config_file=config,
            host=host,
            port=port,
            allowed_ingest_roots=tuple(allow_ingest_root or ()),
            cors_origins=tuple(cors_origin or ()),
            image_model=image_model,
            generator=generator,
            adapter=adapter,
            base_url=base_url,
        )
    try:
        import uvicorn

        from polisum.serve.app import create_app, open_state
    except ImportError as exc:
        fail(f"`polisum serve` needs its extra: pip install 'polisum[serve]' ({exc})")
    # polisum's own lines (access log, jobs) at the level asked; libraries' chatter (faiss's
    # loader) only from warnings up.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("polisum").setLevel(log_level.upper())
    with user_errors():
        state = open_state(settings)  # the index and the models: a bad setting stops here
    where = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
    err.print(
        f"[dim]polisum serve · {safe(state.index.path)} · {safe(where)} (API docs at /docs)[/]"
    )
    with user_errors():
        # One worker: the write queue and conversations live in this process. The access log
        # is polisum's own (no query strings, no headers); uvicorn's is off.
        uvicorn.run(
            create_app(settings, state=state),
            host=host,
            port=port,
            access_log=False,
            log_level=log_level.lower(),
            timeout_graceful_shutdown=15,
        )
