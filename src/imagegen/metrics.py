"""Image metrics: CLIP score (prompt following) and FID/KID (distance to a reference set).

Pitfalls handled here rather than left to callers:

- **Range.** Every image becomes a ``uint8`` tensor in [0, 255] before a metric sees it;
  torchmetrics treats float input as [0, 1] only with ``normalize=True``, and mixing the two
  silently gives garbage scores.
- **Resize.** Images are resized once with PIL bicubic (antialiased) to the feature network's
  input size, following clean-fid (Parmar et al., 2022); resizing with
  ``torch.nn.functional.interpolate`` without antialiasing aliases and shifts FID.
- **Mode.** Grayscale, palette, 16-bit and CMYK become RGB; alpha is composited on white.
- **Count.** FID needs at least 2 images per side and is biased and unstable below a few
  thousand (2,048 Inception features need more samples than that for a full-rank covariance);
  KID's subset size is clipped to the smaller set.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagegen.errors import ImageGenError
from polisum.jsonl import JsonlError, parse_jsonl_lines

if TYPE_CHECKING:
    import torch
    from PIL import Image

DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14"
FID_MIN_RELIABLE = 2048
INCEPTION_SIZE = 299
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"


def clip_help(model: str, reason: str) -> str:
    return (
        f"cannot load CLIP model '{model}': {reason}\n"
        f"Provide --clip-model /path/to/folder holding a transformers CLIPModel (config.json, "
        f"model.safetensors, preprocessor_config.json, tokenizer.json or vocab.json+merges.txt), "
        f"e.g. from `hf download {DEFAULT_CLIP_MODEL} --local-dir clip-vit-l14`, or network access "
        f"to the Hugging Face Hub, or a Hub cache (HF_HOME) holding it."
    )


def inception_help(reason: str) -> str:
    return (
        f"cannot use the FID Inception network: {reason}\n"
        f"Provide: `pip install torch-fidelity` (after torch, so it keeps your torch build) and "
        f"its weights file {INCEPTION_WEIGHTS} in $TORCH_HOME/hub/checkpoints/ (default "
        f"~/.cache/torch/hub/checkpoints/; downloaded there on first use when online), or pass "
        f"--inception-weights PATH; or use other features: --features hf:MODEL_ID_OR_PATH "
        f"(a CLIP or DINOv2 vision model; scores are then not comparable with published FID)."
    )


# --- loading ----------------------------------------------------------------------------------


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB 8-bit copy of any PIL image: alpha on white, 16-bit scaled, palette/CMYK converted."""
    import numpy as np
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image).astype(np.float64)
        scale = 257.0 if array.max(initial=0) > 255 or image.mode.startswith("I;16") else 1.0
        image = Image.fromarray(np.clip(np.round(array / scale), 0, 255).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_folder(folder: str | Path) -> list[tuple[str, Image.Image]]:
    """(file name, RGB image) for every image file directly in ``folder``, sorted by name."""
    from PIL import Image, UnidentifiedImageError

    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ImageGenError(f"{folder}: not a folder")
    images: list[tuple[str, Image.Image]] = []
    for path in sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        try:
            with Image.open(path) as image:
                image.load()
                rgb = to_rgb(image)
                rgb.info.update(getattr(image, "text", {}) or {})
        except (OSError, UnidentifiedImageError) as exc:
            raise ImageGenError(f"{path}: cannot read image ({exc})") from exc
        images.append((path.name, rgb))
    if not images:
        raise ImageGenError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return images


def load_prompts(
    path: str | Path | None, names: Sequence[str], texts: Sequence[dict[str, str]] = ()
) -> list[str]:
    """The prompt of each image in ``names`` order.

    ``path`` may be JSONL (``{"image": NAME, "prompt": TEXT}`` per line), JSON (``{NAME: TEXT}``),
    TSV (``NAME<TAB>TEXT``) or plain text (one prompt per line, in sorted file-name order).
    Without a file, prompts come from the PNG metadata ``Renderer.save`` writes (``texts``).
    """
    if path is None:
        prompts = [t.get("prompt") for t in texts] if texts else [None] * len(names)
        missing = [n for n, p in zip(names, prompts, strict=True) if not p]
        if missing:
            raise ImageGenError(
                f"no prompt for {len(missing)} image(s) (e.g. {missing[0]}): pass --prompts FILE "
                f"(JSONL image/prompt, JSON name→prompt, TSV or one line per image)"
            )
        return [str(p) for p in prompts]
    file = Path(path).expanduser()
    try:
        raw = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImageGenError(f"{path}: cannot read prompts ({exc})") from exc
    by_name: dict[str, str] = {}
    try:
        if file.suffix.lower() == ".jsonl":
            for _, row in parse_jsonl_lines(path, raw.splitlines()):
                by_name[str(row.get("image") or row.get("file"))] = str(row["prompt"])
        elif file.suffix.lower() == ".json":
            data = json.loads(raw)
            rows = (
                data.items()
                if isinstance(data, dict)
                else [(r.get("image") or r.get("file"), r["prompt"]) for r in data]
            )
            by_name = {str(k): str(v) for k, v in rows}
        else:
            lines = [line for line in raw.splitlines() if line.strip()]
            if lines and all("\t" in line for line in lines):
                by_name = dict(line.split("\t", 1) for line in lines)
            else:
                if len(lines) != len(names):
                    raise ImageGenError(
                        f"{path}: {len(lines)} prompt lines for {len(names)} images (one line "
                        f"per image, in sorted file-name order)"
                    )
                return [line.strip() for line in lines]
    except (json.JSONDecodeError, JsonlError, KeyError, TypeError, AttributeError) as exc:
        raise ImageGenError(f"{path}: bad prompts file ({exc})") from exc
    by_stem = {Path(k).stem: v for k, v in by_name.items()}
    missing = [n for n in names if n not in by_name and Path(n).stem not in by_stem]
    if missing:
        raise ImageGenError(f"{path}: no prompt for {len(missing)} image(s), e.g. {missing[0]}")
    return [by_name.get(n, by_stem.get(Path(n).stem, "")) for n in names]


def uint8_batch(images: Sequence[Image.Image], size: int | None = None) -> torch.Tensor:
    """N×3×H×W uint8 tensor; with ``size``, each image resized (PIL bicubic) to size×size."""
    import numpy as np
    import torch
    from PIL import Image

    arrays = []
    for image in images:
        rgb = to_rgb(image)
        if size is not None and rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.Resampling.BICUBIC)
        arrays.append(np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1))
    if len({a.shape for a in arrays}) > 1:
        raise ImageGenError("images differ in size; pass size= to resize them")
    return torch.from_numpy(np.stack(arrays))


