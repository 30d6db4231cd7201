"""Uploads: file names made safe, and multipart bodies streamed to disk under size caps.

Why not FastAPI's ``UploadFile``: Starlette parses the whole multipart body into spooled
temporary files before the endpoint runs, with no cap on a file's size. Here python-multipart's
streaming parser (the one Starlette uses) feeds each part straight into a staging file, and the
per-file, per-request and file-count limits are checked as the bytes arrive, so an oversized
upload is refused after at most one chunk past its limit and never fills the disk.

No FastAPI import here: ``safe_upload_name`` is usable (and tested) on its own.
"""

from __future__ import annotations

import re
import shutil
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from polisum.errors import PolisumError

# Windows device names: "CON.txt" opens the console there, whatever the extension.
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{d}{n}" for d in ("COM", "LPT") for n in "123456789¹²³"]
)
# Characters Windows forbids in names (plus both separators), replaced by "_".
_FORBIDDEN = re.compile(r'[<>:"/\\|?*]')
MAX_NAME_BYTES = 200  # below the usual 255-byte limit, leaving room for a suffix
UPLOAD_FIELD = "files"


class UploadError(PolisumError, ValueError):
    """An upload refused; ``status`` is the HTTP status that says why (413, 415, 422)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def safe_upload_name(name: str) -> str:
    """A file name that is safe to create inside the uploads folder, from a client's name.

    Only the last path component is kept (clients send ``C:\\Users\\me\\a.pdf`` or
    ``../../a.pdf``), Unicode is NFC-normalised (macOS sends NFD Hangul), control and format
    characters (NUL, newlines, bidi overrides) are dropped, characters Windows forbids become
    ``_``, leading dots (hidden files, ``..``) and trailing dots/spaces are stripped, Windows
    device names get a ``_`` prefix, and the name is cut to MAX_NAME_BYTES of UTF-8 keeping
    its extension. Raises UploadError when nothing usable is left."""
    name = unicodedata.normalize("NFC", name)
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co"))
    name = re.split(r"[/\\]", name)[-1]
    name = _FORBIDDEN.sub("_", name).strip()
    name = name.lstrip(". ").rstrip(". ")
    if not name:
        raise UploadError("an uploaded file has no usable name (give it a name like report.pdf)")
    _, dot, ext = name.rpartition(".")
    if name.split(".")[0].strip().upper() in _RESERVED:
        name = "_" + name
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        suffix = ("." + ext) if dot and len(ext.encode("utf-8")) <= 16 else ""
        room = MAX_NAME_BYTES - len(suffix.encode("utf-8"))
        cut = name[: len(name) - len(suffix)] if suffix else name
        cut = cut.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip(". ")
        name = cut + suffix
    return name


@dataclass
class StagedFile:
    """One uploaded file written to the staging folder, not yet in the uploads folder."""

    name: str  # the sanitised name it will have in the uploads folder
    path: Path
    size: int = 0


@dataclass
class _Part:
    name: str = ""
    file: StagedFile | None = None
    handle: IO[bytes] | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


class MultipartUpload:
    """Feed the request body chunk by chunk; files of the ``files`` field land in ``staging``.

    ``extensions``: the file types polisum reads (others are refused before their bytes are
    read, 415). Limits: ``max_file`` bytes per file, ``max_total`` bytes of files, ``max_files``
    files (413 past any of them)."""

    MAX_FIELD_BYTES = 64 * 1024  # non-file fields are ignored but still bounded

    def __init__(
        self,
        content_type: str,
        staging: Path,
        *,
        extensions: frozenset[str],
        max_file: int,
        max_total: int,
        max_files: int,
    ) -> None:
        from python_multipart.multipart import MultipartParser, parse_options_header

        self._parse_options = parse_options_header
        kind, params = parse_options_header(content_type)
        if kind != b"multipart/form-data" or b"boundary" not in params:
            raise UploadError(
                f"upload files as multipart/form-data in the field '{UPLOAD_FIELD}'", 415
            )
        self.staging = staging
        self.extensions = extensions
        self.max_file, self.max_total, self.max_files = max_file, max_total, max_files
        self.files: list[StagedFile] = []
        self._total = 0
        self._field_bytes = 0
        self._part = _Part()
        self._header_name = b""
        self._header_value = b""
        self._parser = MultipartParser(
            params[b"boundary"],
            {
                "on_part_begin": self._on_part_begin,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
            },
        )
        staging.mkdir(parents=True, exist_ok=True)

    # -- driving ----------------------------------------------------------------------------
    def feed(self, chunk: bytes) -> None:
        from python_multipart.exceptions import FormParserError

        try:
            self._parser.write(chunk)
        except FormParserError as exc:
            raise UploadError(f"the multipart body is malformed ({exc})", 400) from None

    def finish(self) -> list[StagedFile]:
        from python_multipart.exceptions import FormParserError

        try:
            self._parser.finalize()
        except FormParserError as exc:
            raise UploadError(f"the multipart body is malformed ({exc})", 400) from None
        if self._part.handle is not None:
            raise UploadError("the multipart body ended inside a file (upload cut short?)", 400)
        if not self.files:
            raise UploadError(f"no files in the field '{UPLOAD_FIELD}'")
        return self.files

    def discard(self) -> None:
        if self._part.handle is not None:
            self._part.handle.close()
            self._part.handle = None
        shutil.rmtree(self.staging, ignore_errors=True)

    # -- parser callbacks -------------------------------------------------------------------
    def _on_part_begin(self) -> None:
        self._part = _Part()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]
        self._check_header()

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        self._check_header()

    def _check_header(self) -> None:
        if len(self._header_name) + len(self._header_value) > self.MAX_FIELD_BYTES:
            raise UploadError("a multipart header is too long", 413)

    def _on_header_end(self) -> None:
        self._part.headers.append((self._header_name.lower(), self._header_value))
        self._header_name = self._header_value = b""

    def _on_headers_finished(self) -> None:
        disposition = dict(self._part.headers).get(b"content-disposition", b"")
        _, options = self._parse_options(disposition)
        self._part.name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options:
            return  # a plain field: ignored (bounded in _on_part_data)
        if self._part.name != UPLOAD_FIELD:
            raise UploadError(f"upload files in the field '{UPLOAD_FIELD}'")
        if len(self.files) >= self.max_files:
            raise UploadError(f"too many files in one upload (limit {self.max_files})", 413)
        name = safe_upload_name(options[b"filename"].decode("utf-8", "replace"))
        ext = Path(name).suffix.lower()
        if ext not in self.extensions:
            raise UploadError(
                f"{name}: polisum does not read {ext or 'files without an extension'} "
                f"(it reads {', '.join(sorted(self.extensions))})",
                415,
            )
        if any(f.name == name for f in self.files):
            raise UploadError(f"two files in this upload are named {name}")
        staged = StagedFile(name, self.staging / f"{len(self.files):04d}.part")
        self.files.append(staged)
        self._part.file = staged
        self._part.handle = open(staged.path, "wb")  # noqa: SIM115 - closed in _on_part_end

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        n = end - start
        part = self._part
        if part.file is None:
            self._field_bytes += n
            if self._field_bytes > self.MAX_FIELD_BYTES:
                raise UploadError("form fields other than files are too large", 413)
            return
        part.file.size += n
        self._total += n
        if part.file.size > self.max_file:
            raise UploadError(
                f"{part.file.name} is larger than the upload limit ({_mib(self.max_file)})", 413
            )
        if self._total > self.max_total:
            raise UploadError(
                f"the upload is larger than the limit per request ({_mib(self.max_total)})", 413
            )
        assert part.handle is not None
        # A plain write: the chunk (≤ 64 KiB from the server) goes to the page cache; a thread
        # hop per chunk would cost more than it saves.
        part.handle.write(data[start:end])

    def _on_part_end(self) -> None:
        if self._part.handle is not None:
            self._part.handle.close()
            self._part.handle = None


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n} bytes"
