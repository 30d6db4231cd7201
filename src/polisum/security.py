"""Keeping secrets out of what polisum prints, logs and stores.

- :func:`redact_url` — a URL without ``user:password@`` and with secret query values masked,
  for names, cache keys, status output and error messages.
- :func:`redact` — free text (an exception message, a server's error body) with every URL in it
  redacted and the given secrets (API keys) masked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import overload
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

MASK = "***"
# Query parameters that carry credentials, matched on the lower-cased name without separators
# (api_key, api-key, apiKey, AccessToken, X-Amz-Signature, client_secret, sig, ...). Masking a
# parameter that was not secret costs nothing; printing one that was costs the key.
_SECRET_PARTS = ("token", "secret", "passw", "apikey", "signature", "credential", "session", "auth")
_SECRET_NAMES = frozenset(["key", "sig", "pwd", "pass", "code", "jwt"])
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s\"'<>]+")
_USERINFO = re.compile(r"(//)[^/?#@\s]*@")


@overload
def redact_url(url: str) -> str: ...
@overload
def redact_url(url: None) -> None: ...
def redact_url(url: str | None) -> str | None:
    """``url`` without credentials: ``user:password@`` removed, secret query values masked
    (None and "" pass through, for optional settings).

    >>> redact_url("https://bob:hunter2@llm.example/v1?api_key=sk-1&x=2")
    'https://llm.example/v1?api_key=***&x=2'
    """
    if not url:
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # unparseable (a bad port, an open IPv6 bracket): drop what may be userinfo
        return _USERINFO.sub(r"\1", url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"[{host}]" if ":" in host else host
        if port is not None:
            netloc += f":{port}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_is_secret(name) for name, _ in pairs):
            query = "&".join(
                f"{quote(name, safe='')}={MASK if _is_secret(name) else quote(value)}"
                for name, value in pairs
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every URL in it passed through :func:`redact_url` and each of ``secrets``
    replaced by ``***`` (secrets shorter than 4 characters are ignored: masking them would
    garble the text and they protect nothing)."""
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _is_secret(name: str) -> bool:
    plain = re.sub(r"[^a-z]", "", name.lower())
    return plain in _SECRET_NAMES or plain.endswith("key") or any(p in plain for p in _SECRET_PARTS)
