"""SD3's frozen encoders as the training loop uses them: VAE latents and the three text
encoders' prompt embeddings, computed on demand or cached once up front."""

from __future__ import annotations

from typing import Any

__all__ = ["SD3Encoders"]

_TEXT_ENCODERS = ("text_encoder", "text_encoder_2", "text_encoder_3")


class SD3Encoders:
    """Latents and prompt embeddings of a StableDiffusion3Pipeline's frozen encoders.

    ``cache_latents`` keeps each image's latent distribution (only sound when an image always
    encodes the same: no random crop or flip); ``cache_text`` keeps each caption's embeddings.
    """

    def __init__(
        self,
        pipe: Any,
        device: Any,
        max_sequence_length: int,
        *,
        cache_latents: bool = False,
        cache_text: bool = False,
    ) -> None:
        self.pipe = pipe
        self.device = device
        self.max_sequence_length = max_sequence_length
        self.cache_latents = cache_latents
        self.cache_text = cache_text
        self.latent_cache: dict[int, Any] = {}
        self.text_cache: dict[str, tuple[Any, Any]] = {}

    def text(self, captions: list[str]) -> tuple[Any, Any]:
        """(prompt embeddings, pooled embeddings) of ``captions``, stacked."""
        import torch

        missing = [c for c in dict.fromkeys(captions) if c not in self.text_cache]
        if missing:
            with torch.no_grad():
                embeds, _, pooled, _ = self.pipe.encode_prompt(
                    prompt=missing,
                    prompt_2=missing,
                    prompt_3=missing,
                    device=self.device,
                    do_classifier_free_guidance=False,
                    max_sequence_length=self.max_sequence_length,
                )
            for i, caption in enumerate(missing):
                self.text_cache[caption] = (embeds[i], pooled[i])
        pairs = [self.text_cache[c] for c in captions]
        if not self.cache_text:
            self.text_cache.clear()
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])

    def offload_text_encoders(self) -> None:
        """Move the text encoders to the CPU once every caption needed is cached: they hold
        accelerator memory the training no longer uses."""
        for name in _TEXT_ENCODERS:
            encoder = getattr(self.pipe, name, None)
            if encoder is not None:
                encoder.to("cpu")

    def latent_params(self, key: int, pixels: Any) -> Any:
        """The VAE's latent distribution parameters (mean and log-variance) of one image;
        ``key`` names the image in the cache."""
        import torch

        if key in self.latent_cache:
            return self.latent_cache[key]
        vae = self.pipe.vae
        with torch.no_grad():
            dist = vae.encode(pixels[None].to(self.device, vae.dtype)).latent_dist
        params = dist.parameters[0]
        if self.cache_latents:
            self.latent_cache[key] = params
        return params

    def latents(self, params: Any, generator: Any | None = None) -> Any:
        """Sampled, shifted and scaled latents from stacked distribution parameters."""
        import torch

        mean, logvar = params.chunk(2, dim=1)
        std = torch.exp(0.5 * logvar.clamp(-30.0, 20.0))
        noise = torch.randn(mean.shape, generator=generator, device="cpu").to(mean.device)
        x = mean + std * noise.to(mean.dtype)
        vae = self.pipe.vae.config
        return (x - (vae.shift_factor or 0.0)) * vae.scaling_factor
