"""The `polisum` command line: the entry point that assembles the commands.

Each command lives in its own module under polisum.commands, as a small typer app over the
shared polisum.commands._common; this module only puts them together. Nothing imports it but
the ``polisum`` script (and ``python -m polisum.cli``).
"""

from __future__ import annotations

import typer

from polisum.commands import (
    chat,
    config_cmd,
    eval_cmds,
    eval_retrieval,
    imagine,
    index_cmd,
    ingest,
    query,
    serve,
    status,
    summarize,
    train,
)

app = typer.Typer(
    help="Turn a folder of documents into a searchable, summarized knowledge base.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for module in (ingest, query, status, chat, summarize, imagine, serve):
    app.add_typer(module.app)

eval_app = typer.Typer(
    help="Measure retrieval, summaries, answers and images.", no_args_is_help=True
)
for module in (eval_cmds, eval_retrieval, imagine):
    eval_app.add_typer(module.eval_app)
app.add_typer(eval_app, name="eval")
app.add_typer(train.train_app, name="train")
app.add_typer(config_cmd.config_app, name="config")
app.add_typer(index_cmd.index_app, name="index")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
