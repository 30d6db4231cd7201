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
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.chat import accepts_system, encode_chat, load_chat_file
from training.common import RecipeError
from training.config import MISSING
from training.hf import (
    LoraSection,
    ModelSection,
    TrainSection,
    load_causal_lm,
    load_tokenizer,
    lora_config,
    prepare_for_training,
    save_trained,
    trainer_callbacks,
    training_arguments,
)
from training.recipe import Recipe

__all__ = ["DataSection", "SFTConfig", "SFTRecipe", "encode_file", "main", "run"]


@dataclass
class DataSection:
    train: str = MISSING  # JSONL of chat rows
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


class SFTRecipe(Recipe[SFTConfig]):
    name = "sft"
    config_class = SFTConfig

    def train(self) -> Path:
        """Train per the config into the run folder; returns the adapter (or model) folder."""
        from trl import SFTConfig as TRLConfig
        from trl import SFTTrainer

        config, run_dir = self.config, self.run_dir
        checkpoint = self.begin(config.training.seed)
        tokenizer = load_tokenizer(config.model)
        max_length = config.training.max_length
        train_rows = encode_file(tokenizer, config.data.train, max_length)
        eval_rows = (
            encode_file(tokenizer, config.data.validation, max_length)
            if config.data.validation
            else None
        )
        model = self._load_model()
        has_eval = eval_rows is not None
        args = training_arguments(
            TRLConfig,
            config.training,
            run_dir.checkpoints,
            has_eval=has_eval,
            max_length=max_length,
            padding_free=config.training.padding_free,
            # Rows arrive tokenized, labelled and truncated (encode_file): nothing to prepare.
            dataset_kwargs={"skip_prepare_dataset": True},
        )
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=_dataset(train_rows),
            eval_dataset=_dataset(eval_rows) if eval_rows is not None else None,
            processing_class=tokenizer,
            peft_config=lora_config(config.lora) if config.lora else None,
            callbacks=trainer_callbacks(run_dir.metrics, config.training, has_eval),
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

    def _load_model(self) -> Any:
        config = self.config
        model = load_causal_lm(config.model)
        attn = getattr(model.config, "_attn_implementation", "") or ""
        if config.training.padding_free and "flash" not in attn:
            # Flattened rows only stay separate under flash attention's varlen kernels; eager or
            # SDPA would let each example attend to the previous one.
            raise RecipeError(
                "training.padding_free needs model.attn_implementation flash_attention_2 (or 3); "
                f"'{config.model.name_or_path}' uses {attn or 'the default'}"
            )
        return prepare_for_training(model, config.model)


run = SFTRecipe.run
main = SFTRecipe.main

if __name__ == "__main__":
    main(sys.argv[1:])
