"""Training-step timing for ``gpu_speed.py``: the recipes' settings, the real model classes and
the recipes' own loss functions, in a minimal loop (no Trainer, no data files, random weights).

Each recipe's YAML (``training/configs/NAME.yaml``) is read as plain YAML, so the settings that
set a step's cost come from the file the recipe runs with: LoRA rank, alpha and target modules,
batch size, gradient accumulation, sequence length cap, gradient checkpointing, attention, dtype.
A step is what the optimizer sees: ``gradient_accumulation_steps`` forward/backward passes of
``per_device_batch_size`` rows, gradient clipping and a fused AdamW update, under bf16 autocast
where the recipes' Trainer would use it (bf16 on a GPU that supports it). The losses:

- SFT (TRL's SFTTrainer): the model's own next-token cross-entropy on the assistant tokens.
- KD: :func:`training.distill.distillation_losses` over a :func:`training.distill.collate`
  batch of stored top-k teacher logits (the shape ``training.logits`` writes).
- SD3.5: :func:`training.diffusion.flow.flow_matching_loss` on cached latents and text
  embeddings, as the config caches both (so no VAE or text encoder runs per step).

Rows are full-length (no padding), with the last quarter as the answer: the real rows of a
paragraph→summary set are shorter than ``max_length``, so the cap is timed (worst case, the
memory bound) beside a typical length.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _gpu_models import Architectures, causal_lm, sd3_transformer

REPO = Path(__file__).resolve().parents[1]
ANSWER_SHARE = 0.25  # the summary's share of a paragraph→summary row


def recipe(name: str) -> dict[str, Any]:
    import yaml

    return yaml.safe_load((REPO / "training" / "configs" / f"{name}.yaml").read_text("utf-8"))


def _dtype(name: str) -> Any:
    from training.common import torch_dtype

    return torch_dtype(name)


def _autocast(device: Any, enabled: bool) -> Any:
    import torch

    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _adamw(params: list[Any], section: dict[str, Any], device: Any) -> Any:
    import torch

    betas = tuple(section.get("adam_betas", (0.9, 0.999)))
    return torch.optim.AdamW(
        params,
        lr=float(section.get("lr", 1e-4)),
        betas=betas,
        weight_decay=float(section.get("weight_decay", 0.0)),
        fused=device.type == "cuda",
    )


def time_steps(
    step: Callable[[], None], device: Any, steps: int, deadline: float
) -> tuple[list[float], float]:
    """Seconds of each timed step after one untimed warm-up step; the peak memory (GiB)."""
    import torch

    step()  # allocator, cuBLAS heuristics, autotuning
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times: list[float] = []
    for _ in range(steps):
        if times and time.perf_counter() + times[-1] > deadline:
            break
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    return times, peak


def _lora(section: dict[str, Any]) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=int(section["r"]),
        lora_alpha=int(section["alpha"]),
        lora_dropout=float(section.get("dropout", 0.0)),
        target_modules=list(section["target_modules"]),
        task_type="CAUSAL_LM",
    )


def _rows(vocab: int, batch: int, length: int, device: Any) -> tuple[Any, Any]:
    import torch

    ids = torch.randint(8, vocab, (batch, length), device=device)
    labels = ids.clone()
    labels[:, : int(length * (1 - ANSWER_SHARE))] = -100  # loss on the answer only
    return ids, labels


def lora_lm(kind: str, config: dict[str, Any], section: dict[str, Any], device: Any) -> Any:
    """The recipe's model section (dtype, attention, gradient checkpointing) and LoRA on the
    real architecture; Gemma-2 gets eager attention when none is named, as the recipes do."""
    from peft import get_peft_model

    m = section["model"]
    attn = m.get("attn_implementation") or ("eager" if kind == "gemma2" else None)
    model = causal_lm(kind, config, device, _dtype(m.get("dtype", "auto")), attn)
    if m.get("gradient_checkpointing"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    model = get_peft_model(model, _lora(section["lora"]))
    model.train()
    return model


def lm_step_time(
    model: Any,
    section: dict[str, Any],
    make_batch: Callable[[int], Any],
    loss_of: Callable[[Any, Any], Any],
    device: Any,
    length: int,
    steps: int,
    deadline: float,
) -> dict[str, Any]:
    """Time optimizer steps of the recipe's training section: gradient_accumulation_steps
    batches of per_device_batch_size rows (``make_batch(rows)``), clipping, AdamW."""
    import torch
    from training.common import bf16_supported

    t = section["training"]
    params = [p for p in model.parameters() if p.requires_grad]
    bsz, accum = int(t["per_device_batch_size"]), int(t["gradient_accumulation_steps"])
    batches = [make_batch(bsz) for _ in range(accum)]
    bf16 = bf16_supported() if t.get("bf16") is None else bool(t["bf16"])
    opt = _adamw(params, t, device)

    def step() -> None:
        for batch in batches:
            with _autocast(device, bf16):
                loss = loss_of(model, batch)
            (loss / accum).backward()
        torch.nn.utils.clip_grad_norm_(params, float(t.get("max_grad_norm", 1.0)))
        opt.step()
        opt.zero_grad(set_to_none=True)

    times, peak = time_steps(step, device, steps, deadline)
    tokens = bsz * accum * length
    return _row(times, peak, tokens=tokens, batch=bsz, accum=accum, length=length, params=params)


def sft_step_time(arch: Architectures, device: Any, length: int, steps: int, deadline: float):
    """EXAONE-4.0-1.2B LoRA SFT at exaone_1.2b_lora.yaml's settings."""
    import torch

    cfg = recipe("exaone_1.2b_lora")
    model = lora_lm("exaone4", arch.exaone4, cfg, device)

    def loss_of(model: Any, batch: Any) -> Any:
        ids, labels = batch
        return model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss

    def make_batch(rows: int) -> Any:
        return _rows(arch.exaone4["vocab_size"], rows, length, device)

    return lm_step_time(model, cfg, make_batch, loss_of, device, length, steps, deadline)


