"""Image/caption training data: a folder of images with same-name ``.txt`` captions, or a JSONL
of ``{"image": "path/relative/to/the/jsonl.png", "caption": "..."}``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.common import RecipeError, read_jsonl

__all__ = ["IMAGE_SUFFIXES", "ImageCaption", "load_image_captions", "load_pixels"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})


@dataclass
class ImageCaption:
    image: Path
    caption: str


def load_image_captions(source: str, default_caption: str | None = None) -> list[ImageCaption]:
    """Image/caption pairs from a folder (``x.png`` + ``x.txt``) or a JSONL file."""
    path = Path(source)
    if path.is_dir():
        items = _from_folder(path, default_caption)
    elif path.is_file():
        items = _from_jsonl(path, default_caption)
    else:
        raise RecipeError(f"{source}: image data not found (a folder or a JSONL file)")
    if not items:
        raise RecipeError(f"{source}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return items


def _from_folder(folder: Path, default_caption: str | None) -> list[ImageCaption]:
    items = []
    for image in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        text_file = image.with_suffix(".txt")
        if text_file.is_file():
            caption = text_file.read_text(encoding="utf-8").strip()
        elif default_caption is not None:
            caption = default_caption
        else:
            raise RecipeError(
                f"{image}: no caption file {text_file.name} (or set data.default_caption)"
            )
        items.append(ImageCaption(image, caption))
    return items


def _from_jsonl(path: Path, default_caption: str | None) -> list[ImageCaption]:
    items = []
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        if not isinstance(row.get("image"), str):
            raise RecipeError(f"{where}: needs an 'image' path")
        image = (path.parent / row["image"]).resolve()
        if not image.is_file():
            raise RecipeError(f"{where}: image {image} not found")
        caption = row.get("caption", row.get("text", default_caption))
        if not isinstance(caption, str):
            raise RecipeError(f"{where}: needs a 'caption'")
        items.append(ImageCaption(image, caption))
    return items


def load_pixels(
    item: ImageCaption,
    resolution: int,
    *,
    center_crop: bool = True,
    random_flip: bool = False,
    generator: Any | None = None,
) -> Any:
    """[3, R, R] in [-1, 1]: resized on the shorter side to ``resolution``, cropped square
    (centred, or at a random place drawn from ``generator``), optionally flipped."""
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(item.image) as img:
            img = img.convert("RGB")
            scale = resolution / min(img.size)
            w = max(resolution, round(img.width * scale))
            h = max(resolution, round(img.height * scale))
            img = img.resize((w, h), Image.Resampling.BICUBIC)
            if center_crop:
                left, top = (w - resolution) // 2, (h - resolution) // 2
            else:
                left = int(torch.randint(0, w - resolution + 1, (1,), generator=generator))
                top = int(torch.randint(0, h - resolution + 1, (1,), generator=generator))
            img = img.crop((left, top, left + resolution, top + resolution))
            array = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
    except (OSError, UnidentifiedImageError) as exc:
        raise RecipeError(f"{item.image}: unreadable image ({exc})") from exc
    tensor = torch.from_numpy(array).permute(2, 0, 1).contiguous()
    if random_flip and bool(torch.rand((), generator=generator) < 0.5):
        tensor = tensor.flip(-1)
    return tensor
