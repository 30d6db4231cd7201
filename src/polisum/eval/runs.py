"""A saved evaluation run: ``run.json`` (settings, fingerprint, summary metrics, provenance) and
``items.jsonl`` (per-item scores), both plain JSON so any tool can read them back.

Runs are comparable only when their metric settings are identical (same fingerprint): a
ROUGE computed with another tokenizer or a BERTScore from another layer is a different number,
and putting it in the same table would be misleading. ``check_comparable`` refuses such sets and
names the settings that differ.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polisum.errors import PolisumError
from polisum.eval.stats import MetricSummary
from polisum.jsonl import JsonlError, read_jsonl

__all__ = ["EvalRun", "RunError", "SettingsMismatchError", "check_comparable"]

RUN_FILE = "run.json"
ITEMS_FILE = "items.jsonl"
FORMAT_VERSION = 1


class RunError(PolisumError, RuntimeError):
    """A run folder is missing or malformed; the message names the folder and the reason."""


class SettingsMismatchError(RunError):
    """Runs made with different metric settings cannot be compared."""


@dataclass
class EvalRun:
    kind: str  # "text" or "answers"
    name: str
    settings: dict[str, Any]
    fingerprint: str
    metrics: dict[str, MetricSummary]
    items: list[dict[str, Any]]
    info: dict[str, Any] = field(default_factory=dict)  # n, empty predictions, inputs, versions
    path: Path | None = None

    def save(self, folder: Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        head = {
            "format": FORMAT_VERSION,
            "kind": self.kind,
            "name": self.name,
            "fingerprint": self.fingerprint,
            "settings": self.settings,
            "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
            "info": self.info,
        }
        _write_atomic(folder / RUN_FILE, json.dumps(head, ensure_ascii=False, indent=2) + "\n")
        lines = "".join(json.dumps(it, ensure_ascii=False) + "\n" for it in self.items)
        _write_atomic(folder / ITEMS_FILE, lines)
        self.path = folder
        return folder

    @classmethod
    def load(cls, folder: Path) -> EvalRun:
        folder = Path(folder)
        head_path = folder / RUN_FILE
        if not head_path.is_file():
            raise RunError(f"{folder}: not an eval run (no {RUN_FILE}; make one with --out)")
        try:
            head = json.loads(head_path.read_text(encoding="utf-8"))
            metrics = {k: MetricSummary(**v) for k, v in head["metrics"].items()}
            items_path = folder / ITEMS_FILE
            items = (
                [row for _, row in read_jsonl(items_path, allow_empty=True)]
                if items_path.is_file()
                else []
            )
            return cls(
                kind=head["kind"],
                name=head.get("name") or folder.name,
                settings=head["settings"],
                fingerprint=head["fingerprint"],
                metrics=metrics,
                items=items,
                info=head.get("info", {}),
                path=folder,
            )
        except (json.JSONDecodeError, JsonlError, KeyError, TypeError) as exc:
            raise RunError(f"{head_path}: malformed run file ({exc})") from exc


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def check_comparable(runs: Sequence[EvalRun]) -> None:
    """Raise ``SettingsMismatchError`` unless every run has the kind and metric settings of the
    first; the message lists each differing setting with both values."""
    if not runs:
        raise RunError("no runs given")
    first = runs[0]
    problems: list[str] = []
    for run in runs[1:]:
        if run.kind != first.kind:
            problems.append(f"{run.name}: kind {run.kind!r} vs {first.name}: {first.kind!r}")
            continue
        if run.fingerprint == first.fingerprint:
            continue
        before = len(problems)
        a, b = _flatten(first.settings), _flatten(run.settings)
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                problems.append(
                    f"{key}: {a.get(key, '(unset)')!r} in {first.name} "
                    f"vs {b.get(key, '(unset)')!r} in {run.name}"
                )
        if len(problems) == before:  # same settings but another fingerprint: edited by hand?
            problems.append(f"{run.name}: fingerprint {run.fingerprint} vs {first.fingerprint}")
    if problems:
        raise SettingsMismatchError(
            "runs were made with different metric settings and cannot be compared:\n  "
            + "\n  ".join(problems)
        )


def provenance(**extra: Any) -> dict[str, Any]:
    """When and with which polisum a run was made, plus caller-supplied inputs."""
    from polisum import __version__

    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "polisum": __version__,
        **extra,
    }
