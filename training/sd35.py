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
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from training.common import RecipeError, default_device, torch_dtype
from training.config import MISSING, ConfigValueError, check_choice, check_positive
from training.diffusion.checkpoint import load_checkpoint, save_checkpoint
from training.diffusion.data import ImageCaption, load_image_captions, load_pixels
from training.diffusion.encoders import SD3Encoders
from training.diffusion.flow import WEIGHTING_SCHEMES, TimestepSampling, flow_matching_loss
from training.diffusion.validation import render_prompts, validation_loss
from training.recipe import Recipe, find_checkpoints
from training.tiny import resolve_model

__all__ = ["SD35Config", "SD35Recipe", "load_image_captions", "main", "run"]


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
    train: str = MISSING  # a folder of images + .txt captions, or a JSONL file
    validation: str | None = None  # same format; its loss is logged at each validation
    resolution: int = 1024
    center_crop: bool = True  # else a random crop
    random_flip: bool = False
    default_caption: str | None = None  # for images without a caption
    max_sequence_length: int = 77  # T5 tokens

    def check(self) -> None:
        check_positive(self, "resolution", "max_sequence_length")


@dataclass
class SD3TrainSection(TimestepSampling):  # weighting_scheme, logit_mean, logit_std, mode_scale
    max_steps: int = 1000  # optimizer steps: the length of the run
    batch_size: int = 1
    gradient_accumulation_steps: int = 1
    lr: float = 1e-4
    weight_decay: float = 1e-4
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    lr_scheduler: str = "constant"
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    cache_latents: bool = False
    cache_text_embeddings: bool = False
    gradient_checkpointing: bool = False
    checkpoint_every: int = 250
    keep_checkpoints: int = 3
    log_every: int = 10
    seed: int = 42

    def check(self) -> None:
        check_positive(
            self,
            "max_steps",
            "batch_size",
            "gradient_accumulation_steps",
            "checkpoint_every",
            "keep_checkpoints",
            "log_every",
        )
        check_choice(self, "weighting_scheme", WEIGHTING_SCHEMES)
        if len(self.adam_betas) != 2:
            raise ConfigValueError("adam_betas", f"{self.adam_betas}: expected two numbers")


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


