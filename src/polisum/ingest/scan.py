"""Finding the files of a folder and naming them in the index.

Symbolic links are followed only when they resolve inside the folder being ingested (a link to
``~/.ssh/id_rsa`` in a downloaded folder must not make a secret searchable); links that leave
it, and links in a loop, are reported as skipped with the reason.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from polisum.ingest.report import FileFailure

_HASH_BLOCK = 1 << 20
# Marks a path component whose bytes are not UTF-8, so the decoded name can never equal the
# name of another file that is genuinely spelled that way (see source_name).
# (A prefix, so the name keeps its extension for file-type filters.)
_DECODED_MARK = {"cp949": "‹cp949›", "bytes": "‹bytes›"}


@dataclass
class ScanResult:
    files: list[Path] = field(default_factory=list)
    ignored: int = 0  # unsupported file types
    # Entries that are not read, with the reason: links leaving the folder, broken links. They
    # are recorded as failed documents, so `polisum status` lists them too.
    unreadable: dict[Path, str] = field(default_factory=dict)
    skipped: list[FileFailure] = field(default_factory=list)  # folders that cannot be listed


def scan(folder: Path, extensions: Iterable[str], project_root: Path) -> ScanResult:
    """Supported files under ``folder`` in a stable order. Hidden files and folders are
    skipped; symlinks only count when their target is inside ``folder``."""
    exts = frozenset(e.lower() for e in extensions)
    root = folder.resolve()
    result = ScanResult()
    visited: set[Path] = {root}
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name, reverse=True)
        except OSError as exc:
            result.skipped.append(_skip(Path(current), project_root, os_reason(exc)))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            is_link = entry.is_symlink()
            if is_link:
                reason = _link_problem(path, root)
                if reason:
                    if path.suffix.lower() in exts or os.path.isdir(path):
                        result.unreadable[path] = reason
                    continue
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError as exc:
                result.skipped.append(_skip(path, project_root, os_reason(exc)))
                continue
            if is_dir:
                real = path.resolve()
                if real in visited:  # a link back into a folder already walked
                    if is_link:
                        result.unreadable[path] = "symlink to a folder already indexed"
                    continue
                visited.add(real)
                pending.append(path)
            elif path.suffix.lower() in exts:
                result.files.append(path)
            else:
                result.ignored += 1
    result.files.extend(result.unreadable)
    result.files.sort(key=lambda p: os.fsencode(p))
    return result


def _link_problem(path: Path, root: Path) -> str | None:
    try:
        target = path.resolve(strict=True)
    except OSError as exc:  # a dangling link, or a loop (ELOOP)
        return os_reason(exc)
    except RuntimeError:  # a loop, as older pathlib reports it
        return "cannot read file: Too many levels of symbolic links"
    if target != root and root not in target.parents:
        return "symlink to a path outside the folder (not followed)"
    return None


def _skip(path: Path, project_root: Path, reason: str) -> FileFailure:
    return FileFailure(source_name(path, project_root), reason)


def source_name(path: Path, project_root: Path) -> str:
    """How a file is named in the index: relative to the project (the folder holding the index)
    when inside it, so the project can move; absolute otherwise.

    Names that are not valid UTF-8 (what ``unzip`` makes of a Korean Windows zip) are shown
    decoded where their bytes are CP949/EUC-KR (``‹cp949›예산.txt``), else with the bytes
    escaped (``‹bytes›\\xbf.txt``): two different names never map to one source, and the
    mark keeps them apart from files really spelled that way."""
    try:
        rel = path.relative_to(project_root)
    except ValueError:
        rel = path
    parts = [_component(p) for p in rel.parts]
    if rel.is_absolute():
        return "/" + "/".join(parts[1:])
    return "/".join(parts)


def _component(name: str) -> str:
    raw = os.fsencode(name)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return _DECODED_MARK["cp949"] + raw.decode("cp949")
    except UnicodeDecodeError:
        return _DECODED_MARK["bytes"] + raw.decode("utf-8", "backslashreplace")


def file_hash(path: Path) -> str:
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_HASH_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def os_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    return f"cannot read file: {exc.strerror or exc}"
