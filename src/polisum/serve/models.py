"""Request and response models of the REST API (the shapes API.md describes).

Responses are built from the library's own objects (``Hit``, ``Answer``, ``DocumentRecord``,
``IngestReport``) so every surface shows the same facts; what the service adds is
``document_id`` (for page previews) and JSON-safe scores (JSON has no -inf: a retriever that
did not score a chunk gives ``null``).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from polisum.types import Hit

# Upper bounds the schema states; the configured limits (polisum.serve.settings.Limits), which
# may be lower, are checked by the routers.
SCHEMA_MAX_TEXT = 100_000
SCHEMA_MAX_K = 1000
SCHEMA_MAX_TOKENS = 32_768


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


# -- errors ---------------------------------------------------------------------------------------
class FieldError(BaseModel):
    loc: list[str]
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldError] | None = None


# -- system ---------------------------------------------------------------------------------------
class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    auth: bool = Field(description="whether API keys are required")


class Component(BaseModel):
    spec: str | None
    origin: str
    adapter: str | None = None
    endpoint: str | None = None


class WriterState(BaseModel):
    running: str | None = Field(description="id of the job writing now")
    queued: int


class ServiceInfo(BaseModel):
    version: str
    auth: bool
    role: Literal["read", "admin"]
    generator: str | None = Field(description="the answer model; null: extractive answers")
    images: bool
    images_reason: str | None = None
    writer: WriterState
    limits: dict[str, int | float]


# -- documents ------------------------------------------------------------------------------------
class DocumentInfo(BaseModel):
    id: int
    source: str
    status: Literal["ok", "failed"]
    error: str | None
    chunks: int
    content_hash: str | None
    size: int | None
    metadata: dict[str, Any]
    ingested_at: float
    uploaded: bool = Field(description="the file is in the index's uploads folder")
    file_type: str = Field(description='lower-case extension, e.g. ".pdf"')


class Status(BaseModel):
    """What ``polisum status --json`` says, plus the service's state."""

    index: str
    embedder: str | None
    summarizer: str | None
    components: dict[str, Component]
    summaries: dict[str, Any]
    generation: int
    documents: list[DocumentInfo]
    failed: int
    chunks: int
    service: ServiceInfo


class DocumentList(BaseModel):
    generation: int
    documents: list[DocumentInfo]


class ChunkInfo(BaseModel):
    chunk_id: str
    section: str | None
    page: int | None
    text: str
    summary: str | None
    start: int
    end: int


class DocumentDetail(BaseModel):
    document: DocumentInfo
    total: int = Field(description="chunks in the document")
    offset: int
    chunks: list[ChunkInfo]


# -- search ---------------------------------------------------------------------------------------
class SearchFilters(_Request):
    source_prefix: str | None = Field(
        None, max_length=4096, description="only sources starting with this (a folder)"
    )
    file_types: list[str] = Field(
        default_factory=list, max_length=32, description='extensions, e.g. [".pdf", ".hwp"]'
    )

    @field_validator("file_types")
    @classmethod
    def _extensions(cls, value: list[str]) -> list[str]:
        out = []
        for ext in value:
            ext = ext.strip().lower()
            if not ext or len(ext) > 16:
                raise ValueError("a file type is an extension such as .pdf")
            out.append(ext if ext.startswith(".") else "." + ext)
        return out


class SearchRequest(_Request):
    query: str = Field(min_length=1, max_length=SCHEMA_MAX_TEXT)
    k: int | None = Field(None, ge=1, le=SCHEMA_MAX_K, description="results (default: config k)")
    filters: SearchFilters | None = None

    _blank = field_validator("query")(_not_blank)


class HitModel(BaseModel):
    score: float | None
    source: str
    page: int | None
    section: str | None
    text: str
    summary: str | None
    chunk_id: str
    start: int
    end: int
    scores: dict[str, float | None] = Field(description="per retriever; null: not scored")
    document_id: int | None

    @classmethod
    def of(cls, hit: Hit, document_id: int | None) -> HitModel:
        data = hit.to_dict()
        data["score"] = _finite(hit.score)
        data["scores"] = {k: _finite(v) for k, v in hit.scores.items()}
        return cls(**data, document_id=document_id)


class SearchResponse(BaseModel):
    query: str
    hits: list[HitModel]


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


