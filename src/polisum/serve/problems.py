"""Errors as problem details (RFC 9457): ``application/problem+json`` with a sentence a person
can act on, the request id, and never a stack trace.

- :class:`ProblemError` — raise it anywhere in the service for a specific status and detail.
- PolisumError (the library's user-facing errors) keep their message; the status follows
  from the kind (busy index 409, no model 503, model server failure 502, ...).
- Validation errors list what is wrong (``errors``), without echoing the input back.
- Anything else is a 500 whose detail names the request id; the trace goes to the log only.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from polisum.errors import (
    DiskFullError,
    IndexBusyError,
    IndexDamagedError,
    IndexNotFoundError,
    PolisumError,
)
from polisum.serve.models import FieldError, Problem

log = logging.getLogger("polisum.serve")

PROBLEM_JSON = "application/problem+json"


class ProblemError(Exception):
    """An error with its HTTP status and a detail for the client."""

    def __init__(self, status: int, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


def problem_doc(description: str) -> dict[str, Any]:
    """An OpenAPI response entry for problem details (both media types a client may see)."""
    schema = {"$ref": "#/components/schemas/Problem"}
    return {
        "model": Problem,
        "description": description,
        "content": {PROBLEM_JSON: {"schema": schema}},
    }


def request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def problem(
    status: int,
    detail: str,
    *,
    instance: str | None = None,
    rid: str | None = None,
    errors: list[FieldError] | None = None,
) -> Problem:
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    return Problem(
        title=title, status=status, detail=detail, instance=instance, request_id=rid,
        errors=errors,
    )  # fmt: skip


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    errors: list[FieldError] | None = None,
) -> JSONResponse:
    body = problem(
        status, detail, instance=request.url.path, rid=request_id(request), errors=errors
    )
    return JSONResponse(
        body.model_dump(mode="json"), status_code=status, headers=headers, media_type=PROBLEM_JSON
    )


def status_of(exc: PolisumError) -> int:
    """The HTTP status of a library error (by its kind, most specific first)."""
    from polisum.chat.sdprompt import ModelRequiredError, SDPromptError
    from polisum.generate import GeneratorError

    table: list[tuple[type[Exception], int]] = [
        (IndexBusyError, 409),
        (IndexNotFoundError, 404),
        (DiskFullError, 507),
        (IndexDamagedError, 503),
        (ModelRequiredError, 503),
        (SDPromptError, 502),
        (GeneratorError, 502),
    ]
    for kind, status in table:
        if isinstance(exc, kind):
            return status
    return 400


def _validation_errors(exc: RequestValidationError) -> list[FieldError]:
    # The input is not echoed back: it may be a 1 MiB body or a secret.
    return [
        FieldError(loc=[str(p) for p in e.get("loc", ())], msg=str(e.get("msg", "")),
                   type=str(e.get("type", "")))
        for e in exc.errors()
    ]  # fmt: skip


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(request, exc.status, exc.detail, headers=exc.headers)

    @app.exception_handler(PolisumError)
    async def _polisum(request: Request, exc: PolisumError) -> JSONResponse:
        status = getattr(exc, "status", None) or status_of(exc)
        return problem_response(request, status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        first = errors[0] if errors else None
        where = ".".join(p for p in first.loc if p != "body") if first else ""
        detail = f"{where}: {first.msg}" if first and where else (first.msg if first else "")
        return problem_response(request, 422, detail or "invalid request", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such endpoint: {request.method} {request.url.path} (see /docs)"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path} (see /docs)"
        return problem_response(
            request, exc.status_code, detail, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        rid = request_id(request)
        log.error(
            "unexpected error on %s %s (request %s)",
            request.method, request.url.path, rid, exc_info=exc,
        )  # fmt: skip
        # This handler runs outside the middleware stack (Starlette's ServerErrorMiddleware),
        # so the request id header is set here.
        return problem_response(
            request,
            500,
            f"internal error; the server log has the details under request id {rid}",
            headers={"X-Request-ID": rid or ""},
        )
