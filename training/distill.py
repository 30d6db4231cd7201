"""Distillation through stored top-k teacher logits: the loss, the batch collator and the
Trainer that optimizes it (the library half of :mod:`training.kd`)."""

from __future__ import annotations

import math
from typing import Any

from training.common import RecipeError
from training.logits import LogitSequence

__all__ = [
    "DIVERGENCES",
    "collate",
    "distillation_losses",
    "distillation_trainer",
    "topk_divergence",
]

DIVERGENCES = ("forward", "reverse", "jsd")


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


def distillation_trainer(
    *args: Any, alpha: float, temperature: float, divergence: str, **kwargs: Any
) -> Any:
    """A transformers Trainer (``args``/``kwargs`` as for Trainer) whose loss is
    :func:`distillation_losses`; it logs ``ce_loss`` and ``kd_loss`` beside ``loss``."""
    from transformers import Trainer

    class DistillationTrainer(Trainer):
        def __init__(self, *trainer_args: Any, **trainer_kwargs: Any) -> None:
            super().__init__(*trainer_args, **trainer_kwargs)
            # Our loss is a per-batch mean: let the Trainer divide by accumulation steps.
            self.model_accepts_loss_kwargs = False
            self._parts: dict[str, float] = {"ce": 0.0, "kd": 0.0, "n": 0.0}

        def compute_loss(
            self, model: Any, inputs: Any, return_outputs: bool = False, **_: Any
        ) -> Any:
            parts = distillation_losses(model, inputs, alpha, temperature, divergence)
            if model.training:
                self._parts["ce"] += float(parts["ce"].detach())
                self._parts["kd"] += float(parts["kd"].detach())
                self._parts["n"] += 1
            return (parts["loss"], parts["outputs"]) if return_outputs else parts["loss"]

        def log(self, logs: dict[str, float], *log_args: Any, **log_kwargs: Any) -> None:
            if "loss" in logs and self._parts["n"]:
                logs["ce_loss"] = self._parts["ce"] / self._parts["n"]
                logs["kd_loss"] = self._parts["kd"] / self._parts["n"]
                self._parts = {"ce": 0.0, "kd": 0.0, "n": 0.0}
            super().log(logs, *log_args, **log_kwargs)

    return DistillationTrainer(*args, **kwargs)
