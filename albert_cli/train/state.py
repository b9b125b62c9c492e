"""Training checkpoints: model and optimizer variables plus loop state.

Backend-agnostic (numpy + safetensors, no pickle), so the same checkpoints work
for the TensorFlow and the JAX paths. Each checkpoint is ``ckpt-STEP.safetensors``
with a ``ckpt-STEP.json`` beside it holding the loop state (step, epoch, RNG
seeds, best metric, ...). Both are written to a temporary name and renamed, and
the JSON is written last, so a checkpoint without its JSON is ignored.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from albert_cli.errors import ModelError

_NAME = re.compile(r"^ckpt-(\d+)\.json$")


def _variables(model, optimizer) -> dict[str, object]:
    out = {}
    for i, v in enumerate(model.weights):
        out[f"model/{i:05d}"] = v
    if optimizer is not None:
        for i, v in enumerate(optimizer.variables):
            out[f"optimizer/{i:05d}"] = v
    return out


def save_checkpoint(directory: Path, step: int, model, optimizer, state: dict, keep: int = 2) -> Path:
    from safetensors.numpy import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.ascontiguousarray(np.asarray(v)) for k, v in _variables(model, optimizer).items()}
    tensors = directory / f"ckpt-{step}.safetensors"
    tmp = tensors.with_name(tensors.name + f".tmp-{os.getpid()}")
    save_file(arrays, str(tmp))
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, tensors)
    meta = directory / f"ckpt-{step}.json"
    tmp = meta.with_name(meta.name + f".tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"step": step, **state}, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, meta)
    for old in list_checkpoints(directory)[:-keep] if keep > 0 else []:
        for path in (directory / f"ckpt-{old}.json", directory / f"ckpt-{old}.safetensors"):
            path.unlink(missing_ok=True)
    return meta


def list_checkpoints(directory: Path) -> list[int]:
    directory = Path(directory)
    if not directory.is_dir():
        return []
    steps = []
    for p in directory.iterdir():
        m = _NAME.match(p.name)
        if m and (directory / f"ckpt-{m.group(1)}.safetensors").is_file():
            steps.append(int(m.group(1)))
    return sorted(steps)


def latest_checkpoint(directory: Path) -> int | None:
    steps = list_checkpoints(directory)
    return steps[-1] if steps else None


def restore_checkpoint(directory: Path, step: int, model, optimizer) -> dict:
    """Assign saved values to the (already built) model and optimizer; return the loop state."""
    from safetensors.numpy import load_file

    directory = Path(directory)
    tensors = directory / f"ckpt-{step}.safetensors"
    try:
        arrays = load_file(str(tensors))
        state = json.loads((directory / f"ckpt-{step}.json").read_text(encoding="utf-8"))
    except Exception as exc:
        raise ModelError(f"{tensors}: corrupted checkpoint ({type(exc).__name__}: {exc})") from None
    variables = _variables(model, optimizer)
    missing = sorted(set(variables) - set(arrays))
    extra = sorted(set(arrays) - set(variables))
    if missing or extra:
        raise ModelError(
            f"{tensors}: checkpoint does not match the model ({len(missing)} missing, {len(extra)} extra variables; "
            f"first: {(missing or extra)[0]}); was it written with other options?"
        )
    for key, var in variables.items():
        value = arrays[key]
        if value.shape == (1,) and tuple(var.shape) == ():  # safetensors stores scalars as [1]
            value = value.reshape(())
        if tuple(value.shape) != tuple(var.shape):
            raise ModelError(f"{tensors}: variable {key} ({getattr(var, 'path', '')}) has shape {value.shape}, expected {tuple(var.shape)}")
        var.assign(value)
    return state
