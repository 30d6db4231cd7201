"""Chat data for the text recipes: read JSONL rows into conversations, tokenize them with the
model's own chat template, and mark which tokens are the assistant's (the only ones trained on).

Accepted rows (one JSON object per line)::

    {"messages": [{"role": "user", "content": ...}, {"role": "assistant", ...}, ...],
     "context": "optional text, added as a system turn"}
    {"prompt": "text or a list of messages", "completion": "text", "context": "optional"}

Templates that reject a system role (Gemma's) get the context folded into the first user turn,
exactly as the inference backend (``polisum.generate.hf``) folds it, so training and serving see
the same text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from training.common import RecipeError, read_jsonl

__all__ = ["EncodedChat", "accepts_system", "encode_chat", "load_chat_file", "row_to_messages"]

_ROLES = {"system", "user", "assistant"}


def row_to_messages(row: dict[str, Any], where: str) -> list[dict[str, str]]:
    """One data row → a list of ``{"role", "content"}`` messages ending with an assistant turn."""
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or not messages:
            raise RecipeError(f"{where}: 'messages' must be a non-empty list")
    elif "prompt" in row and "completion" in row:
        prompt, completion = row["prompt"], row["completion"]
        messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        messages = [
            *messages,
            *(
                completion
                if isinstance(completion, list)
                else [{"role": "assistant", "content": completion}]
            ),
        ]
    else:
        raise RecipeError(
            f"{where}: expected 'messages' or 'prompt' + 'completion' (got keys {sorted(row)})"
        )
    clean = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in _ROLES:
            raise RecipeError(f"{where}: message {i} needs a role in {sorted(_ROLES)}")
        if not isinstance(m.get("content"), str):
            raise RecipeError(f"{where}: message {i} ({m['role']}) needs text 'content'")
        clean.append({"role": m["role"], "content": m["content"]})
    context = row.get("context")
    if context:
        if not isinstance(context, str):
            raise RecipeError(f"{where}: 'context' must be text")
        clean.insert(0, {"role": "system", "content": context})
    if not any(m["role"] == "assistant" for m in clean):
        raise RecipeError(f"{where}: no assistant turn to learn from")
    return clean


def load_chat_file(path: str | os.PathLike[str]) -> list[list[dict[str, str]]]:
    rows = [row_to_messages(row, f"{path}:{n}") for n, row in read_jsonl(path)]
    if not rows:
        raise RecipeError(f"{path}: no examples")
    return rows


def accepts_system(tokenizer: Any) -> bool:
    """Whether the chat template renders a system turn (Gemma's raises instead)."""
    probe = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    try:
        rendered = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
    except Exception:  # jinja's raise_exception: "System role not supported"
        return False
    return "S" in rendered


def _fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    from polisum.generate.hf import fold_system

    return [dict(m) for m in fold_system(messages)]  # type: ignore[arg-type]


@dataclass
class EncodedChat:
    input_ids: list[int]
    assistant_masks: list[int]  # 1 where the token is the assistant's (trained on)


def _render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )


def encode_chat(
    tokenizer: Any,
    messages: list[dict[str, str]],
    *,
    fold_system: bool,
    max_length: int | None = None,
    where: str = "example",
) -> EncodedChat | None:
    """Tokens of ``messages`` under the model's chat template, with the assistant tokens marked.

    The conversation is rendered turn by turn: each assistant turn is the text between the
    rendering up to its generation prompt and the rendering including it (its end-of-turn
    token included, so the model learns to stop). Each piece is tokenized on its own, which is
    also how inference sees it: the prompt, then generated tokens. None when truncation to
    ``max_length`` leaves no assistant token.
    """
    if fold_system:
        messages = _fold_system(messages)
    ids: list[int] = []
    mask: list[int] = []
    rendered = ""
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            prompt = _render(tokenizer, messages[:i], generation_prompt=True)
            if not prompt.startswith(rendered):
                raise RecipeError(f"{where}: the chat template does not render turns as prefixes")
            _append(tokenizer, ids, mask, prompt[len(rendered) :], 0)
            rendered = prompt
        full = _render(tokenizer, messages[: i + 1], generation_prompt=False)
        if not full.startswith(rendered):
            raise RecipeError(
                f"{where}: the chat template does not render turn {i} as an extension of the "
                "previous ones, so assistant tokens cannot be located"
            )
        _append(tokenizer, ids, mask, full[len(rendered) :], int(message["role"] == "assistant"))
        rendered = full
    if max_length is not None and len(ids) > max_length:
        ids, mask = ids[:max_length], mask[:max_length]
    if not any(mask):
        return None
    return EncodedChat(ids, mask)


def _append(tokenizer: Any, ids: list[int], mask: list[int], text: str, value: int) -> None:
    if not text:
        return
    piece = tokenizer(text, add_special_tokens=False)["input_ids"]
    ids.extend(piece)
    mask.extend([value] * len(piece))
