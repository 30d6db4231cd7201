"""Real-size architectures for ``gpu_speed.py``, built from their published configurations with
random weights, directly on the device in its dtype.

The model hubs are unreachable from the GPU machine, so the hyperparameters below are written
out by hand from the published ``config.json`` files (google/gemma-2-2b-it,
LGAI-EXAONE/EXAONE-4.0-1.2B, intfloat/multilingual-e5-base, and the ``transformer/``, ``vae/``,
``text_encoder*/`` folders of stabilityai/stable-diffusion-3.5-medium), from our knowledge of
those files, not downloaded. They are checked against the models' parameter counts:
gemma-2-2b 2.61B, EXAONE-4.0-1.2B 1.28B (tied embeddings), multilingual-e5-base 278M,
the SD3.5-Medium MMDiT-X 2.24B, the T5-v1.1-XXL encoder 4.76B, CLIP-L 124M, CLIP-G 695M.
Speed does not depend on the weights' values. :data:`TINY` holds the same architectures at a
few thousand parameters for ``--tiny`` (CPU), so both sizes go through the same code.

Tokenizers are word-level (no tokenizer files can be fetched either), but sized to the real
vocabulary so that embedding and LM-head costs are real: the pieces of the benchmark texts
first, then ``<unusedN>`` fillers up to the vocabulary size. Pieces approximate the real
tokenizers' granularity (at most two Hangul syllables, at most six Latin letters, one digit,
one symbol), so prompt lengths — and with them prefill and KV-cache costs — are close to what
the SentencePiece tokenizers give, not the much shorter whitespace-word counts.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# google/gemma-2-2b-it config.json (transformers 4.42 era). The published file also carries
# "cache_implementation": "hybrid", which the published generation_config.json repeats; it is
# kept in GEMMA2_GENERATION below, where transformers reads it.
GEMMA2_2B = {
    "vocab_size": 256000,
    "hidden_size": 2304,
    "intermediate_size": 9216,
    "num_hidden_layers": 26,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 256,
    "hidden_activation": "gelu_pytorch_tanh",
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "attention_bias": False,
    "query_pre_attn_scalar": 256,
    "sliding_window": 4096,
    "attn_logit_softcapping": 50.0,
    "final_logit_softcapping": 30.0,
    "pad_token_id": 0,
    "eos_token_id": [1, 107],
    "bos_token_id": 2,
}
# google/gemma-2-2b-it generation_config.json.
GEMMA2_GENERATION = {
    "bos_token_id": 2,
    "eos_token_id": [1, 107],
    "pad_token_id": 0,
    "cache_implementation": "hybrid",
}
# Gemma's special tokens at their real ids (<end_of_turn> = 107 is the second stop id above).
GEMMA2_SPECIALS = {
    "<pad>": 0,
    "<eos>": 1,
    "<bos>": 2,
    "<unk>": 3,
    "<start_of_turn>": 106,
    "<end_of_turn>": 107,
}

# LGAI-EXAONE/EXAONE-4.0-1.2B config.json: global attention in every layer (the 32B model is
# the one with 3:1 sliding/global layers), llama3 RoPE scaling to 64K, tied embeddings.
EXAONE4_1_2B = {
    "vocab_size": 102400,
    "hidden_size": 2048,
    "intermediate_size": 4096,
    "num_hidden_layers": 30,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "hidden_act": "silu",
    "max_position_embeddings": 65536,
    "rms_norm_eps": 1e-5,
    "rope_theta": 1000000.0,
    "rope_scaling": {
        "factor": 16.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "sliding_window": None,
    "layer_types": ["full_attention"] * 30,
    "tie_word_embeddings": True,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 361,
}

# intfloat/multilingual-e5-base = XLM-RoBERTa base (its config.json); mean pooling, 512 tokens.
XLMR_BASE = {
    "vocab_size": 250002,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "layer_norm_eps": 1e-5,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
}
XLMR_SPECIALS = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}

# stabilityai/stable-diffusion-3.5-medium: transformer/ (MMDiT-X: the first 13 of 24 blocks
# have a second, image-only attention), vae/, text_encoder/ (CLIP-L), text_encoder_2/ (CLIP-G),
# text_encoder_3/ (T5-v1.1-XXL encoder), scheduler/ (flow matching, shift 3).
SD35_MEDIUM = {
    "transformer": {
        "sample_size": 128,
        "patch_size": 2,
        "in_channels": 16,
        "out_channels": 16,
        "num_layers": 24,
        "attention_head_dim": 64,
        "num_attention_heads": 24,
        "joint_attention_dim": 4096,
        "caption_projection_dim": 1536,
        "pooled_projection_dim": 2048,
        "pos_embed_max_size": 384,
        "dual_attention_layers": tuple(range(13)),
        "qk_norm": "rms_norm",
    },
    "vae": {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
        "block_out_channels": (128, 256, 512, 512),
        "layers_per_block": 2,
        "latent_channels": 16,
        "norm_num_groups": 32,
        "sample_size": 1024,
        "scaling_factor": 1.5305,
        "shift_factor": 0.0609,
        "use_quant_conv": False,
        "use_post_quant_conv": False,
        "force_upcast": True,
    },
    "clip_l": {
        "vocab_size": 49408,
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "projection_dim": 768,
        "max_position_embeddings": 77,
        "hidden_act": "quick_gelu",
    },
    "clip_g": {
        "vocab_size": 49408,
        "hidden_size": 1280,
        "intermediate_size": 5120,
        "num_hidden_layers": 32,
        "num_attention_heads": 20,
        "projection_dim": 1280,
        "max_position_embeddings": 77,
        "hidden_act": "gelu",
    },
    "t5": {
        "vocab_size": 32128,
        "d_model": 4096,
        "d_kv": 64,
        "d_ff": 10240,
        "num_layers": 24,
        "num_heads": 64,
        "relative_attention_num_buckets": 32,
        "relative_attention_max_distance": 128,
        "feed_forward_proj": "gated-gelu",
        "layer_norm_epsilon": 1e-6,
        "tie_word_embeddings": False,
    },
    "scheduler": {"num_train_timesteps": 1000, "shift": 3.0},
}


@dataclass(frozen=True)
class Architectures:
    gemma2: dict[str, Any]
    exaone4: dict[str, Any]
    xlmr: dict[str, Any]
    sd35: dict[str, dict[str, Any]]


REAL = Architectures(GEMMA2_2B, EXAONE4_1_2B, XLMR_BASE, SD35_MEDIUM)

_TINY_CLIP = {
    "vocab_size": 1024,
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "projection_dim": 32,
}
# The same architectures, a few thousand parameters each (and vocabularies that still hold the
# special tokens at their real ids). Gemma keeps its soft-capping and sliding/global layers.
TINY = Architectures(
    gemma2={
        **GEMMA2_2B,
        "vocab_size": 1024,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "query_pre_attn_scalar": 16,
        "sliding_window": 128,
    },
    exaone4={
        **EXAONE4_1_2B,
        "vocab_size": 1024,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 8,
        "layer_types": ["full_attention"] * 2,
    },
    xlmr={
        **XLMR_BASE,
        "vocab_size": 1024,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
    },
    sd35={
        "transformer": {
            **SD35_MEDIUM["transformer"],
            "sample_size": 8,
            "num_layers": 2,
            "attention_head_dim": 8,
            "num_attention_heads": 2,
            "joint_attention_dim": 32,
            "caption_projection_dim": 16,
            "pooled_projection_dim": 64,
            "pos_embed_max_size": 16,
            "dual_attention_layers": (0,),
        },
        "vae": {
            **SD35_MEDIUM["vae"],
            "block_out_channels": (8, 8, 8, 8),
            "layers_per_block": 1,
            "norm_num_groups": 4,
            "sample_size": 64,
        },
        "clip_l": {**SD35_MEDIUM["clip_l"], **_TINY_CLIP},
        "clip_g": {**SD35_MEDIUM["clip_g"], **_TINY_CLIP},
        "t5": {
            **SD35_MEDIUM["t5"],
            "vocab_size": 256,
            "d_model": 32,  # = joint_attention_dim
            "d_kv": 8,
            "d_ff": 32,
            "num_layers": 1,
            "num_heads": 2,
            "relative_attention_num_buckets": 8,
        },
        "scheduler": SD35_MEDIUM["scheduler"],
    },
)


# ---------------------------------------------------------------------------------------------
# Tokenizers

_PIECE = r"[가-힣]{1,2}|[A-Za-z]{1,6}|\d|[^\sA-Za-z\d가-힣]"


def piece_tokenizer(
    corpus: Iterable[str],
    vocab_size: int,
    specials: dict[str, int],
    *,
    bos: str,
    eos: str,
    pad: str,
    unk: str,
    extra_specials: tuple[str, ...] = (),
    chat_template: str | None = None,
    wrap: tuple[str, str] | None = None,
    model_max_length: int | None = None,
) -> Any:
    """A word-level fast tokenizer over the pieces of ``corpus`` (most frequent first), with
    ``specials`` at their given ids and ``<unusedN>`` fillers up to ``vocab_size``. ``wrap``
    adds (first, last) tokens around every text, as BERT-style encoders expect."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = dict(specials)
    taken = set(specials.values())
    free = iter([i for i in range(vocab_size) if i not in taken])
    counts = Counter(m.group(0) for text in corpus for m in re.finditer(_PIECE, text))
    for piece, _ in counts.most_common():
        if piece in vocab:
            continue
        index = next(free, None)
        if index is None:
            break
        vocab[piece] = index
    vocab.update({f"<unused{i}>": i for i in free})
    tok = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(_PIECE), "isolated")]
    )
    tok.decoder = decoders.WordPiece(prefix="##")  # joins pieces with spaces
    if wrap:
        first, last = wrap
        tok.post_processor = processors.TemplateProcessing(
            single=f"{first} $A {last}",
            special_tokens=[(first, specials[first]), (last, specials[last])],
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        unk_token=unk,
        additional_special_tokens=list(extra_specials),
        model_max_length=model_max_length or int(1e30),
    )
    if chat_template:
        fast.chat_template = chat_template
    return fast


