"""Reaching Milvus: where the collection lives (:class:`MilvusSettings`), the connection,
and errors that say what to do. Credentials come from the environment only and never appear in
what polisum prints."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from polisum.errors import IndexError_
from polisum.security import redact, redact_url

if TYPE_CHECKING:
    from pymilvus import MilvusClient

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SCHEMES = ("http://", "https://", "tcp://", "unix:")
LITE_DEFAULT = "milvus.db"


class MilvusError(IndexError_):
    """Milvus cannot be reached, refuses a request, or holds something else than expected."""


# -- settings -------------------------------------------------------------------------------------
def is_server_uri(uri: str) -> bool:
    return uri.lower().startswith(_SCHEMES)


def default_collection(folder: Path) -> str:
    """``polisum_<project>``: the folder that holds the index (or the index folder itself when
    it is not called .polisum), made a valid collection name."""
    folder = folder.resolve()
    name = folder.parent.name if folder.name == ".polisum" else folder.name
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:48]
    return f"polisum_{slug or hashlib.sha1(name.encode()).hexdigest()[:10]}"


@dataclass(frozen=True)
class MilvusSettings:
    """Where the collection lives. Credentials come from the environment only
    (``POLISUM_MILVUS_TOKEN``, or ``POLISUM_MILVUS_USER`` + ``POLISUM_MILVUS_PASSWORD``) and are
    never shown: :attr:`display` is the URI without them."""

    uri: str = field(repr=False)  # a server URL, or the absolute path of a Milvus Lite .db file
    collection: str
    token: str = field(default="", repr=False)
    db_name: str = ""
    timeout: float = 30.0

    @classmethod
    def resolve(cls, uri: str | None, collection: str | None, folder: Path) -> MilvusSettings:
        """``uri``: a server URL, or a Milvus Lite file (relative: to the index folder, where
        the default ``milvus.db`` lives)."""
        uri = uri or LITE_DEFAULT
        if not is_server_uri(uri):
            path = Path(uri).expanduser()
            uri = str((path if path.is_absolute() else folder / path).resolve())
            if not uri.endswith(".db"):
                raise MilvusError(
                    f"milvus_uri {uri}: a Milvus Lite file must end in .db (or give a server "
                    "URL such as http://host:19530)"
                )
        name = collection or default_collection(folder)
        if not _NAME.match(name) or len(name) > 200:
            raise MilvusError(
                f"milvus_collection '{name}': letters, digits and underscores only, starting "
                "with a letter or an underscore, at most 200 characters"
            )
        user, password = (
            os.environ.get("POLISUM_MILVUS_USER"),
            os.environ.get("POLISUM_MILVUS_PASSWORD"),
        )
        token = os.environ.get("POLISUM_MILVUS_TOKEN") or (
            f"{user}:{password}" if user and password else ""
        )
        return cls(uri, name, token, os.environ.get("POLISUM_MILVUS_DB", ""))

    def __repr__(self) -> str:
        return f"MilvusSettings(uri={self.display!r}, collection={self.collection!r})"

    @property
    def lite(self) -> bool:
        return not is_server_uri(self.uri)

    @property
    def display(self) -> str:
        return self.uri if self.lite else redact_url(self.uri)

    def recorded_uri(self, folder: Path) -> str:
        """What the index records: a Lite file inside the index folder relative to it (the
        folder may move), a server URL without credentials."""
        if self.lite:
            with contextlib.suppress(ValueError):
                return str(Path(self.uri).relative_to(folder.resolve()))
        return self.display

    def clean(self, text: str) -> str:
        """An error message with the URI's credentials and the token masked."""
        return redact(text, [self.token, *self.token.split(":")])


# -- connection --------------------------------------------------------------------------------
# pymilvus pings every 10 s even while idle; a gRPC server that keeps grpc's default policy
# (Milvus Lite's) answers an idle client's second ping with GOAWAY "too_many_pings", and an
# ingest that spends minutes parsing between two requests then finds its connection gone.
# Pings only during calls, and not more often than such a server allows.
_GRPC_OPTIONS = {"grpc.keepalive_time_ms": 300_000, "grpc.keepalive_permit_without_calls": 0}
_lite_users: dict[str, int] = {}
_lite_lock = threading.Lock()


def connect(settings: MilvusSettings) -> MilvusClient:
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:
        raise MilvusError(
            "backend 'milvus' needs pymilvus (and milvus-lite for a local .db file): "
            "pip install 'polisum[milvus]'"
        ) from exc
    if settings.lite:
        Path(settings.uri).parent.mkdir(parents=True, exist_ok=True)
    try:
        with _quiet_lite():
            client = MilvusClient(
                uri=settings.uri,
                token=settings.token,
                db_name=settings.db_name,
                timeout=settings.timeout,
                grpc_options=_GRPC_OPTIONS,
            )
    except Exception as exc:
        raise _unreachable(settings, exc) from None
    if settings.lite:
        with _lite_lock:
            _lite_users[settings.uri] = _lite_users.get(settings.uri, 0) + 1
    return client


def disconnect(settings: MilvusSettings, client: MilvusClient) -> None:
    """Close the client; the last user of a Milvus Lite file in this process stops its
    embedded server, so that another process can open the file."""
    with contextlib.suppress(Exception):
        client.close()
    if not settings.lite:
        return
    with _lite_lock:
        left = _lite_users.get(settings.uri, 1) - 1
        _lite_users[settings.uri] = left
        if left > 0:
            return
        del _lite_users[settings.uri]
    with contextlib.suppress(ImportError):
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(settings.uri)


@contextlib.contextmanager
def _quiet_lite() -> Iterator[None]:
    """milvus-lite logs a traceback when it cannot open a file; the error we raise says why."""
    logger = logging.getLogger("milvus_lite.server_manager")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _lite_file_locked(path: str) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows: cannot tell
        return False
    lock = Path(path) / "LOCK"
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _unreachable(settings: MilvusSettings, exc: Exception) -> MilvusError:
    if settings.lite and _lite_file_locked(settings.uri):
        return MilvusError(
            f"Milvus Lite file {settings.uri} is open in another process (Milvus Lite serves "
            "one process per file). To share it, run `milvus-lite server --data-dir "
            f"{settings.uri} --host 127.0.0.1 --port 19530` and use "
            "milvus_uri = http://127.0.0.1:19530"
        )
    reason = settings.clean(getattr(exc, "message", None) or str(exc))
    return MilvusError(
        f"cannot reach Milvus at {settings.display} ({reason}); check milvus_uri "
        "(--milvus-uri, POLISUM_MILVUS_URI) and that the server is running"
    )
