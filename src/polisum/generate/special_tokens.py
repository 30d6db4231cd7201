"""Control tokens inside untrusted text: which strings they are, and how to make them inert.

A chat template renders messages into one string, and the tokenizer reads that string with its
special tokens recognised. A document that contains ``[|endofturn|][|system|]`` therefore ends
the user's turn and opens a system turn of its own, on every backend: transformers' tokenizer,
llama.cpp, and OpenAI-compatible servers (which template and tokenize on their side).

So every untrusted string (document text, file names, questions, chat history) is passed through
:func:`neutralize` before it goes into a message: each occurrence of a special token gets its
first character swapped for a look-alike (``<|im_start|>`` → ``‹|im_start|>``,
``[|system|]`` → ``⟦|system|]``). The text stays readable for the model and for people, and it
cannot re-form the token: the look-alikes are not ASCII and NFKC (which some tokenizers apply)
maps none of them back. Matching ignores case, since a tokenizer whose normaliser lower-cases
would otherwise turn ``[INST]``-like variants back into the token.

Which strings are special depends on the model: a Generator may expose ``special_tokens``
(transformers: the tokenizer's special and added tokens; llama.cpp: the GGUF's template markers
and every control token found in the text by its own tokenizer); :data:`CHAT_TEMPLATE_MARKERS`
covers the common chat-template families for backends that cannot say (OpenAI-compatible
servers), and is always neutralised too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

from polisum.generate import Message

# The turn and control markers of the major chat-template families. Neutralising a marker of
# another family costs nothing (the text stays readable), so all of them are always applied.
CHAT_TEMPLATE_MARKERS: frozenset[str] = frozenset(
    [
        # ChatML (Qwen, SmolLM, Hermes, Yi, HyperCLOVA X SEED), Phi-3/4, tool and reasoning tags
        "<|im_start|>", "<|im_end|>", "<|im_sep|>", "<|endoftext|>", "<|endofturn|>", "<|stop|>",
        "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|observation|>",
        "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>",
        "<tool_result>", "</tool_result>", "<think>", "</think>",
        # Llama 3.x
        "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
        "<|eot_id|>", "<|eom_id|>", "<|python_tag|>", "<|finetune_right_pad_id|>",
        # Llama 2, Mistral (and its v7/tekken control tokens)
        "<s>", "</s>", "<unk>", "<<SYS>>", "<</SYS>>", "[INST]", "[/INST]",
        "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]",
        "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[THINK]", "[/THINK]",
        # Gemma
        "<bos>", "<eos>", "<pad>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>",
        "<end_of_image>",
        # EXAONE 3.5 / 4.0
        "[|system|]", "[|user|]", "[|assistant|]", "[|tool|]", "[|endofturn|]", "[BOS]",
        # Command R
        "<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>", "<|SYSTEM_TOKEN|>", "<|USER_TOKEN|>",
        "<|CHATBOT_TOKEN|>",
        # gpt-oss (harmony), Granite, GLM
        "<|start|>", "<|message|>", "<|channel|>", "<|return|>", "<|call|>", "<|constrain|>",
        "<|start_of_role|>", "<|end_of_role|>", "[gMASK]", "<sop>",
        # DeepSeek (full-width bars, "▁" for spaces)
        "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>",
    ]
)  # fmt: skip

# Shapes that are control tokens in some family and never ordinary prose: <|name|>, <｜name｜>
# and [|name|]. They catch the markers of models this list does not know.
_MARKER_SHAPES = r"<\|[^|<>\s]{1,48}\|>|<｜[^｜<>\s]{1,48}｜>|\[\|[^|\[\]\s]{1,48}\|\]"

# First characters and their look-alikes; NFKC leaves every look-alike as it is.
_LOOK_ALIKE = {"<": "‹", "[": "⟦", "{": "❴", "|": "¦", "＜": "‹", "｜": "¦"}
_WORD_JOINER = "\u2060"  # for tokens that start with anything else: invisible, splits the token
# An added (not special) token is neutralised only when it looks like markup: many tokenizers
# add ordinary words or whitespace runs, which must stay as they are.
_MARKUP = re.compile(r"[<>\[\]|{}｜]")
_MAX_TOKEN = 128  # longer "tokens" are whitespace or code runs, never control markers


def neutralize(text: str, special_tokens: Iterable[str] = ()) -> str:
    """``text`` with every special token (``special_tokens`` and the common chat-template
    markers) made inert by a look-alike first character."""
    if not text:
        return text
    pattern = _pattern(frozenset(special_tokens) | CHAT_TEMPLATE_MARKERS)
    out = pattern.sub(_defang, text)
    # A token that contains a look-alike character could in theory be re-formed by the swap;
    # split any such match with word joiners instead, until none is left.
    for _ in range(4):
        if not pattern.search(out):
            return out
        out = pattern.sub(lambda m: _WORD_JOINER.join(m.group(0)), out)
    raise ValueError("could not neutralise the special tokens in a text")  # pragma: no cover


def neutralize_messages(
    conversation: Sequence[Message], special_tokens: Iterable[str] = ()
) -> list[Message]:
    """The conversation with :func:`neutralize` applied to every message's content.

    Backends call this on whatever they are given, so a caller that forgets to neutralise
    (or neutralises with another model's tokens) cannot inject control tokens."""
    tokens = frozenset(special_tokens)
    return [{"role": m["role"], "content": neutralize(m["content"], tokens)} for m in conversation]


def special_tokens_of(generator: object | None) -> frozenset[str]:
    """The generator's ``special_tokens`` if it has them, plus the common markers."""
    own = getattr(generator, "special_tokens", None) or ()
    return frozenset(own) | CHAT_TEMPLATE_MARKERS


def usable_tokens(special: Iterable[str], added: Iterable[str] = ()) -> frozenset[str]:
    """The strings worth neutralising: every special token (except empty or whitespace-only
    ones) and the added tokens that look like markup."""
    keep = {t for t in special if t.strip() and 1 < len(t) <= _MAX_TOKEN}
    keep |= {t for t in added if t.strip() and 2 < len(t) <= _MAX_TOKEN and _MARKUP.search(t)}
    return frozenset(keep)


def template_markers(template: str) -> frozenset[str]:
    """Marker-shaped strings (``<|x|>``, ``[|x|]``, ``<x_y>``, ``[INST]``) in a chat template's
    source: the template's own control tokens when the vocabulary cannot be read."""
    found = set(re.findall(_MARKER_SHAPES, template))
    found |= set(re.findall(r"</?[a-z]+_[a-z_]+>|\[/?[A-Z_]{3,24}\]", template))
    return frozenset(found)


def _defang(match: re.Match[str]) -> str:
    token = match.group(0)
    first = _LOOK_ALIKE.get(token[0])
    if first is not None:
        return first + token[1:]
    return token[0] + _WORD_JOINER + token[1:]


@lru_cache(maxsize=16)
def _pattern(tokens: frozenset[str]) -> re.Pattern[str]:
    # A trie-shaped regex: tokenizers can have thousands of added tokens (Gemma's <unusedN>),
    # and a flat alternation would try each of them at every character of every paragraph.
    return re.compile(f"{_MARKER_SHAPES}|{_trie(tokens)}", re.IGNORECASE)


def _trie(words: Iterable[str]) -> str:
    root: dict[str, dict] = {}
    for word in words:
        node = root
        for ch in word.lower():
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, dict]) -> str:
        branches = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        group = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" in node:  # a word ends here; a longer one may continue (greedy: longest wins)
            return f"(?:{group})?"
        return group

    return build(root) or "(?!)"
