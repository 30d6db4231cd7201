"""The web app at ``/``: one HTML page and its script and style, served from the package.

The page is static and public (it holds no data); everything it shows comes from ``/v1`` with
the caller's key. ``polisum.serve.app.create_app`` includes :data:`router`.

The files are served by explicit routes rather than Starlette's ``StaticFiles`` because (1) a
``Mount`` on an ``APIRouter`` is dropped by ``include_router``, (2) content types must not
depend on the host's ``mimetypes`` table (a module script served as ``text/plain`` is refused),
and (3) only the files shipped in ``static/`` may ever be served, with an ETag and a strict
Content-Security-Policy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from fastapi import APIRouter, HTTPException, Request, Response

__all__ = ["CONTENT_SECURITY_POLICY", "router"]

# No inline script or style, nothing from another origin. Page previews are fetched with the
# key and shown as blob: URLs (an <img src> cannot send an Authorization header).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


@cache
def assets() -> dict[str, Asset]:
    """Every servable file of ``static/`` by name, read once (the bundle is a few KB)."""
    found: dict[str, Asset] = {}
    for entry in resources.files("polisum.serve").joinpath("static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if not entry.is_file() or suffix not in _TYPES:
            continue
        body = entry.read_bytes()
        etag = '"' + hashlib.blake2b(body, digest_size=8).hexdigest() + '"'
        found[entry.name] = Asset(body, _TYPES[suffix], etag)
    return found


def _serve(request: Request, asset: Asset) -> Response:
    # Revalidate every time (cheap: a 304 on an unchanged ETag), so an upgraded polisum never
    # runs a stale script against a newer API.
    headers = {"ETag": asset.etag, "Cache-Control": "no-cache", **_SECURITY_HEADERS}
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@router.api_route("/", methods=["GET", "HEAD"])
def page(request: Request) -> Response:
    """The single page: Search, Ask and Documents."""
    return _serve(request, assets()["index.html"])


@router.api_route("/static/{name}", methods=["GET", "HEAD"])
def static_file(name: str, request: Request) -> Response:
    """A file of the page's bundle; nothing else (no paths, no listing)."""
    asset = assets().get(name)
    if asset is None:
        raise HTTPException(status_code=404, detail=f"no static file {name!r}")
    return _serve(request, asset)
