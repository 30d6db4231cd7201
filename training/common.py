"""Small pieces every recipe uses: the error type, JSONL reading, seeding, devices and dtypes."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "RecipeError",
    "bf16_supported",
    "default_device",
    "read_jsonl",
    "seed_everything",
    "torch_dtype",
]


class RecipeError(RuntimeError):
    """A recipe cannot run: bad config, bad data, incompatible models. The message says which."""


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-blank line; a bad line is an error naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: data file not found")
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RecipeError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
            if not isinstance(obj, dict):
                raise RecipeError(f"{path}:{lineno}: expected a JSON object")
            yield lineno, obj


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def default_device() -> Any:
    """The accelerator when there is one, else the CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def bf16_supported() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def torch_dtype(name: str, key: str = "model.dtype") -> Any:
    """``auto`` (bf16 on a GPU that supports it, else float32) or a torch dtype's name."""
    import torch

    if name == "auto":
        return torch.bfloat16 if bf16_supported() else torch.float32
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise RecipeError(f"{key} '{name}': not a torch dtype (auto, float32, bfloat16, ...)")
    return dtype
