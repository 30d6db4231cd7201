"""Tiny randomly initialised models with the real architectures, for tests and benchmarks.

They are saved as ordinary diffusers/transformers folders and loaded back through the same
code a user runs (``Renderer(path)``, ``clip_score(..., model=path)``); no network is needed.
The SD3 pipeline mirrors SD3.5 Medium's layout (MMDiT-X dual-attention block, RMS q/k norm,
16-channel 8× VAE, 2×2 patches, two CLIP encoders + T5) at a few thousand parameters.
"""

from __future__ import annotations

from pathlib import Path

SPECIAL_BOS = "<|startoftext|>"
SPECIAL_EOS = "<|endoftext|>"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-level alphabet: every byte maps to a printable character."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def clip_tokenizer(model_max_length: int = 77):
    """A CLIP BPE tokenizer over the bare byte alphabet (every text encodes; no merges)."""
    from transformers import CLIPTokenizer

    alphabet = list(_bytes_to_unicode().values())
    tokens = alphabet + [c + "</w>" for c in alphabet] + [SPECIAL_BOS, SPECIAL_EOS]
    vocab = {token: i for i, token in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def t5_tokenizer():
    """A T5 (Unigram) tokenizer over single ASCII characters (other text maps to <unk>)."""
    from transformers import T5Tokenizer

    pieces = ["<pad>", "</s>", "<unk>", "▁"]
    pieces += [chr(c) for c in range(33, 127)] + ["▁" + chr(c) for c in range(33, 127)]
    vocab = [(p, 0.0 if i < 3 else -float(i) / 100) for i, p in enumerate(pieces)]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def build_tiny_sd3(path: str | Path, seed: int = 0) -> Path:
    """Save a tiny random SD3.5-shaped pipeline to ``path`` (a diffusers folder); return it."""
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
        T5Config,
        T5EncoderModel,
    )

    torch.manual_seed(seed)
    tok = clip_tokenizer()
    tok3 = t5_tokenizer()
    clip_config = CLIPTextConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,  # SD3 reads the penultimate layer
        num_attention_heads=2,
        max_position_embeddings=77,
        projection_dim=32,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    text_encoder = CLIPTextModelWithProjection(clip_config)
    text_encoder_2 = CLIPTextModelWithProjection(clip_config)
    text_encoder_3 = T5EncoderModel(
        T5Config(
            vocab_size=len(tok3),
            d_model=32,  # = 16 + 16 from the two CLIP encoders = joint_attention_dim
            d_kv=8,
            d_ff=32,
            num_layers=1,
            num_heads=2,
            relative_attention_num_buckets=8,
            pad_token_id=tok3.pad_token_id,
            eos_token_id=tok3.eos_token_id,
        )
    )
    transformer = SD3Transformer2DModel(
        sample_size=8,
        patch_size=2,
        in_channels=16,
        out_channels=16,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=32,
        caption_projection_dim=16,
        pooled_projection_dim=64,  # two CLIP projections of 32
        pos_embed_max_size=16,
        dual_attention_layers=(0,),
        qk_norm="rms_norm",
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=4,
        sample_size=64,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5305,
    )
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tok,
        text_encoder_2=text_encoder_2,
        tokenizer_2=clip_tokenizer(),
        text_encoder_3=text_encoder_3,
        tokenizer_3=tok3,
    )
    out = Path(path)
    pipe.save_pretrained(out)
    return out


def build_tiny_lora(model_dir: str | Path, out_dir: str | Path, seed: int = 1) -> Path:
    """A random non-zero transformer LoRA for ``model_dir``, saved with diffusers' LoRA API."""
    import torch
    from diffusers import SD3Transformer2DModel, StableDiffusion3Pipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel.from_pretrained(Path(model_dir) / "transformer")
    # init_lora_weights=False: B is random too, so the adapter changes the output at once.
    transformer.add_adapter(
        LoraConfig(
            r=4,
            lora_alpha=4,
            target_modules=["to_q", "to_k", "to_v", "to_out.0"],
            init_lora_weights=False,
        )
    )
    StableDiffusion3Pipeline.save_lora_weights(
        out_dir, transformer_lora_layers=get_peft_model_state_dict(transformer)
    )
    return Path(out_dir)


def build_tiny_clip(path: str | Path, seed: int = 0, image_size: int = 32) -> Path:
    """Save a tiny random CLIPModel + CLIPProcessor folder (for CLIP score and hf: features)."""
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTextConfig,
        CLIPVisionConfig,
    )

    torch.manual_seed(seed)
    tok = clip_tokenizer()
    config = CLIPConfig(
        text_config=CLIPTextConfig(
            vocab_size=len(tok),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=77,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        ).to_dict(),
        vision_config=CLIPVisionConfig(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=8,
        ).to_dict(),
        projection_dim=16,
    )
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": image_size},
            crop_size={"height": image_size, "width": image_size},
        ),
        tokenizer=tok,
    )
    out = Path(path)
    CLIPModel(config).save_pretrained(out)
    processor.save_pretrained(out)
    return out
