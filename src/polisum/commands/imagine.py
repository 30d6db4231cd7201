"""`polisum imagine` (SD3.5 rendering) and `polisum eval images` (CLIP score, FID, KID)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from polisum.commands._common import (
    IndexOpt,
    JsonOpt,
    err,
    fail,
    open_index,
    out,
    safe,
    user_errors,
)

app = typer.Typer()
eval_app = typer.Typer()


def _quiet_transformers() -> None:
    # transformers logs at import that its image processors would prefer torchvision (not a
    # dependency here; the PIL fallback is what we want). Errors still show.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not enabled,
        transient=True,
    )


def _write_prompt(
    description: str,
    index: Path | None,
    generator: str | None,
    adapter: str | None,
    base_url: str | None,
    from_docs: bool,
    k: int,
) -> Any:
    """The chatbot's SDPrompt for ``description`` (issue 6's writer, imported only when used)."""
    from polisum.chat.sdprompt import SDPromptWriter
    from polisum.commands.chat import load_generator_or_fail

    gen = load_generator_or_fail(index, None, generator, adapter, base_url)
    with user_errors():
        try:
            writer = SDPromptWriter(gen)
            passages = None
            if from_docs:
                with open_index(index, create=False) as idx:
                    passages = idx.search(description, k=k)
            return writer.write(description, passages)
        except ValueError as exc:
            fail(str(exc))


@app.command()
def imagine(
    description: Annotated[
        str | None,
        typer.Argument(help="The scene, in any language; the chatbot writes the prompt."),
    ] = None,
    prompt: Annotated[
        str | None, typer.Option("--prompt", help="Render this SD3.5 prompt as is (no chatbot).")
    ] = None,
    negative_prompt: Annotated[
        str | None, typer.Option("--negative-prompt", help="With --prompt: what to avoid.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Diffusers folder or Hub id (default $POLISUM_SD_MODEL, "
            "else stabilityai/stable-diffusion-3.5-medium)."
        ),
    ] = None,
    lora: Annotated[
        Path | None, typer.Option(help="LoRA folder or .safetensors (diffusers format).")
    ] = None,
    lora_scale: Annotated[float, typer.Option(help="LoRA strength (0 = off).")] = 1.0,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the first image (random if unset).")
    ] = None,
    steps: Annotated[int, typer.Option(min=1, help="Denoising steps.")] = 40,
    guidance: Annotated[float, typer.Option(help="Classifier-free guidance scale.")] = 4.5,
    width: Annotated[
        int | None, typer.Option(help="Multiple of 16 (default from the prompt's aspect, ~1MP).")
    ] = None,
    height: Annotated[int | None, typer.Option(help="Multiple of 16.")] = None,
    num_images: Annotated[int, typer.Option("--num-images", "-n", min=1)] = 1,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = 1,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the PNGs.")] = Path("images"),
    dtype: Annotated[str | None, typer.Option(help="bf16, fp16 or fp32 (auto).")] = None,
    device: Annotated[str | None, typer.Option(help="cuda, mps or cpu (auto).")] = None,
    cpu_offload: Annotated[
        bool, typer.Option("--cpu-offload", help="Keep models on CPU, move each to GPU to run.")
    ] = False,
    no_t5: Annotated[
        bool, typer.Option("--no-t5", help="Drop the T5 text encoder (~9 GB less, CLIP only).")
    ] = False,
    generator: Annotated[
        str | None,
        typer.Option(help="Prompt-writing model: hf:ID_OR_PATH, gguf:PATH, openai:MODEL."),
    ] = None,
    adapter: Annotated[str | None, typer.Option(help="PEFT adapter for an hf: generator.")] = None,
    base_url: Annotated[str | None, typer.Option(help="Server of an openai: generator.")] = None,
    from_docs: Annotated[
        bool, typer.Option("--from-docs", help="Ground the prompt in retrieved passages.")
    ] = False,
    k: Annotated[int, typer.Option("-k", min=1, help="Passages for --from-docs.")] = 3,
    index: IndexOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Render a scene with Stable Diffusion 3.5 (+ LoRA); PNGs keep prompt/seed/model/LoRA."""
    _quiet_transformers()
    from imagegen import ImageGenError, Renderer, size_for_aspect

    if (description is None) == (prompt is None):
        fail("give either a scene DESCRIPTION (the chatbot writes the prompt) or --prompt TEXT")
    written: dict[str, Any] | None = None
    aspect = None
    if prompt is None:
        assert description is not None
        sd = _write_prompt(description, index, generator, adapter, base_url, from_docs, k)
        written = sd.model_dump()
        prompt, negative_prompt, aspect = sd.prompt, sd.negative_prompt, sd.aspect_ratio
        if not as_json:
            err.print(f"[bold]prompt:[/] {safe(prompt)}")
    try:
        if width is None or height is None:
            w, h = size_for_aspect(aspect or "1:1")
            width, height = width or w, height or h
        with err.status(f"loading {model or 'Stable Diffusion 3.5'}", spinner="dots"):
            renderer = Renderer(
                model,
                lora=lora,
                lora_scale=lora_scale,
                dtype=dtype,
                device=device,
                cpu_offload=cpu_offload,
                drop_t5=no_t5,
            )
        with _progress(not as_json) as progress:
            task = progress.add_task("rendering", total=num_images)
            images = renderer.render(
                prompt,
                negative_prompt,
                steps=steps,
                guidance=guidance,
                width=width,
                height=height,
                num_images=num_images,
                batch_size=batch_size,
                seed=seed,
                on_image=lambda n: progress.update(task, completed=n),
            )
        paths = renderer.save(images, out_dir)
    except ImageGenError as exc:
        fail(str(exc))
        raise  # unreachable
    if as_json:
        data = {
            "prompt": prompt,
            "negative_prompt": negative_prompt,
            "model": renderer.model,
            "lora": renderer.lora,
            "lora_scale": renderer.lora_scale if renderer.lora else None,
            "written_prompt": written,
            "images": [
                {"path": str(p), "seed": im.info["polisum"].seed}
                for p, im in zip(paths, images, strict=True)
            ],
        }
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        return
    for path in paths:
        out.print(str(path))


