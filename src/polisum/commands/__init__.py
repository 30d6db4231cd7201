"""Commands that live in their own modules register themselves on the apps in polisum.cli.

Each module here imports ``app``/``eval_app``/``train_app`` from polisum.cli and decorates its
commands; polisum.cli imports this package at its end, so ``from polisum.cli import app`` gives
the full command set. Add one line per module: ``from polisum.commands import NAME  # noqa: F401``.
"""
