"""Generator backends on real (tiny or small) models: transformers with and without a PEFT LoRA,
llama.cpp on the SmolLM2-135M GGUF, and the OpenAI-compatible client against llama.cpp's HTTP
server on 127.0.0.1 (directly, and through a local proxy that injects 500s and delays)."""

from __future__ import annotations

import http.server
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from polisum.generate import (
    BatchGenerationError,
    GenerationConfig,
    GeneratorError,
    load_generator,
)
from polisum.summarize.llm import summary_messages
from tests.conftest import EN_LIBRARY, EN_SOLAR, KO_BUS, KO_RENT
from tests.fake_openai import serving
from tests.llm_models import smollm_generator, smollm_gguf, tiny_gemma, tiny_lora

pytest.importorskip("transformers")
SHORT = GenerationConfig(max_new_tokens=12)


# -- transformers ------------------------------------------------------------------------------
def test_hf_batched_left_padded_generation_matches_one_by_one():
    gen = load_generator(f"hf:{tiny_gemma()}", batch_size=3)
    # Prompts of different lengths: the batch needs padding, which must not change the output.
    conversations = [summary_messages(t) for t in (KO_RENT, EN_SOLAR, EN_LIBRARY, KO_BUS)]
    batched = gen.generate(conversations, SHORT)
    single = [gen.generate([c], SHORT)[0] for c in conversations]
    assert [r.text for r in batched] == [r.text for r in single]
    assert all(r.completion_tokens > 0 and r.prompt_tokens > 20 for r in batched)
    assert len({r.prompt_tokens for r in batched}) > 1
    assert gen.tokenizer.padding_side == "left"


def test_hf_gemma_template_gets_the_system_prompt_folded_into_the_user_turn():
    gen = load_generator(f"hf:{tiny_gemma()}")
    with pytest.raises(Exception, match="System role not supported"):
        gen.tokenizer.apply_chat_template(summary_messages(EN_SOLAR), tokenize=False)
    prompt = gen.prompt(summary_messages(EN_SOLAR))
    system = summary_messages(EN_SOLAR)[0]["content"]
    assert prompt.startswith("<bos><start_of_turn>user\n" + system)
    assert prompt.endswith("<start_of_turn>model\n")
    assert gen.model.config._attn_implementation == "eager"  # Gemma-2 soft-capping


def test_hf_stream_yields_the_same_text_as_generate():
    gen = load_generator(f"hf:{tiny_gemma()}")
    conversation = summary_messages(EN_LIBRARY)
    streamed = "".join(gen.stream(conversation, SHORT))
    assert streamed.strip() == gen.generate([conversation], SHORT)[0].text
    # The word-level test tokenizer splits words and punctuation (\w+|[^\w\s]).
    assert gen.count_tokens(EN_LIBRARY) == len(re.findall(r"\w+|[^\w\s]", EN_LIBRARY))


def test_hf_lora_adapter_changes_the_output_and_the_cache_key():
    base = load_generator(f"hf:{tiny_gemma()}")
    tuned = load_generator(f"hf:{tiny_gemma()}", adapter=str(tiny_lora()))
    conversations = [summary_messages(t) for t in (KO_RENT, EN_SOLAR)]
    assert [r.text for r in base.generate(conversations, SHORT)] != [
        r.text for r in tuned.generate(conversations, SHORT)
    ]
    assert base.name != tuned.name and "+adapter:" in tuned.name
    # An adapter folder given as the model loads its base from adapter_config.json.
    direct = load_generator(f"hf:{tiny_lora()}")
    assert [r.text for r in direct.generate(conversations, SHORT)] == [
        r.text for r in tuned.generate(conversations, SHORT)
    ]
    # A merged checkpoint gives the adapter's output without peft at inference time.
    merged = load_generator(f"hf:{tiny_gemma()}", adapter=str(tiny_lora()), merge_adapter=True)
    assert [r.text for r in merged.generate(conversations, SHORT)] == [
        r.text for r in tuned.generate(conversations, SHORT)
    ]


def test_hf_bad_model_path_is_a_clear_error(tmp_path: Path):
    with pytest.raises(GeneratorError, match="cannot load model"):
        load_generator(f"hf:{tmp_path / 'missing'}")


