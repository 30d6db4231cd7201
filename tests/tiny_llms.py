"""Tiny randomly initialised chat LMs for the generator, summarizer and chat tests: Gemma-2 (its
real chat template, which rejects a system role) and EXAONE 4.0 (``Exaone4ForCausalLM``, an
EXAONE-style template), saved like hub checkpoints, plus random PEFT LoRA adapters for them.

The tokenizers are word-level over the test paragraphs, so even random weights emit words (and
numbers) of the source: summaries then go through the made-up-fact guard rather than all
falling back, and decoded text stays readable in failure messages. (training/tiny.py builds
BPE-tokenized tiny models for the recipes instead: they learn from text they have not seen.)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)
# EXAONE 4.0's turn markers; the real template also handles tools and reasoning, not needed here.
EXAONE_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '[|' + message['role'] + '|]' + message['content'] + '[|endofturn|]\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '[|assistant|]' }}{% endif %}"
)
GEMMA_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj")


def word_level_tokenizer(
    folder: Path,
    corpus: list[str],
    *,
    bos: str,
    eos: str,
    pad: str,
    unk: str,
    turns: list[str],
    template: str,
    added: Sequence[str] = (),
) -> Any:
    """A word-level fast tokenizer trained on ``corpus``, with a chat template; saved to
    ``folder`` and returned. ``turns`` are registered as special tokens, as the real models
    do; ``added`` as added, non-special tokens (EXAONE 4.0's ``<think>``, ``<tool_call>``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.WordLevel(unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    specials = [pad, eos, bos, unk, *turns]
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=specials))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        unk_token=unk,
        additional_special_tokens=turns,
    )
    if added:
        fast.add_tokens(list(added))
    fast.chat_template = template
    fast.save_pretrained(folder)
    return fast


def build_tiny_gemma(folder: Path, corpus: list[str], seed: int = 0) -> Path:
    import torch
    from transformers import Gemma2Config, Gemma2ForCausalLM

    fast = word_level_tokenizer(
        folder,
        corpus,
        bos="<bos>",
        eos="<eos>",
        pad="<pad>",
        unk="<unk>",
        turns=["<start_of_turn>", "<end_of_turn>"],
        template=GEMMA_TEMPLATE,
    )
    torch.manual_seed(seed)
    config = Gemma2Config(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=1024,
        sliding_window=128,
        pad_token_id=fast.pad_token_id,
        bos_token_id=fast.bos_token_id,
        eos_token_id=[fast.eos_token_id, fast.convert_tokens_to_ids("<end_of_turn>")],
    )
    Gemma2ForCausalLM(config).save_pretrained(folder)
    return folder


# EXAONE 4.0's reasoning and tool-call tags: added (not special) tokens of its tokenizer.
EXAONE_ADDED = ("<think>", "</think>", "<tool_call>", "</tool_call>")


def build_tiny_exaone(
    folder: Path,
    corpus: list[str],
    seed: int = 0,
    context: int = 512,
    added: Sequence[str] = (),
) -> Path:
    import torch
    from transformers import Exaone4Config, Exaone4ForCausalLM

    fast = word_level_tokenizer(
        folder,
        corpus,
        bos="[BOS]",
        eos="[|endofturn|]",
        pad="[PAD]",
        unk="[UNK]",
        turns=["[|system|]", "[|user|]", "[|assistant|]"],
        template=EXAONE_TEMPLATE,
        added=added,
    )
    torch.manual_seed(seed)
    config = Exaone4Config(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=context,
        sliding_window=64,
        sliding_window_pattern=2,
        layer_types=["sliding_attention", "full_attention"],
        pad_token_id=fast.pad_token_id,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
    )
    Exaone4ForCausalLM(config).save_pretrained(folder)
    return folder


def build_lora_adapter(
    base: Path, folder: Path, seed: int = 1, target_modules: tuple[str, ...] = GEMMA_LORA_TARGETS
) -> Path:
    """A PEFT LoRA on a tiny causal LM whose B matrices are random (peft's default zeros them,
    which would leave the output unchanged)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(
        r=4,
        lora_alpha=32,
        target_modules=list(target_modules),
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    get_peft_model(model, config).save_pretrained(folder)
    return folder
