"""``POST /v1/search``: the hits of ``polisum query --json``, with filters and ``k``."""

from __future__ import annotations

from fastapi import APIRouter

from polisum.index.backend import SearchFilter
from polisum.serve.deps import ReadCaller, ServeState, StateDep, check_k, check_text
from polisum.serve.models import HitModel, SearchFilters, SearchRequest, SearchResponse
from polisum.types import Hit

router = APIRouter(tags=["search"])


@router.post("/search", response_model=SearchResponse)
def search(body: SearchRequest, state: StateDep, who: ReadCaller) -> SearchResponse:
    """The k best paragraphs for the query (hybrid dense + summary + BM25), best first."""
    check_text("query", body.query, state.limits)
    check_k(body.k, state.limits)
    hits = state.index.search(body.query, k=body.k, where=search_filter(body.filters))
    return SearchResponse(query=body.query, hits=hit_models(state, hits))


def search_filter(filters: SearchFilters | None) -> SearchFilter | None:
    if filters is None:
        return None
    where = SearchFilter(filters.source_prefix or None, tuple(filters.file_types))
    return where or None


def hit_models(state: ServeState, hits: list[Hit]) -> list[HitModel]:
    ids = state.source_ids.get()
    return [HitModel.of(h, ids.get(h.source)) for h in hits]
