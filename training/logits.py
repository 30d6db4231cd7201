"""Teacher top-k logits on disk: safetensors shards (no pickle) plus an ``index.json``.

One shard holds whole sequences::

    input_ids     int32  [tokens]        the sequences, concatenated
    labels        int32  [tokens]        the target token at each position, -100 elsewhere
    seq_lengths   int64  [sequences]
    topk_ids      int32  [targets, k]    the teacher's k most likely next tokens, for every
    topk_logits   f32/bf16 [targets, k]  position whose label is a target, in order

The teacher's row for a target at position j comes from its logits at position j-1 (the one that
predicts it), so a student reads rows in label order and never re-tokenizes: teacher and student
see exactly the same tokens.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.common import RecipeError

__all__ = [
    "FORMAT",
    "LogitSequence",
    "ShardWriter",
    "read_index",
    "read_shard",
    "read_split",
    "tokenizer_fingerprint",
    "write_shard",
]

FORMAT = "polisum-topk-logits/1"


@dataclass
class LogitSequence:
    input_ids: Any  # torch int tensor [L]
    labels: Any  # torch int tensor [L], -100 where not a target
    topk_ids: Any  # torch int tensor [targets, k]
    topk_logits: Any  # torch float tensor [targets, k]


def write_shard(path: Path, sequences: list[LogitSequence], metadata: dict[str, str]) -> None:
    import torch
    from safetensors.torch import save_file

    if not sequences:
        raise ValueError("a shard needs at least one sequence")
    for seq in sequences:
        targets = int((seq.labels != -100).sum())
        if targets != seq.topk_ids.shape[0] or seq.topk_ids.shape != seq.topk_logits.shape:
            raise ValueError("top-k rows must match the sequence's target tokens one to one")
    tensors = {
        "input_ids": torch.cat([s.input_ids for s in sequences]).to(torch.int32),
        "labels": torch.cat([s.labels for s in sequences]).to(torch.int32),
        "seq_lengths": torch.tensor([len(s.input_ids) for s in sequences], dtype=torch.int64),
        "topk_ids": torch.cat([s.topk_ids for s in sequences]).to(torch.int32).contiguous(),
        "topk_logits": torch.cat([s.topk_logits for s in sequences]).contiguous(),
    }
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"format": FORMAT, **metadata})
    tmp.replace(path)  # a shard is either complete or absent


def read_shard(path: Path) -> list[LogitSequence]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            if (fh.metadata() or {}).get("format") != FORMAT:
                raise RecipeError(f"{path}: not a top-k logit shard ({FORMAT})")
            t = {name: fh.get_tensor(name) for name in fh.keys()}  # noqa: SIM118
    except (OSError, ValueError) as exc:
        raise RecipeError(f"{path}: unreadable logit shard: {exc}") from exc
    sequences = []
    pos = row = 0
    for length in t["seq_lengths"].tolist():
        labels = t["labels"][pos : pos + length]
        targets = int((labels != -100).sum())
        sequences.append(
            LogitSequence(
                input_ids=t["input_ids"][pos : pos + length],
                labels=labels,
                topk_ids=t["topk_ids"][row : row + targets],
                topk_logits=t["topk_logits"][row : row + targets],
            )
        )
        pos += length
        row += targets
    return sequences


def read_index(folder: Path) -> dict[str, Any]:
    index = folder / "index.json"
    if not index.is_file():
        raise RecipeError(f"{folder}: no index.json; run the dump stage first")
    return json.loads(index.read_text(encoding="utf-8"))


def read_split(folder: Path, split: str) -> list[LogitSequence]:
    info = read_index(folder)
    if split not in info.get("splits", {}):
        raise RecipeError(f"{folder}/index.json: no '{split}' split")
    sequences: list[LogitSequence] = []
    for name in info["splits"][split]["shards"]:
        sequences.extend(read_shard(folder / name))
    return sequences


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A digest of the vocabulary and special token ids: equal iff two tokenizers map text to
    the same ids (what sharing a tokenizer means for distillation)."""
    h = hashlib.sha256()
    h.update(json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False).encode())
    specials = {
        name: getattr(tokenizer, f"{name}_token_id", None) for name in ("bos", "eos", "pad", "unk")
    }
    h.update(json.dumps(specials, sort_keys=True).encode())
    return h.hexdigest()[:16]


class ShardWriter:
    """Collects sequences and writes a shard every ``shard_tokens`` tokens."""

    def __init__(self, folder: Path, split: str, shard_tokens: int, metadata: dict[str, str]):
        self.folder = folder
        self.split = split
        self.shard_tokens = shard_tokens
        self.metadata = metadata
        self.pending: list[LogitSequence] = []
        self.pending_tokens = 0
        self.shards: list[str] = []
        self.sequences = 0
        self.targets = 0

    def add(self, seq: LogitSequence) -> None:
        self.pending.append(seq)
        self.pending_tokens += len(seq.input_ids)
        if self.pending_tokens >= self.shard_tokens:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        name = f"{self.split}-{len(self.shards):05d}.safetensors"
        write_shard(self.folder / name, self.pending, self.metadata)
        self.shards.append(name)
        self.sequences += len(self.pending)
        self.targets += sum(int(s.topk_ids.shape[0]) for s in self.pending)
        self.pending, self.pending_tokens = [], 0

    def summary(self) -> dict[str, Any]:
        self.flush()
        return {"shards": self.shards, "sequences": self.sequences, "targets": self.targets}
