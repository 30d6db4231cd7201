"""Zip-packaged XML formats (DOCX, HWPX) read within bounds: one place for the safety checks.

A small file can still cost gigabytes or minutes; each way is stopped here:

* **a zip directory that under-states a member's size.** ``ZipFile.read`` inflates up to 2 GiB
  in one call and only then cuts the output to the declared size. :func:`read_member` reads in
  chunks against a ceiling above the declared size, so a member that yields more than it
  declares fails in the chunk that crosses it.
* **a member that inflates far beyond its compressed size** (a zip bomb): past a grace size, a
  member may not inflate more than :data:`MAX_INFLATE_RATIO` times its compressed size, the rule
  of Apache POI's ``ZipSecureFile`` (same 100:1 limit), checked while streaming. Only stored and
  deflated members are read (the methods OOXML allows; bzip2/LZMA would inflate unboundedly in
  one call).
* **XML**: :func:`parse_xml` never resolves entities or touches the network, refuses a
  document type declaration (OOXML/OWPML parts have none; entity tricks such as XXE and
  "billion laughs" need one), keeps libxml2's depth and text-node limits on, and counts
  elements while parsing, stopping at a cap instead of building an arbitrarily large tree.
"""

from __future__ import annotations

import copy
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lxml import etree

from polisum.loaders.base import LoadError, one_line

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# Declared sizes of all members together; the parts read are held in memory several times over.
MAX_UNPACKED_BYTES = 512 * 1024 * 1024
MAX_INFLATE_RATIO = 100
INFLATE_RATIO_GRACE_BYTES = 1024 * 1024
# Each read inflates at most this much: the unit in which the limits above are checked.
READ_CHUNK = 64 * 1024
_FEED_CHUNK = 1024 * 1024
_ALLOWED_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


def open_ooxml(path: Path, main_part: str, what: str) -> zipfile.ZipFile:
    """Open a zip-packaged office file (DOCX, HWPX, ...), or raise LoadError saying why it is
    not one. Checks the signature, that ``main_part`` is present and that the declared sizes
    add up to at most :data:`MAX_UNPACKED_BYTES`; :func:`read_member` holds members to them."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise LoadError(path, f"cannot read file: {exc.strerror or exc}") from exc
    if head == OLE_MAGIC:
        raise LoadError(
            path,
            f"password-protected {what} (or an old binary file renamed): remove the password "
            "or save it again in the current format",
        )
    if not head.startswith(b"PK"):
        raise LoadError(path, f"not a {what} file (no zip signature): damaged or misnamed")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise LoadError(path, f"damaged {what} (bad zip archive: {one_line(exc)})") from exc
    if main_part not in set(archive.namelist()):
        archive.close()
        raise LoadError(path, f"not a {what} file: zip archive without {main_part}")
    unpacked = sum(info.file_size for info in archive.infolist())
    if unpacked > MAX_UNPACKED_BYTES:
        archive.close()
        raise LoadError(
            path,
            f"{what} unpacks to {_mib(unpacked)} (limit {_mib(MAX_UNPACKED_BYTES)}): "
            "refusing a possible zip bomb",
        )
    return archive


def read_member(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """The bytes of member ``name``, read in chunks and refused (LoadError) as soon as more than
    its declared size or ``limit`` bytes have come out, or it inflates more than
    :data:`MAX_INFLATE_RATIO`:1. Errors name the archive's file and the member."""
    path = Path(archive.filename or "<zip>")
    try:
        info = archive.getinfo(name)
    except KeyError as exc:
        raise LoadError(path, f"zip archive without {name}") from exc
    out = bytearray()
    for chunk in _chunks(archive, info, limit):
        out += chunk
    return bytes(out)


def check_members(archive: zipfile.ZipFile, limit: int = MAX_UNPACKED_BYTES) -> None:
    """Stream every member through :func:`read_member`'s checks without keeping it, so that a
    library reading the archive afterwards (python-pptx, openpyxl, ...) gets no more out of a
    member than its directory declares: :func:`open_ooxml` has bounded those sizes' sum."""
    for info in archive.infolist():
        if not info.is_dir():
            for _ in _chunks(archive, info, limit):
                pass


def _chunks(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> Iterator[bytes]:
    path, name = Path(archive.filename or "<zip>"), info.filename
    if info.compress_type not in _ALLOWED_METHODS:
        raise LoadError(
            path, f"{name} uses zip compression method {info.compress_type}: only deflate is read"
        )
    if info.file_size > limit:
        raise LoadError(path, f"{name} unpacks to {_mib(info.file_size)} (limit {_mib(limit)})")
    # zipfile stops its output at the declared size (and then checks the CRC). Declaring one
    # read more lets what lies past the declaration come out, which is how an under-stated
    # size shows: the read that crosses the declared size cannot reach this ceiling.
    ceiling = copy.copy(info)
    ceiling.file_size = info.file_size + READ_CHUNK + 1
    ratio_cap = max(INFLATE_RATIO_GRACE_BYTES, MAX_INFLATE_RATIO * info.compress_size)
    total = 0
    try:
        with archive.open(ceiling) as fh:
            while chunk := fh.read(READ_CHUNK):
                total += len(chunk)
                if total > info.file_size:
                    raise LoadError(
                        path,
                        f"{name} is larger than its declared size ({_mib(info.file_size)}): "
                        "a damaged or hostile file",
                    )
                if total > ratio_cap:
                    raise LoadError(
                        path,
                        f"{name} inflates more than {MAX_INFLATE_RATIO}:1 "
                        f"({_mib(info.compress_size)} compressed): refusing a possible zip bomb",
                    )
                yield chunk
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise LoadError(path, f"damaged zip member {name} ({one_line(exc)})") from exc
    except RuntimeError as exc:  # zipfile: "File ... is encrypted, password required"
        raise LoadError(path, f"encrypted zip member {name}: remove the password") from exc


def parse_xml(
    data: bytes,
    path: Path,
    what: str,
    max_elements: int,
    *,
    lookup: etree.ElementClassLookup | None = None,
) -> Any:
    """Parse one XML part with a hardened parser; returns the root element.

    ``what`` names the part in errors ("DOCX part word/document.xml"). Raises LoadError when
    the XML is not well-formed, declares a DTD, or has more than ``max_elements`` elements
    (counted while parsing, so the cap bounds the tree that gets built). ``lookup`` sets the
    element classes (e.g. python-docx's) the tree is built from.
    """
    parser = etree.XMLPullParser(
        events=("start",),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        remove_comments=True,
        remove_pis=True,
        huge_tree=False,
    )
    if lookup is not None:
        parser.set_element_class_lookup(lookup)
    count = 0
    try:
        for at in range(0, len(data), _FEED_CHUNK):
            parser.feed(data[at : at + _FEED_CHUNK])
            for _ in parser.read_events():
                count += 1
            if count > max_elements:
                raise LoadError(path, f"{what} has more than {max_elements:,} XML elements")
        root = parser.close()
    except etree.XMLSyntaxError as exc:
        raise LoadError(path, f"damaged {what}: not well-formed XML ({one_line(exc, 80)})") from exc
    if root.getroottree().docinfo.doctype:
        raise LoadError(path, f"{what} declares a DTD (entity declarations are refused)")
    return root
