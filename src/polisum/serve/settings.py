"""What `polisum serve` runs with: address, API keys, limits, allowed ingest roots, CORS.

The index's own settings (embedder, generator, k, ...) come from polisum.config exactly as for
the CLI (toml files < ``POLISUM_*`` env < flags). The service's settings here come from flags,
then ``POLISUM_*`` environment variables, then defaults — never from a project's
``polisum.toml``: that file travels with documents, and must not hand out API keys, widen the
ingest roots or open CORS. This module needs no FastAPI (the CLI reads it before checking that
the ``serve`` extra is installed).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from polisum.errors import PolisumError

MiB = 1024 * 1024
MIN_KEY_CHARS = 16
Role = Literal["read", "admin"]


class ServeSettingsError(PolisumError, ValueError):
    """A setting of the service is wrong (one line, what to change)."""


class Limits(BaseModel):
    """Bounds on what one request may ask for. Every one has a default a small team can run
    with; raise them with ``--limit NAME=VALUE`` or ``POLISUM_SERVE_<NAME>``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_body_bytes: int = Field(1 * MiB, ge=1024, description="JSON request bodies")
    max_upload_bytes: int = Field(64 * MiB, ge=1, description="one uploaded file")
    max_upload_total_bytes: int = Field(256 * MiB, ge=1, description="one upload request")
    max_files_per_upload: int = Field(32, ge=1)
    max_query_chars: int = Field(2000, ge=1, description="query, question, message, description")
    max_k: int = Field(50, ge=1)
    max_answer_tokens: int = Field(1024, ge=1)
    generation_timeout_s: float = Field(120.0, gt=0)
    max_concurrent_generations: int = Field(2, ge=1)
    generation_wait_s: float = Field(30.0, ge=0, description="wait for a generation slot")
    max_queued_jobs: int = Field(8, ge=1)
    max_chat_sessions: int = Field(1000, ge=1)
    chat_ttl_s: float = Field(3600.0, gt=0)
    chat_max_turns: int = Field(4, ge=0)
    chat_max_history_tokens: int = Field(1024, ge=0)
    max_history_turns: int = Field(20, ge=0, description="turns a stateless chat may send")
    max_history_chars: int = Field(8000, ge=1, description="one question or answer of history")
    max_page_width: int = Field(2000, ge=64, description="page PNG width in pixels")
    max_page_pixels: int = Field(8_000_000, ge=4096)
    max_images: int = Field(4, ge=1)
    max_image_steps: int = Field(60, ge=1)
    max_image_side: int = Field(1536, ge=64)

    @classmethod
    def parse(cls, values: Mapping[str, str], origin: str) -> dict[str, Any]:
        """``NAME=VALUE`` strings checked against the field names (values are validated by
        the model)."""
        unknown = sorted(set(values) - set(cls.model_fields))
        if unknown:
            raise ServeSettingsError(
                f"{origin}: unknown limit '{unknown[0]}' (known: {', '.join(cls.model_fields)})"
            )
        return dict(values)


@dataclass(frozen=True)
class ApiKeys:
    """The accepted keys, kept as SHA-256 digests (a key never sits in a log or a repr)."""

    read: frozenset[str] = frozenset()
    admin: frozenset[str] = frozenset()

    @property
    def required(self) -> bool:
        return bool(self.read or self.admin)

    @staticmethod
    def digest(key: str) -> str:
        return hashlib.sha256(key.encode("utf-8")).hexdigest()

    def role_of(self, key: str) -> Role | None:
        """The role of ``key`` (admin keys may also read), compared in constant time."""
        digest = self.digest(key)
        if any(hmac.compare_digest(digest, d) for d in self.admin):
            return "admin"
        if any(hmac.compare_digest(digest, d) for d in self.read):
            return "read"
        return None


