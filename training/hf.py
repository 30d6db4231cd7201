"""transformers/PEFT pieces the text recipes share: config sections, model loading, the
Trainer arguments and callbacks (metrics.jsonl, early stopping)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.common import RecipeError, bf16_supported, torch_dtype
from training.config import MISSING, ConfigValueError, check_choice, check_positive
from training.recipe import MetricsWriter
from training.tiny import resolve_model

__all__ = [
    "LoraSection",
    "ModelSection",
    "TrainSection",
    "load_causal_lm",
    "load_tokenizer",
    "lora_config",
    "prepare_for_training",
    "save_trained",
    "trainer_callbacks",
    "training_arguments",
]

# Gemma-2 soft-caps attention logits; SDPA kernels do not implement it, eager attention does.
_EAGER_MODEL_TYPES = {"gemma2"}


@dataclass
class ModelSection:
    name_or_path: str = MISSING  # hub id, local folder, or tiny:NAME
    dtype: str = "auto"  # auto: bf16 on a GPU that supports it, else float32
    attn_implementation: str | None = None  # None: eager for Gemma-2, the default otherwise
    trust_remote_code: bool = False
    gradient_checkpointing: bool = False
    tiny_cache: str | None = None  # where tiny:NAME models are built (tests, smoke runs)


@dataclass
class LoraSection:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ]
    )


@dataclass
class TrainSection:
    epochs: float = 1.0
    max_steps: int | None = None  # stop after this many optimizer steps (overrides epochs)
    per_device_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    lr_scheduler: str = "linear"
    max_grad_norm: float = 1.0
    bf16: bool | None = None  # None: where supported
    eval_strategy: str = "epoch"  # epoch | steps | no
    eval_steps: int | None = None
    save_total_limit: int | None = 2
    logging_steps: int = 10
    keep_best: bool = True  # reload the best checkpoint (lowest eval loss) at the end
    early_stopping_patience: int | None = None  # evaluations without improvement
    padding_free: bool = False  # flatten batches (needs flash-attention); else dynamic padding
    group_by_length: bool = True  # batch similar lengths together: less padding
    max_length: int = 2048
    seed: int = 42
    dataloader_num_workers: int = 0

    def check(self) -> None:
        check_positive(
            self, "max_steps", "per_device_batch_size", "gradient_accumulation_steps", "max_length"
        )
        check_choice(self, "eval_strategy", ("epoch", "steps", "no"))
        if self.eval_strategy == "steps" and not self.eval_steps:
            raise ConfigValueError("eval_steps", "eval_strategy 'steps' needs eval_steps")


def load_tokenizer(section: ModelSection, path: str | None = None) -> Any:
    from transformers import AutoTokenizer

    where = path or resolve_model(section.name_or_path, section.tiny_cache)
    try:
        tok = AutoTokenizer.from_pretrained(where, trust_remote_code=section.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise RecipeError(f"cannot load the tokenizer of '{where}': {exc}") from exc
    if not getattr(tok, "chat_template", None):
        raise RecipeError(f"'{where}': its tokenizer has no chat template")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token  # padding is masked out of the loss either way
    return tok


def load_causal_lm(section: ModelSection, adapter: str | None = None, merge: bool = False) -> Any:
    """The base model (dtype and attention chosen for it), optionally with a PEFT adapter."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if not section.name_or_path:
        raise RecipeError("model.name_or_path is required")
    where = resolve_model(section.name_or_path, section.tiny_cache)
    try:
        config = AutoConfig.from_pretrained(where, trust_remote_code=section.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise RecipeError(f"cannot load model '{where}': {exc}") from exc
    attn = section.attn_implementation or (
        "eager" if config.model_type in _EAGER_MODEL_TYPES else None
    )
    kwargs: dict[str, Any] = {
        "dtype": torch_dtype(section.dtype),
        "trust_remote_code": section.trust_remote_code,
    }
    if attn:
        kwargs["attn_implementation"] = attn
    try:
        model = AutoModelForCausalLM.from_pretrained(where, **kwargs)
    except (OSError, ValueError) as exc:
        raise RecipeError(f"cannot load model '{where}': {exc}") from exc
    if adapter:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, adapter)
        except (OSError, ValueError) as exc:
            raise RecipeError(f"cannot load adapter '{adapter}' onto '{where}': {exc}") from exc
        if merge:
            model = model.merge_and_unload()
    return model


