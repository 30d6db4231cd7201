"""Cache keys for local model files and folders."""

from __future__ import annotations

import hashlib
from pathlib import Path

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json", ".model", ".gguf")


_SAMPLE = 1 << 20


def fingerprint(path: str) -> str:
    """A short content digest of a local model file or folder: each weight or config file's
    name, size, first and last MiB. A checkpoint re-saved with new weights gets a new cache key;
    a copy or a reinstall of the same file does not, and multi-GB files are not read whole.
    Hub ids (no such path) are returned unchanged: the id is their key."""
    folder = Path(path).expanduser()
    if not folder.exists():
        return path
    h = hashlib.blake2b(digest_size=6)
    files = [folder] if folder.is_file() else sorted(folder.iterdir())
    for f in files:
        if f.is_file() and f.name.endswith(_WEIGHT_SUFFIXES):
            size = f.stat().st_size
            h.update(f"{f.name}\x1f{size}\n".encode())
            with open(f, "rb") as fh:
                h.update(fh.read(_SAMPLE))
                if size > 2 * _SAMPLE:
                    fh.seek(size - _SAMPLE)
                    h.update(fh.read(_SAMPLE))
    return f"{folder.resolve()}@{h.hexdigest()}"