class ServeSettings(BaseModel):
    """Everything `polisum serve` needs besides the index's own configuration."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: Path | None = None
    config_file: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # Generator flags, passed to polisum.config like the CLI's --generator/--adapter/--base-url.
    generator: str | None = None
    adapter: str | None = None
    base_url: str | None = None
    read_keys: tuple[SecretStr, ...] = ()
    admin_keys: tuple[SecretStr, ...] = ()
    allowed_ingest_roots: tuple[Path, ...] = ()
    cors_origins: tuple[str, ...] = ()
    image_model: str | None = None
    limits: Limits = Field(default_factory=Limits)

    @model_validator(mode="after")
    def _check(self) -> ServeSettings:
        for key in (*self.read_keys, *self.admin_keys):
            if len(key.get_secret_value()) < MIN_KEY_CHARS:
                raise ValueError(
                    f"an API key is shorter than {MIN_KEY_CHARS} characters; use a random one "
                    '(python -c "import secrets; print(secrets.token_urlsafe(32))")'
                )
        if not is_loopback(self.host) and not (self.read_keys or self.admin_keys):
            raise ValueError(
                f"refusing to serve on {self.host} without API keys: anyone who can reach it "
                "could read and delete the documents. Give keys (--keys-file FILE, or "
                "POLISUM_READ_KEYS / POLISUM_ADMIN_KEYS) or bind to 127.0.0.1"
            )
        return self

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ServeSettingsError(_describe(exc)) from None

    def api_keys(self) -> ApiKeys:
        return ApiKeys(
            read=frozenset(ApiKeys.digest(k.get_secret_value()) for k in self.read_keys),
            admin=frozenset(ApiKeys.digest(k.get_secret_value()) for k in self.admin_keys),
        )

    @classmethod
    def load(
        cls,
        *,
        keys_file: Path | None = None,
        limits: Mapping[str, str] | None = None,
        environ: Mapping[str, str] | None = None,
        **flags: Any,
    ) -> ServeSettings:
        """Flags (None: not given) over ``POLISUM_*`` environment variables over defaults.

        Environment: ``POLISUM_KEYS_FILE``, ``POLISUM_READ_KEYS`` and ``POLISUM_ADMIN_KEYS``
        (comma-separated), ``POLISUM_INGEST_ROOTS`` (os.pathsep-separated),
        ``POLISUM_CORS_ORIGINS`` (comma-separated), ``POLISUM_SD_MODEL``, and
        ``POLISUM_SERVE_<LIMIT>`` for each limit (``POLISUM_SERVE_MAX_K=20``)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {k: v for k, v in flags.items() if v not in (None, (), [])}
        read, admin = _split(env.get("POLISUM_READ_KEYS")), _split(env.get("POLISUM_ADMIN_KEYS"))
        if keys_file is None and env.get("POLISUM_KEYS_FILE"):
            keys_file = Path(env["POLISUM_KEYS_FILE"])
        if keys_file is not None:
            file_read, file_admin = read_keys_file(keys_file)
            read, admin = [*read, *file_read], [*admin, *file_admin]
        values.setdefault("read_keys", tuple(read))
        values.setdefault("admin_keys", tuple(admin))
        if "allowed_ingest_roots" not in values and env.get("POLISUM_INGEST_ROOTS"):
            values["allowed_ingest_roots"] = tuple(
                Path(p) for p in env["POLISUM_INGEST_ROOTS"].split(os.pathsep) if p
            )
        if "cors_origins" not in values and env.get("POLISUM_CORS_ORIGINS"):
            values["cors_origins"] = tuple(_split(env["POLISUM_CORS_ORIGINS"]))
        if "image_model" not in values and env.get("POLISUM_SD_MODEL"):
            values["image_model"] = env["POLISUM_SD_MODEL"]
        from_env = {
            name: env[f"POLISUM_SERVE_{name.upper()}"]
            for name in Limits.model_fields
            if env.get(f"POLISUM_SERVE_{name.upper()}")
        }
        merged = {**from_env, **Limits.parse(limits or {}, "--limit")}
        try:
            values["limits"] = Limits(**merged)
        except ValidationError as exc:
            raise ServeSettingsError(f"limits: {_describe(exc)}") from None
        return cls(**values)


def read_keys_file(path: Path) -> tuple[list[str], list[str]]:
    """``read KEY`` / ``admin KEY`` lines (``#`` comments, blank lines ignored)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ServeSettingsError(f"{path}: cannot read the keys file ({exc})") from None
    read: list[str] = []
    admin: list[str] = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        role, _, key = line.partition(" ")
        key = key.strip()
        if role not in ("read", "admin") or not key or " " in key:
            # The line may hold a key: never echo it.
            raise ServeSettingsError(
                f"{path}:{number}: expected 'read KEY' or 'admin KEY' (one key per line)"
            )
        (read if role == "read" else admin).append(key)
    return read, admin


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost``; any other name counts as reachable from outside."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


def roots_of(paths: Iterable[Path]) -> tuple[Path, ...]:
    """Allowed ingest roots with symlinks resolved (a link cannot widen them later)."""
    return tuple(p.expanduser().resolve() for p in paths)
