"""The FastAPI application: ``create_app(settings) -> FastAPI``.

The lifespan opens the Index once (created if missing, configured as the CLI would be), loads
the models before the first request, starts the writer thread, and closes it all at shutdown.
One process serves: the write queue and the conversations live in it (run uvicorn with one
worker; readers are threads).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from polisum import __version__
from polisum.api import Index
from polisum.chat import Answerer, ChatSession
from polisum.config import Config
from polisum.ingest.stages import ParseSettings
from polisum.serve import problems, web
from polisum.serve.chats import Conversations
from polisum.serve.deps import GenerationSlots, ServeState, SourceIds
from polisum.serve.images import Images
from polisum.serve.jobs import JobQueue, clean_staging
from polisum.serve.middleware import RequestContext
from polisum.serve.problems import problem_doc
from polisum.serve.routers import answer, documents, images, jobs, search, system
from polisum.serve.settings import ServeSettings
from polisum.text import terms

log = logging.getLogger("polisum.serve")

API_PREFIX = "/v1"
UPLOAD_OVERHEAD = 1024 * 1024  # multipart boundaries and part headers around the files


def open_state(settings: ServeSettings, index: Index | None = None) -> ServeState:
    """Everything the routers share. ``index``: serve an Index the caller opened (and closes)."""
    owns = index is None
    if index is None:
        config = Config.load(
            index=settings.index,
            config_file=settings.config_file,
            generator=settings.generator,
            adapter=settings.adapter,
            base_url=settings.base_url,
        )
        for notice in config.notices:
            log.warning("%s", notice)
        index = Index.open(config=config, create=True)
    try:
        limits = settings.limits
        # Load models now: the first request should not pay for it, and a bad model setting
        # should stop the server at start, not fail every request.
        index.embedder  # noqa: B018
        index.components.reranker  # noqa: B018
        generator = index.components.generator
        # Load now what the first query or the first ingest would otherwise wait for: Kiwi's
        # model (its load holds the GIL for seconds, stalling every request; a search over an
        # empty index does not reach it), the embedder's first call, FAISS and the backend's
        # current generation.
        terms("준비 warm up")
        index.embedder.embed_queries(["warm up"])
        index.search("warm up", k=1)
        for choice in index.components.remote():
            log.info("sending text to %s", choice.describe())

        def make_session() -> ChatSession:
            return ChatSession(
                Answerer(index, generator, k=index.config.k),
                max_turns=limits.chat_max_turns,
                max_history_tokens=limits.chat_max_history_tokens,
            )

        return ServeState(
            settings=settings,
            index=index,
            keys=settings.api_keys(),
            jobs=JobQueue(limits.max_queued_jobs),  # replaced (and started) by each lifespan
            chats=Conversations(make_session, cap=limits.max_chat_sessions, ttl=limits.chat_ttl_s),
            slots=GenerationSlots(limits.max_concurrent_generations, limits.generation_wait_s),
            images=Images(settings.image_model),
            generator=generator,
            extensions=frozenset(ParseSettings.from_config(index.config).registry().extensions),
            source_ids=SourceIds(index),
            owns_index=owns,
        )
    except BaseException:
        if owns:
            index.close()
        raise


def _fastapi(**options: Any) -> FastAPI:
    """FastAPI whose /docs and /redoc load their scripts from this server (fastapi-offline
    vendors them), not from a CDN: the service often runs where there is no internet."""
    try:
        from fastapi_offline import FastAPIOffline
    except ImportError:  # installed without the serve extra's docs assets: CDN pages
        return FastAPI(**options)
    return FastAPIOffline(static_url="/docs-static", **options)


def create_app(
    settings: ServeSettings, *, index: Index | None = None, state: ServeState | None = None
) -> FastAPI:
    """The API under ``/v1`` and the web app at ``/``, over the index of ``settings``.

    ``index``: serve this open Index instead (the caller keeps and closes it). ``state``: one
    :func:`open_state` already made (the CLI does, to report a bad setting in one line before
    the server starts)."""

    ready: list[ServeState] = [state] if state is not None else []

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A lifespan may run more than once per app (test clients start one per session): a
        # state whose index was closed is not reused, and each run has its own writer thread.
        current = ready.pop() if ready else open_state(settings, index)
        current.jobs = JobQueue(settings.limits.max_queued_jobs)
        clean_staging(current.uploads)
        current.jobs.start()
        app.state.polisum = current
        log.info("polisum serve: index %s, %d keys", current.index.path,
                 len(current.keys.read) + len(current.keys.admin))  # fmt: skip
        try:
            yield
        finally:
            idle = current.jobs.close()
            if current.owns_index and idle:
                current.index.close()
            else:
                ready.append(current)  # the caller's index stays open: the state can serve again
                if not idle:
                    log.warning("a write job is still running at shutdown; the index is left "
                                "open (it stays consistent: each publish is atomic)")  # fmt: skip

    app = _fastapi(
        title="polisum",
        version=__version__,
        summary="Search, cited answers and document management over a polisum index.",
        lifespan=lifespan,
        responses={
            401: problem_doc("no key, or an unknown key"),
            403: problem_doc("the key may not do this"),
            422: problem_doc("invalid request"),
            "default": problem_doc("problem details (RFC 9457)"),
        },
    )
    problems.install(app)
    limits = settings.limits

    def body_limit(method: str, path: str) -> int:
        if method == "POST" and path == f"{API_PREFIX}/documents":
            return limits.max_upload_total_bytes + UPLOAD_OVERHEAD
        return limits.max_body_bytes

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(RequestContext, body_limit=body_limit)

    api = APIRouter(prefix=API_PREFIX)
    for module in (system, search, answer, documents, jobs, images):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(web.router)
    return app
