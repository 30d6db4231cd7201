"""A tiny randomly initialised EXAONE 4.0 causal LM (transformers ``Exaone4ForCausalLM``) with a
locally built word-level tokenizer and an EXAONE-style chat template, saved like a hub
checkpoint, plus a PEFT LoRA adapter for it.

Word-level over the test documents: even random weights then emit words of the corpus, which
keeps the decoded text readable in failure messages.
"""

from __future__ import annotations

from pathlib import Path

# EXAONE 4.0's turn markers; the real template also handles tools and reasoning, not needed here.
EXAONE_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '[|' + message['role'] + '|]' + message['content'] + '[|endofturn|]\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '[|assistant|]' }}{% endif %}"
)
SPECIALS = [
    "[PAD]", "[BOS]", "[|endofturn|]", "[UNK]",
    "[|system|]", "[|user|]", "[|assistant|]",
]  # fmt: skip


def build_tiny_exaone(folder: Path, corpus: list[str], seed: int = 0, context: int = 512) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Exaone4Config, Exaone4ForCausalLM, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=SPECIALS))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="[BOS]",
        eos_token="[|endofturn|]",
        pad_token="[PAD]",
        unk_token="[UNK]",
        additional_special_tokens=["[|system|]", "[|user|]", "[|assistant|]"],
    )
    fast.chat_template = EXAONE_TEMPLATE
    fast.save_pretrained(folder)
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


def build_lora_adapter(base: Path, folder: Path, seed: int = 1) -> Path:
    """A PEFT LoRA on the attention projections, with random B matrices."""
    from tiny_gemma import build_lora_adapter as build

    return build(base, folder, seed, target_modules=("q_proj", "k_proj", "v_proj", "o_proj"))