def gemma_tokenizer(corpus: Iterable[str], vocab_size: int) -> Any:
    # The recipes' Gemma template (rejects a system turn, as the real one does).
    from training.tiny import _GEMMA_TEMPLATE

    return piece_tokenizer(
        corpus,
        vocab_size,
        GEMMA2_SPECIALS,
        bos="<bos>",
        eos="<eos>",
        pad="<pad>",
        unk="<unk>",
        extra_specials=("<start_of_turn>", "<end_of_turn>"),
        chat_template=_GEMMA_TEMPLATE,
    )


def xlmr_tokenizer(corpus: Iterable[str], vocab_size: int) -> Any:
    specials = {**XLMR_SPECIALS, "<mask>": vocab_size - 1}
    return piece_tokenizer(
        corpus,
        vocab_size,
        specials,
        bos="<s>",
        eos="</s>",
        pad="<pad>",
        unk="<unk>",
        extra_specials=("<mask>",),
        wrap=("<s>", "</s>"),
        model_max_length=512,
    )


# ---------------------------------------------------------------------------------------------
# Models


def param_bytes(model: Any) -> int:
    """Bytes of the parameters (tied ones once): what one decoding step reads."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def causal_lm(
    kind: str, config: dict[str, Any], device: Any, dtype: Any, attn: str | None = None
) -> Any:
    """``kind`` (gemma2 | exaone4) with random weights, initialised on ``device`` in ``dtype``."""
    import torch
    from transformers import AutoModelForCausalLM, Exaone4Config, Gemma2Config

    cls = {"gemma2": Gemma2Config, "exaone4": Exaone4Config}[kind]
    kwargs = {"dtype": dtype} | ({"attn_implementation": attn} if attn else {})
    with torch.device(device):
        return AutoModelForCausalLM.from_config(cls(**config), **kwargs)


def save_gemma(
    folder: Path, config: dict[str, Any], corpus: list[str], device: Any, dtype: Any
) -> Path:
    """Gemma-2 saved like a hub checkpoint (config, weights, tokenizer, generation config)."""
    from transformers import GenerationConfig

    tokenizer = gemma_tokenizer(corpus, config["vocab_size"])
    model = causal_lm("gemma2", config, device, dtype, attn="eager")
    model.generation_config = GenerationConfig(**GEMMA2_GENERATION)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    return folder


def save_e5(folder: Path, config: dict[str, Any], corpus: list[str], device: Any) -> Path:
    """An e5-style sentence-transformers folder (XLM-R, mean pooling, query:/passage: prompts);
    built on ``device`` in float32, as sentence-transformers loads it."""
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, XLMRobertaConfig

    raw = folder.with_name(folder.name + "-hf")
    with torch.device(device):
        AutoModel.from_config(XLMRobertaConfig(**config), dtype=torch.float32).save_pretrained(raw)
    xlmr_tokenizer(corpus, config["vocab_size"]).save_pretrained(raw)
    # A plain transformers folder loads as Transformer + mean pooling, which is e5's pooling.
    model = SentenceTransformer(str(raw), device="cpu")
    model.prompts = {"query": "query: ", "passage": "passage: "}
    model.save(str(folder))
    return folder


def sd3_components(spec: dict[str, dict[str, Any]], device: Any, dtype: Any) -> dict[str, Any]:
    """The parts of a StableDiffusion3Pipeline (T5 included), random weights, on ``device``."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    from imagegen.testing import clip_tokenizer, t5_tokenizer

    tok, tok3 = clip_tokenizer(), t5_tokenizer()
    ids = {
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }
    t5_ids = {"pad_token_id": tok3.pad_token_id, "eos_token_id": tok3.eos_token_id}
    with torch.device(device):
        # Built in float32 on the device (fast even for T5-XXL), then cast.
        transformer = SD3Transformer2DModel(**spec["transformer"]).to(dtype)
        vae = AutoencoderKL(**spec["vae"]).to(dtype)
        clip_l = CLIPTextModelWithProjection(CLIPTextConfig(**spec["clip_l"], **ids)).to(dtype)
        clip_g = CLIPTextModelWithProjection(CLIPTextConfig(**spec["clip_g"], **ids)).to(dtype)
        t5 = T5EncoderModel(T5Config(**spec["t5"], **t5_ids)).to(dtype)
    return {
        "transformer": transformer,
        "scheduler": FlowMatchEulerDiscreteScheduler(**spec["scheduler"]),
        "vae": vae,
        "text_encoder": clip_l,
        "tokenizer": tok,
        "text_encoder_2": clip_g,
        "tokenizer_2": clip_tokenizer(),
        "text_encoder_3": t5,
        "tokenizer_3": tok3,
    }


def sd3_transformer(spec: dict[str, dict[str, Any]], device: Any, dtype: Any) -> Any:
    import torch
    from diffusers import SD3Transformer2DModel

    with torch.device(device):
        return SD3Transformer2DModel(**spec["transformer"]).to(dtype)
