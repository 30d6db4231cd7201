"""imagegen: render prompts with Stable Diffusion 3.5 (+ LoRA) and score images (CLIP, FID, KID).

```python
import imagegen

renderer = imagegen.Renderer("stabilityai/stable-diffusion-3.5-medium", lora="my-lora/")
images = renderer.render("a plaza with EV chargers, golden hour", seed=42)
paths = renderer.save(images, "out/")  # PNGs carry prompt, seed, model and LoRA as metadata

imagegen.clip_score(images, ["a plaza with EV chargers, golden hour"])
imagegen.fid_kid(generated_images, reference_images)
```

Heavy dependencies (torch, diffusers, transformers, torchmetrics) are imported on first use,
so importing this package is cheap (``pip install "polisum[image]"``).
"""

from __future__ import annotations

from imagegen.errors import ImageGenError
from imagegen.metadata import ImageRecord, read_record
from imagegen.metrics import (
    DEFAULT_CLIP_MODEL,
    FID_MIN_RELIABLE,
    ClipScoreResult,
    DistributionResult,
    clip_score,
    fid_kid,
    hf_features,
    load_folder,
    load_prompts,
    to_rgb,
)
from imagegen.render import DEFAULT_MODEL, Renderer, size_for_aspect

__all__ = [
    "DEFAULT_CLIP_MODEL",
    "DEFAULT_MODEL",
    "FID_MIN_RELIABLE",
    "ClipScoreResult",
    "DistributionResult",
    "ImageGenError",
    "ImageRecord",
    "Renderer",
    "clip_score",
    "fid_kid",
    "hf_features",
    "load_folder",
    "load_prompts",
    "read_record",
    "size_for_aspect",
    "to_rgb",
]
