"""LoRA fine-tune of Stable Diffusion 3.5 with diffusers (rectified flow matching).

    polisum train sd35 --config sd35_medium_lora --output-dir runs/sd35-style

Data: a folder of images with same-name ``.txt`` captions (``cat.png`` + ``cat.txt``), or a JSONL
of ``{"image": "path/relative/to/the/jsonl.png", "caption": "..."}``. Images are resized on their
shorter side to ``data.resolution`` and cropped square.

Objective, as in the SD3 paper and diffusers' DreamBooth-SD3 example: a latent ``x0`` and noise
``ε`` are mixed as ``x_σ = (1−σ)·x0 + σ·ε`` with σ drawn from a logit-normal distribution (the
timestep weighting is in the sampling), and the transformer learns the velocity ``ε − x0``. LoRA
sits on the transformer's attention projections (both attention blocks of SD3.5's MMDiT-X layers).

Optional caching encodes every image (VAE) and caption (two CLIPs + T5) once up front, and then
drops the text encoders from the accelerator. Checkpoints hold the LoRA weights, optimizer and
RNG state as safetensors + JSON (no pickle), so ``--resume`` continues at the same step. At each
validation point the recipe renders fixed prompts with fixed seeds into ``validation/`` and, with a
validation set, logs its loss under fixed noise (comparable across steps).

Writes ``adapter/pytorch_lora_weights.safetensors`` (diffusers format: ``pipe.load_lora_weights``)
with ``adapter_info.json``, ``checkpoints/``, ``validation/``, ``metrics.jsonl``, ``run.json``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from training.common import (
    RecipeError,
    RunDir,
    find_checkpoints,
    load_config,
    read_jsonl,
    seed_everything,
)
from training.tiny import resolve_model

__all__ = ["ImageCaption", "SD35Config", "load_image_captions", "run", "train"]

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


@dataclass
class SD3ModelSection:
    name_or_path: str = "stabilityai/stable-diffusion-3.5-medium"
    dtype: str = "auto"  # frozen weights: bf16 on a GPU that supports it, else float32
    tiny_cache: str | None = None


@dataclass
class SD3LoraSection:
    rank: int = 16
    alpha: int | None = None  # None: equal to rank
    dropout: float = 0.0
    target_modules: list[str] = field(
        default_factory=lambda: [
            "attn.to_q",
            "attn.to_k",
            "attn.to_v",
            "attn.to_out.0",
            "attn.add_q_proj",
            "attn.add_k_proj",
            "attn.add_v_proj",
            "attn.to_add_out",
            # SD3.5's MMDiT-X layers have a second, image-only attention block.
            "attn2.to_q",
            "attn2.to_k",
            "attn2.to_v",
            "attn2.to_out.0",
        ]
    )


@dataclass
class ImageDataSection:
    train: str = ""  # a folder of images + .txt captions, or a JSONL file
    validation: str | None = None  # same format; its loss is logged at each validation
    resolution: int = 1024
    center_crop: bool = True  # else a random crop
    random_flip: bool = False
    default_caption: str | None = None  # for images without a caption
    max_sequence_length: int = 77  # T5 tokens


@dataclass
class SD3TrainSection:
    max_steps: int = 1000
    batch_size: int = 1
    gradient_accumulation_steps: int = 1
    lr: float = 1e-4
    weight_decay: float = 1e-4
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    lr_scheduler: str = "constant"
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    weighting_scheme: str = "logit_normal"  # logit_normal | mode | uniform | sigma_sqrt | cosmap
    logit_mean: float = 0.0
    logit_std: float = 1.0
    mode_scale: float = 1.29
    cache_latents: bool = False
    cache_text_embeddings: bool = False
    gradient_checkpointing: bool = False
    checkpoint_every: int = 250
    keep_checkpoints: int = 3
    log_every: int = 10
    seed: int = 42


@dataclass
class ValidationSection:
    prompts: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])
    every: int = 0  # steps between validations; 0: only at the end
    num_inference_steps: int = 28
    guidance_scale: float = 4.5
    resolution: int | None = None  # default: data.resolution


@dataclass
class SD35Config:
    model: SD3ModelSection = field(default_factory=SD3ModelSection)
    lora: SD3LoraSection = field(default_factory=SD3LoraSection)
    data: ImageDataSection = field(default_factory=ImageDataSection)
    training: SD3TrainSection = field(default_factory=SD3TrainSection)
    validation: ValidationSection = field(default_factory=ValidationSection)


# ---------------------------------------------------------------------------------------------
# Data


@dataclass
class ImageCaption:
    image: Path
    caption: str


def load_image_captions(source: str, default_caption: str | None = None) -> list[ImageCaption]:
    """Image/caption pairs from a folder (``x.png`` + ``x.txt``) or a JSONL file."""
    path = Path(source)
    items: list[ImageCaption] = []
    if path.is_dir():
        for image in sorted(p for p in path.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES):
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
    elif path.is_file():
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
    else:
        raise RecipeError(f"{source}: image data not found (a folder or a JSONL file)")
    if not items:
        raise RecipeError(f"{source}: no images ({', '.join(sorted(_IMAGE_SUFFIXES))})")
    return items


def _pixels(item: ImageCaption, data: ImageDataSection, generator: Any) -> Any:
    """[3, R, R] in [-1, 1]: resized on the shorter side, cropped, optionally flipped."""
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(item.image) as img:
            img = img.convert("RGB")
            size = data.resolution
            scale = size / min(img.size)
            w, h = max(size, round(img.width * scale)), max(size, round(img.height * scale))
            img = img.resize((w, h), Image.Resampling.BICUBIC)
            if data.center_crop:
                left, top = (w - size) // 2, (h - size) // 2
            else:
                left = int(torch.randint(0, w - size + 1, (1,), generator=generator))
                top = int(torch.randint(0, h - size + 1, (1,), generator=generator))
            img = img.crop((left, top, left + size, top + size))
            array = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
    except (OSError, UnidentifiedImageError) as exc:
        raise RecipeError(f"{item.image}: unreadable image ({exc})") from exc
    tensor = torch.from_numpy(array).permute(2, 0, 1).contiguous()
    if data.random_flip and bool(torch.rand((), generator=generator) < 0.5):
        tensor = tensor.flip(-1)
    return tensor


# ---------------------------------------------------------------------------------------------
# Checkpoints: safetensors + JSON


def _save_checkpoint(
    folder: Path, transformer: Any, optimizer: Any, scheduler: Any, step: int, extra: dict[str, Any]
) -> None:
    import torch
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    lora = {
        k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(transformer).items()
    }
    save_file(lora, str(tmp / "lora.safetensors"))
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    save_file(rng, str(tmp / "rng.safetensors"))
    meta = {
        "step": step,
        "param_groups": state["param_groups"],
        "optimizer_scalars": scalars,
        "scheduler": scheduler.state_dict(),
        **extra,
    }
    (tmp / "state.json").write_text(json.dumps(meta, indent=2, default=_jsonable) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)  # a checkpoint is complete or absent


def _jsonable(value: Any) -> Any:
    if callable(value):
        return None  # LambdaLR keeps lambdas; they are rebuilt from the config
    return str(value)


def _load_checkpoint(folder: Path, transformer: Any, optimizer: Any, scheduler: Any) -> int:
    import torch
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    meta = json.loads((folder / "state.json").read_text())
    set_peft_model_state_dict(transformer, load_file(str(folder / "lora.safetensors")))
    tensors = load_file(str(folder / "optimizer.safetensors"))
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for name, value in meta["optimizer_scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    sched = dict(meta["scheduler"])
    sched.pop("lr_lambdas", None)
    scheduler.load_state_dict({**scheduler.state_dict(), **sched})
    rng = load_file(str(folder / "rng.safetensors"))
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    return int(meta["step"])


# ---------------------------------------------------------------------------------------------
# Training


def _dtype(name: str) -> Any:
    import torch

    if name == "auto":
        cuda_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else torch.float32
    return getattr(torch, name)


class _Encoders:
    """Latents and prompt embeddings, computed on demand or cached up front."""

    def __init__(self, pipe: Any, config: SD35Config, device: Any) -> None:
        self.pipe = pipe
        self.config = config
        self.device = device
        self.latent_cache: dict[int, Any] = {}
        # Latents are cached only when an image always encodes the same (no random crop/flip).
        data = config.data
        self.cache_latents = (
            config.training.cache_latents and data.center_crop and not data.random_flip
        )
        self.text_cache: dict[str, tuple[Any, Any]] = {}

    def text(self, captions: list[str]) -> tuple[Any, Any]:
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
                    max_sequence_length=self.config.data.max_sequence_length,
                )
            for i, caption in enumerate(missing):
                self.text_cache[caption] = (embeds[i], pooled[i])
        pairs = [self.text_cache[c] for c in captions]
        if not self.config.training.cache_text_embeddings:
            self.text_cache.clear()
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])

    def latent_params(self, key: int, pixels: Any) -> Any:
        """The VAE's latent distribution parameters (mean and log-variance) of one image."""
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


