"""Any sentence-transformers model, by hub id or local path (weights load from the hub or disk)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from polisum.embed import EmbedderError, normalise


class SentenceTransformerEmbedder:
    """Uses the model's own prompts when it defines "query"/"document" (e5, bge, ...);
    remote code stays off unless the caller opts in."""

    def __init__(
        self,
        model: str,
        device: str | None = None,
        batch_size: int = 32,
        trust_remote_code: bool = False,
    ) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbedderError(
                "sentence-transformers is not installed: pip install 'polisum[st]' "
                "(install torch==2.13.0 or another CPU/GPU build first)"
            ) from exc
        try:
            self._model = SentenceTransformer(
                model, device=device, trust_remote_code=trust_remote_code
            )
        except Exception as exc:
            raise EmbedderError(
                f"cannot load sentence-transformers model '{model}': {exc}"
            ) from exc
        get_dim = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        self.dim = int(get_dim())
        self.batch_size = batch_size
        self.name = f"st:{Path(model).resolve() if Path(model).exists() else model}"
        self.pooling = _pooling(self._model)
        prompts = getattr(self._model, "prompts", {}) or {}
        self._query_prompt = "query" if "query" in prompts else None
        self._doc_prompt = next((p for p in ("document", "passage") if p in prompts), None)

    def _encode(self, texts: list[str], prompt_name: str | None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            texts,
            batch_size=self.batch_size,
            prompt_name=prompt_name,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return normalise(vectors)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self._doc_prompt)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self._query_prompt)


def _pooling(model) -> str:
    """The pooling module's mode ("mean", "cls", ...), or "unknown" when a module other than
    the transformer, the pooling and a normalisation follows (a Dense layer with its tanh
    would make a paragraph vector no longer a function of its parts' mean)."""
    known = {"Transformer", "Pooling", "Normalize"}
    pooling = [m for m in model if type(m).__name__ == "Pooling"]
    if len(pooling) != 1 or any(type(m).__name__ not in known for m in model):
        return "unknown"
    mode = getattr(pooling[0], "pooling_mode", None)  # sentence-transformers >= 6
    if mode is None:
        mode = pooling[0].get_pooling_mode_str()
    return mode if isinstance(mode, str) else "+".join(mode)  # several modes: concatenated
