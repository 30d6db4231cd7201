"""The one JSONL reader: one JSON object per line, errors naming the file and the line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from polisum.errors import PolisumError


class JsonlError(PolisumError, ValueError):
    pass


def read_jsonl(path: str | Path, *, allow_empty: bool = False) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-blank line of ``path``. A BOM is accepted; a line that is
    not a JSON object, an unreadable file or (unless ``allow_empty``) no records at all is a
    JsonlError naming the file and line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise JsonlError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise JsonlError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise JsonlError(f"{path}: cannot read ({exc.strerror})") from None
    rows = parse_jsonl_lines(path, lines)
    if not rows and not allow_empty:
        raise JsonlError(f"{path}: no records")
    return rows


def parse_jsonl_lines(path: str | Path, lines: list[str]) -> list[tuple[int, dict[str, Any]]]:
    """The objects of already-read lines (see read_jsonl)."""
    rows = []
    for n, line in enumerate(lines, 1):
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
