"""The rectified-flow objective of SD3 (as in the SD3 paper and diffusers' DreamBooth-SD3
example): ``x_σ = (1−σ)·x0 + σ·ε`` with σ drawn per the weighting scheme, and the transformer
learns the velocity ``ε − x0``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["WEIGHTING_SCHEMES", "TimestepSampling", "flow_matching_loss"]

WEIGHTING_SCHEMES = ("logit_normal", "mode", "uniform", "sigma_sqrt", "cosmap")


@dataclass
class TimestepSampling:
    """How σ is drawn (diffusers' ``compute_density_for_timestep_sampling``) and weighted."""

    weighting_scheme: str = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    mode_scale: float = 1.29


def flow_matching_loss(
    transformer: Any,
    scheduler: Any,
    latents: Any,
    embeds: Any,
    pooled: Any,
    sampling: TimestepSampling,
    generator: Any | None = None,
) -> Any:
    """Mean rectified-flow loss of a batch of latents under their prompt embeddings; noise and
    σ come from ``generator`` when one is given (fixed validation noise)."""
    import torch
    from diffusers.training_utils import (
        compute_density_for_timestep_sampling,
        compute_loss_weighting_for_sd3,
    )

    bsz = latents.shape[0]
    noise = torch.randn(latents.shape, generator=generator, device="cpu").to(latents)
    u = compute_density_for_timestep_sampling(
        weighting_scheme=sampling.weighting_scheme,
        batch_size=bsz,
        logit_mean=sampling.logit_mean,
        logit_std=sampling.logit_std,
        mode_scale=sampling.mode_scale,
        generator=generator,
    )
    last = len(scheduler.timesteps) - 1
    indices = (u * scheduler.config.num_train_timesteps).long().clamp(max=last)
    timesteps = scheduler.timesteps[indices].to(latents.device)
    sigmas = scheduler.sigmas[indices].to(latents.device, torch.float32)
    sigmas = sigmas.view(bsz, *([1] * (latents.ndim - 1)))
    noisy = (1.0 - sigmas) * latents.float() + sigmas * noise.float()
    pred = transformer(
        hidden_states=noisy.to(latents.dtype),
        timestep=timesteps,
        encoder_hidden_states=embeds,
        pooled_projections=pooled,
        return_dict=False,
    )[0]
    weighting = compute_loss_weighting_for_sd3(sampling.weighting_scheme, sigmas)
    target = noise.float() - latents.float()
    per_item = (weighting.float() * (pred.float() - target) ** 2).reshape(bsz, -1).mean(1)
    return per_item.mean()
