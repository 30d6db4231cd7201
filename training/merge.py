"""Merge a LoRA adapter into its base model, for serving or export.

    polisum train merge --adapter runs/exaone-sft/adapter --out models/exaone-summarizer

A PEFT adapter (``adapter_config.json``: the sft and kd recipes) merges into a transformers
model folder with its tokenizer; an SD3 LoRA from the sd35 recipe (``pytorch_lora_weights
.safetensors`` + ``adapter_info.json``) is fused into a full diffusers pipeline folder. The base is
the one the adapter records unless ``base`` is given.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from training.common import RecipeError, torch_dtype
from training.hf import ModelSection, load_causal_lm, load_tokenizer
from training.tiny import resolve_model

__all__ = ["merge"]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecipeError(f"{path}: unreadable ({exc})") from exc


def merge(
    adapter: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    base: str | None = None,
    dtype: str = "auto",
) -> Path:
    adapter, out = Path(adapter), Path(out)
    if not adapter.is_dir():
        raise RecipeError(f"{adapter}: adapter folder not found")
    if (adapter / "adapter_config.json").is_file():
        return _merge_peft(adapter, out, base, dtype)
    if (adapter / "pytorch_lora_weights.safetensors").is_file():
        return _merge_sd3(adapter, out, base, dtype)
    raise RecipeError(
        f"{adapter}: neither a PEFT adapter (adapter_config.json) nor an SD3 LoRA "
        "(pytorch_lora_weights.safetensors)"
    )


def _merge_peft(adapter: Path, out: Path, base: str | None, dtype: str) -> Path:
    recorded = _read_json(adapter / "adapter_config.json").get("base_model_name_or_path")
    base = base or recorded
    if not base:
        raise RecipeError(f"{adapter}/adapter_config.json names no base model; pass --base")
    section = ModelSection(name_or_path=base, dtype=dtype)
    model = load_causal_lm(section, adapter=str(adapter), merge=True)
    has_tokenizer = (adapter / "tokenizer_config.json").is_file()
    tokenizer = load_tokenizer(section, path=str(adapter) if has_tokenizer else None)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _merge_sd3(adapter: Path, out: Path, base: str | None, dtype: str) -> Path:
    from diffusers import StableDiffusion3Pipeline

    info = adapter / "adapter_info.json"
    base = base or (_read_json(info).get("base_model") if info.is_file() else None)
    if not base:
        raise RecipeError(f"{adapter}: no adapter_info.json naming the base pipeline; pass --base")
    pipe = StableDiffusion3Pipeline.from_pretrained(resolve_model(base), dtype=torch_dtype(dtype))
    pipe.load_lora_weights(str(adapter))
    pipe.fuse_lora()
    pipe.unload_lora_weights()
    pipe.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m training.merge")
    parser.add_argument("--adapter", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--base")
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args(argv)
    try:
        print(merge(args.adapter, args.out, base=args.base, dtype=args.dtype))
    except RecipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


if __name__ == "__main__":
    main(sys.argv[1:])
