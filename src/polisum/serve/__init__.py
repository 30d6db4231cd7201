"""``polisum serve``: the REST API (``/v1``) and the web app (``/``) over one index.

``create_app(ServeSettings(...))`` builds the FastAPI application (``pip install
"polisum[serve]"``). Importing this package is cheap: FastAPI loads with ``create_app``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["ServeSettings", "create_app"]

if TYPE_CHECKING:
    from polisum.serve.app import create_app
    from polisum.serve.settings import ServeSettings


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from polisum.serve.app import create_app

        return create_app
    if name == "ServeSettings":
        from polisum.serve.settings import ServeSettings

        return ServeSettings
    raise AttributeError(name)
