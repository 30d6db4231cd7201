"""``polisum train sft|kd|sd35|merge``: the recipes in the repository's ``training/`` package.

The recipes need the ``train`` extra (``pip install -e ".[train]"``); they are imported only when
a command runs, so the rest of the CLI works without it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from polisum.commands._common import fail

train_app = typer.Typer(help="Training recipes: sft, kd, sd35, merge.", no_args_is_help=True)

ConfigOpt = Annotated[
    str,
    typer.Option(
        "--config", "-c", help="YAML config file, or a bundled name (exaone_1.2b_lora, tiny/sft)."
    ),
]
OutputOpt = Annotated[
    Path, typer.Option("--output-dir", "-o", help="Where the adapter, checkpoints and logs go.")
]
ResumeOpt = Annotated[
    bool, typer.Option("--resume", help="Continue from the last checkpoint in --output-dir.")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config value: --set training.lr=1e-4 (repeatable)."),
]


def _recipe(name: str) -> Any:
    import importlib

    try:
        importlib.import_module("training")
    except ModuleNotFoundError as exc:
        if exc.name != "training":
            raise
        # A checkout whose install predates training/ being packaged: use the one here.
        if not (Path.cwd() / "training" / "__init__.py").is_file():
            fail(
                "the training recipes are not installed: reinstall polisum from its repository "
                "with `pip install -e '.[train]'`, or run from the repository root"
            )
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(f"training.{name}")
    except ModuleNotFoundError as exc:
        fail(f"the {name} recipe needs '{exc.name}': pip install 'polisum[train]'")


def _run(name: str, **kwargs: Any) -> Path:
    module = _recipe(name)
    from training.common import RecipeError

    try:
        return module.run(**kwargs)
    except RecipeError as exc:
        fail(str(exc))
    except ModuleNotFoundError as exc:  # the recipes import their libraries when they run
        fail(f"the {name} recipe needs '{exc.name}': pip install 'polisum[train]'")
    raise AssertionError("unreachable: fail exits")


def _done(result: Path, as_json: bool, **extra: Any) -> None:
    if as_json:
        sys.stdout.write(json.dumps({"output": str(result), **extra}) + "\n")
    else:
        typer.echo(str(result))


@train_app.command("sft")
def sft(
    config: ConfigOpt,
    output_dir: OutputOpt,
    resume: ResumeOpt = False,
    overrides: SetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """LoRA SFT of a chat model (TRL SFTTrainer); writes OUTPUT/adapter."""
    result = _run("sft", config=config, output_dir=output_dir, overrides=overrides, resume=resume)
    _done(result, as_json, recipe="sft")


@train_app.command("kd")
def kd(
    config: ConfigOpt,
    output_dir: OutputOpt,
    resume: ResumeOpt = False,
    overrides: SetOpt = None,
    stage: Annotated[
        list[str] | None,
        typer.Option(help="Run only these stages: teacher, dump, student (repeatable)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Teacher LoRA SFT → top-k logit dump → student distillation; writes OUTPUT/student/adapter."""
    result = _run(
        "kd",
        config=config,
        output_dir=output_dir,
        overrides=overrides,
        resume=resume,
        stages=stage,
    )
    _done(result, as_json, recipe="kd")


@train_app.command("sd35")
def sd35(
    config: ConfigOpt,
    output_dir: OutputOpt,
    resume: ResumeOpt = False,
    overrides: SetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """LoRA fine-tune of Stable Diffusion 3.5 (flow matching); writes OUTPUT/adapter."""
    result = _run("sd35", config=config, output_dir=output_dir, overrides=overrides, resume=resume)
    _done(result, as_json, recipe="sd35")


@train_app.command("merge")
def merge(
    adapter: Annotated[Path, typer.Option("--adapter", help="A PEFT LoRA adapter folder.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the merged model.")],
    base: Annotated[
        str | None,
        typer.Option(help="Base model (default: the one recorded in the adapter)."),
    ] = None,
    dtype: Annotated[str, typer.Option(help="Weights dtype: auto, float32, bfloat16.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Merge a LoRA adapter into its base model, for serving or export (e.g. to GGUF)."""
    module = _recipe("merge")
    from training.common import RecipeError

    try:
        result = module.merge(adapter, out, base=base, dtype=dtype)
    except RecipeError as exc:
        fail(str(exc))
    except ModuleNotFoundError as exc:
        fail(f"merging needs '{exc.name}': pip install 'polisum[train]'")
    _done(result, as_json, recipe="merge")