def lora_config(section: LoraSection) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=section.r,
        lora_alpha=section.alpha,
        lora_dropout=section.dropout,
        target_modules=list(section.target_modules),
        task_type="CAUSAL_LM",
    )


def training_arguments(
    cls: Any, section: TrainSection, output_dir: Path, has_eval: bool, **extra: Any
) -> Any:
    """TrainingArguments (or a subclass such as TRL's SFTConfig) from a TrainSection."""
    import torch

    evaluate = has_eval and section.eval_strategy != "no"
    strategy = section.eval_strategy if evaluate else "epoch"
    bf16 = bf16_supported() if section.bf16 is None else section.bf16
    return cls(
        output_dir=str(output_dir),
        num_train_epochs=section.epochs,
        max_steps=section.max_steps or -1,  # -1: epochs decide
        per_device_train_batch_size=section.per_device_batch_size,
        per_device_eval_batch_size=section.per_device_batch_size,
        gradient_accumulation_steps=section.gradient_accumulation_steps,
        learning_rate=section.lr,
        weight_decay=section.weight_decay,
        warmup_steps=section.warmup_ratio,  # a float below 1 is a ratio of the total steps
        lr_scheduler_type=section.lr_scheduler,
        max_grad_norm=section.max_grad_norm,
        bf16=bf16,
        eval_strategy=strategy if evaluate else "no",
        eval_steps=section.eval_steps,
        # Checkpoints follow evaluations, so the best one can be kept and resumed from.
        save_strategy=strategy,
        save_steps=section.eval_steps,
        save_total_limit=section.save_total_limit,
        load_best_model_at_end=evaluate and section.keep_best,
        metric_for_best_model="eval_loss" if evaluate else None,
        greater_is_better=False,
        logging_steps=section.logging_steps,
        logging_first_step=True,
        train_sampling_strategy="group_by_length" if section.group_by_length else "random",
        seed=section.seed,
        data_seed=section.seed,
        report_to=[],
        dataloader_num_workers=section.dataloader_num_workers,
        disable_tqdm=False,
        use_cpu=not torch.cuda.is_available(),
        **extra,
    )


def prepare_for_training(model: Any, section: ModelSection) -> Any:
    """Gradient checkpointing when the section asks for it (no KV cache while training)."""
    if section.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    return model


def trainer_callbacks(writer: MetricsWriter, section: TrainSection, has_eval: bool) -> list[Any]:
    """metrics.jsonl logging, plus early stopping when there is an evaluation to stop on."""
    from transformers import EarlyStoppingCallback

    callbacks: list[Any] = [metrics_callback(writer)]
    if has_eval and section.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(section.early_stopping_patience))
    return callbacks


def save_trained(trainer: Any, tokenizer: Any, folder: Path) -> Path:
    """The trained adapter (or model) and its tokenizer, ready for ``from_pretrained``."""
    config = getattr(trainer.model, "config", None)
    if config is not None and getattr(config, "use_cache", None) is False:
        config.use_cache = True  # off only for gradient checkpointing; a saved model generates
    trainer.save_model(str(folder))
    tokenizer.save_pretrained(str(folder))
    # The Trainer also drops its pickled arguments there; they are in run.json already.
    (folder / "training_args.bin").unlink(missing_ok=True)
    return folder


def metrics_callback(writer: MetricsWriter) -> Any:
    from transformers import TrainerCallback

    class MetricsCallback(TrainerCallback):
        """Writes each Trainer log (training loss, eval loss, lr) to metrics.jsonl."""

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            logs = logs or {}
            if "loss" not in logs and "eval_loss" not in logs:
                return  # the end-of-training summary (runtime etc.) is not a metric row
            extra = {
                k: v
                for k, v in logs.items()
                if k not in ("loss", "eval_loss", "learning_rate", "epoch")
                and isinstance(v, int | float)
                and not k.endswith(("runtime", "per_second"))
            }
            writer.write(
                state.global_step,
                epoch=logs.get("epoch"),
                loss=logs.get("loss"),
                eval_loss=logs.get("eval_loss"),
                lr=logs.get("learning_rate"),
                **extra,
            )

    return MetricsCallback()
