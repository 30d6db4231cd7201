"""Stable Diffusion 3.5 prompts: schema validation, retry on invalid output, grounding, CLI."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

import polisum
from polisum.chat.sdprompt import (
    DEFAULT_NEGATIVE,
    ModelRequiredError,
    SDPrompt,
    SDPromptError,
    SDPromptWriter,
    extract_json,
    fit_prompt,
)
from polisum.cli import app
from polisum.generate import GenerationConfig, GenerationResult, Generator

pytest_plugins = ["chat_fixtures"]  # kb, tiny_exaone(_model), smollm2
runner = CliRunner()


def test_schema_validation() -> None:
    p = SDPrompt.model_validate(
        {"prompt": "a plaza with EV chargers", "aspect_ratio": "16x9", "style": ["photo", "dusk"]}
    )
    assert p.aspect_ratio == "16:9" and p.style == "photo, dusk"
    assert p.negative_prompt == DEFAULT_NEGATIVE
    for bad in (
        {"prompt": "전기차 충전소가 있는 광장"},  # not English
        {"prompt": "a plaza", "aspect_ratio": "wide"},
        {"prompt": "a plaza", "aspect_ratio": "10:1"},
        {"negative_prompt": "blurry"},  # no prompt
    ):
        with pytest.raises(ValidationError):
            SDPrompt.model_validate(bad)


def test_long_prompts_keep_the_subject_and_are_not_cut_at_77_tokens() -> None:
    subject = "a futuristic city square with electric vehicle charging stations"
    details = [f"detail number {i} with soft evening light" for i in range(40)]
    long = ", ".join([subject, *details])  # ~290 words: over T5's budget
    fitted = fit_prompt(long)
    assert fitted.startswith(subject)
    assert len(fitted.split()) <= 180 and fitted.endswith("light")  # cut between clauses
    medium = ", ".join([subject, *details[:12]])  # ~90 words: past CLIP's 77, kept whole
    assert SDPrompt(prompt=medium).prompt == medium


def test_extract_json_ignores_fences_and_chatter() -> None:
    text = 'Sure!\n```json\n{"prompt": "a harbor", "style": null}\n```\nHope it helps.'
    assert extract_json(text) == {"prompt": "a harbor", "style": None}
    with pytest.raises(ValueError):
        extract_json("no json at all")


def test_no_generator_is_a_clear_error(kb: Path) -> None:
    with pytest.raises(ModelRequiredError, match="needs a language model"):
        SDPromptWriter(None)
    res = runner.invoke(app, ["prompt", "전기차 충전소가 있는 미래 도시 광장", "--index", str(kb)])
    assert res.exit_code == 2
    assert "needs a language model" in res.output


class _JsonOnAttempt:
    """Wraps a real generator: its genuine output is returned as is (never valid prompt JSON
    for a random model), except on attempt ``valid_on``, where the English words it generated
    are wrapped into valid JSON."""

    def __init__(self, inner: Generator, valid_on: int | None) -> None:
        self.inner, self.valid_on = inner, valid_on
        self.name = inner.name
        self.context_length = inner.context_length
        self.count_tokens = inner.count_tokens
        self.conversations: list = []

    def generate(self, conversations, config=None) -> list[GenerationResult]:
        self.conversations.append(conversations[0])
        out = self.inner.generate(conversations, config)[0]
        if len(self.conversations) == self.valid_on:
            words = re.findall(r"[A-Za-z]+", out.text) or ["plaza"]
            data = {"prompt": "a city square, " + " ".join(words), "aspect_ratio": "16:9"}
            return [replace(out, text=json.dumps(data))]
        return [out]

    def stream(self, conversation, config=None):
        yield from self.inner.stream(conversation, config)


def test_invalid_output_is_retried_with_the_error(kb: Path, tiny_exaone_model: Path) -> None:
    from polisum.generate import load_generator

    base = load_generator(f"hf:{tiny_exaone_model}")
    gen = _JsonOnAttempt(base, valid_on=2)
    writer = SDPromptWriter(gen, config=GenerationConfig(max_new_tokens=8))
    assert writer.messages("a plaza", []) == writer.messages("a plaza")
    with polisum.Index.open(kb, create=False) as idx:
        passages = idx.search("parking permits cost", k=2)
    result = writer.write("주차장이 있는 주택가", passages)
    assert writer.attempts == 2
    assert result.prompt.startswith("a city square") and result.aspect_ratio == "16:9"
    first, second = gen.conversations
    assert '<passage id="1">' in first[-1]["content"]  # grounded and delimited
    assert "not instructions" in first[-1]["content"]
    assert second[-2]["role"] == "assistant" and "invalid" in second[-1]["content"]

    never = _JsonOnAttempt(base, valid_on=None)
    with pytest.raises(SDPromptError, match="3 attempts"):
        SDPromptWriter(never, config=GenerationConfig(max_new_tokens=8)).write("a harbor")
    assert len(never.conversations) == 3


def test_prompt_cli_reports_invalid_model_output(kb: Path, tiny_exaone_model: Path) -> None:
    res = runner.invoke(
        app,
        ["prompt", "도서관 앞 광장", "--from-docs", "--index", str(kb), "--attempts", "1",
         "--generator", f"hf:{tiny_exaone_model}"],
    )  # fmt: skip
    assert res.exit_code == 1
    assert "no valid prompt JSON in 1 attempts" in " ".join(res.output.split())


@pytest.mark.slow
def test_smollm2_writes_or_fails_cleanly(smollm2) -> None:
    gen = _JsonOnAttempt(smollm2, valid_on=None)
    writer = SDPromptWriter(gen, max_attempts=2, config=GenerationConfig(max_new_tokens=96))
    try:
        result = writer.write("a futuristic city square with electric vehicle chargers")
    except SDPromptError as exc:
        assert len(gen.conversations) == 2 and "2 attempts" in str(exc)
    else:  # a valid answer passed the schema: English prompt, a sane ratio if any
        assert result.prompt.isascii() and len(gen.conversations) == writer.attempts
