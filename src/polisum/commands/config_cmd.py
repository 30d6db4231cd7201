"""`polisum config show|trust|untrust`: the settings in effect and which files are trusted."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from polisum.commands._common import (
    ConfigOpt,
    IndexOpt,
    JsonOpt,
    err,
    fail,
    load_config,
    out,
    print_json,
    safe,
    user_errors,
)
from polisum.config import CONFIG_FILENAME, trust, untrust, user_config_dir
from polisum.security import redact_url

config_app = typer.Typer(help="Show the settings in effect; trust a project's polisum.toml.")

FileArg = Annotated[Path, typer.Argument(help="The polisum.toml file.")]


@config_app.command("show")
def show(index: IndexOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Every setting, its value and where it came from."""
    settings = load_config(index, config)
    rows = {
        name: {"value": _shown(name, v), "origin": settings.origin(name)}
        for name, v in settings.model_dump().items()
    }
    if as_json:
        print_json({"settings": rows, "notices": settings.notices})
        return
    out.print(f"[dim]user config folder: {safe(user_config_dir())}[/]")
    for name, row in rows.items():
        out.print(f"{name} = {safe(row['value'])} [dim]({safe(row['origin'])})[/]")


def _shown(name: str, value: object) -> object:
    """A setting as shown: paths as text, server URLs without credentials."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str) and name.endswith(("_url", "_uri")):
        return redact_url(value)
    return value


@config_app.command("trust")
def trust_file(file: FileArg = Path(CONFIG_FILENAME)) -> None:
    """Let FILE choose models and servers (its current content; an edit revokes it)."""
    if not file.is_file():
        fail(f"{file}: no such file")
    with user_errors():
        digest = trust(file)
    err.print(f"trusted {safe(file.resolve())} (sha256 {digest[:12]}…)")


@config_app.command("untrust")
def untrust_file(file: FileArg = Path(CONFIG_FILENAME)) -> None:
    """Stop trusting FILE."""
    if untrust(file):
        err.print(f"no longer trusted: {safe(file.resolve())}")
    else:
        err.print(f"{safe(file)} was not trusted")