@eval_app.command("images")
def eval_images(
    images: Annotated[Path, typer.Option("--images", help="Folder of generated images.")],
    prompts: Annotated[
        Path | None,
        typer.Option(
            help="JSONL {image, prompt}, JSON {name: prompt}, TSV, or one line per image "
            "(default: the prompts in the PNGs' metadata)."
        ),
    ] = None,
    ref: Annotated[Path | None, typer.Option("--ref", help="Reference images for FID/KID.")] = None,
    clip_model: Annotated[
        str, typer.Option("--clip-model", help="CLIP Hub id or local folder.")
    ] = "openai/clip-vit-large-patch14",
    features: Annotated[
        str,
        typer.Option(help="FID/KID features: inception (standard) or hf:ID_OR_PATH (CLIP/DINOv2)."),
    ] = "inception",
    inception_weights: Annotated[
        Path | None,
        typer.Option(help="torch-fidelity FID Inception weights file (offline use)."),
    ] = None,
    no_clip: Annotated[bool, typer.Option("--no-clip", help="Skip the CLIP score.")] = False,
    kid_subset_size: Annotated[int, typer.Option(min=2)] = 1000,
    as_json: JsonOpt = False,
) -> None:
    """CLIP score against the prompts, and FID + KID against a reference folder."""
    import warnings

    _quiet_transformers()
    from imagegen import ImageGenError, clip_score, fid_kid, load_folder, load_prompts

    result: dict[str, Any] = {"images": str(images)}
    try:
        named = load_folder(images)
        names = [n for n, _ in named]
        pictures = [im for _, im in named]
        result["n_images"] = len(pictures)
        if not no_clip:
            texts = [dict(im.info) for im in pictures]
            prompt_list = load_prompts(prompts, names, texts)
            with _progress(not as_json) as progress, warnings.catch_warnings():
                warnings.simplefilter("ignore")  # transformers/torchmetrics load chatter
                task = progress.add_task(f"CLIP score ({clip_model})", total=len(pictures))
                clip = clip_score(
                    pictures,
                    prompt_list,
                    clip_model,
                    on_image=lambda n: progress.update(task, completed=n),
                )
            result["clip"] = {
                "model": clip.model,
                "score": clip.score,
                "per_image": dict(zip(names, clip.per_image, strict=True)),
            }
        if ref is not None:
            reference = [im for _, im in load_folder(ref)]
            with err.status("FID/KID", spinner="dots"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                dist = fid_kid(
                    pictures,
                    reference,
                    features,
                    inception_weights=inception_weights,
                    kid_subset_size=kid_subset_size,
                )
            result["distribution"] = {"reference": str(ref), **dist.to_dict()}
    except ImageGenError as exc:
        fail(str(exc))
    if no_clip and ref is None:
        fail("nothing to measure: drop --no-clip or pass --ref DIR")
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
        return
    if "clip" in result:
        out.print(
            f"CLIP score [bold]{result['clip']['score']:.2f}[/] over {len(pictures)} images "
            f"(model {safe(clip_model)}; scores are comparable only under the same model)"
        )
    if "distribution" in result:
        d = result["distribution"]
        out.print(
            f"FID [bold]{d['fid']:.2f}[/] · KID [bold]{d['kid_mean'] * 1000:.2f}[/] "
            f"± {d['kid_std'] * 1000:.2f} ×10⁻³ (subset {d['kid_subset_size']}) · "
            f"{d['n_images']} vs {d['n_reference']} reference images · features "
            f"{safe(d['features'])}"
        )
        for warning in d["warnings"]:
            err.print(f"[yellow]warning:[/] {safe(warning)}")
