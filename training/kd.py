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
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.common import RecipeError, default_device, read_jsonl, torch_dtype
from training.config import ConfigValueError, check_choice, check_positive
from training.distill import DIVERGENCES, collate, distillation_trainer
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
from training.logits import (
    FORMAT,
    LogitSequence,
    ShardWriter,
    read_index,
    read_split,
    tokenizer_fingerprint,
)
from training.recipe import Recipe, RunDir
from training.sft import DataSection, SFTConfig, SFTRecipe, encode_file

__all__ = ["STAGES", "KDConfig", "KDRecipe", "StudentRecipe", "dump_logits", "main", "run"]

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

    def check(self) -> None:
        check_positive(self, "top_k", "batch_size", "shard_tokens")
        check_choice(self, "dtype", ("float32", "bfloat16", "float16"))


@dataclass
class StudentSection:
    model: ModelSection = field(default_factory=ModelSection)
    lora: LoraSection | None = field(default_factory=LoraSection)  # null: full fine-tune
    training: TrainSection = field(default_factory=TrainSection)
    alpha: float = 0.5  # weight of the cross-entropy on the reference summary
    temperature: float = 2.0
    divergence: str = "forward"  # forward | reverse | jsd

    def check(self) -> None:
        check_choice(self, "divergence", DIVERGENCES)
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigValueError("alpha", f"{self.alpha} must lie in [0, 1]")
        if self.temperature <= 0.0:
            raise ConfigValueError("temperature", f"{self.temperature} must be positive")


@dataclass
class KDConfig:
    data: DataSection = field(default_factory=DataSection)
    teacher: TeacherSection = field(default_factory=TeacherSection)
    logits: LogitsSection = field(default_factory=LogitsSection)
    student: StudentSection = field(default_factory=StudentSection)
    stages: list[str] = field(default_factory=lambda: list(STAGES))

    def check(self) -> None:
        _check_stages(self.stages)


def _check_stages(stages: list[str]) -> None:
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise ConfigValueError(
            "stages", f"unknown {', '.join(unknown)} (known: {', '.join(STAGES)})"
        )


class KDRecipe(Recipe[KDConfig]):
    """The three stages in order, each in its own folder of the run: ``teacher/``, ``logits/``,
    ``student/``; the run's metrics.jsonl gathers the training stages' rows."""

    name = "kd"
    config_class = KDConfig

    def __init__(
        self,
        config: KDConfig,
        run_dir: RunDir,
        resume: bool = False,
        stages: list[str] | None = None,
    ) -> None:
        super().__init__(config, run_dir, resume)
        self.stages = list(stages or config.stages)
        try:
            _check_stages(self.stages)
        except ConfigValueError as exc:
            raise RecipeError(f"--stage: {exc.reason}") from exc

    @classmethod
    def add_arguments(cls, parser: Any) -> None:
        parser.add_argument(
            "--stage", dest="stages", choices=STAGES, action="append", help="run only this stage"
        )

    def run_info(self) -> dict[str, Any]:
        return {"stages": self.stages}

    def train(self) -> Path:
        out = self.run_dir.path
        result = out
        adapter = self._teacher_adapter()
        if "teacher" in self.stages:
            adapter = self.train_teacher()
        if "dump" in self.stages:
            result = dump_logits(self.config, out / "logits", adapter)
        if "student" in self.stages:
            student_dir = RunDir(out / "student", "kd-student")
            resume = self.resume and student_dir.checkpoints.is_dir()
            result = StudentRecipe(self.config, student_dir, resume, logits=out / "logits").train()
        self._merge_metrics()
        return result

    def _teacher_adapter(self) -> str | None:
        teacher = self.config.teacher
        if teacher.adapter:
            return teacher.adapter
        if teacher.lora is None:
            return None
        return str(self.run_dir.path / "teacher" / "adapter")

    def train_teacher(self) -> str | None:
        """Stage (a): the sft recipe on the teacher, into ``teacher/``."""
        adapter = self._teacher_adapter()
        if self.config.teacher.adapter or adapter is None:
            print("kd: teacher stage skipped (teacher.adapter given or teacher.lora is null)")
            return adapter
        if (Path(adapter) / "adapter_config.json").is_file():
            print(f"kd: teacher stage already done ({adapter})")
            return adapter
        teacher = self.config.teacher
        sft = SFTConfig(
            model=teacher.model, lora=teacher.lora, data=self.config.data, training=teacher.training
        )
        run_dir = RunDir(self.run_dir.path / "teacher", "kd-teacher")
        resume = self.resume and run_dir.checkpoints.is_dir()
        return str(SFTRecipe(sft, run_dir, resume).train())

    def _merge_metrics(self) -> None:
        """The top-level metrics.jsonl: every stage's rows, tagged with the stage."""
        lines = []
        for stage in ("teacher", "student"):
            path = self.run_dir.path / stage / "metrics.jsonl"
            if path.is_file():
                lines.extend(json.dumps({"stage": stage, **row}) for _, row in read_jsonl(path))
        self.run_dir.metrics.path.write_text("".join(f"{line}\n" for line in lines))


