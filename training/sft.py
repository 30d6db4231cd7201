"""LoRA supervised fine-tuning of a chat model with TRL's SFTTrainer.

    polisum train sft --config exaone_1.2b_lora --output-dir runs/exaone-sft
    python -m training.sft --config training/configs/tiny/sft.yaml --output-dir /tmp/sft

Data: JSONL rows of ``{"messages": [...], "context": ...}`` or ``{"prompt", "completion"}``
(see :mod:`training.chat`). Each conversation is rendered with the model's own chat template and
the loss is taken on the assistant tokens only; batches are padded to their longest row (or
flattened with ``padding_free``), never to a fixed length. With a validation file the run
evaluates every epoch, keeps the adapter with the lowest validation loss and can stop early.

Writes ``adapter/`` (PEFT format, tokenizer included: load it with
``polisum.generate.load_generator("hf:BASE", adapter=".../adapter")``), ``checkpoints/``,
``metrics.jsonl`` and ``run.json``.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.chat import accepts_system, encode_chat, load_chat_file
from training.common import RecipeError, RunDir, load_config, seed_everything
from training.hf import (
    LoraSection,
    ModelSection,
    TrainSection,
    load_causal_lm,
    load_tokenizer,
    lora_config,
    metrics_callback,
    save_trained,
    training_arguments,
)

__all__ = ["DataSection", "SFTConfig", "encode_file", "run", "train"]


@dataclass
class DataSection:
    train: str = ""
    validation: str | None = None


@dataclass
class SFTConfig:
    model: ModelSection = field(default_factory=ModelSection)
    lora: LoraSection | None = field(default_factory=LoraSection)  # null: full fine-tune
    data: DataSection = field(default_factory=DataSection)
    training: TrainSection = field(default_factory=TrainSection)


def encode_file(tokenizer: Any, path: str, max_length: int) -> list[dict[str, list[int]]]:
    """Rows of ``input_ids``, ``assistant_masks`` and ``labels`` (the input ids, -100 on every
    token that is not the assistant's)."""
    fold = not accepts_system(tokenizer)
    rows = []
    for n, messages in enumerate(load_chat_file(path), 1):
        encoded = encode_chat(
            tokenizer, messages, fold_system=fold, max_length=max_length, where=f"{path}:{n}"
        )
        if encoded is not None:
            labels = [
                t if m else -100
                for t, m in zip(encoded.input_ids, encoded.assistant_masks, strict=True)
            ]
            rows.append(
                {
                    "input_ids": encoded.input_ids,
                    "assistant_masks": encoded.assistant_masks,
                    "labels": labels,
                }
            )
    if not rows:
        raise RecipeError(f"{path}: no example keeps an assistant token within max_length")
    return rows


def _dataset(rows: list[dict[str, list[int]]]) -> Any:
    """An in-memory datasets.Dataset of input_ids + labels, what SFTTrainer takes."""
    from datasets import Dataset

    return Dataset.from_list([{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows])


def train(config: SFTConfig, run_dir: RunDir, resume: bool = False) -> Path:
    """Train per ``config`` into ``run_dir``; returns the adapter (or model) folder."""
    from transformers import EarlyStoppingCallback
    from trl import SFTConfig as TRLConfig
    from trl import SFTTrainer

    checkpoint = run_dir.check_resume(resume)
    seed_everything(config.training.seed)
    if not config.data.train:
        raise RecipeError("data.train is required")
    tokenizer = load_tokenizer(config.model)
    train_rows = encode_file(tokenizer, config.data.train, config.training.max_length)
    eval_rows = (
        encode_file(tokenizer, config.data.validation, config.training.max_length)
        if config.data.validation
        else None
    )
    model = load_causal_lm(config.model)
    attn = getattr(model.config, "_attn_implementation", "") or ""
    if config.training.padding_free and "flash" not in attn:
        # Flattened rows only stay separate under flash attention's varlen kernels; eager or
        # SDPA would let each example attend to the previous one.
        raise RecipeError(
            f"training.padding_free needs model.attn_implementation flash_attention_2 (or 3); "
            f"'{config.model.name_or_path}' uses {attn or 'the default'}"
        )
    if config.model.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    args = training_arguments(
        TRLConfig,
        config.training,
        run_dir.checkpoints,
        has_eval=eval_rows is not None,
        max_length=config.training.max_length,
        padding_free=config.training.padding_free,
        # Rows arrive tokenized, labelled and truncated (encode_file): nothing left to prepare.
        dataset_kwargs={"skip_prepare_dataset": True},
    )
    callbacks: list[Any] = [metrics_callback(run_dir.metrics)]
    if eval_rows is not None and config.training.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(config.training.early_stopping_patience))
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=_dataset(train_rows),
        eval_dataset=_dataset(eval_rows) if eval_rows is not None else None,
        processing_class=tokenizer,
        peft_config=lora_config(config.lora) if config.lora else None,
        callbacks=callbacks,
    )
    if config.lora:
        trainer.model.print_trainable_parameters()
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    # With keep_best the Trainer has reloaded the best checkpoint: this saves that adapter.
    save_trained(trainer, tokenizer, run_dir.adapter)
    summary = {
        "global_step": trainer.state.global_step,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "best_eval_loss": trainer.state.best_metric,
        "train_examples": len(train_rows),
        "eval_examples": len(eval_rows) if eval_rows is not None else 0,
    }
    (run_dir.path / "result.json").write_text(json.dumps(summary, indent=2) + "\n")
    return run_dir.adapter


def run(
    config: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    overrides: list[str] | None = None,
    resume: bool = False,
) -> Path:
    """Load the YAML config, write run.json, train; the entry point of the CLI and ``-m``."""
    cfg, raw = load_config(SFTConfig, config, overrides)
    run_dir = RunDir(output_dir, "sft")
    run_dir.write_run_json(raw, resumed=resume)
    return train(cfg, run_dir, resume=resume)


def main(argv: list[str] | None = None) -> None:
    from training.cli import recipe_main

    recipe_main("sft", run, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
