"""Documents: list, one with its chunks, a PDF page as PNG, delete, and upload.

Deletes and uploads are write jobs (polisum.serve.jobs): the reply is 202 with the job, which
``GET /v1/jobs/{id}`` follows. A delete usually finishes at once, so the reply waits for it a
moment and then already shows ``done``.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from polisum.index.records import DocumentRecord
from polisum.serve.deps import AdminCaller, ReadCaller, ServeState, StateDep
from polisum.serve.jobs import delete_work, is_upload, source_path, staging_dir, upload_work
from polisum.serve.models import (
    ChunkInfo,
    DocumentDetail,
    DocumentInfo,
    DocumentList,
    JobAccepted,
)
from polisum.serve.pages import PageError, render_page
from polisum.serve.problems import ProblemError, problem_doc
from polisum.serve.routers.jobs import job_model
from polisum.serve.uploads import UPLOAD_FIELD, MultipartUpload, UploadError

router = APIRouter(tags=["documents"])

DELETE_WAIT_S = 2.0
MAX_PAGE = 1_000_000
# SQLite integers are 64-bit: a larger id is not a document (and must not reach the driver).
DocId = Annotated[int, Path(ge=1, le=2**63 - 1)]
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [UPLOAD_FIELD],
                    "properties": {
                        UPLOAD_FIELD: {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                        }
                    },
                }
            }
        },
    }
}


def document_info(state: ServeState, d: DocumentRecord) -> DocumentInfo:
    return DocumentInfo(
        **d.to_dict(),
        uploaded=is_upload(state.index, d.source, state.uploads),
        file_type=FilePath(d.source).suffix.lower(),
    )


def get_document(state: ServeState, doc_id: int) -> DocumentRecord:
    with state.index.store.read() as view:
        doc = view.document(doc_id)
    if doc is None:
        raise ProblemError(404, f"no document with id {doc_id} (GET /v1/documents lists them)")
    return doc


@router.get("/documents", response_model=DocumentList)
def list_documents(state: StateDep, who: ReadCaller) -> DocumentList:
    """Every document: status, chunk count, and why it failed if it did."""
    with state.index.store.read() as view:
        generation = view.generation
        docs = view.documents()
    return DocumentList(generation=generation, documents=[document_info(state, d) for d in docs])


@router.get("/documents/{doc_id}", response_model=DocumentDetail)
def get_document_detail(
    doc_id: DocId,
    state: StateDep,
    who: ReadCaller,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> DocumentDetail:
    """A document and its chunks (with summaries) in reading order, a page at a time."""
    with state.index.store.read() as view:
        doc = view.document(doc_id)
        chunks = view.document_chunks(doc_id) if doc is not None else []
    if doc is None:
        raise ProblemError(404, f"no document with id {doc_id} (GET /v1/documents lists them)")
    part = chunks[offset : offset + limit]
    return DocumentDetail(
        document=document_info(state, doc),
        total=len(chunks),
        offset=offset,
        chunks=[ChunkInfo(**{k: c[k] for k in ChunkInfo.model_fields}) for c in part],
    )


@router.get(
    "/documents/{doc_id}/pages/{page}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "the page as PNG"}},
)
def page_png(
    doc_id: DocId,
    page: Annotated[int, Path(ge=1, le=MAX_PAGE)],
    state: StateDep,
    who: ReadCaller,
    width: Annotated[int, Query(ge=64, le=4096)] = 1000,
) -> Response:
    """A page of a PDF document as PNG (for citation previews)."""
    if width > state.limits.max_page_width:
        raise ProblemError(422, f"width must be at most {state.limits.max_page_width}")
    doc = get_document(state, doc_id)
    if not doc.source.lower().endswith(".pdf"):
        raise ProblemError(404, f"{doc.source} is not a PDF: only PDF pages are rendered")
    path = source_path(state.index, doc.source)
    try:
        st = path.stat()
    except OSError:
        raise ProblemError(404, f"{doc.source}: the file is no longer there") from None
    if (st.st_size, st.st_mtime_ns) != (doc.size, doc.mtime_ns):
        raise ProblemError(
            409, f"{doc.source} changed since it was indexed; ingest it again to preview it"
        )
    try:
        png = render_page(
            str(path), doc.content_hash or "", page, width, state.limits.max_page_pixels
        )
    except PageError as exc:
        raise ProblemError(exc.status, f"{doc.source}: {exc}") from None
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})


@router.delete("/documents/{doc_id}", status_code=202, response_model=JobAccepted)
def delete_document(doc_id: DocId, state: StateDep, who: AdminCaller) -> JobAccepted:
    """Remove a document from the index (and, for an upload, its file), as a write job."""
    doc = get_document(state, doc_id)
    job = state.jobs.submit("delete", doc.source, delete_work(state.index, doc, state.uploads))
    job.done.wait(DELETE_WAIT_S)
    return JobAccepted(job=job_model(state, job))


@router.post(
    "/documents",
    status_code=202,
    response_model=JobAccepted,
    openapi_extra=UPLOAD_BODY,
    responses={413: problem_doc("too large"), 415: problem_doc("not a file type polisum reads")},
)
async def upload_documents(request: Request, state: StateDep, who: AdminCaller) -> JobAccepted:
    """Upload one or more files (multipart field ``files``): they are saved under the index's
    uploads folder and ingested by a job. Sizes are checked while the bytes arrive."""
    limits = state.limits
    _, queued = state.jobs.state()
    if queued >= limits.max_queued_jobs:  # refuse before reading megabytes
        raise ProblemError(429, f"{queued} writes are already waiting; try again later")
    staging = staging_dir(state.uploads)
    try:
        upload = MultipartUpload(
            request.headers.get("content-type", ""),
            staging,
            extensions=state.extensions,
            max_file=limits.max_upload_bytes,
            max_total=limits.max_upload_total_bytes,
            max_files=limits.max_files_per_upload,
        )
    except UploadError as exc:
        raise ProblemError(exc.status, str(exc)) from None
    try:
        async for chunk in request.stream():
            upload.feed(chunk)
        staged = upload.finish()
        names = ", ".join(f.name for f in staged)
        job = state.jobs.submit(
            "upload",
            names,
            upload_work(state.index, state.uploads, staging, staged),
            files=[{"name": f.name, "source": None, "status": "pending"} for f in staged],
        )
    except UploadError as exc:
        await run_in_threadpool(upload.discard)
        raise ProblemError(exc.status, str(exc)) from None
    except BaseException:
        await run_in_threadpool(upload.discard)
        raise
    return JobAccepted(job=job_model(state, job))
