"""Distillation from a LoRA-tuned teacher through stored top-k logits, in three stages.

    polisum train kd --config gemma2_2b_kd --output-dir runs/gemma-kd          # all three
    polisum train kd --config gemma2_2b_kd --output-dir runs/gemma-kd --stage dump

(a) ``teacher``: LoRA SFT of the teacher on paragraph→summary pairs (the :mod:`training.sft`
    recipe, written to ``OUTPUT/teacher``).
(b) ``dump``: the tuned teacher's top-k logits for every target token of the training (and
    validation) set, to safetensors shards in ``OUTPUT/logits`` (:mod:`training.logits`).
(c) ``student``: the student (LoRA or full) trained on
    ``α·CE + (1−α)·T²·D(p_teacher^T ‖ q_student^T)`` where both distributions are softened by the
    temperature T and taken over the teacher's stored top-k tokens; D is forward KL (default),
    reverse KL or Jensen-Shannon. Written to ``OUTPUT/student``.

Stored logits let the teacher and the student use one GPU at different times. A finished stage
is skipped on a rerun; ``--resume`` continues an interrupted training stage from its last
checkpoint. Gemma-2 runs with eager attention (its logit soft-capping needs it), and teacher and
student must share a tokenizer: the student reads the teacher's token ids.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from training.logits import (
    LogitSequence,
    ShardWriter,
    read_index,
    read_split,
    tokenizer_fingerprint,
)
from training.sft import DataSection, SFTConfig, encode_file
from training.sft import train as train_sft

__all__ = [
    "DIVERGENCES",
    "KDConfig",
    "distillation_losses",
    "dump_logits",
    "run",
    "topk_divergence",
    "train_student",
]

DIVERGENCES = ("forward", "reverse", "jsd")
STAGES = ("teacher", "dump", "student")


@dataclass
class TeacherSection:
    model: ModelSection = field(default_factory=ModelSection)
    lora: LoraSection | None = field(default_factory=LoraSection)  # null: use the teacher as is
    training: TrainSection = field(default_factory=TrainSection)
    adapter: str | None = None  # an already tuned teacher adapter: stage (a) is skipped


@dataclass
class LogitsSection:
    top_k: int = 64
    batch_size: int = 4
    shard_tokens: int = 262_144  # tokens per shard file
    dtype: str = "float32"  # or bfloat16 (half the disk)


@dataclass
class StudentSection:
    model: ModelSection = field(default_factory=ModelSection)
    lora: LoraSection | None = field(default_factory=LoraSection)  # null: full fine-tune
    training: TrainSection = field(default_factory=TrainSection)
    alpha: float = 0.5  # weight of the cross-entropy on the reference summary
    temperature: float = 2.0
    divergence: str = "forward"  # forward | reverse | jsd


@dataclass
class KDConfig:
    data: DataSection = field(default_factory=DataSection)
    teacher: TeacherSection = field(default_factory=TeacherSection)
    logits: LogitsSection = field(default_factory=LogitsSection)
    student: StudentSection = field(default_factory=StudentSection)
    stages: list[str] = field(default_factory=lambda: list(STAGES))


# ---------------------------------------------------------------------------------------------
# Loss


def topk_divergence(
    student_logits: Any, teacher_logits: Any, temperature: float, kind: str = "forward"
) -> Any:
    """Per-token divergence between the temperature-softened teacher and student distributions
    over the same k tokens (both renormalised over them). Shapes ``[tokens, k]`` → ``[tokens]``."""
    import torch
    import torch.nn.functional as F

    log_p = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    log_q = F.log_softmax(student_logits.float() / temperature, dim=-1)
    if kind == "forward":
        return (log_p.exp() * (log_p - log_q)).sum(-1)
    if kind == "reverse":
        return (log_q.exp() * (log_q - log_p)).sum(-1)
    if kind == "jsd":
        log_m = torch.logsumexp(torch.stack([log_p, log_q]), dim=0) - math.log(2.0)
        return 0.5 * (log_p.exp() * (log_p - log_m)).sum(-1) + 0.5 * (
            log_q.exp() * (log_q - log_m)
        ).sum(-1)
    raise RecipeError(f"student.divergence '{kind}': expected one of {', '.join(DIVERGENCES)}")


def distillation_losses(
    model: Any, batch: dict[str, Any], alpha: float, temperature: float, divergence: str
) -> dict[str, Any]:
    """``loss`` = α·CE + (1−α)·T²·D, with ``ce`` and ``kd`` (D) alongside, averaged over the
    target tokens of ``batch`` (a :func:`collate` output)."""
    import torch.nn.functional as F

    outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    # Position j-1 predicts token j; the stored top-k rows sit at the target's own position.
    logits = outputs.logits[:, :-1]
    labels = batch["labels"][:, 1:]
    mask = labels != -100
    student = logits[mask]  # [targets, vocab]
    targets = labels[mask]
    topk_ids = batch["topk_ids"][:, 1:][mask].long()
    topk_logits = batch["topk_logits"][:, 1:][mask]
    ce = F.cross_entropy(student.float(), targets)
    kd = topk_divergence(student.gather(-1, topk_ids), topk_logits, temperature, divergence).mean()
    loss = alpha * ce + (1.0 - alpha) * temperature**2 * kd
    return {"loss": loss, "ce": ce, "kd": kd, "outputs": outputs}


def collate(sequences: list[LogitSequence], pad_token_id: int) -> dict[str, Any]:
    """Right-padded batch; top-k rows are scattered to their target positions (zeros
    elsewhere), padding is masked out of attention and loss."""
    import torch

    width = max(len(s.input_ids) for s in sequences)
    k = sequences[0].topk_ids.shape[1]
    n = len(sequences)
    input_ids = torch.full((n, width), pad_token_id, dtype=torch.long)
    labels = torch.full((n, width), -100, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    topk_ids = torch.zeros((n, width, k), dtype=torch.long)
    topk_logits = torch.zeros((n, width, k), dtype=torch.float32)
    for i, s in enumerate(sequences):
        length = len(s.input_ids)
        input_ids[i, :length] = s.input_ids
        labels[i, :length] = s.labels
        attention[i, :length] = 1
        where = s.labels != -100
        topk_ids[i, :length][where] = s.topk_ids.long()
        topk_logits[i, :length][where] = s.topk_logits.float()
    return {
        "input_ids": input_ids,
        "attention_mask": attention,
        "labels": labels,
        "topk_ids": topk_ids,
        "topk_logits": topk_logits,
    }


# ---------------------------------------------------------------------------------------------
# Stage (a): teacher


def _teacher_adapter(config: KDConfig, out: Path) -> str | None:
    if config.teacher.adapter:
        return config.teacher.adapter
    if config.teacher.lora is None:
        return None
    return str(out / "teacher" / "adapter")


def train_teacher(config: KDConfig, out: Path, resume: bool) -> str | None:
    adapter = _teacher_adapter(config, out)
    if config.teacher.adapter or adapter is None:
        print("kd: teacher stage skipped (teacher.adapter given or teacher.lora is null)")
        return adapter
    if (Path(adapter) / "adapter_config.json").is_file():
        print(f"kd: teacher stage already done ({adapter})")
        return adapter
    run_dir = RunDir(out / "teacher", "kd-teacher")
    sft = SFTConfig(
        model=config.teacher.model,
        lora=config.teacher.lora,
        data=config.data,
        training=config.teacher.training,
    )
    resume = resume and run_dir.checkpoints.is_dir()
    return str(train_sft(sft, run_dir, resume=resume))


# ---------------------------------------------------------------------------------------------
# Stage (b): dump the teacher's top-k logits


def dump_logits(config: KDConfig, out: Path, adapter: str | None) -> Path:
    import torch

    folder = out / "logits"
    if (folder / "index.json").is_file() and read_index(folder).get("complete"):
        print(f"kd: dump stage already done ({folder})")
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(config.teacher.model)
    if adapter and not (Path(adapter) / "adapter_config.json").is_file():
        raise RecipeError(f"teacher adapter '{adapter}' not found; run the teacher stage first")
    model = load_causal_lm(config.teacher.model, adapter=adapter, merge=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    k = config.logits.top_k
    store_dtype = getattr(torch, config.logits.dtype)
    max_length = config.teacher.training.max_length
    splits = {"train": config.data.train}
    if config.data.validation:
        splits["validation"] = config.data.validation
    meta = {"k": str(k), "teacher": config.teacher.model.name_or_path, "adapter": adapter or ""}
    index: dict[str, Any] = {
        "format": "polisum-topk-logits/1",
        "k": k,
        "dtype": config.logits.dtype,
        "teacher": config.teacher.model.name_or_path,
        "teacher_adapter": adapter,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "vocab_size": len(tokenizer),
        "splits": {},
    }
    batch_size = max(1, config.logits.batch_size)
    for split, path in splits.items():
        rows = encode_file(tokenizer, path, max_length)
        writer = ShardWriter(folder, split, config.logits.shard_tokens, meta)
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            width = max(len(r["input_ids"]) for r in chunk)
            ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
            attention = torch.zeros_like(ids)
            for i, r in enumerate(chunk):
                ids[i, : len(r["input_ids"])] = torch.tensor(r["input_ids"])
                attention[i, : len(r["input_ids"])] = 1
            with torch.inference_mode():
                logits = model(input_ids=ids.to(device), attention_mask=attention.to(device)).logits
            if logits.shape[-1] < k:
                raise RecipeError(f"logits.top_k {k} exceeds the teacher vocabulary")
            for i, r in enumerate(chunk):
                seq = torch.tensor(r["input_ids"])
                labels = torch.where(torch.tensor(r["assistant_masks"]) == 1, seq, -100)
                labels[0] = -100  # nothing predicts the first token
                positions = (labels != -100).nonzero().squeeze(-1)
                values, indices = logits[i, positions - 1].float().topk(k, dim=-1)
                writer.add(
                    LogitSequence(
                        input_ids=seq.to(torch.int32),
                        labels=labels.to(torch.int32),
                        topk_ids=indices.cpu().to(torch.int32),
                        topk_logits=values.cpu().to(store_dtype),
                    )
                )
        index["splits"][split] = {"source": path, **writer.summary()}
        print(f"kd: dumped top-{k} logits of {split}: {index['splits'][split]['targets']} tokens")
    index["complete"] = True
    (folder / "index.json").write_text(json.dumps(index, indent=2, ensure_ascii=False) + "\n")
    del model
    return folder


# ---------------------------------------------------------------------------------------------
# Stage (c): the student


def _check_tokenizers(student_tok: Any, index: dict[str, Any], config: KDConfig) -> None:
    if tokenizer_fingerprint(student_tok) != index["tokenizer"]:
        raise RecipeError(
            f"student '{config.student.model.name_or_path}' and teacher '{index['teacher']}' do "
            "not share a tokenizer (vocabulary or special tokens differ); distilling stored "
            "top-k logits needs the student to read the teacher's token ids"
        )


def _trainer_class() -> Any:
    from transformers import Trainer

    class DistillationTrainer(Trainer):
        """Trainer whose loss is :func:`distillation_losses`; logs ce_loss and kd_loss too."""

        def __init__(self, *args: Any, kd: StudentSection, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.kd = kd
            # Our loss is a per-batch mean: let the Trainer divide by accumulation steps.
            self.model_accepts_loss_kwargs = False
            self._parts: dict[str, float] = {"ce": 0.0, "kd": 0.0, "n": 0.0}

        def compute_loss(
            self, model: Any, inputs: Any, return_outputs: bool = False, **_: Any
        ) -> Any:
            parts = distillation_losses(
                model, inputs, self.kd.alpha, self.kd.temperature, self.kd.divergence
            )
            if model.training:
                self._parts["ce"] += float(parts["ce"].detach())
                self._parts["kd"] += float(parts["kd"].detach())
                self._parts["n"] += 1
            return (parts["loss"], parts["outputs"]) if return_outputs else parts["loss"]

        def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
            if "loss" in logs and self._parts["n"]:
                logs["ce_loss"] = self._parts["ce"] / self._parts["n"]
                logs["kd_loss"] = self._parts["kd"] / self._parts["n"]
                self._parts = {"ce": 0.0, "kd": 0.0, "n": 0.0}
            super().log(logs, *args, **kwargs)

    return DistillationTrainer


def train_student(config: KDConfig, out: Path, resume: bool) -> Path:
    from transformers import EarlyStoppingCallback, TrainingArguments

    if config.student.divergence not in DIVERGENCES:
        raise RecipeError(
            f"student.divergence '{config.student.divergence}': expected one of "
            f"{', '.join(DIVERGENCES)}"
        )
    if not 0.0 <= config.student.alpha <= 1.0:
        raise RecipeError(f"student.alpha {config.student.alpha}: must lie in [0, 1]")
    folder = out / "logits"
    index = read_index(folder)
    run_dir = RunDir(out / "student", "kd-student")
    if not resume and (run_dir.adapter / "adapter_config.json").is_file():
        print(f"kd: student stage already done ({run_dir.adapter})")
        return run_dir.adapter
    checkpoint = run_dir.check_resume(resume and run_dir.checkpoints.is_dir())
    seed_everything(config.student.training.seed)
    tokenizer = load_tokenizer(config.student.model)
    _check_tokenizers(tokenizer, index, config)
    train_set = read_split(folder, "train")
    eval_set = read_split(folder, "validation") if "validation" in index["splits"] else None
    model = load_causal_lm(config.student.model)
    rows = model.get_input_embeddings().weight.shape[0]
    if index["vocab_size"] > rows:
        raise RecipeError(
            f"student '{config.student.model.name_or_path}' has {rows} embedding rows, fewer "
            f"than the teacher's {index['vocab_size']} tokens"
        )
    if config.student.model.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.student.lora:
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(config.student.lora))
        model.print_trainable_parameters()
    args = training_arguments(
        TrainingArguments,
        config.student.training,
        run_dir.checkpoints,
        has_eval=eval_set is not None,
        remove_unused_columns=False,
        prediction_loss_only=True,
        label_names=["labels"],
    )
    # Rows are LogitSequences, not dicts the length sampler can measure.
    args.train_sampling_strategy = "random"
    callbacks: list[Any] = [metrics_callback(run_dir.metrics)]
    if eval_set is not None and config.student.training.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(config.student.training.early_stopping_patience))
    pad = tokenizer.pad_token_id
    trainer = _trainer_class()(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=lambda seqs: collate(seqs, pad),
        callbacks=callbacks,
        kd=config.student,
    )
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    save_trained(trainer, tokenizer, run_dir.adapter)
    return run_dir.adapter


# ---------------------------------------------------------------------------------------------


def run(
    config: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    overrides: list[str] | None = None,
    resume: bool = False,
    stages: list[str] | None = None,
) -> Path:
    cfg, raw = load_config(KDConfig, config, overrides)
    stages = stages or cfg.stages
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise RecipeError(f"unknown kd stage(s) {', '.join(unknown)} (stages: {', '.join(STAGES)})")
    out = Path(output_dir)
    top = RunDir(out, "kd")
    top.write_run_json(raw, stages=stages, resumed=resume)
    result = out
    adapter = _teacher_adapter(cfg, out)
    if "teacher" in stages:
        adapter = train_teacher(cfg, out, resume)
    if "dump" in stages:
        result = dump_logits(cfg, out, adapter)
    if "student" in stages:
        result = train_student(cfg, out, resume)
    _merge_metrics(top)
    return result


def _merge_metrics(top: RunDir) -> None:
    """The top-level metrics.jsonl: every stage's rows, tagged with the stage."""
    lines = []
    for stage in ("teacher", "student"):
        path = top.path / stage / "metrics.jsonl"
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    lines.append(json.dumps({"stage": stage, **json.loads(line)}))
    (top.path / "metrics.jsonl").write_text("".join(f"{line}\n" for line in lines))


def main(argv: list[str] | None = None) -> None:
    from training.cli import recipe_main

    recipe_main("kd", run, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
