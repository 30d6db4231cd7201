"""Validation of a diffusion LoRA run: the flow-matching loss of a held-out set under fixed noise
(comparable across steps: only the weights move it), and images rendered from fixed prompts and
seeds."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from training.diffusion.data import ImageCaption
from training.diffusion.encoders import SD3Encoders
from training.diffusion.flow import TimestepSampling, flow_matching_loss

__all__ = ["render_prompts", "validation_loss"]

_VALIDATION_SEED = 10_000


def validation_loss(
    transformer: Any,
    scheduler: Any,
    encoders: SD3Encoders,
    items: Sequence[ImageCaption],
    sampling: TimestepSampling,
    pixels: Callable[[ImageCaption, Any], Any],
) -> float:
    """Mean loss over ``items``; item i always gets the same crop, noise and σ (its own seeded
    generator), and its latents are cached under key ``-1 - i``. ``pixels(item, generator)``
    loads an image as the training data does."""
    import torch

    losses = []
    for i, item in enumerate(items):
        generator = torch.Generator().manual_seed(_VALIDATION_SEED + i)
        params = encoders.latent_params(-1 - i, pixels(item, generator))[None]
        latents = encoders.latents(params, generator=generator).to(transformer.dtype)
        embeds, pooled = encoders.text([item.caption])
        with torch.no_grad():
            loss = flow_matching_loss(
                transformer, scheduler, latents, embeds, pooled, sampling, generator=generator
            )
        losses.append(float(loss))
    return sum(losses) / len(losses)


def render_prompts(
    pipe: Any,
    folder: Path,
    prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    size: int,
    num_inference_steps: int,
    guidance_scale: float,
    max_sequence_length: int,
) -> None:
    """``promptPP-seedS.png`` for every prompt and seed, and ``prompts.json``, into ``folder``."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    for p, prompt in enumerate(prompts):
        for seed in seeds:
            with torch.no_grad():
                image = pipe(
                    prompt=prompt,
                    num_inference_steps=num_inference_steps,
                    guidance_scale=guidance_scale,
                    height=size,
                    width=size,
                    generator=torch.Generator(device="cpu").manual_seed(seed),
                    max_sequence_length=max_sequence_length,
                ).images[0]
            image.save(folder / f"prompt{p:02d}-seed{seed}.png")
    (folder / "prompts.json").write_text(
        json.dumps({"prompts": list(prompts), "seeds": list(seeds)}, ensure_ascii=False, indent=2)
    )