def _flow_loss(
    transformer: Any,
    scheduler: Any,
    latents: Any,
    embeds: Any,
    pooled: Any,
    training: SD3TrainSection,
    generator: Any | None = None,
) -> Any:
    """Rectified-flow loss: x_σ = (1−σ)x0 + σε, target ε − x0, σ per the weighting scheme."""
    import torch
    from diffusers.training_utils import (
        compute_density_for_timestep_sampling,
        compute_loss_weighting_for_sd3,
    )

    bsz = latents.shape[0]
    noise = torch.randn(latents.shape, generator=generator, device="cpu").to(latents)
    u = compute_density_for_timestep_sampling(
        weighting_scheme=training.weighting_scheme,
        batch_size=bsz,
        logit_mean=training.logit_mean,
        logit_std=training.logit_std,
        mode_scale=training.mode_scale,
        generator=generator,
    )
    indices = (
        (u * scheduler.config.num_train_timesteps).long().clamp(max=len(scheduler.timesteps) - 1)
    )
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
    weighting = compute_loss_weighting_for_sd3(training.weighting_scheme, sigmas)
    target = noise.float() - latents.float()
    per_item = (weighting.float() * (pred.float() - target) ** 2).reshape(bsz, -1).mean(1)
    return per_item.mean()


def train(config: SD35Config, run_dir: RunDir, resume: bool = False) -> Path:
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline
    from diffusers.optimization import get_scheduler
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    t = config.training
    if t.batch_size < 1 or t.gradient_accumulation_steps < 1 or t.max_steps < 1:
        raise RecipeError("training.batch_size, gradient_accumulation_steps, max_steps must be ≥ 1")
    checkpoint = run_dir.check_resume(resume)
    seed_everything(t.seed)
    if not config.data.train:
        raise RecipeError("data.train is required (an image folder or a JSONL file)")
    train_items = load_image_captions(config.data.train, config.data.default_caption)
    val_items = (
        load_image_captions(config.data.validation, config.data.default_caption)
        if config.data.validation
        else []
    )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    weight_dtype = _dtype(config.model.dtype)
    base = resolve_model(config.model.name_or_path, config.model.tiny_cache)
    try:
        pipe = StableDiffusion3Pipeline.from_pretrained(base, dtype=weight_dtype)
    except (OSError, ValueError) as exc:
        raise RecipeError(f"cannot load the SD3 pipeline '{base}': {exc}") from exc
    pipe.set_progress_bar_config(disable=True)
    pipe.to(device)
    noise_scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config)
    transformer = pipe.transformer
    for module in (
        transformer,
        pipe.vae,
        pipe.text_encoder,
        pipe.text_encoder_2,
        pipe.text_encoder_3,
    ):
        if module is not None:
            module.requires_grad_(False)
    transformer.add_adapter(
        LoraConfig(
            r=config.lora.rank,
            lora_alpha=config.lora.alpha or config.lora.rank,
            lora_dropout=config.lora.dropout,
            init_lora_weights="gaussian",
            target_modules=list(config.lora.target_modules),
        )
    )
    params = [p for p in transformer.parameters() if p.requires_grad]
    if not params:
        raise RecipeError(f"lora.target_modules {config.lora.target_modules} matched no layer")
    for p in params:
        p.data = p.data.float()  # trainable LoRA weights in fp32 even when the base is bf16
    if t.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW(
        params, lr=t.lr, betas=tuple(t.adam_betas), weight_decay=t.weight_decay
    )
    lr_scheduler = get_scheduler(
        t.lr_scheduler, optimizer, num_warmup_steps=t.warmup_steps, num_training_steps=t.max_steps
    )
    encoders = _Encoders(pipe, config, device)
    # Random crops/flips and the data order come from their own generator, seeded per epoch,
    # so a resumed run sees the same batches a continuous one would.
    data_gen = torch.Generator().manual_seed(t.seed)
    if encoders.cache_latents:
        for i, item in enumerate(train_items):
            encoders.latent_params(i, _pixels(item, config.data, data_gen))
    if t.cache_text_embeddings:
        encoders.text([item.caption for item in train_items + val_items])
        encoders.text(list(config.validation.prompts) or [""])
        if not config.validation.prompts:
            # Nothing else needs the text encoders: free the accelerator memory they hold.
            for name in ("text_encoder", "text_encoder_2", "text_encoder_3"):
                if getattr(pipe, name) is not None:
                    getattr(pipe, name).to("cpu")

    step = 0
    if checkpoint is not None:
        step = _load_checkpoint(checkpoint, transformer, optimizer, lr_scheduler)
        print(f"sd35: resumed from {checkpoint} at step {step}", file=sys.stderr)
    batches_per_epoch = math.ceil(len(train_items) / t.batch_size)
    micro = step * t.gradient_accumulation_steps
    if step == 0 and val_items:
        # The loss before any update: the baseline later evaluations compare with.
        _validate(
            pipe,
            transformer,
            encoders,
            noise_scheduler,
            config,
            val_items,
            run_dir,
            0,
            device,
            images=False,
        )
    transformer.train()
    window: list[float] = []
    started = time.time()
    while step < t.max_steps:
        epoch, offset = divmod(micro, batches_per_epoch)
        order = torch.randperm(
            len(train_items), generator=torch.Generator().manual_seed(t.seed + epoch)
        ).tolist()
        batch_index = order[offset * t.batch_size : (offset + 1) * t.batch_size]
        augment = torch.Generator().manual_seed(t.seed * 1_000_003 + micro)
        latent_params = torch.stack(
            [
                encoders.latent_params(i, _pixels(train_items[i], config.data, augment))
                for i in batch_index
            ]
        )
        latents = encoders.latents(latent_params).to(weight_dtype)
        embeds, pooled = encoders.text([train_items[i].caption for i in batch_index])
        loss = _flow_loss(transformer, noise_scheduler, latents, embeds, pooled, t)
        (loss / t.gradient_accumulation_steps).backward()
        window.append(float(loss.detach()))
        micro += 1
        if micro % t.gradient_accumulation_steps:
            continue
        torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        if step % t.log_every == 0 or step == t.max_steps or step == 1:
            run_dir.metrics.write(
                step,
                epoch=round(micro / batches_per_epoch, 4),
                loss=sum(window) / len(window),
                lr=lr_scheduler.get_last_lr()[0],
                seconds=round(time.time() - started, 2),
            )
            window = []
        validate_now = config.validation.every and step % config.validation.every == 0
        if validate_now or step == t.max_steps:
            _validate(
                pipe,
                transformer,
                encoders,
                noise_scheduler,
                config,
                val_items,
                run_dir,
                step,
                device,
            )
        if step % t.checkpoint_every == 0 or step == t.max_steps:
            _save_checkpoint(
                run_dir.checkpoints / f"checkpoint-{step}",
                transformer,
                optimizer,
                lr_scheduler,
                step,
                {"epoch": micro / batches_per_epoch},
            )
            for _, old in find_checkpoints(run_dir.checkpoints)[: -t.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)

    lora_state = get_peft_model_state_dict(transformer)
    run_dir.adapter.mkdir(parents=True, exist_ok=True)
    StableDiffusion3Pipeline.save_lora_weights(
        str(run_dir.adapter),
        transformer_lora_layers=lora_state,
        transformer_lora_adapter_metadata=transformer.peft_config["default"].to_dict(),
    )
    info = {
        "base_model": config.model.name_or_path,
        "base_path": base,
        "kind": "sd3-transformer-lora",
        "steps": step,
        "lora": asdict(config.lora),
        "resolution": config.data.resolution,
    }
    (run_dir.adapter / "adapter_info.json").write_text(json.dumps(info, indent=2) + "\n")
    return run_dir.adapter


