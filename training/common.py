"""Small pieces every recipe uses: the error type, JSONL reading, seeding, devices and dtypes."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from polisum.jsonl import JsonlError, iter_jsonl

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
    """(line number, object) per non-blank line (polisum's JSONL reader, streamed); a bad line
    is a RecipeError naming file and line."""
    if not Path(path).is_file():
        raise RecipeError(f"{path}: data file not found")
    try:
        yield from iter_jsonl(path)
    except JsonlError as exc:
        raise RecipeError(str(exc)) from None


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