def kd_step_time(arch: Architectures, device: Any, length: int, steps: int, deadline: float):
    """gemma-2-2b student LoRA on stored top-k teacher logits, gemma2_2b_kd.yaml's settings."""
    import torch
    from training.distill import collate, distillation_losses
    from training.logits import LogitSequence

    cfg = recipe("gemma2_2b_kd")
    student, k = cfg["student"], int(cfg["logits"]["top_k"])
    model = lora_lm("gemma2", arch.gemma2, student, device)
    vocab, pad = arch.gemma2["vocab_size"], arch.gemma2["pad_token_id"]
    store = getattr(torch, cfg["logits"].get("dtype", "float32"))

    def sequence() -> LogitSequence:
        ids, labels = (x[0] for x in _rows(vocab, 1, length, "cpu"))
        targets = int((labels != -100).sum())
        return LogitSequence(
            input_ids=ids.to(torch.int32),
            labels=labels.to(torch.int32),
            topk_ids=torch.randint(0, vocab, (targets, k), dtype=torch.int32),
            topk_logits=torch.randn(targets, k).to(store),
        )

    def make_batch(rows: int) -> Any:
        batch = collate([sequence() for _ in range(rows)], pad)
        return {name: value.to(device) for name, value in batch.items()}

    alpha, temp, div = student["alpha"], student["temperature"], student["divergence"]

    def loss_of(model: Any, batch: Any) -> Any:
        return distillation_losses(model, batch, alpha, temp, div)["loss"]

    return lm_step_time(model, student, make_batch, loss_of, device, length, steps, deadline)


def sd35_step_time(arch: Architectures, device: Any, resolution: int, steps: int, deadline: float):
    """SD3.5-Medium transformer LoRA at sd35_medium_lora.yaml's settings (cached latents and
    text embeddings, as that config sets)."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler
    from peft import LoraConfig
    from training.diffusion.flow import TimestepSampling, flow_matching_loss

    cfg = recipe("sd35_medium_lora")
    lora, data, t = cfg["lora"], cfg["data"], cfg["training"]
    dtype = _dtype(cfg["model"].get("dtype", "auto"))
    spec = arch.sd35
    transformer = sd3_transformer(spec, device, dtype)
    transformer.requires_grad_(False)
    transformer.add_adapter(
        LoraConfig(
            r=int(lora["rank"]),
            lora_alpha=int(lora.get("alpha") or lora["rank"]),
            lora_dropout=float(lora.get("dropout", 0.0)),
            init_lora_weights="gaussian",
            target_modules=list(lora["target_modules"]),
        )
    )
    params = [p for p in transformer.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.float()  # the recipe trains LoRA weights in float32
    if t.get("gradient_checkpointing"):
        transformer.enable_gradient_checkpointing()
    transformer.train()
    opt = _adamw(params, t, device)
    scheduler = FlowMatchEulerDiscreteScheduler(**spec["scheduler"])
    bsz, accum = int(t.get("batch_size", 1)), int(t.get("gradient_accumulation_steps", 1))
    side = resolution // 8  # the VAE's 8× downsampling
    tr = spec["transformer"]
    text_tokens = 77 + int(data.get("max_sequence_length", 77))  # CLIP tokens + T5 tokens
    latents = torch.randn(bsz, tr["in_channels"], side, side, device=device).to(dtype)
    embeds = torch.randn(bsz, text_tokens, tr["joint_attention_dim"], device=device).to(dtype)
    pooled = torch.randn(bsz, tr["pooled_projection_dim"], device=device).to(dtype)
    weighting = TimestepSampling(
        weighting_scheme=t.get("weighting_scheme", "logit_normal"),
        logit_mean=float(t.get("logit_mean", 0.0)),
        logit_std=float(t.get("logit_std", 1.0)),
        mode_scale=float(t.get("mode_scale", 1.29)),
    )

    def step() -> None:
        for _ in range(accum):
            loss = flow_matching_loss(transformer, scheduler, latents, embeds, pooled, weighting)
            (loss / accum).backward()
        torch.nn.utils.clip_grad_norm_(params, float(t.get("max_grad_norm", 1.0)))
        opt.step()
        opt.zero_grad(set_to_none=True)

    times, peak = time_steps(step, device, steps, deadline)
    row = _row(times, peak, batch=bsz, accum=accum, resolution=resolution, params=params)
    row["images_per_s"] = round(bsz * accum / row["s_per_step"], 3) if times else None
    row["per_step_encoders"] = not (t.get("cache_latents") and t.get("cache_text_embeddings"))
    return row


def _row(times: list[float], peak: float | None, *, params: list[Any], tokens=None, **info):
    s = statistics.median(times) if times else None
    row: dict[str, Any] = {
        **info,
        "trainable_params": sum(p.numel() for p in params),
        "timed_steps": len(times),
        "s_per_step": round(s, 4) if s else None,
        "step_times": [round(x, 4) for x in times],
        "peak_gpu_gib": round(peak, 2) if peak is not None else None,
    }
    if tokens and s:
        row["tokens_per_s"] = round(tokens / s, 1)
    return row