# -- answers --------------------------------------------------------------------------------------
class AnswerRequest(_Request):
    question: str = Field(min_length=1, max_length=SCHEMA_MAX_TEXT)
    k: int | None = Field(None, ge=1, le=SCHEMA_MAX_K, description="passages retrieved")
    max_tokens: int | None = Field(None, ge=1, le=SCHEMA_MAX_TOKENS, description="answer tokens")
    stream: bool = Field(False, description="Server-Sent Events (or Accept: text/event-stream)")

    _blank = field_validator("question")(_not_blank)


class HistoryTurn(_Request):
    question: str = Field(min_length=1, max_length=SCHEMA_MAX_TEXT)
    answer: str = Field(max_length=SCHEMA_MAX_TEXT)
    query: str | None = Field(
        None, max_length=SCHEMA_MAX_TEXT, description="what was searched (the answer's query)"
    )


class ChatRequest(_Request):
    message: str = Field(min_length=1, max_length=SCHEMA_MAX_TEXT)
    conversation_id: str | None = Field(
        None, max_length=128, description="continue a conversation kept by the server"
    )
    history: list[HistoryTurn] | None = Field(
        None, max_length=1000, description="or send the earlier turns (stateless)"
    )
    k: int | None = Field(None, ge=1, le=SCHEMA_MAX_K)
    max_tokens: int | None = Field(None, ge=1, le=SCHEMA_MAX_TOKENS)
    stream: bool = False

    _blank = field_validator("message")(_not_blank)


class CitationModel(BaseModel):
    number: int
    source: str
    page: int | None
    section: str | None
    chunk_id: str
    document_id: int | None


class PassageModel(HitModel):
    number: int


class AnswerResponse(BaseModel):
    question: str
    query: str
    text: str
    language: str
    refused: bool
    flags: list[str]
    citations: list[CitationModel]
    invalid_citations: list[int]
    passages: list[PassageModel]
    generator: str | None
    conversation_id: str | None = None


# -- images ---------------------------------------------------------------------------------------
class PromptRequest(_Request):
    description: str = Field(min_length=1, max_length=SCHEMA_MAX_TEXT)
    from_docs: bool = Field(False, description="ground the scene in retrieved passages")
    k: int = Field(3, ge=1, le=SCHEMA_MAX_K)

    _blank = field_validator("description")(_not_blank)


class PromptSource(BaseModel):
    source: str
    page: int | None
    chunk_id: str
    document_id: int | None


class PromptResponse(BaseModel):
    prompt: str
    negative_prompt: str
    aspect_ratio: str | None
    style: str | None
    sources: list[PromptSource] | None = None


class ImagesRequest(_Request):
    description: str | None = Field(
        None, min_length=1, max_length=SCHEMA_MAX_TEXT, description="a scene: a prompt is written"
    )
    prompt: str | None = Field(
        None, min_length=1, max_length=SCHEMA_MAX_TEXT, description="or an SD3.5 prompt as is"
    )
    negative_prompt: str | None = Field(None, max_length=SCHEMA_MAX_TEXT)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    steps: int = Field(28, ge=1, le=200)
    width: int | None = Field(None, ge=64, le=4096, multiple_of=16)
    height: int | None = Field(None, ge=64, le=4096, multiple_of=16)
    num_images: int = Field(1, ge=1, le=16)


class ImageModel(BaseModel):
    seed: int
    png_base64: str


class ImagesResponse(BaseModel):
    prompt: str
    negative_prompt: str | None
    model: str
    images: list[ImageModel]


# -- writes and jobs ------------------------------------------------------------------------------
class IngestRequest(_Request):
    path: str = Field(min_length=1, max_length=4096, description="a folder under an allowed root")
    prune: bool = Field(True, description="remove documents whose files left the folder")
    retry_failed: bool = False


class StageProgress(BaseModel):
    stage: str
    done: int
    total: int | None
    tokens: int
    elapsed: float


class JobFile(BaseModel):
    name: str
    source: str | None
    status: Literal["pending", "ok", "failed", "removed"]
    error: str | None = None
    document_id: int | None = None
    chunks: int | None = None


class JobModel(BaseModel):
    id: str
    kind: Literal["upload", "ingest", "delete"]
    state: Literal["queued", "running", "done", "failed"]
    position: int = Field(description="jobs ahead of it in the queue")
    created_at: float
    started_at: float | None
    finished_at: float | None
    target: str
    stages: list[StageProgress]
    report: dict[str, Any] | None = Field(description="IngestReport.to_dict() of the run")
    files: list[JobFile]
    error: str | None


class JobAccepted(BaseModel):
    job: JobModel


class JobList(BaseModel):
    jobs: list[JobModel]
