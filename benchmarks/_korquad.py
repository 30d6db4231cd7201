"""Shared KorQuAD helpers for the benchmarks: corpus files, the fixed question samples, metrics.

KorQuAD 1.0 is CC BY-ND: it is read as is; each paragraph is written to a scratch folder only
so that the benchmark goes through the same file ingest a user runs.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_DATA = (
    Path(__file__).resolve().parents[1]
    / ".."
    / "shared"
    / "data"
    / "korquad"
    / "KorQuAD_v1.0_dev.json"
)


@dataclass(frozen=True)
class Question:
    text: str
    gold: str  # paragraph id == file stem


def load_korquad(path: Path) -> tuple[dict[str, str], list[Question]]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    paragraphs: dict[str, str] = {}
    questions: list[Question] = []
    for ai, article in enumerate(data["data"]):
        for pi, para in enumerate(article["paragraphs"]):
            pid = f"a{ai:03d}p{pi:02d}"
            paragraphs[pid] = para["context"]
            questions.extend(Question(qa["question"], pid) for qa in para["qas"])
    return paragraphs, questions


def samples(questions: list[Question], n: int = 1000) -> tuple[list[Question], list[Question]]:
    """The fixed TEST sample (seed 13) and a disjoint DEV sample (seed 14) for tuning."""
    test = random.Random(13).sample(questions, n)
    chosen = {id(q) for q in test}
    rest = [q for q in questions if id(q) not in chosen]
    dev = random.Random(14).sample(rest, min(n, len(rest)))
    return test, dev


def write_corpus(paragraphs: dict[str, str], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for pid, text in paragraphs.items():
        path = folder / f"{pid}.txt"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


def metrics(rankings: list[list[str]], gold: list[str]) -> dict[str, float]:
    """R@1/5/10 and MRR@10 over document rankings (best first, no duplicates)."""
    ranks = []
    for ranking, g in zip(rankings, gold, strict=True):
        ranks.append(ranking.index(g) + 1 if g in ranking else 10**9)
    r = np.asarray(ranks)
    return {
        "R@1": float(np.mean(r <= 1)),
        "R@5": float(np.mean(r <= 5)),
        "R@10": float(np.mean(r <= 10)),
        "MRR@10": float(np.mean(np.where(r <= 10, 1.0 / r, 0.0))),
    }


def dedupe(sources: list[str], limit: int = 10) -> list[str]:
    out: list[str] = []
    for s in sources:
        if s not in out:
            out.append(s)
            if len(out) == limit:
                break
    return out
