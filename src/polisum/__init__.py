"""polisum: a folder of Korean and English documents → a searchable, summarized knowledge base."""

from polisum.api import EmbedderMismatchError, Index, IndexBusyError, IndexNotFoundError
from polisum.chat import Answer, Answerer
from polisum.config import Config, FusionWeights
from polisum.ingest import IngestReport
from polisum.loaders import LoadError
from polisum.types import Chunk, Document, Element, Hit

__version__ = "0.1.0"

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
    "__version__",
]
