"""``GET /v1/health`` (liveness, no key) and ``GET /v1/status`` (``polisum status --json``)."""

from __future__ import annotations

from fastapi import APIRouter

from polisum import __version__
from polisum.serve.deps import ReadCaller, StateDep
from polisum.serve.models import Health, ServiceInfo, Status, WriterState
from polisum.serve.routers.documents import document_info

router = APIRouter(tags=["system"])


@router.get("/health", response_model=Health)
def health(state: StateDep) -> Health:
    """The server is up. Needs no key; says whether the other endpoints do."""
    return Health(version=__version__, auth=state.keys.required)


@router.get("/status", response_model=Status)
def status(state: StateDep, who: ReadCaller) -> Status:
    """What is indexed, which components are in effect, what failed, and the service's state."""
    info = state.index.info()
    docs = state.index.documents()
    running, queued = state.jobs.state()
    images_reason = state.images.unavailable()
    gen = state.generator
    return Status(
        **{**info, "documents": [document_info(state, d) for d in docs]},
        service=ServiceInfo(
            version=__version__,
            auth=state.keys.required,
            role=who.role,
            generator=getattr(gen, "name", None) if gen is not None else None,
            images=images_reason is None,
            images_reason=images_reason,
            writer=WriterState(running=running, queued=queued),
            limits=state.limits.model_dump(),
        ),
    )
