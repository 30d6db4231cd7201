"""polisum: a folder of Korean and English documents → a searchable, summarized knowledge base.

The names below are imported on first use (PEP 562), so ``import polisum.generate`` or the CLI's
``--help`` do not load the whole ingest stack (FAISS, Kiwi, the document parsers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from polisum._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "Answer": "polisum.chat",
    "Answerer": "polisum.chat",
    "Chunk": "polisum.types",
    "Config": "polisum.config",
    "Document": "polisum.types",
    "Element": "polisum.types",
    "EmbedderMismatchError": "polisum.errors",
    "FusionWeights": "polisum.config",
    "Hit": "polisum.types",
    "Index": "polisum.api",
    "IndexBusyError": "polisum.errors",
    "IndexNotFoundError": "polisum.errors",
    "IngestReport": "polisum.ingest",
    "LoadError": "polisum.loaders",
    "PolisumError": "polisum.errors",
}

__all__ = [
    "Answer",
    "Answerer",
    "Chunk",
    "Config",
    "Document",
    "Element",
    "EmbedderMismatchError",
    "FusionWeights",
    "Hit",
    "Index",
    "IndexBusyError",
    "IndexNotFoundError",
    "IngestReport",
    "LoadError",
    "PolisumError",
    "__version__",
]

if TYPE_CHECKING:
    from polisum.api import Index
    from polisum.chat import Answer, Answerer
    from polisum.config import Config, FusionWeights
    from polisum.errors import (
        EmbedderMismatchError,
        IndexBusyError,
        IndexNotFoundError,
        PolisumError,
    )
    from polisum.ingest import IngestReport
    from polisum.loaders import LoadError
    from polisum.types import Chunk, Document, Element, Hit


__getattr__ = lazy_exports(__name__, _EXPORTS)