# --- CLIP score -------------------------------------------------------------------------------


@dataclass
class ClipScoreResult:
    model: str
    score: float  # mean of 100 * max(cos(image, text), 0), as in Hessel et al. (2021)
    per_image: list[float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def clip_score(
    images: Sequence[Image.Image],
    prompts: Sequence[str],
    model: str = DEFAULT_CLIP_MODEL,
    *,
    batch_size: int = 16,
    on_image: Callable[[int], None] | None = None,
) -> ClipScoreResult:
    """CLIP score of each image against its prompt with ``model`` (Hub id or local folder).

    ``100 * max(cos(image, text), 0)`` as in Hessel et al. (2021) and torchmetrics' CLIPScore.
    The value depends on the CLIP model (ViT-L/14 scores run lower than ViT-B/32 on the same
    images), so always report it with the model. Prompts beyond CLIP's 77 tokens are cut.
    """
    import torch

    if len(images) != len(prompts):
        raise ImageGenError(f"{len(images)} images but {len(prompts)} prompts")
    if not images:
        raise ImageGenError("no images to score")
    # Computed here rather than with torchmetrics' CLIPScore: torchmetrics 1.9 breaks under
    # transformers 5 (get_image_features returns an output object there, not a tensor), and it
    # only accepts Hub ids with "openai" in the name, not local folders.
    network, processor = _load_clip(model)
    max_length = getattr(network.config.text_config, "max_position_embeddings", 77)
    per_image: list[float] = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            # PIL input: the processor resizes (bicubic) and rescales 0-255 itself, so the
            # uint8-vs-float range mix-up cannot happen.
            inputs = processor(
                text=list(prompts[start : start + batch_size]),
                images=[to_rgb(im) for im in images[start : start + batch_size]],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=max_length,
            )
            output = network(**inputs)
            image = nn_normalize(output.image_embeds)
            text = nn_normalize(output.text_embeds)
            scores = (100 * (image * text).sum(-1)).clamp(min=0)
            per_image.extend(float(v) for v in scores)
            if on_image:
                on_image(len(per_image))
    return ClipScoreResult(model=model, score=sum(per_image) / len(per_image), per_image=per_image)


def nn_normalize(x: Any) -> Any:
    return x / x.norm(p=2, dim=-1, keepdim=True)


def _load_clip(model: str) -> tuple[Any, Any]:
    from transformers import CLIPModel, CLIPProcessor

    try:
        return CLIPModel.from_pretrained(model).eval(), CLIPProcessor.from_pretrained(model)
    except (OSError, ValueError) as exc:
        raise ImageGenError(clip_help(model, str(exc).strip().splitlines()[0])) from exc


# --- FID / KID --------------------------------------------------------------------------------


def hf_features(model: str) -> torch.nn.Module:
    """FID/KID feature network from a transformers vision model id or folder (CLIP, DINOv2)."""
    from imagegen.features import HFImageFeatures

    return HFImageFeatures(model)


@dataclass
class DistributionResult:
    features: str
    fid: float
    kid_mean: float
    kid_std: float
    kid_subset_size: int
    n_images: int
    n_reference: int
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _inception(weights: str | Path | None) -> tuple[Any, int]:
    try:
        from torchmetrics.image.fid import NoTrainInceptionV3
    except ImportError as exc:  # pragma: no cover
        raise ImageGenError(inception_help(f"torchmetrics missing ({exc})")) from exc
    try:
        network = NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=["2048"],
            feature_extractor_weights_path=str(weights) if weights else None,
        )
    except (ModuleNotFoundError, ImportError) as exc:
        raise ImageGenError(inception_help("torch-fidelity is not installed")) from exc
    except (OSError, RuntimeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImageGenError(inception_help(f"weights not available ({reason})")) from exc
    return network, INCEPTION_SIZE


def feature_extractor(
    features: str | Any = "inception", inception_weights: str | Path | None = None
) -> tuple[Any, int | None, str]:
    """(module, input side or None, name) for ``"inception"``, ``"hf:ID_OR_PATH"`` or a module."""
    if not isinstance(features, str):
        return features, getattr(features, "side", None), type(features).__name__
    if features == "inception":
        network, side = _inception(inception_weights)
        return network, side, "inception-v3 (FID, torch-fidelity weights)"
    if features.startswith("hf:"):
        module = hf_features(features[3:])
        return module, module.side, features
    raise ImageGenError(f"unknown features '{features}' (expected inception or hf:ID_OR_PATH)")


def _embed(network: Any, images: Sequence[Image.Image], side: int | None, batch_size: int) -> Any:
    import torch

    chunks = [
        network(uint8_batch(images[start : start + batch_size], side))
        .double()
        .reshape(min(batch_size, len(images) - start), -1)
        for start in range(0, len(images), batch_size)
    ]
    return torch.cat(chunks)


def fid_kid(
    images: Sequence[Image.Image],
    reference: Sequence[Image.Image],
    features: str | Any = "inception",
    *,
    inception_weights: str | Path | None = None,
    kid_subset_size: int = 1000,
    kid_subsets: int = 100,
    batch_size: int = 32,
) -> DistributionResult:
    """FID and KID of ``images`` against ``reference`` in the feature space of ``features``.

    ``features`` is ``"inception"`` (the standard FID network; needs torch-fidelity and its
    weights), ``"hf:MODEL"`` (a CLIP/DINOv2 vision model), or any ``torch.nn.Module`` mapping
    uint8 N×3×H×W images to N×D features (tests inject tiny random networks this way).
    """
    import torch
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    n, n_ref = len(images), len(reference)
    if n < 2 or n_ref < 2:
        raise ImageGenError(
            f"FID/KID need at least 2 images on each side (got {n} generated, {n_ref} reference)"
        )
    network, side, name = feature_extractor(features, inception_weights)
    subset = min(kid_subset_size, n, n_ref)
    notes: list[str] = []
    if min(n, n_ref) < FID_MIN_RELIABLE:
        notes.append(
            f"FID from {min(n, n_ref)} images is biased upwards and unstable: compare only "
            f"scores computed with the same number of images; use ≥{FID_MIN_RELIABLE} "
            f"(ideally 10k–50k) per side for published numbers. KID is unbiased at small N."
        )
    if subset < kid_subset_size:
        notes.append(f"KID subset size lowered to {subset} (the smaller set's size)")
    with torch.inference_mode():
        real = _embed(network, reference, side, batch_size)
        fake = _embed(network, images, side, batch_size)
    # Features are computed once and handed to both metrics through a pass-through "network".
    from imagegen.features import Precomputed

    passthrough = Precomputed(real.shape[1])
    fid = FrechetInceptionDistance(feature=passthrough, normalize=False)
    with warnings.catch_warnings():  # "KID keeps all features in memory": known, and small here
        warnings.simplefilter("ignore", UserWarning)
        kid = KernelInceptionDistance(
            feature=passthrough, subsets=kid_subsets, subset_size=subset, normalize=False
        )
    for metric in (fid, kid):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    # FID is a squared distance; tiny negatives are round-off in the matrix square root.
    fid_value = max(float(fid.compute()), 0.0)
    kid_mean, kid_std = (float(v) for v in kid.compute())
    if not math.isfinite(fid_value):
        notes.append("FID is not finite (degenerate features: constant images?)")
    return DistributionResult(
        features=name,
        fid=fid_value,
        kid_mean=kid_mean,
        kid_std=kid_std,
        kid_subset_size=subset,
        n_images=n,
        n_reference=n_ref,
        warnings=notes,
    )
