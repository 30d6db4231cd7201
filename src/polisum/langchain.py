"""LangChain adapter: use a polisum index as a ``BaseRetriever`` in any LangChain chain."""

from __future__ import annotations

from typing import Any

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document as LCDocument
    from langchain_core.retrievers import BaseRetriever
except ImportError as exc:  # pragma: no cover - depends on the optional extra
    raise ImportError(
        "the LangChain adapter needs langchain-core: pip install 'polisum[langchain]'"
    ) from exc

from pydantic import ConfigDict

from polisum.api import Index


class PolisumRetriever(BaseRetriever):
    """Hybrid polisum search as LangChain Documents; metadata carries source, page, section,
    summary, chunk id and scores."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: Index
    k: int = 5

    @classmethod
    def from_path(cls, path: str | None = None, k: int = 5, **settings: Any) -> PolisumRetriever:
        return cls(index=Index.open(path, create=False, **settings), k=k)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[LCDocument]:
        return [
            LCDocument(
                page_content=hit.text,
                metadata={
                    "source": hit.source,
                    "page": hit.page,
                    "section": hit.section,
                    "summary": hit.summary,
                    "chunk_id": hit.chunk_id,
                    "score": hit.score,
                    "scores": hit.scores,
                },
            )
            for hit in self.index.search(query, k=self.k)
        ]