# -- llama.cpp ----------------------------------------------------------------------------------
def test_gguf_smollm_generates_streams_and_counts_tokens():
    gen = smollm_generator()
    config = GenerationConfig(max_new_tokens=16)
    results = gen.generate([summary_messages(EN_SOLAR), summary_messages(KO_BUS)], config)
    assert all(r.text and 0 < r.completion_tokens <= 16 for r in results)
    assert all(r.finish_reason in ("stop", "length") for r in results)
    streamed = "".join(gen.stream(summary_messages(EN_SOLAR), config))
    assert streamed.strip() == results[0].text  # greedy: the same tokens either way
    assert gen.count_tokens(EN_SOLAR) > 20
    assert gen.name.startswith("gguf:") and "@" in gen.name


def test_gguf_rejects_a_file_that_is_not_gguf(tmp_path: Path):
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"not a model")
    with pytest.raises(GeneratorError, match="not a GGUF file"):
        load_generator(f"gguf:{bogus}")
    with pytest.raises(GeneratorError, match="no such GGUF file"):
        load_generator(f"gguf:{tmp_path / 'missing.gguf'}")


# -- OpenAI-compatible HTTP ---------------------------------------------------------------------
class _Proxy(http.server.ThreadingHTTPServer):
    """A loopback proxy in front of llama.cpp's server that fails the first ``fail`` requests
    with ``status`` and delays each by ``delay`` seconds: the faults a remote server shows."""

    daemon_threads = True

    def __init__(self, upstream: str, fail: int = 0, status: int = 500, delay: float = 0.0):
        self.upstream, self.fail, self.status, self.delay = upstream, fail, status, delay
        self.requests = 0
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: _Proxy

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        self.server.requests += 1
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(self.server.delay)
        if self.server.requests <= self.server.fail:
            payload = b'{"error": {"message": "injected failure"}}'
            self._reply(self.server.status, payload)
            return
        upstream = httpx.post(
            self.server.upstream + self.path,
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=120,
        )
        self._reply(upstream.status_code, upstream.content)

    def _reply(self, status: int, payload: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass


@contextmanager
def _proxy(**faults) -> Iterator[_Proxy]:
    server = _Proxy(smollm_generator()._server.listening_address, **faults)
    with serving(server):
        yield server


def _url(server: _Proxy) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1"


def test_openai_backend_against_llama_cpp_server_matches_in_process_gguf():
    local = smollm_generator()
    base_url = local._server.listening_address + "/v1"
    client = load_generator(f"openai:{smollm_gguf()}", base_url=base_url, concurrency=2)
    config = GenerationConfig(max_new_tokens=16)
    conversations = [summary_messages(EN_LIBRARY), summary_messages(KO_RENT)]
    remote = client.generate(conversations, config)
    assert [r.text for r in remote] == [r.text for r in local.generate(conversations, config)]
    assert all(r.prompt_tokens > 20 and r.completion_tokens > 0 for r in remote)
    assert "".join(client.stream(conversations[0], config)).strip() == remote[0].text
    assert client.context_length == 1024  # reported by the server's /v1/models
    assert client.name == f"openai:{smollm_gguf()}@{base_url}"


def test_openai_backend_retries_a_500_then_succeeds():
    with _proxy(fail=1, status=500) as server:
        client = load_generator("openai:smol", base_url=_url(server))
        result = client.generate([summary_messages(EN_SOLAR)], GenerationConfig(max_new_tokens=8))
        assert result[0].text
        assert server.requests == 2


def test_openai_backend_gives_up_on_persistent_500_with_the_server_message():
    with _proxy(fail=100, status=500) as server:
        client = load_generator("openai:smol", base_url=_url(server), max_retries=2)
        with pytest.raises(BatchGenerationError, match="HTTP 500: injected failure") as info:
            client.generate([summary_messages(EN_SOLAR)], SHORT)
        assert info.value.results == [None]
        assert server.requests == 3  # the first try and two retries


def test_openai_backend_does_not_retry_a_client_error():
    with _proxy(fail=100, status=400) as server:
        client = load_generator("openai:smol", base_url=_url(server))
        with pytest.raises(GeneratorError, match="HTTP 400"):
            client.generate([summary_messages(EN_SOLAR)], SHORT)
        assert server.requests == 1


def test_openai_backend_times_out_and_retries():
    with _proxy(delay=1.0) as server:
        client = load_generator("openai:smol", base_url=_url(server), timeout=0.2, max_retries=1)
        started = time.perf_counter()
        with pytest.raises(GeneratorError, match="timed out"):
            client.generate([summary_messages(EN_SOLAR)], SHORT)
        assert time.perf_counter() - started < 5
        time.sleep(1.2)  # let the proxy notice both abandoned requests
        assert server.requests == 2


def test_openai_backend_needs_a_server_address(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(GeneratorError, match="--base-url"):
        load_generator("openai:some-model")
