"""Errors raised by imagegen; messages name the model/file and say what to provide."""

from __future__ import annotations


class ImageGenError(RuntimeError):
    """A model, file or option could not be used; the message says which and why."""
