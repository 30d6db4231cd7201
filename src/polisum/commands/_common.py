"""What every command shares: consoles, options, errors, opening an index, progress bars.

Commands are thin: they parse options, call the library, and print. Anything shown from a
document or a file name goes through :func:`safe`, so a control sequence hidden in a file
cannot clear the screen or forge output; ``--json`` output is JSON (escaped by the encoder).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from polisum.api import Index
from polisum.config import Config
from polisum.errors import PolisumError
from polisum.progress import ProgressEvent
from polisum.terminal import printable

# soft_wrap: an error or a path is never broken over lines (scripts and tests read them).
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

IndexOpt = Annotated[
    Path | None,
    typer.Option("--index", help="Index folder (default: nearest .polisum, or $POLISUM_INDEX)."),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="A polisum.toml of yours to use (trusted, like flags)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="Where queries read from: local (files beside the index, the default) or milvus.",
    ),
]
MilvusUriOpt = Annotated[
    str | None,
    typer.Option(
        "--milvus-uri",
        help="Milvus server (http://host:19530; credentials from POLISUM_MILVUS_TOKEN) or a "
        "Milvus Lite .db file (default: milvus.db in the index folder).",
    ),
]
MilvusCollectionOpt = Annotated[
    str | None,
    typer.Option("--milvus-collection", help="Collection name (default: polisum_<project>)."),
]


def safe(text: object) -> str:
    """Untrusted text (from a document or a file name) made fit for the terminal: control
    characters neutralised, rich markup escaped."""
    return escape(printable(str(text)))


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {safe(message)}")
    raise typer.Exit(code)


@contextlib.contextmanager
def user_errors(code: int = 2) -> Iterator[None]:
    """Errors a user acts on become one line and an exit code, never a traceback."""
    try:
        yield
    except PolisumError as exc:
        fail(str(exc), code)
    except OSError as exc:  # a folder that cannot be created, a permission problem
        fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "), code)


def load_config(index: Path | None = None, config_file: Path | None = None, **flags: Any) -> Config:
    with user_errors():
        config = Config.load(index=index, config_file=config_file, **flags)
    for notice in config.notices:
        err.print(f"[yellow]note:[/] {safe(notice)}")
    return config


def open_index(
    index: Path | None,
    create: bool,
    rebuild: bool = False,
    config_file: Path | None = None,
    **flags: Any,
) -> Index:
    config = load_config(index, config_file, **flags)
    with user_errors():
        return Index.open(config=config, create=create, rebuild=rebuild)


def announce_remote(idx_or_components: Any) -> None:
    """Before text leaves the machine, say where it goes (a server named by configuration)."""
    components = getattr(idx_or_components, "components", idx_or_components)
    for choice in components.remote():
        err.print(f"[dim]sending text to {safe(choice.describe())}[/]")


class _SpeedColumn(ProgressColumn):
    """Throughput of stages that report tokens (summaries: paragraphs/s and tokens/s)."""

    def render(self, task: Task) -> Text:
        tokens = task.fields.get("tokens")
        elapsed = task.elapsed or 0.0
        if not tokens or not elapsed or not task.completed:
            return Text("")
        return Text(
            f"{task.completed / elapsed:.1f} para/s · {tokens / elapsed:.0f} tok/s", style="cyan"
        )


class RichProgress:
    """Draws the core's progress events as rich bars, one per stage (on stderr)."""

    def __init__(self, enabled: bool = True) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            _SpeedColumn(),
            console=err,
            disable=not enabled,
            transient=False,
        )
        self._tasks: dict[str, Any] = {}

    def __call__(self, event: ProgressEvent) -> None:
        task = self._tasks.get(event.stage)
        if task is None:
            if not event.total and not event.done:
                return  # a stage with nothing to do draws no bar
            task = self._tasks[event.stage] = self._progress.add_task(event.stage, total=None)
        self._progress.update(task, completed=event.done, total=event.total, tokens=event.tokens)

    def __enter__(self) -> RichProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)
