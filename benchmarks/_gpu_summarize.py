"""LLM paragraph summaries for ``gpu_speed.py``: polisum's hf backend at several batch sizes.

The generator is ``HFGenerator`` loaded from a saved gemma-2-2b folder (random weights), exactly
as ``--summarizer hf:PATH`` loads a checkpoint. Where :class:`LLMSummarizer` imports (it needs
Kiwi) it drives the generator, and the time outside ``generate`` is its CPU work (prompt fitting,
the made-up-fact guard, fallbacks): random weights write nonsense, so every summary falls back
to the extractive one, which is dearer than the guard on a real summary. Without it, the
summarizer's prompts from the paragraphs file go to ``generate`` as the summarizer sends them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from _gpu_models import param_bytes
from _gpu_run import Run, free, peak_gib, reset_peak, say

ROOFLINE_GOAL = 0.6  # issue 20: batch-1 decoding at 60 % of the weight-reading roofline


class TimedGenerator:
    """Delegates to a generator and adds up the seconds spent in ``generate``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def generate(self, conversations: list[Any], config: Any = None) -> Any:
        start = time.perf_counter()
        try:
            return self.inner.generate(conversations, config)
        finally:
            self.seconds += time.perf_counter() - start


@contextlib.contextmanager
def forced(generator: Any, tokens: int) -> Iterator[Any]:
    """Generations of exactly ``tokens`` tokens: end-of-turn is suppressed until then (through
    the model's generation config, which ``generate`` merges with HFGenerator's arguments)."""
    from polisum.generate import GenerationConfig

    config = generator.model.generation_config
    config.min_new_tokens = tokens
    try:
        yield GenerationConfig(max_new_tokens=tokens)
    finally:
        config.min_new_tokens = None


def load(run: Run, batch_size: int = 1) -> Any:
    from polisum.generate import load_generator

    return load_generator(f"hf:{run.gemma_folder()}", batch_size=batch_size)


def summarizer_for(timed: TimedGenerator, tokens: int, label: str) -> Any:
    """LLMSummarizer over ``timed``, or None where it does not import (no Kiwi)."""
    try:
        from polisum.summarize.llm import LLMSummarizer
    except ImportError as exc:
        say(f"[{label}] LLMSummarizer unavailable ({exc}): timing generate() alone")
        return None
    return LLMSummarizer(timed, max_new_tokens=tokens)


def batch_run(
    run: Run, generator: Any, rows: list[dict[str, Any]], batch: int, deadline: float, label: str
) -> dict[str, Any]:
    """Summaries of ``rows`` in chunks of ``batch`` until ``deadline`` (one chunk at least)."""
    tokens = run.sizes.max_new_tokens
    generator.batch_size = batch
    timed = TimedGenerator(generator)
    summarizer = summarizer_for(timed, tokens, label)
    began = time.perf_counter()
    with forced(generator, 2) as short:  # warm-up at this batch shape (and Kiwi's loading)
        if summarizer is not None:
            summarizer.summarize_detailed([r["text"] for r in rows[:batch]])
        else:
            generator.generate([r["messages"] for r in rows[:batch]], short)
    warmup_s = time.perf_counter() - began
    reset_peak(run.device)
    done, gen_s, total_s, prompt, completion, fallbacks = 0, 0.0, 0.0, 0, 0, 0
    chunk_s: list[float] = []
    with forced(generator, tokens) as config:
        for start in range(0, len(rows), batch):
            if chunk_s and time.perf_counter() + chunk_s[-1] > deadline:
                break
            chunk = rows[start : start + batch]
            timed.seconds = 0.0
            began = time.perf_counter()
            if summarizer is not None:
                results = summarizer.summarize_detailed([r["text"] for r in chunk])
                fallbacks += sum(r.method == "extractive" for r in results)
            else:
                results = timed.generate([r["messages"] for r in chunk], config)
            total_s += time.perf_counter() - began
            gen_s += timed.seconds
            chunk_s.append(timed.seconds)
            done += len(chunk)
            prompt += sum(r.prompt_tokens for r in results)
            completion += sum(r.completion_tokens for r in results)
    row = {
        "batch": batch,
        "through": "LLMSummarizer" if summarizer is not None else "HFGenerator.generate",
        "paragraphs": done,
        "paragraphs_per_s": round(done / total_s, 3),
        "generated_tokens_per_s": round(completion / gen_s, 1),
        "generate_s": round(gen_s, 2),
        "prompt_tokens_mean": round(prompt / done, 1),
        "completion_tokens_mean": round(completion / done, 1),
        "chunk_generate_s": [round(s, 3) for s in chunk_s],
        "warmup_s": round(warmup_s, 2),  # 2-token run at this batch shape (compiles, if any)
        "peak_gpu_gib": peak_gib(run.device),
    }
    if summarizer is not None:
        row["cpu_ms_per_paragraph"] = round(1000 * (total_s - gen_s) / done, 1)
        row["fallbacks"] = fallbacks
    say(
        f"[{label}] batch {batch}: {row['paragraphs_per_s']} paragraphs/s, "
        f"{row['generated_tokens_per_s']} generated tokens/s ({done} paragraphs)"
    )
    return row


