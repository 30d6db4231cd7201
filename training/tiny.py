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

import json
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


def _unigram(specials: list[str], vocab_size: int = 300) -> Any:
    """A SentencePiece-style Unigram tokenizer, the model T5's tokenizer class expects."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>", show_progress=False
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


def _clip_tokenizer(folder: Path) -> None:
    """A CLIP tokenizer from the vocabulary and merges of a locally trained byte-level BPE."""
    from transformers import CLIPTokenizer

    bpe = _bpe(["<|startoftext|>", "<|endoftext|>", "<|pad|>", "<|unk|>"], vocab_size=320)
    model_json = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model_json["merges"]]
    tok = CLIPTokenizer(vocab=model_json["vocab"], merges=merges, model_max_length=77)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(folder)


def _build_sd3(folder: Path) -> None:
    """An SD3.5-shaped pipeline: MMDiT-X transformer (dual attention, RMS qk-norm), 16-channel
    VAE, two CLIP text encoders with projection and a T5 encoder, all a few hundred KB."""
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
        T5Config,
        T5EncoderModel,
        T5TokenizerFast,
    )

    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(
        sample_size=16,
        patch_size=2,
        in_channels=16,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=32,
        caption_projection_dim=32,
        pooled_projection_dim=64,
        out_channels=16,
        pos_embed_max_size=32,
        dual_attention_layers=(0,),
        qk_norm="rms_norm",
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=4,
        sample_size=32,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )
    tok_dir = folder / "_clip_tok"
    _clip_tokenizer(tok_dir)
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir)
    clip_config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        projection_dim=32,
        max_position_embeddings=77,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|startoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        hidden_act="gelu",
    )
    text_encoder = CLIPTextModelWithProjection(clip_config)
    text_encoder_2 = CLIPTextModelWithProjection(clip_config)
    tokenizer_3 = T5TokenizerFast(
        tokenizer_object=_unigram(["<pad>", "</s>", "<unk>"]),
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer_3),
            d_model=32,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    )
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=CLIPTokenizer.from_pretrained(tok_dir),
        text_encoder_3=t5,
        tokenizer_3=tokenizer_3,
    )
    pipe.save_pretrained(folder)


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
    (folder / ".tiny-complete").write_text(name + "\n")
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
    if not (folder / ".tiny-complete").is_file():
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
