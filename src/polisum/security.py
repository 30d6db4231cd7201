"""Keeping secrets out of what polisum stores and prints."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameters that carry credentials in the URLs of common servers and proxies.
_SECRET_PARAMS = re.compile(r"(key|token|secret|password|passwd|auth|signature|sig)", re.I)


def redact_url(url: str | None) -> str | None:
    """``url`` without ``user:password@`` and without the values of secret-looking query
    parameters: what may be stored in an index, logged or shown."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    if ":" in (parts.hostname or "") and not netloc.startswith("["):  # IPv6 literal
        netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
    query = urlencode(
        [(k, "***" if _SECRET_PARAMS.search(k) else v) for k, v in parse_qsl(parts.query)],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
