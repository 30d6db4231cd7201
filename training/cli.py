"""``python -m training.<recipe>`` entry points (the same options as ``polisum train``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.common import RecipeError


def recipe_main(name: str, run: Callable[..., Any], argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m training.{name}")
    parser.add_argument("--config", required=True, help="YAML file, or a bundled config name")
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set training.lr=1e-4 (repeatable)",
    )
    extra: dict[str, Any] = {}
    if name == "kd":
        parser.add_argument("--stage", choices=["teacher", "dump", "student"], action="append")
    args = parser.parse_args(argv)
    if name == "kd":
        extra["stages"] = args.stage
    try:
        result = run(args.config, args.output_dir, args.overrides, resume=args.resume, **extra)
    except RecipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    print(result)
