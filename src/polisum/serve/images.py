"""The image model for ``POST /v1/images``: src/imagegen's Renderer, loaded once on first use.

Only a model the operator named (``--image-model`` or ``POLISUM_SD_MODEL``) is loaded: the
service never downloads SD3.5 on a client's request. Without one, or without the ``image``
extra, the endpoint answers 503 with the reason.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

from polisum.serve.problems import ProblemError


class Images:
    def __init__(self, model: str | None) -> None:
        self.model = model
        self._lock = threading.Lock()
        self._renderer: Any = None
        self._error: str | None = None

    def unavailable(self) -> str | None:
        """Why images cannot be made (None: they can, or the model has not been tried yet)."""
        if self.model is None:
            return (
                "no image model is configured: start polisum serve with --image-model PATH "
                "(a diffusers SD3.5 folder) or set POLISUM_SD_MODEL"
            )
        missing = [m for m in ("torch", "diffusers") if importlib.util.find_spec(m) is None]
        if missing:
            return f"image generation needs {' and '.join(missing)}: pip install 'polisum[image]'"
        return self._error

    def renderer(self) -> Any:
        reason = self.unavailable()
        if reason:
            raise ProblemError(503, reason)
        with self._lock:
            if self._renderer is None:
                from imagegen import ImageGenError, Renderer

                try:
                    self._renderer = Renderer(self.model)
                except ImageGenError as exc:
                    self._error = f"the image model cannot be loaded: {exc}"
                    raise ProblemError(503, self._error) from None
            return self._renderer
