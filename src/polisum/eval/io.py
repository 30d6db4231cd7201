"""Reading prediction and reference files: JSONL lines ``{"id": ..., "text": ...}``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polisum import jsonl
from polisum.eval.text import TextMetricError

__all__ = ["match_by_id", "read_jsonl", "read_texts"]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Objects of a JSONL file (polisum.jsonl), errors as TextMetricError."""
    try:
        return [row for _, row in jsonl.read_jsonl(path)]
    except jsonl.JsonlError as exc:
        raise TextMetricError(str(exc)) from None


def read_texts(path: Path, allow_multiple: bool = False) -> dict[str, str | list[str]]:
    """``id → text`` from a JSONL file. With ``allow_multiple`` (references), ``text`` may be a
    list of alternative references. Duplicate ids are an error: which one counts is ambiguous."""
    out: dict[str, str | list[str]] = {}
    for n, row in enumerate(read_jsonl(path), 1):
        if "id" not in row or "text" not in row:
            raise TextMetricError(
                f"{path}: record {n} needs 'id' and 'text' keys, has {sorted(row)}"
            )
        key, text = str(row["id"]), row["text"]
        if text is None:
            text = ""
        ok = isinstance(text, str) or (
            allow_multiple and isinstance(text, list) and all(isinstance(t, str) for t in text)
        )
        if not ok:
            kind = "a string or a list of strings" if allow_multiple else "a string"
            raise TextMetricError(f"{path}: record {n} (id {key}): 'text' must be {kind}")
        if key in out:
            raise TextMetricError(f"{path}: duplicate id {key!r}")
        out[key] = text
    return out


def match_by_id(
    preds: dict[str, str | list[str]],
    refs: dict[str, str | list[str]],
    pred_path: Path,
    ref_path: Path,
) -> tuple[list[str], list[str], list[str | list[str]], list[str]]:
    """Aligned ``(ids, predictions, references, extra_ids)`` in reference order.

    Every reference needs a prediction (a missing one would silently raise the average);
    predictions without a reference are returned as ``extra_ids`` for the caller to report."""
    missing = [k for k in refs if k not in preds]
    if missing:
        shown = ", ".join(missing[:20]) + (
            f" … ({len(missing)} in all)" if len(missing) > 20 else ""
        )
        raise TextMetricError(f"{pred_path}: no prediction for id(s) of {ref_path}: {shown}")
    extra = [k for k in preds if k not in refs]
    ids = list(refs)
    predictions = []
    for k in ids:
        p = preds[k]
        if not isinstance(p, str):
            raise TextMetricError(f"{pred_path}: id {k}: a prediction must be one string")
        predictions.append(p)
    return ids, predictions, [refs[k] for k in ids], extra