class SD35Recipe(Recipe[SD35Config]):
    """Set up the pipeline with a LoRA on its transformer, then optimizer steps with logging,
    validation and checkpoints at the configured intervals."""

    name = "sd35"
    config_class = SD35Config

    def train(self) -> Path:
        checkpoint = self.begin(self.config.training.seed)
        self._load_data()
        self._load_pipeline()
        self._add_lora()
        self._warm_caches()
        step = 0
        if checkpoint is not None:
            step = load_checkpoint(checkpoint, self.transformer, self.optimizer, self.lr_scheduler)
            print(f"sd35: resumed from {checkpoint} at step {step}", file=sys.stderr)
        if step == 0 and self.val_items:
            self._validate(0, images=False)  # the baseline later evaluations compare with
        step = self._train_steps(step)
        return self._save_adapter(step)

    # -- setup --------------------------------------------------------------------------------

    def _load_data(self) -> None:
        data = self.config.data
        self.train_items = load_image_captions(data.train, data.default_caption)
        self.val_items = (
            load_image_captions(data.validation, data.default_caption) if data.validation else []
        )

    def _load_pipeline(self) -> None:
        """The whole pipeline on the device, every module frozen."""
        from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline

        model = self.config.model
        self.device = default_device()
        self.weight_dtype = torch_dtype(model.dtype)
        self.base = resolve_model(model.name_or_path, model.tiny_cache)
        try:
            pipe = StableDiffusion3Pipeline.from_pretrained(self.base, dtype=self.weight_dtype)
        except (OSError, ValueError) as exc:
            raise RecipeError(f"cannot load the SD3 pipeline '{self.base}': {exc}") from exc
        pipe.set_progress_bar_config(disable=True)
        pipe.to(self.device)
        for module in pipe.components.values():
            if hasattr(module, "requires_grad_"):
                module.requires_grad_(False)
        self.pipe = pipe
        self.transformer = pipe.transformer
        self.noise_scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config)

    def _add_lora(self) -> None:
        """The LoRA on the transformer (trained in fp32 even when the base is bf16), its
        optimizer and LR schedule."""
        import torch
        from diffusers.optimization import get_scheduler
        from peft import LoraConfig

        lora, t = self.config.lora, self.config.training
        self.transformer.add_adapter(
            LoraConfig(
                r=lora.rank,
                lora_alpha=lora.alpha or lora.rank,
                lora_dropout=lora.dropout,
                init_lora_weights="gaussian",
                target_modules=list(lora.target_modules),
            )
        )
        self.params = [p for p in self.transformer.parameters() if p.requires_grad]
        if not self.params:
            raise RecipeError(f"lora.target_modules {lora.target_modules} matched no layer")
        for p in self.params:
            p.data = p.data.float()
        if t.gradient_checkpointing:
            self.transformer.enable_gradient_checkpointing()
        self.optimizer = torch.optim.AdamW(
            self.params, lr=t.lr, betas=tuple(t.adam_betas), weight_decay=t.weight_decay
        )
        self.lr_scheduler = get_scheduler(
            t.lr_scheduler,
            self.optimizer,
            num_warmup_steps=t.warmup_steps,
            num_training_steps=t.max_steps,
        )

    def _warm_caches(self) -> None:
        """Encode every image and caption up front when the config caches them."""
        import torch

        data, t = self.config.data, self.config.training
        self.encoders = SD3Encoders(
            self.pipe,
            self.device,
            data.max_sequence_length,
            # A cached latent is only right when an image always encodes the same.
            cache_latents=t.cache_latents and data.center_crop and not data.random_flip,
            cache_text=t.cache_text_embeddings,
        )
        if self.encoders.cache_latents:
            generator = torch.Generator().manual_seed(t.seed)
            for i, item in enumerate(self.train_items):
                self.encoders.latent_params(i, self._pixels(item, generator))
        if t.cache_text_embeddings:
            self.encoders.text([item.caption for item in self.train_items + self.val_items])
            prompts = list(self.config.validation.prompts)
            self.encoders.text(prompts or [""])
            if not prompts:  # nothing renders images: nothing else needs the text encoders
                self.encoders.offload_text_encoders()

    def _pixels(self, item: ImageCaption, generator: Any) -> Any:
        data = self.config.data
        return load_pixels(
            item,
            data.resolution,
            center_crop=data.center_crop,
            random_flip=data.random_flip,
            generator=generator,
        )

    # -- training -----------------------------------------------------------------------------

    def _train_steps(self, step: int) -> int:
        """Optimizer steps from ``step`` to ``training.max_steps``; returns the last step."""
        t = self.config.training
        batches_per_epoch = math.ceil(len(self.train_items) / t.batch_size)
        micro = step * t.gradient_accumulation_steps
        self.transformer.train()
        window: list[float] = []
        started = time.time()
        while step < t.max_steps:
            window.append(self._backward(micro, batches_per_epoch))
            micro += 1
            if micro % t.gradient_accumulation_steps:
                continue
            self._optimizer_step()
            step += 1
            epoch = micro / batches_per_epoch
            if step % t.log_every == 0 or step == t.max_steps or step == 1:
                self.run_dir.metrics.write(
                    step,
                    epoch=round(epoch, 4),
                    loss=sum(window) / len(window),
                    lr=self.lr_scheduler.get_last_lr()[0],
                    seconds=round(time.time() - started, 2),
                )
                window = []
            every = self.config.validation.every
            if (every and step % every == 0) or step == t.max_steps:
                self._validate(step)
            if step % t.checkpoint_every == 0 or step == t.max_steps:
                self._save_checkpoint(step, epoch)
        return step

    def _backward(self, micro: int, batches_per_epoch: int) -> float:
        """Loss and gradients of micro-batch number ``micro``; returns the loss.

        The data order is a permutation seeded per epoch and augmentation is seeded per
        micro-batch, so a resumed run sees exactly the batches a continuous one would.
        """
        import torch

        t = self.config.training
        epoch, offset = divmod(micro, batches_per_epoch)
        order = torch.randperm(
            len(self.train_items), generator=torch.Generator().manual_seed(t.seed + epoch)
        ).tolist()
        batch = order[offset * t.batch_size : (offset + 1) * t.batch_size]
        augment = torch.Generator().manual_seed(t.seed * 1_000_003 + micro)
        params = torch.stack(
            [
                self.encoders.latent_params(i, self._pixels(self.train_items[i], augment))
                for i in batch
            ]
        )
        latents = self.encoders.latents(params).to(self.weight_dtype)
        embeds, pooled = self.encoders.text([self.train_items[i].caption for i in batch])
        loss = flow_matching_loss(
            self.transformer, self.noise_scheduler, latents, embeds, pooled, t
        )
        (loss / t.gradient_accumulation_steps).backward()
        return float(loss.detach())

    def _optimizer_step(self) -> None:
        import torch

        torch.nn.utils.clip_grad_norm_(self.params, self.config.training.max_grad_norm)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _validate(self, step: int, images: bool = True) -> None:
        """The validation set's loss under fixed noise, and the validation prompts rendered."""
        self.transformer.eval()
        if self.val_items:
            loss = validation_loss(
                self.transformer,
                self.noise_scheduler,
                self.encoders,
                self.val_items,
                self.config.training,
                self._pixels,
            )
            self.run_dir.metrics.write(step, eval_loss=loss)
        v = self.config.validation
        if v.prompts and images:
            render_prompts(
                self.pipe,
                self.run_dir.path / "validation" / f"step-{step:06d}",
                v.prompts,
                v.seeds,
                size=v.resolution or self.config.data.resolution,
                num_inference_steps=v.num_inference_steps,
                guidance_scale=v.guidance_scale,
                max_sequence_length=self.config.data.max_sequence_length,
            )
        self.transformer.train()

    def _save_checkpoint(self, step: int, epoch: float) -> None:
        """checkpoint-STEP, keeping the newest ``training.keep_checkpoints``."""
        checkpoints = self.run_dir.checkpoints
        save_checkpoint(
            checkpoints / f"checkpoint-{step}",
            self.transformer,
            self.optimizer,
            self.lr_scheduler,
            step,
            {"epoch": epoch},
        )
        for _, old in find_checkpoints(checkpoints)[: -self.config.training.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)

    def _save_adapter(self, step: int) -> Path:
        """The LoRA in diffusers' format, with adapter_info.json naming its base."""
        from diffusers import StableDiffusion3Pipeline
        from peft.utils import get_peft_model_state_dict

        adapter = self.run_dir.adapter
        adapter.mkdir(parents=True, exist_ok=True)
        StableDiffusion3Pipeline.save_lora_weights(
            str(adapter),
            transformer_lora_layers=get_peft_model_state_dict(self.transformer),
            transformer_lora_adapter_metadata=self.transformer.peft_config["default"].to_dict(),
        )
        info = {
            "base_model": self.config.model.name_or_path,
            "base_path": self.base,
            "kind": "sd3-transformer-lora",
            "steps": step,
            "lora": asdict(self.config.lora),
            "resolution": self.config.data.resolution,
        }
        (adapter / "adapter_info.json").write_text(json.dumps(info, indent=2) + "\n")
        return adapter


run = SD35Recipe.run
main = SD35Recipe.main

if __name__ == "__main__":
    main(sys.argv[1:])