# ---------------------------------------------------------------------------------------------
# Stage (b): dump the teacher's top-k logits


def dump_logits(config: KDConfig, folder: Path, adapter: str | None) -> Path:
    """The tuned teacher's top-k logits of every target token of each split, into ``folder``."""
    if (folder / "index.json").is_file() and read_index(folder).get("complete"):
        print(f"kd: dump stage already done ({folder})")
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    teacher = config.teacher
    tokenizer = load_tokenizer(teacher.model)
    if adapter and not (Path(adapter) / "adapter_config.json").is_file():
        raise RecipeError(f"teacher adapter '{adapter}' not found; run the teacher stage first")
    model = load_causal_lm(teacher.model, adapter=adapter, merge=True)
    model.to(default_device()).eval()
    splits = {"train": config.data.train}
    if config.data.validation:
        splits["validation"] = config.data.validation
    k = config.logits.top_k
    meta = {"k": str(k), "teacher": teacher.model.name_or_path, "adapter": adapter or ""}
    index: dict[str, Any] = {
        "format": FORMAT,
        "k": k,
        "dtype": config.logits.dtype,
        "teacher": teacher.model.name_or_path,
        "teacher_adapter": adapter,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "vocab_size": len(tokenizer),
        "splits": {},
    }
    for split, path in splits.items():
        rows = encode_file(tokenizer, path, teacher.training.max_length)
        writer = ShardWriter(folder, split, config.logits.shard_tokens, meta)
        for start in range(0, len(rows), config.logits.batch_size):
            chunk = rows[start : start + config.logits.batch_size]
            for sequence in _teacher_topk(model, chunk, tokenizer.pad_token_id, config):
                writer.add(sequence)
        index["splits"][split] = {"source": path, **writer.summary()}
        print(f"kd: dumped top-{k} logits of {split}: {index['splits'][split]['targets']} tokens")
    index["complete"] = True
    (folder / "index.json").write_text(json.dumps(index, indent=2, ensure_ascii=False) + "\n")
    return folder


