"""Commands that live in their own modules register themselves on the apps in polisum.cli.

Each module here imports ``app``/``eval_app``/``train_app`` from polisum.cli and decorates its
commands; polisum.cli imports this package at its end, so ``from polisum.cli import app`` gives
the full command set. Add each new module to the import list below.
"""

from polisum.commands import (
    chat,  # noqa: F401
    eval_cmds,  # noqa: F401
    eval_retrieval,  # noqa: F401
    imagine,  # noqa: F401
    summarize,  # noqa: F401
    train,  # noqa: F401
)
