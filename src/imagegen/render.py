"""Render prompts with diffusers' StableDiffusion3Pipeline, with optional peft-backed LoRA."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagegen.errors import ImageGenError
from imagegen.metadata import ImageRecord

if TYPE_CHECKING:
    import torch
    from PIL import Image

DEFAULT_MODEL = "stabilityai/stable-diffusion-3.5-medium"
MODEL_ENV = "POLISUM_SD_MODEL"
ADAPTER_NAME = "polisum_lora"
# The VAE downsamples by 8 and the transformer patchifies 2×2 latents, so sides must divide by 16.
SIZE_MULTIPLE = 16

MODEL_LAYOUT = (
    "a diffusers folder: model_index.json, scheduler/, transformer/, vae/, text_encoder/, "
    "text_encoder_2/, text_encoder_3/ (T5; may be missing with --no-t5), tokenizer/, "
    "tokenizer_2/, tokenizer_3/"
)


def weights_help(model: str, reason: str) -> str:
    """What a user must provide when the SD3.5 weights cannot be loaded."""
    return (
        f"cannot load Stable Diffusion 3.5 weights from '{model}': {reason}\n"
        f"Provide one of:\n"
        f"  --model /path/to/folder (or {MODEL_ENV}=/path/to/folder) — {MODEL_LAYOUT};\n"
        f"    e.g. `hf download {DEFAULT_MODEL} --local-dir sd35m` on a machine with network\n"
        f"  network access to the Hugging Face Hub with a token (`hf auth login`): the model is\n"
        f"    gated, accept its licence at https://huggingface.co/{DEFAULT_MODEL} first\n"
        f"  a Hub cache already holding the files (HF_HOME), with HF_HUB_OFFLINE=1"
    )


def _looks_like_path(model: str) -> bool:
    # Hub ids are exactly "owner/name"; anything else (./x, /x, ~/x, a/b/c, C:\\x) is a path.
    return model.startswith((".", "/", "~")) or "\\" in model or model.count("/") != 1


def resolve_model(model: str | os.PathLike[str] | None) -> str:
    """A local folder (checked for model_index.json) or a Hub id, from arg, env or default."""
    chosen = str(model) if model else os.environ.get(MODEL_ENV) or DEFAULT_MODEL
    expanded = os.path.expanduser(chosen)
    if os.path.isdir(expanded):
        if not os.path.isfile(os.path.join(expanded, "model_index.json")):
            raise ImageGenError(
                weights_help(chosen, "the folder has no model_index.json (not a diffusers folder)")
            )
        return os.path.abspath(expanded)  # recorded in PNG metadata: make it unambiguous
    if os.path.exists(expanded):
        raise ImageGenError(weights_help(chosen, "this is a file; a model folder is expected"))
    if _looks_like_path(chosen):
        raise ImageGenError(weights_help(chosen, "no such folder"))
    return chosen


def auto_device(device: str | None = None) -> str:
    if device:
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def auto_dtype(device: str, dtype: str | torch.dtype | None = None) -> torch.dtype:
    """bf16 on CUDA (SD3.5's training precision), fp16 on MPS, fp32 on CPU (bf16 is slow there)."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype:
        names = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32", "half": "float16"}
        resolved = getattr(torch, names.get(dtype, dtype), None)
        if not isinstance(resolved, torch.dtype):
            raise ImageGenError(f"unknown dtype '{dtype}' (expected bf16, fp16 or fp32)")
        return resolved
    if device.startswith("cuda"):
        return torch.bfloat16
    if device.startswith("mps"):
        return torch.float16
    return torch.float32


def size_for_aspect(aspect_ratio: str, pixels: int = 1024 * 1024) -> tuple[int, int]:
    """Width and height (multiples of 64, ~``pixels`` in area) for an aspect like ``"16:9"``."""
    try:
        w_part, h_part = aspect_ratio.replace("x", ":").split(":")
        ratio = float(w_part) / float(h_part)
    except (ValueError, ZeroDivisionError) as exc:
        raise ImageGenError(f"bad aspect ratio '{aspect_ratio}' (expected W:H, e.g. 16:9)") from exc
    if not 0.25 <= ratio <= 4:
        raise ImageGenError(f"aspect ratio '{aspect_ratio}' is outside 1:4 .. 4:1")
    height = (pixels / ratio) ** 0.5
    width = height * ratio
    return max(64, round(width / 64) * 64), max(64, round(height / 64) * 64)


def _check_size(name: str, value: int) -> None:
    if value <= 0 or value % SIZE_MULTIPLE:
        raise ImageGenError(f"{name} must be a positive multiple of {SIZE_MULTIPLE}, got {value}")


class Renderer:
    """A Stable Diffusion 3.x pipeline with optional LoRA, loaded once and reused per render.

    ``model`` is a Hub id or a local diffusers folder (default ``$POLISUM_SD_MODEL`` or
    SD3.5 Medium). ``drop_t5`` leaves out the 4.7B-parameter T5 text encoder (about 9 GB in
    bf16); prompts then use the CLIP encoders only, at some cost in prompt following.
    ``cpu_offload`` keeps submodels on the CPU and moves each to the GPU only while it runs.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        lora: str | os.PathLike[str] | None = None,
        lora_scale: float = 1.0,
        dtype: str | torch.dtype | None = None,
        device: str | None = None,
        cpu_offload: bool = False,
        drop_t5: bool = False,
    ) -> None:
        self.model = resolve_model(model)
        self.device = auto_device(device)
        self.dtype = auto_dtype(self.device, dtype)
        if cpu_offload and self.device == "cpu":
            raise ImageGenError("--cpu-offload needs a GPU (it moves models from CPU to GPU)")
        self.cpu_offload = cpu_offload
        self.drop_t5 = drop_t5
        self.lora: str | None = None
        self.lora_scale = 1.0
        self.pipe = self._load_pipeline()
        if lora is not None:
            self.load_lora(lora, scale=lora_scale)

    def _load_pipeline(self) -> Any:
        try:
            from diffusers import StableDiffusion3Pipeline
        except ImportError as exc:
            raise ImageGenError(
                'image generation needs diffusers: pip install "polisum[image]"'
            ) from exc
        kwargs: dict[str, Any] = {"dtype": self.dtype}
        if self.drop_t5:
            kwargs.update(text_encoder_3=None, tokenizer_3=None)
        try:
            pipe = StableDiffusion3Pipeline.from_pretrained(self.model, **kwargs)
        except (OSError, ValueError, KeyError) as exc:
            # huggingface_hub's offline/not-found errors are OSError subclasses.
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ImageGenError(weights_help(self.model, reason)) from exc
        if self.cpu_offload:
            pipe.enable_model_cpu_offload()
        else:
            pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    # --- LoRA -------------------------------------------------------------------------------

    def load_lora(self, path: str | os.PathLike[str], scale: float = 1.0) -> None:
        """Load a diffusers-format LoRA (folder or .safetensors file), replacing any loaded one."""
        source = Path(path).expanduser()
        if not source.exists():
            raise ImageGenError(f"LoRA '{path}': no such file or folder")
        if self.lora is not None:
            self.unload_lora()
        kwargs: dict[str, Any] = {"adapter_name": ADAPTER_NAME}
        where: str | Path = source
        if source.is_file():
            where, kwargs["weight_name"] = source.parent, source.name
        try:
            self.pipe.load_lora_weights(str(where), **kwargs)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ImageGenError(f"LoRA '{path}': cannot load into {self.model} ({exc})") from exc
        self.lora = str(source)
        self.set_lora_scale(scale)

    def set_lora_scale(self, scale: float) -> None:
        """Strength of the loaded LoRA: 0 = base model, 1 = as trained."""
        if self.lora is None:
            raise ImageGenError("no LoRA loaded")
        self.pipe.set_adapters([ADAPTER_NAME], adapter_weights=[float(scale)])
        self.lora_scale = float(scale)

    def unload_lora(self) -> None:
        """Remove the LoRA layers, restoring the base model's weights exactly."""
        if self.lora is not None:
            self.pipe.unload_lora_weights()
        self.lora = None
        self.lora_scale = 1.0

    # --- rendering ----------------------------------------------------------------------------

    def render(
        self,
        prompt: str,
        negative_prompt: str | None = None,
        *,
        steps: int = 40,
        guidance: float = 4.5,
        width: int = 1024,
        height: int = 1024,
        num_images: int = 1,
        batch_size: int = 1,
        seed: int | None = None,
        on_image: Callable[[int], None] | None = None,
    ) -> list[Image.Image]:
        """Render ``num_images`` images; image ``i`` uses seed ``seed + i`` whatever the batch.

        Defaults are Stability's recommendation for SD3.5 Medium (40 steps, CFG 4.5). Each
        image gets ``.info["polisum"]`` = its :class:`ImageRecord` (written by :meth:`save`).
        """
        import torch

        if not prompt or not prompt.strip():
            raise ImageGenError("empty prompt")
        _check_size("width", width)
        _check_size("height", height)
        for name, value in (("steps", steps), ("num_images", num_images), ("batch", batch_size)):
            if value < 1:
                raise ImageGenError(f"{name} must be at least 1, got {value}")
        if seed is None:
            seed = secrets.randbelow(2**31)
        images: list[Image.Image] = []
        for start in range(0, num_images, batch_size):
            seeds = [seed + i for i in range(start, min(start + batch_size, num_images))]
            # One CPU generator per image: the same seed gives the same noise on any device
            # and in any batch size.
            generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
            with torch.inference_mode():
                result = self.pipe(
                    prompt=prompt,
                    negative_prompt=negative_prompt,
                    num_inference_steps=steps,
                    guidance_scale=guidance,
                    width=width,
                    height=height,
                    num_images_per_prompt=len(seeds),
                    generator=generators,
                )
            for s, image in zip(seeds, result.images, strict=True):
                image.info["polisum"] = ImageRecord(
                    prompt=prompt,
                    negative_prompt=negative_prompt,
                    seed=s,
                    model=self.model,
                    lora=self.lora,
                    lora_scale=self.lora_scale if self.lora else None,
                    steps=steps,
                    guidance=guidance,
                    width=width,
                    height=height,
                    t5=not self.drop_t5,
                )
                images.append(image)
                if on_image:
                    on_image(len(images))
        return images

    @staticmethod
    def save(images: list[Image.Image], out_dir: str | os.PathLike[str]) -> list[Path]:
        """Write PNGs with their :class:`ImageRecord` as text chunks; never overwrites."""
        folder = Path(out_dir).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        paths: list[Path] = []
        for image in images:
            record = image.info.get("polisum")
            if not isinstance(record, ImageRecord):
                raise ImageGenError("image has no render record; save images from render()")
            path = folder / f"{stamp}-seed{record.seed}.png"
            n = 1
            while path.exists():
                n += 1
                path = folder / f"{stamp}-seed{record.seed}-{n}.png"
            image.save(path, format="PNG", pnginfo=record.png_info())
            paths.append(path)
        return paths