def _teacher_topk(
    model: Any, rows: list[dict[str, list[int]]], pad_token_id: int, config: KDConfig
) -> list[LogitSequence]:
    """One batch of encoded rows through the teacher: each row's top-k at its target tokens."""
    import torch

    k = config.logits.top_k
    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    attention = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r["input_ids"])] = torch.tensor(r["input_ids"])
        attention[i, : len(r["input_ids"])] = 1
    device = next(model.parameters()).device
    with torch.inference_mode():
        logits = model(input_ids=ids.to(device), attention_mask=attention.to(device)).logits
    if logits.shape[-1] < k:
        raise RecipeError(f"logits.top_k {k} exceeds the teacher vocabulary")
    store_dtype = torch_dtype(config.logits.dtype, "logits.dtype")
    sequences = []
    for i, r in enumerate(rows):
        seq = torch.tensor(r["input_ids"])
        labels = torch.where(torch.tensor(r["assistant_masks"]) == 1, seq, -100)
        labels[0] = -100  # nothing predicts the first token
        positions = (labels != -100).nonzero().squeeze(-1)
        values, indices = logits[i, positions - 1].float().topk(k, dim=-1)
        sequences.append(
            LogitSequence(
                input_ids=seq.to(torch.int32),
                labels=labels.to(torch.int32),
                topk_ids=indices.cpu().to(torch.int32),
                topk_logits=values.cpu().to(store_dtype),
            )
        )
    return sequences


# ---------------------------------------------------------------------------------------------
# Stage (c): the student


class StudentRecipe(Recipe[KDConfig]):
    """Stage (c): the student trained on the stored top-k logits in ``logits``."""

    name = "kd-student"
    config_class = KDConfig

    def __init__(
        self, config: KDConfig, run_dir: RunDir, resume: bool = False, *, logits: Path
    ) -> None:
        super().__init__(config, run_dir, resume)
        self.logits = logits

    def train(self) -> Path:
        from transformers import TrainingArguments

        student, run_dir = self.config.student, self.run_dir
        index = read_index(self.logits)
        if not self.resume and (run_dir.adapter / "adapter_config.json").is_file():
            print(f"kd: student stage already done ({run_dir.adapter})")
            return run_dir.adapter
        checkpoint = self.begin(student.training.seed)
        tokenizer = load_tokenizer(student.model)
        self._check_tokenizer(tokenizer, index)
        train_set = read_split(self.logits, "train")
        has_eval = "validation" in index["splits"]
        eval_set = read_split(self.logits, "validation") if has_eval else None
        model = self._load_model(index)
        args = training_arguments(
            TrainingArguments,
            student.training,
            run_dir.checkpoints,
            has_eval=has_eval,
            remove_unused_columns=False,
            prediction_loss_only=True,
            label_names=["labels"],
        )
        # Rows are LogitSequences, not dicts the length sampler can measure.
        args.train_sampling_strategy = "random"
        pad = tokenizer.pad_token_id
        trainer = distillation_trainer(
            model=model,
            args=args,
            train_dataset=train_set,
            eval_dataset=eval_set,
            data_collator=lambda seqs: collate(seqs, pad),
            callbacks=trainer_callbacks(run_dir.metrics, student.training, has_eval),
            alpha=student.alpha,
            temperature=student.temperature,
            divergence=student.divergence,
        )
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        save_trained(trainer, tokenizer, run_dir.adapter)
        return run_dir.adapter

    def _check_tokenizer(self, tokenizer: Any, index: dict[str, Any]) -> None:
        if tokenizer_fingerprint(tokenizer) != index["tokenizer"]:
            raise RecipeError(
                f"student '{self.config.student.model.name_or_path}' and teacher "
                f"'{index['teacher']}' do not share a tokenizer (vocabulary or special tokens "
                "differ); distilling stored top-k logits needs the student to read the "
                "teacher's token ids"
            )

    def _load_model(self, index: dict[str, Any]) -> Any:
        student = self.config.student
        model = load_causal_lm(student.model)
        rows = model.get_input_embeddings().weight.shape[0]
        if index["vocab_size"] > rows:
            raise RecipeError(
                f"student '{student.model.name_or_path}' has {rows} embedding rows, fewer "
                f"than the teacher's {index['vocab_size']} tokens"
            )
        model = prepare_for_training(model, student.model)
        if student.lora:
            from peft import get_peft_model

            model = get_peft_model(model, lora_config(student.lora))
            model.print_trainable_parameters()
        return model


run = KDRecipe.run
main = KDRecipe.main

if __name__ == "__main__":
    main(sys.argv[1:])
