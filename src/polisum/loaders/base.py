"""The Loader interface and the errors every loader reports."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

from polisum.types import Document

# Files above this size are refused unless a loader streams them; the limit keeps memory bounded.
DEFAULT_MAX_BYTES = 200 * 1024 * 1024


class LoadError(Exception):
    """A file could not be turned into text. ``reason`` is one line a user can act on."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def one_line(exc: BaseException, limit: int = 120) -> str:
    """An exception as a short single line for a LoadError reason."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@runtime_checkable
class Loader(Protocol):
    """Turns one file into a :class:`Document` of elements in reading order.

    A loader declares the file extensions it reads (lower case, with the dot) and raises
    :class:`LoadError` with a one-line reason when a file cannot be read.
    """

    extensions: tuple[str, ...]

    def load(self, path: Path) -> Document: ...


def check_readable(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> int:
    """Common pre-flight checks; returns the file size or raises LoadError with the reason."""
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise LoadError(path, "file not found") from exc
    except PermissionError as exc:
        raise LoadError(path, "permission denied") from exc
    except OSError as exc:  # e.g. ELOOP on a symlink loop, ENAMETOOLONG
        raise LoadError(path, f"cannot stat file: {exc.strerror or exc}") from exc
    if not path.is_file():
        raise LoadError(path, "not a regular file")
    if not os.access(path, os.R_OK):
        raise LoadError(path, "permission denied")
    if st.st_size == 0:
        raise LoadError(path, "empty file")
    if st.st_size > max_bytes:
        raise LoadError(
            path,
            f"file too large ({st.st_size / 2**20:.0f} MiB > limit {max_bytes / 2**20:.0f} MiB)",
        )
    return st.st_size


def read_bytes(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    check_readable(path, max_bytes)
    try:
        return path.read_bytes()
    except PermissionError as exc:
        raise LoadError(path, "permission denied") from exc
    except OSError as exc:
        raise LoadError(path, f"read failed: {exc.strerror or exc}") from exc