def _validate(
    pipe: Any,
    transformer: Any,
    encoders: _Encoders,
    noise_scheduler: Any,
    config: SD35Config,
    val_items: list[ImageCaption],
    run_dir: RunDir,
    step: int,
    device: Any,
    images: bool = True,
) -> None:
    import torch

    transformer.eval()
    eval_loss = None
    if val_items:
        # Fixed noise and timesteps per item: the loss moves only with the weights.
        losses = []
        for i, item in enumerate(val_items):
            gen = torch.Generator().manual_seed(10_000 + i)
            pixels = _pixels(item, config.data, gen)
            params = encoders.latent_params(-1 - i, pixels)[None]
            latents = encoders.latents(params, generator=gen).to(transformer.dtype)
            embeds, pooled = encoders.text([item.caption])
            with torch.no_grad():
                losses.append(
                    float(
                        _flow_loss(
                            transformer,
                            noise_scheduler,
                            latents,
                            embeds,
                            pooled,
                            config.training,
                            generator=gen,
                        )
                    )
                )
        eval_loss = sum(losses) / len(losses)
        run_dir.metrics.write(step, eval_loss=eval_loss)
    v = config.validation
    if v.prompts and images:
        folder = run_dir.path / "validation" / f"step-{step:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        size = v.resolution or config.data.resolution
        for p, prompt in enumerate(v.prompts):
            for seed in v.seeds:
                generator = torch.Generator(device="cpu").manual_seed(seed)
                with torch.no_grad():
                    image = pipe(
                        prompt=prompt,
                        num_inference_steps=v.num_inference_steps,
                        guidance_scale=v.guidance_scale,
                        height=size,
                        width=size,
                        generator=generator,
                        max_sequence_length=config.data.max_sequence_length,
                    ).images[0]
                image.save(folder / f"prompt{p:02d}-seed{seed}.png")
        (folder / "prompts.json").write_text(
            json.dumps({"prompts": v.prompts, "seeds": v.seeds}, ensure_ascii=False, indent=2)
        )
    transformer.train()


def run(
    config: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    overrides: list[str] | None = None,
    resume: bool = False,
) -> Path:
    cfg, raw = load_config(SD35Config, config, overrides)
    run_dir = RunDir(output_dir, "sd35")
    run_dir.write_run_json(raw, resumed=resume)
    return train(cfg, run_dir, resume=resume)


def main(argv: list[str] | None = None) -> None:
    from training.cli import recipe_main

    recipe_main("sd35", run, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
