"""The errors a user acts on. Every one of them says what went wrong and what to do, in one
line; surfaces (CLI, service) catch :class:`PolisumError` and show the message, never a
traceback. Each module's own error class derives from it, beside its builtin base
(``ValueError``/``RuntimeError``) for callers that already catch those."""

from __future__ import annotations


class PolisumError(Exception):
    """Base of every user-facing polisum error."""


class IndexError_(PolisumError, RuntimeError):
    """Base for index problems a user must act on."""


class IndexNotFoundError(IndexError_):
    pass


class EmbedderMismatchError(IndexError_):
    pass


class IndexBusyError(IndexError_):
    """Another process holds the index's write lock."""


class IndexDamagedError(IndexError_):
    """The index database cannot be read (damaged, or written by a newer polisum)."""


class DiskFullError(IndexError_):
    """A write failed for lack of space; the index was left as it was."""
