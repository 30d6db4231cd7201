"""What every recipe shares: YAML configs as dataclasses, the run folder, metrics, seeding, resume.

A run folder (``--output-dir``) holds::

    run.json          config as run, package versions, command line, device
    metrics.jsonl     one JSON object per logged step: step, loss, eval_loss, lr, epoch, time
    checkpoints/      checkpoint-STEP/ folders a resumed run continues from
    adapter/          the final (or best) adapter, in the format its library loads directly
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import platform
import random
import re
import sys
import time
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "CONFIG_DIR",
    "MetricsWriter",
    "RecipeError",
    "RunDir",
    "find_checkpoints",
    "latest_checkpoint",
    "load_config",
    "read_jsonl",
    "resolve_config_path",
    "seed_everything",
]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
T = TypeVar("T")


class RecipeError(RuntimeError):
    """A recipe cannot run: bad config, bad data, incompatible models. The message says which."""


# ---------------------------------------------------------------------------------------------
# Configs


def resolve_config_path(config: str | os.PathLike[str]) -> Path:
    """A config path, or the name of a bundled one (``exaone_1.2b_lora``, ``tiny/sft``)."""
    path = Path(config)
    if path.is_file():
        return path
    for candidate in (CONFIG_DIR / path, CONFIG_DIR / f"{path}.yaml"):
        if candidate.is_file():
            return candidate
    bundled = sorted(
        p.relative_to(CONFIG_DIR).with_suffix("").as_posix() for p in CONFIG_DIR.rglob("*.yaml")
    )
    raise RecipeError(
        f"config '{config}': no such file, nor a bundled config ({', '.join(bundled)})"
    )


def _set_dotted(data: dict[str, Any], dotted: str) -> None:
    import yaml

    key, sep, raw = dotted.partition("=")
    if not sep or not key:
        raise RecipeError(f"override '{dotted}': expected KEY=VALUE, e.g. training.lr=1e-4")
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise RecipeError(f"override '{dotted}': '{part}' is not a section")
    node[parts[-1]] = yaml.safe_load(raw)


def _expand(value: Any, config_dir: Path) -> Any:
    # `{config_dir}` lets a config point at files that travel with it (the tiny configs' data);
    # other relative paths stay relative to the working directory, as with any CLI tool.
    if isinstance(value, str):
        return value.replace("{config_dir}", str(config_dir))
    if isinstance(value, list):
        return [_expand(v, config_dir) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, config_dir) for k, v in value.items()}
    return value


def _build(cls: Any, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from plain YAML data, rejecting unknown keys (typos fail loudly)."""
    origin = typing.get_origin(cls)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(cls) if a is not type(None)]
        if data is None:
            return None
        return _build(args[0], data, where) if len(args) == 1 else data
    if dataclasses.is_dataclass(cls):
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise RecipeError(f"{where}: expected a section, got {data!r}")
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise RecipeError(
                f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})"
            )
        kwargs = {k: _build(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()}
        return cls(**kwargs)
    if origin in (list, tuple) and isinstance(data, list | tuple):
        (item,) = typing.get_args(cls)[:1] or (Any,)
        built = [_build(item, v, where) for v in data]
        return built if origin is list else tuple(built)
    if cls is float and isinstance(data, int | str):
        try:
            return float(data)  # YAML reads 2e-4 as a string
        except ValueError as exc:
            raise RecipeError(f"{where}: expected a number, got {data!r}") from exc
    return data


def load_config(
    cls: type[T], config: str | os.PathLike[str], overrides: list[str] | None = None
) -> tuple[T, dict[str, Any]]:
    """Read a YAML recipe config into dataclass ``cls``; ``overrides`` are ``a.b=value`` strings.

    Returns the dataclass and the plain dict it was built from (what run.json records).
    """
    import yaml

    path = resolve_config_path(config)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: expected a mapping at the top level")
    for item in overrides or []:
        _set_dotted(data, item)
    data = _expand(data, path.resolve().parent)
    try:
        return _build(cls, data, ""), data
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"{path}: {exc}") from exc


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-blank line; a bad line is an error naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: data file not found")
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RecipeError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
            if not isinstance(obj, dict):
                raise RecipeError(f"{path}:{lineno}: expected a JSON object")
            yield lineno, obj


# ---------------------------------------------------------------------------------------------
# Run folder


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
)


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return value


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
            try:
                previous = json.loads(runs_file.read_text())
                info["previous"] = previous
            except json.JSONDecodeError:
                pass
        runs_file.write_text(json.dumps(info, ensure_ascii=False, indent=2, default=str) + "\n")


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
