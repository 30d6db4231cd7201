"""The one JSONL reader: one JSON object per line, errors naming the file and the line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from polisum.errors import PolisumError


class JsonlError(PolisumError, ValueError):
    pass


def read_jsonl(path: str | Path, *, allow_empty: bool = False) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-blank line of ``path``. A BOM is accepted; a line that is
    not a JSON object, an unreadable file or (unless ``allow_empty``) no records at all is a
    JsonlError naming the file and line."""
    rows = list(iter_jsonl(path))
    if not rows and not allow_empty:
        raise JsonlError(f"{path}: no records")
    return rows


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``read_jsonl`` one line at a time, for files too large to hold (training data)."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8-sig") as fh:
            for n, line in enumerate(fh, 1):
                yield from parse_jsonl_lines(path, [line], first=n)
    except FileNotFoundError:
        raise JsonlError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise JsonlError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise JsonlError(f"{path}: cannot read ({exc.strerror})") from None


def parse_jsonl_lines(
    path: str | Path, lines: list[str], first: int = 1
) -> list[tuple[int, dict[str, Any]]]:
    """The objects of already-read lines (see read_jsonl); ``first`` numbers the first line."""
    rows = []
    for n, line in enumerate(lines, first):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise JsonlError(f"{path}:{n}: invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise JsonlError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
        rows.append((n, row))
    return rows
