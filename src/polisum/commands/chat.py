"""`polisum query --answer` output, `polisum chat` and `polisum prompt`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from polisum.chat import Answer, Answerer, AnswerStream, ChatSession
from polisum.commands._common import (
    ConfigOpt,
    IndexOpt,
    JsonOpt,
    announce_remote,
    err,
    fail,
    load_config,
    open_index,
    out,
    safe,
    user_errors,
)
from polisum.components import Components
from polisum.errors import PolisumError
from polisum.generate import Generator
from polisum.terminal import printable

app = typer.Typer()

GeneratorOpt = Annotated[
    str | None,
    typer.Option(
        "--generator",
        help="hf:ID_OR_PATH, gguf:PATH, openai:MODEL, or 'default' "
        "(hf:LGAI-EXAONE/EXAONE-4.0-1.2B). Default: polisum.toml, else extractive answers.",
    ),
]
AdapterOpt = Annotated[
    str | None, typer.Option("--adapter", help="PEFT LoRA folder for an hf: generator.")
]
BaseUrlOpt = Annotated[
    str | None, typer.Option("--base-url", help="Server of an openai: generator.")
]


def load_generator_or_fail(
    index: Path | None,
    config_file: Path | None,
    generator: str | None,
    adapter: str | None,
    base_url: str | None,
) -> Generator | None:
    """The generator in effect (flags > env > config), announced when it is a server."""
    config = load_config(
        index, config_file, generator=generator, adapter=adapter, base_url=base_url
    )
    with user_errors():
        components = Components(config)
        announce_remote(components)
        return components.generator


def print_sources(answer: Answer) -> None:
    cited = {c.number for c in answer.citations}
    for number, hit in enumerate(answer.passages, 1):
        if answer.refused or (cited and number not in cited):
            continue
        where = hit.source + (f" p.{hit.page}" if hit.page else "")
        if hit.section:
            where += f" · {hit.section}"
        out.print(f"[bold cyan]\\[{number}][/] {safe(where)}")
    for flag in answer.flags:
        err.print(f"[yellow]note:[/] {flag.replace('_', ' ')}")


def stream_to_terminal(stream: AnswerStream) -> Answer:
    """Write pieces as they arrive (plain stdout: rich would buffer per call), then sources.
    Model output can echo document text: control characters are neutralised."""
    for piece in stream:
        sys.stdout.write(printable(piece))
        sys.stdout.flush()
    sys.stdout.write("\n\n")
    sys.stdout.flush()
    answer = stream.answer
    assert answer is not None
    print_sources(answer)
    return answer


def answer_command(
    text: str,
    index: Path | None,
    config_file: Path | None,
    k: int | None,
    as_json: bool,
    generator: str | None,
    adapter: str | None,
    base_url: str | None,
) -> None:
    """The body of `polisum query --answer`."""
    gen = load_generator_or_fail(index, config_file, generator, adapter, base_url)
    with open_index(index, create=False, config_file=config_file) as idx, user_errors(1):
        answerer = Answerer(idx, gen, k=k or idx.config.k)
        try:
            if as_json:
                answer = answerer.answer(text)
                sys.stdout.write(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2) + "\n")
            else:
                stream_to_terminal(answerer.stream(text))
        except ValueError as exc:
            fail(str(exc))


@app.command()
def chat(
    index: IndexOpt = None,
    config: ConfigOpt = None,
    generator: GeneratorOpt = None,
    adapter: AdapterOpt = None,
    base_url: BaseUrlOpt = None,
    k: Annotated[int | None, typer.Option("-k", "--top-k", min=1, help="Passages.")] = None,
    max_turns: Annotated[int, typer.Option(min=0, help="Turns of history kept.")] = 4,
    max_history_tokens: Annotated[
        int, typer.Option(min=0, help="Token budget of the history.")
    ] = 1024,
) -> None:
    """Ask questions about the indexed documents; follow-ups keep the context.

    /reset forgets the conversation, /exit (or Ctrl-D) ends it."""
    gen = load_generator_or_fail(index, config, generator, adapter, base_url)
    with open_index(index, create=False, config_file=config) as idx:
        session = ChatSession(
            Answerer(idx, gen, k=k or idx.config.k),
            max_turns=max_turns,
            max_history_tokens=max_history_tokens,
        )
        mode = gen.name if gen is not None else "extractive answers (no --generator)"
        err.print(f"[dim]polisum chat · {safe(idx.path)} · {safe(mode)} · /exit to quit[/]")
        while True:
            try:
                question = input("> " if sys.stdin.isatty() else "").strip()
            except (EOFError, KeyboardInterrupt):
                break
            if not question:
                continue
            if question in ("/exit", "/quit"):
                break
            if question == "/reset":
                session.reset()
                err.print("[dim]history cleared[/]")
                continue
            try:
                stream_to_terminal(session.stream(question))
            except (PolisumError, ValueError) as exc:
                err.print(f"[bold red]error:[/] {safe(exc)}")
            out.print()


@app.command()
def prompt(
    description: Annotated[str, typer.Argument(help="The scene, in any language.")],
    from_docs: Annotated[
        bool, typer.Option("--from-docs", help="Ground the scene in retrieved passages.")
    ] = False,
    index: IndexOpt = None,
    config: ConfigOpt = None,
    k: Annotated[int, typer.Option("-k", min=1, help="Passages for --from-docs.")] = 3,
    generator: GeneratorOpt = None,
    adapter: AdapterOpt = None,
    base_url: BaseUrlOpt = None,
    attempts: Annotated[int, typer.Option(min=1, help="Tries before giving up.")] = 3,
    as_json: JsonOpt = False,
) -> None:
    """Write a Stable Diffusion 3.5 prompt (English prompt, negative prompt, aspect, style)."""
    try:  # pydantic validates the JSON: an optional dependency (polisum[chat])
        from polisum.chat.sdprompt import ModelRequiredError, SDPromptWriter
    except ImportError as exc:
        fail(f"`polisum prompt` needs pydantic: pip install 'polisum[chat]' ({exc})")
    gen = load_generator_or_fail(index, config, generator, adapter, base_url)
    try:
        writer = SDPromptWriter(gen, max_attempts=attempts)
    except ModelRequiredError as exc:
        fail(str(exc))
    passages = None
    if from_docs:
        with open_index(index, create=False, config_file=config) as idx, user_errors():
            passages = idx.search(description, k=k)
    with user_errors(1):
        try:
            result = writer.write(description, passages)
        except ValueError as exc:
            fail(str(exc), code=1)
    data = result.model_dump()
    if as_json:
        if passages is not None:
            data["sources"] = [
                {"source": h.source, "page": h.page, "chunk_id": h.chunk_id} for h in passages
            ]
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        return
    for key, value in data.items():
        if value is not None:
            out.print(f"[bold]{key}:[/] {safe(value)}")
    for hit in passages or []:
        out.print(
            f"[dim]grounded in {safe(hit.source)}" + (f" p.{hit.page}" if hit.page else "") + "[/]"
        )
