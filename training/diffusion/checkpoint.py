"""Training checkpoints as safetensors + JSON (no pickle): LoRA weights, optimizer state, the LR
scheduler's position and the RNG state, so a resumed run continues at the same step."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

__all__ = ["load_checkpoint", "save_checkpoint"]


def save_checkpoint(
    folder: Path, transformer: Any, optimizer: Any, scheduler: Any, step: int, extra: dict[str, Any]
) -> None:
    """Write ``folder`` whole or not at all (written aside, then renamed into place)."""
    import torch
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    lora = {
        k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(transformer).items()
    }
    save_file(lora, str(tmp / "lora.safetensors"))
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    save_file(rng, str(tmp / "rng.safetensors"))
    meta = {
        "step": step,
        "param_groups": state["param_groups"],
        "optimizer_scalars": scalars,
        "scheduler": scheduler.state_dict(),
        **extra,
    }
    (tmp / "state.json").write_text(json.dumps(meta, indent=2, default=_jsonable) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def _jsonable(value: Any) -> Any:
    if callable(value):
        return None  # LambdaLR keeps lambdas; they are rebuilt from the config
    return str(value)


def load_checkpoint(folder: Path, transformer: Any, optimizer: Any, scheduler: Any) -> int:
    """Restore what :func:`save_checkpoint` wrote; returns the step it was taken at."""
    import torch
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    meta = json.loads((folder / "state.json").read_text())
    set_peft_model_state_dict(transformer, load_file(str(folder / "lora.safetensors")))
    tensors = load_file(str(folder / "optimizer.safetensors"))
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for name, value in meta["optimizer_scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    sched = dict(meta["scheduler"])
    sched.pop("lr_lambdas", None)
    scheduler.load_state_dict({**scheduler.state_dict(), **sched})
    rng = load_file(str(folder / "rng.safetensors"))
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    return int(meta["step"])
