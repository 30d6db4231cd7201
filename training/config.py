"""Recipe configs: a dataclass schema per recipe, filled from YAML by OmegaConf.

A recipe's config is its schema (dataclasses with defaults) merged with a YAML file and then with
``key=value`` overrides (``--set training.lr=1e-4``), in that order. OmegaConf checks every value
against the schema's type hints as it merges:

* a key the schema does not have is an error naming it (typos fail loudly);
* a value is converted to the declared type when it reads as one, otherwise it is an error naming
  the key: ``epochs: "5"`` becomes ``5.0`` and ``max_steps: "3"`` becomes ``3``, while
  ``epochs: five`` or ``max_steps: 3.5`` are refused; ``true``/``yes``/``on`` are booleans;
* a field whose default is ``MISSING`` must be set (``data.train``, ``model.name_or_path``);
* ``${a.b}`` is the value of another key, ``${oc.env:VAR}`` an environment variable and
  ``${config_dir:}`` the folder of the YAML file (for data that travels with its config; other
  relative paths stay relative to the working directory, as with any CLI tool).

Value checks that types cannot express (a choice among names, a range) live in a section's
``check()`` method, which raises :class:`ConfigValueError` naming the key within the section;
:func:`load_config` calls every section's ``check()`` and prefixes the section's path. Every
failure reaches the caller as a :class:`~training.common.RecipeError` naming the file (or the
override) and the key.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

import omegaconf
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from training.common import RecipeError

__all__ = [
    "CONFIG_DIR",
    "MISSING",
    "ConfigValueError",
    "check_choice",
    "check_positive",
    "load_config",
    "resolve_config_path",
]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
T = TypeVar("T")

# The folder of the config being loaded, for ${config_dir:}. OmegaConf resolvers are global, so
# the value they read is per load (and per thread) rather than per registration.
_loading_dir: ContextVar[Path | None] = ContextVar("polisum_config_dir", default=None)


def _config_dir() -> str:
    folder = _loading_dir.get()
    if folder is None:
        raise ValueError("${config_dir:} resolves only while a config file is loaded")
    return str(folder)


# OmegaConf 2.4 deprecates register_new_resolver for register_resolver, which in 2.3 (what
# hydra-core 1.3 pins) is the legacy API with other semantics: choose by version.
_VERSION = tuple(int(part) for part in omegaconf.__version__.split(".")[:2])
_register = OmegaConf.register_resolver if _VERSION >= (2, 4) else OmegaConf.register_new_resolver
if not OmegaConf.has_resolver("config_dir"):
    _register("config_dir", _config_dir)


class ConfigValueError(ValueError):
    """A value its type allows but the recipe cannot use; ``key`` is relative to its section."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


def check_choice(section: object, key: str, choices: Iterable[str]) -> None:
    """For a section's ``check()``: its ``key`` is one of ``choices``."""
    choices = tuple(choices)
    value = getattr(section, key)
    if value not in choices:
        raise ConfigValueError(key, f"'{value}' is not one of {', '.join(choices)}")


def check_positive(section: object, *keys: str) -> None:
    """For a section's ``check()``: each of its ``keys`` is at least 1 (or None, if typed so)."""
    for key in keys:
        value = getattr(section, key)
        if value is not None and value < 1:
            raise ConfigValueError(key, f"{value} must be at least 1")


def _check_sections(node: Any, prefix: str = "") -> None:
    """Call ``check()`` on every section, innermost first; errors get the section's path."""
    if not dataclasses.is_dataclass(node):
        return
    for f in dataclasses.fields(node):
        _check_sections(getattr(node, f.name), f"{prefix}{f.name}.")
    check = getattr(node, "check", None)
    if callable(check):
        try:
            check()
        except ConfigValueError as exc:
            raise ConfigValueError(prefix + exc.key, exc.reason) from None


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


def load_config(
    cls: type[T], config: str | os.PathLike[str], overrides: list[str] | None = None
) -> tuple[T, dict[str, Any]]:
    """Read YAML ``config`` into the dataclass ``cls``; ``overrides`` are ``a.b=value`` strings.

    Returns the dataclass and the same config as a plain dict, every default and interpolation
    filled in (what run.json records).
    """
    import yaml

    path = resolve_config_path(config)
    schema = OmegaConf.structured(cls)
    try:
        data = OmegaConf.load(path)
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, DictConfig):
        raise RecipeError(f"{path}: expected a mapping at the top level")
    merged = _merge(schema, data, schema, str(path))
    for item in overrides or []:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"override '{item}': expected KEY=VALUE, e.g. training.lr=1e-4")
        try:
            dotlist = OmegaConf.from_dotlist([item])
        except OmegaConfBaseException as exc:
            raise RecipeError(f"override '{item}': {_describe(exc, schema)}") from exc
        merged = _merge(merged, dotlist, schema, f"override '{item}'")
    # Interpolations resolve and values are checked on the merged config: name both sources.
    where = f"{path} with {' '.join(overrides)}" if overrides else str(path)
    token = _loading_dir.set(path.resolve().parent)
    try:
        built = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        raise RecipeError(f"{where}: {_describe(exc, schema)}") from exc
    finally:
        _loading_dir.reset(token)
    try:
        _check_sections(built)
    except ConfigValueError as exc:
        raise RecipeError(f"{where}: {exc}") from exc
    assert isinstance(built, cls)
    return built, dataclasses.asdict(built)  # type: ignore[call-overload]


def _merge(base: Any, update: Any, schema: DictConfig, where: str) -> Any:
    try:
        return OmegaConf.merge(base, update)
    except OmegaConfBaseException as exc:
        raise RecipeError(f"{where}: {_describe(exc, schema)}") from exc


def _describe(exc: OmegaConfBaseException, schema: DictConfig) -> str:
    """OmegaConf's message without its debugging lines, led by the key it is about."""
    key = getattr(exc, "full_key", None) or ""
    message = str(exc).split("\n", 1)[0]  # then come full_key, object_type, ... lines
    if isinstance(exc, ConfigKeyError) and key:
        parent = key.rpartition(".")[0]
        section = OmegaConf.select(schema, parent) if parent else schema
        known = ", ".join(section) if isinstance(section, DictConfig) else ""
        where = f"'{parent}'" if parent else "the top level"
        return f"unknown key '{key}'" + (f" (known in {where}: {known})" if known else "")
    return f"{key}: {message}" if key else message