def decode_speed(run: Run, generator: Any, rows: list[Any], full_s: list[float], label: str):
    """Batch-1 decode tokens/s: N-token generations minus 1-token ones (the prefill), and its
    ratio to the weight-reading roofline."""
    tokens = run.sizes.max_new_tokens
    generator.batch_size = 1
    prefill_s = 0.0
    with forced(generator, 1) as one:
        for row in rows:
            start = time.perf_counter()
            generator.generate([row["messages"]], one)
            prefill_s += time.perf_counter() - start
    decode = (tokens - 1) * len(rows) / max(sum(full_s) - prefill_s, 1e-9)
    weights = param_bytes(generator.model)
    figures: dict[str, Any] = {
        "paragraphs": len(rows),
        "decode_tokens_per_s": round(decode, 1),
        "prefill_s_mean": round(prefill_s / len(rows), 4),
        "weight_bytes": weights,
    }
    roofline = (run.bandwidth or run.measure_bandwidth()) / weights
    figures["roofline_tokens_per_s"] = round(roofline, 1)
    figures["roofline_fraction"] = round(decode / roofline, 3)
    figures["roofline_goal_met"] = decode / roofline >= ROOFLINE_GOAL
    say(
        f"[{label}] batch-1 decode {decode:.1f} tokens/s = "
        f"{decode / roofline:.1%} of the {roofline:.0f} tokens/s roofline"
    )
    return figures


def sweep(run: Run, generator: Any, rows: list[Any], batches: dict[int, float], label: str):
    figures: dict[str, Any] = {"max_new_tokens": run.sizes.max_new_tokens, "batches": []}
    for batch, seconds in batches.items():
        if run.clock.left() <= 0:
            run.skip(f"{label}.batch={batch}", "time box spent")
            continue
        row = batch_run(run, generator, rows, batch, run.clock.sub(seconds), label)
        figures["batches"].append(row)
        if batch == 1:
            done = rows[: row["paragraphs"]]
            full_s = row["chunk_generate_s"]
            figures["decode_batch1"] = decode_speed(run, generator, done, full_s, label)
    return figures


def summarize(run: Run) -> dict[str, Any]:
    """Dynamic KV cache (no compilation) at each batch size."""
    generator = load(run)
    generator.model.generation_config.cache_implementation = None  # DynamicCache
    figures = {"cache": "dynamic", "attention": generator.model.config._attn_implementation}
    figures.update(sweep(run, generator, run.rows, run.sizes.batches, "summarize"))
    del generator
    free(run.device)
    return figures


def summarize_static_cache(run: Run) -> dict[str, Any]:
    """The published generation config (static 'hybrid' cache; transformers compiles the
    decoding step on CUDA). The first call, on the longest prompt, sizes the cache and pays the
    compilation; later calls reuse that cache length (transformers keeps the largest so far), so
    batch 1 runs compiled, and the largest batch recompiles once for its shape, in its warm-up."""
    generator = load(run)
    cache = generator.model.generation_config.cache_implementation
    lengths = [generator.count_tokens(generator.prompt(r["messages"])) for r in run.rows]
    longest = [run.rows[i] for i in sorted(range(len(lengths)), key=lambda i: -lengths[i])]
    first, rest = longest[:1], longest[1:]
    with forced(generator, run.sizes.max_new_tokens) as config:
        start = time.perf_counter()
        generator.generate([r["messages"] for r in first], config)
        first_s = time.perf_counter() - start
    say(f"[summarize_static_cache] first call (compiles on CUDA): {first_s:.1f} s ({cache})")
    figures: dict[str, Any] = {"cache": cache, "first_call_s": round(first_s, 2)}
    one, largest = min(run.sizes.batches), max(run.sizes.batches)
    label = "summarize_static_cache"
    batch1 = sweep(run, generator, rest, {one: run.clock.left() / 3}, label)
    figures.update(batch1)
    if run.clock.left() > 0:
        more = sweep(run, generator, run.rows, {largest: run.clock.left()}, label)
        figures["batches"] += more["batches"]
    del generator
    free(run.device)
    return figures
