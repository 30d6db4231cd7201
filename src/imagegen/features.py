"""Feature networks for FID/KID (imports torch/transformers; loaded by imagegen.metrics on use)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from imagegen.errors import ImageGenError


class HFImageFeatures(nn.Module):
    """Image embeddings from a transformers vision model: uint8 N×3×H×W → float64 N×D.

    CLIP checkpoints give their projected image embedding (FD on CLIP features, Kynkäänniemi et
    al. 2023); others (DINOv2, ViT) the pooled output (FD_DINOv2, Stein et al. 2023). ``model``
    is a Hub id or a local folder with config.json, weights and preprocessor_config.json.
    """

    def __init__(self, model: str) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoImageProcessor, AutoModel, CLIPModel

        try:
            config = AutoConfig.from_pretrained(model)
            processor = AutoImageProcessor.from_pretrained(model)
            # The full CLIPModel so projection_dim comes from its config; only the vision
            # tower and its projection run.
            loader = CLIPModel if config.model_type == "clip" else AutoModel
            self.network = loader.from_pretrained(model).eval()
        except (OSError, ValueError) as exc:
            raise ImageGenError(
                f"cannot load feature model '{model}': {str(exc).strip().splitlines()[0]}\n"
                f"Provide a local folder with config.json, model.safetensors and "
                f"preprocessor_config.json, or network access to the Hugging Face Hub."
            ) from exc
        self.name = model
        size = getattr(processor, "crop_size", None) or getattr(processor, "size", None) or {}
        self.side = int(size.get("height") or size.get("shortest_edge") or 224)
        self.register_buffer("mean", torch.tensor(processor.image_mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(processor.image_std).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        if x.shape[-2:] != (self.side, self.side):
            # imagegen.metrics resizes with PIL before this; this serves other callers.
            x = nn.functional.interpolate(
                x, size=(self.side, self.side), mode="bicubic", antialias=True
            )
        pixel_values = (x - self.mean) / self.std
        if hasattr(self.network, "visual_projection"):
            pooled = self.network.vision_model(pixel_values=pixel_values).pooler_output
            return self.network.visual_projection(pooled).double()
        out = self.network(pixel_values=pixel_values)
        pooled = getattr(out, "pooler_output", None)
        return (pooled if pooled is not None else out.last_hidden_state[:, 0]).double()


class Precomputed(nn.Module):
    """Returns its input: features extracted once, then fed to both FID and KID."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features  # torchmetrics reads this instead of probing

    def forward(self, features: Any) -> Any:
        return features
