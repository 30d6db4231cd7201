"""Tiny randomly initialised models of the real architectures, for smoke runs and tests.

The tiny configs name models as ``tiny:exaone4``, ``tiny:gemma2-teacher``, ``tiny:gemma2-student``
or ``tiny:sd3``; :func:`resolve_model` builds them once into a cache folder and returns that
folder, which the recipes then load with ``from_pretrained`` exactly like a downloaded model —
so a tiny run goes through the same code as a real one. Tokenizers are byte-level BPE trained
locally on a fixed Korean/English corpus, with the special tokens and chat-template conventions
of the real models (EXAONE's accepts a system turn; Gemma's raises on one, as the real one does).
The Gemma-2 teacher and student share one tokenizer, as the real 9B and 2B do.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

__all__ = ["TINY_MODELS", "build_tiny", "resolve_model"]

# Enough text for a BPE with a few hundred merges over Hangul and Latin.
_CORPUS = [
    "청년 월세 지원 신청 자격은 만 19세에서 34세까지의 무주택 청년입니다.",
    "전기차 충전 요금은 시간대와 계절에 따라 달라집니다.",
    "도서관은 평일 오전 9시부터 오후 6시까지 운영합니다.",
    "신청서는 주민센터 또는 온라인으로 제출할 수 있습니다.",
    "지원금은 매월 20만 원씩 최대 12개월 동안 지급됩니다.",
    "요약: 청년에게 월세를 지원한다. 요약: 요금은 시간대별로 다르다.",
    "The library is open from 9 am to 6 pm on weekdays.",
    "Applications can be submitted online or at the community center.",
    "Summarize the paragraph in one sentence. Answer the question using the context.",
    "Electric vehicle charging fees depend on the time of day and the season.",
    "Young tenants aged 19 to 34 without a home can apply for rent support.",
    "0123456789 .,:;!?()[]{}<>-_/\"'",
]

_EXAONE_SPECIALS = [
    "[PAD]",
    "[BOS]",
    "[|endofturn|]",
    "[UNK]",
    "[|system|]",
    "[|user|]",
    "[|assistant|]",
]
# EXAONE's turn markers; the system turn is accepted (the context of a chat goes there).
_EXAONE_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}[|system|]{{ m['content'] }}[|endofturn|]\n"
    "{% elif m['role'] == 'user' %}[|user|]{{ m['content'] }}\n"
    "{% elif m['role'] == 'assistant' %}[|assistant|]{{ m['content'] }}[|endofturn|]\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}[|assistant|]{% endif %}"
)

_GEMMA_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
# Gemma's template, which raises on a system turn like the real one.
_GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)

TINY_MODELS = ("exaone4", "gemma2-teacher", "gemma2-student", "sd3")
# Bump when a builder changes: cached tiny models of another version are built again.
TINY_VERSION = "2"


def _bpe(specials: list[str], vocab_size: int = 384) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=specials[3]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return tok


def _chat_tokenizer(kind: str) -> Any:
    from transformers import PreTrainedTokenizerFast

    if kind == "exaone":
        tok = PreTrainedTokenizerFast(
            tokenizer_object=_bpe(_EXAONE_SPECIALS),
            pad_token="[PAD]",
            bos_token="[BOS]",
            eos_token="[|endofturn|]",
            unk_token="[UNK]",
        )
        tok.chat_template = _EXAONE_TEMPLATE
    else:
        tok = PreTrainedTokenizerFast(
            tokenizer_object=_bpe(_GEMMA_SPECIALS),
            pad_token="<pad>",
            bos_token="<bos>",
            eos_token="<end_of_turn>",
            unk_token="<unk>",
        )
        tok.chat_template = _GEMMA_TEMPLATE
    return tok


def _save_causal_lm(folder: Path, config: Any, tokenizer: Any, seed: int) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _build_exaone4(folder: Path) -> None:
    from transformers import Exaone4Config

    tok = _chat_tokenizer("exaone")
    config = Exaone4Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=512,
        sliding_window=64,
        sliding_window_pattern=2,
        layer_types=["sliding_attention", "full_attention"],
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    _save_causal_lm(folder, config, tok, seed=0)


def _build_gemma2(folder: Path, *, hidden: int, layers: int, seed: int) -> None:
    from transformers import Gemma2Config

    tok = _chat_tokenizer("gemma")
    config = Gemma2Config(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=512,
        sliding_window=64,
        layer_types=["sliding_attention", "full_attention"][:layers] * (layers // 2 or 1),
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        # Gemma-2's soft-capping stays on: it is why the recipes pick eager attention.
        attn_logit_softcapping=50.0,
        final_logit_softcapping=30.0,
    )
    _save_causal_lm(folder, config, tok, seed=seed)


def _build_sd3(folder: Path) -> None:
    """The SD3.5-shaped pipeline the imagegen tests render with: one tiny SD3 for the package."""
    from imagegen.testing import build_tiny_sd3

    build_tiny_sd3(folder)


def build_tiny(name: str, folder: str | os.PathLike[str]) -> Path:
    """Build tiny model ``name`` (one of :data:`TINY_MODELS`) into ``folder`` and return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if name == "exaone4":
        _build_exaone4(folder)
    elif name == "gemma2-teacher":
        _build_gemma2(folder, hidden=64, layers=2, seed=1)
    elif name == "gemma2-student":
        _build_gemma2(folder, hidden=32, layers=2, seed=2)
    elif name == "sd3":
        _build_sd3(folder)
    else:
        raise ValueError(f"unknown tiny model '{name}' (known: {', '.join(TINY_MODELS)})")
    (folder / ".tiny-complete").write_text(f"{name} {TINY_VERSION}\n")
    return folder


def resolve_model(spec: str, cache_dir: str | os.PathLike[str] | None = None) -> str:
    """``tiny:NAME`` → a folder holding that tiny model (built on first use); anything else
    (hub id or local path) is returned unchanged."""
    if not spec.startswith("tiny:"):
        return spec
    name = spec.removeprefix("tiny:")
    if name not in TINY_MODELS:
        raise ValueError(f"unknown tiny model '{spec}' (known: tiny:{', tiny:'.join(TINY_MODELS)})")
    root = Path(
        cache_dir or os.environ.get("POLISUM_TINY_MODELS") or Path.home() / ".cache/polisum/tiny"
    )
    folder = root / name
    marker = folder / ".tiny-complete"
    if not marker.is_file() or marker.read_text().split() != [name, TINY_VERSION]:
        # Build aside and rename: concurrent runs never see a half-written model.
        staging = root / f".{name}.{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        build_tiny(name, staging)
        shutil.rmtree(folder, ignore_errors=True)
        try:
            staging.rename(folder)
        except OSError:  # another process won the race; its copy is identical
            shutil.rmtree(staging, ignore_errors=True)
    return str(folder)
