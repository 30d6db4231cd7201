"""The recipe base: what every recipe shares, so a recipe file holds only its own steps.

A recipe is a :class:`Recipe` subclass naming its config schema and implementing ``train``; the
base loads the config (:func:`training.config.load_config`), sets up the run folder, writes
``run.json``, checks for a checkpoint to resume from, seeds, and gives the module its
``run(config, output_dir, overrides, resume)`` and ``main(argv)`` (``python -m training.NAME``).

A run folder (``--output-dir``) holds::

    run.json          config as run, package versions, command line, device
    metrics.jsonl     one JSON object per logged step: step, loss, eval_loss, lr, epoch, time
    checkpoints/      checkpoint-STEP/ folders a resumed run continues from
    adapter/          the final (or best) adapter, in the format its library loads directly
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import re
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from training.common import RecipeError, read_jsonl, seed_everything
from training.config import load_config

__all__ = [
    "MetricsWriter",
    "Recipe",
    "RunDir",
    "find_checkpoints",
    "latest_checkpoint",
    "package_versions",
]

ConfigT = TypeVar("ConfigT")

_PACKAGES = (
    "polisum",
    "torch",
    "transformers",
    "peft",
    "trl",
    "accelerate",
    "datasets",
    "diffusers",
    "safetensors",
    "tokenizers",
    "omegaconf",
)


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


class MetricsWriter:
    """Appends one JSON object per line to metrics.jsonl (append: a resumed run continues it)."""

    def __init__(self, path: Path, console: bool = True) -> None:
        self.path = path
        self.console = console

    def write(self, step: int, **values: Any) -> dict[str, Any]:
        record: dict[str, Any] = {"step": int(step)}
        record.update({k: _plain(v) for k, v in values.items() if v is not None})
        record["time"] = round(time.time(), 3)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        if self.console:
            shown = " ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                for k, v in record.items()
                if k != "time"
            )
            print(shown, file=sys.stderr, flush=True)
        return record

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [row for _, row in read_jsonl(self.path)]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def find_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of every ``checkpoint-STEP`` folder under ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    found = []
    for child in folder.iterdir():
        match = _CHECKPOINT.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(folder: Path) -> Path | None:
    found = find_checkpoints(folder)
    return found[-1][1] if found else None


class RunDir:
    """The output folder of one recipe run (see the module docstring for its layout)."""

    def __init__(self, path: str | os.PathLike[str], recipe: str) -> None:
        self.path = Path(path)
        self.recipe = recipe
        self.path.mkdir(parents=True, exist_ok=True)
        self.metrics = MetricsWriter(self.path / "metrics.jsonl")

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def adapter(self) -> Path:
        return self.path / "adapter"

    def check_resume(self, resume: bool) -> Path | None:
        """The checkpoint to continue from, or None; refuses to silently overwrite a started run."""
        latest = latest_checkpoint(self.checkpoints)
        if resume:
            if latest is None:
                raise RecipeError(f"{self.checkpoints}: --resume given but there is no checkpoint")
            return latest
        if latest is not None:
            raise RecipeError(
                f"{self.path} already holds checkpoints (latest {latest.name}); pass --resume to "
                "continue that run or choose another --output-dir"
            )
        return None

    def write_run_json(self, config: Mapping[str, Any], **extra: Any) -> None:
        import torch

        info: dict[str, Any] = {
            "recipe": self.recipe,
            "config": dict(config),
            "versions": package_versions(),
            "command": sys.argv,
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        info.update(extra)
        runs_file = self.path / "run.json"
        if runs_file.exists():
            # A resumed run keeps the history of how it was started.
            with contextlib.suppress(json.JSONDecodeError):
                info["previous"] = json.loads(runs_file.read_text())
        tmp = runs_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(info, ensure_ascii=False, indent=2, default=str) + "\n")
        tmp.replace(runs_file)


class Recipe(ABC, Generic[ConfigT]):
    """One training recipe: a config schema and the steps that train it into a run folder.

    Subclasses set :attr:`name` and :attr:`config_class` and implement :meth:`train`; a recipe
    with options beyond the config (kd's ``stages``) takes them as keyword arguments of
    ``__init__`` and declares them for the command line in :meth:`add_arguments`. A recipe
    module then exposes ``run = MyRecipe.run`` and ``main = MyRecipe.main``.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[Any]]

    def __init__(self, config: ConfigT, run_dir: RunDir, resume: bool = False) -> None:
        self.config = config
        self.run_dir = run_dir
        self.resume = resume

    @abstractmethod
    def train(self) -> Path:
        """Train into :attr:`run_dir`; returns what the run produced (the adapter folder)."""

    def begin(self, seed: int) -> Path | None:
        """Start training: every RNG seeded, and the checkpoint to continue from (None: a fresh
        start). Without ``resume`` a folder holding checkpoints is refused, not overwritten."""
        checkpoint = self.run_dir.check_resume(self.resume)
        seed_everything(seed)
        return checkpoint

    def run_info(self) -> dict[str, Any]:
        """Extra fields for run.json (the recipe's options)."""
        return {}

    @classmethod
    def run(
        cls,
        config: str | os.PathLike[str],
        output_dir: str | os.PathLike[str],
        overrides: list[str] | None = None,
        resume: bool = False,
        **options: Any,
    ) -> Path:
        """Load the YAML ``config`` (a path or a bundled name) with ``key=value`` overrides,
        write run.json into ``output_dir`` and train; the entry point of ``polisum train``."""
        cfg, plain = load_config(cls.config_class, config, overrides)
        recipe = cls(cfg, RunDir(output_dir, cls.name), resume, **options)
        recipe.run_dir.write_run_json(plain, resumed=resume, **recipe.run_info())
        return recipe.train()

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Command-line options of this recipe beyond the common ones; each ``dest`` is a
        keyword argument of ``__init__``."""

    @classmethod
    def main(cls, argv: list[str] | None = None) -> None:
        """``python -m training.NAME``: the same options as ``polisum train NAME``."""
        parser = argparse.ArgumentParser(prog=f"python -m training.{cls.name}")
        parser.add_argument("--config", required=True, help="YAML file, or a bundled config name")
        parser.add_argument("--output-dir", required=True, type=Path)
        parser.add_argument(
            "--resume", action="store_true", help="continue from the last checkpoint"
        )
        parser.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config value, e.g. --set training.lr=1e-4 (repeatable)",
        )
        cls.add_arguments(parser)
        options = vars(parser.parse_args(argv))
        common = {k: options.pop(k) for k in ("config", "output_dir", "overrides", "resume")}
        try:
            result = cls.run(**common, **options)
        except RecipeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from exc
        print(result)
