"""The training state and the one checkpoint format (model + optimizer variables, loop state).

Backend-agnostic (numpy + safetensors, no pickle), so the TensorFlow and JAX runtimes share it. A checkpoint is
``ckpt-STEP.safetensors`` with ``ckpt-STEP.json`` beside it (the `TrainState`). Both are written to a temporary
name and renamed, the JSON last, so a checkpoint without its JSON is ignored. The best weights of a fine-tuning
run (`save_weights` / `load_weights`) use the same safetensors layout.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from albert_cli.errors import ModelError

_NAME = re.compile(r"^ckpt-(\d+)\.json$")
BEST_WEIGHTS = "best.safetensors"


@dataclass
class TrainState:
    """Where a run is; what a checkpoint stores besides the variables.

    Args:
        step: optimizer updates done.
        epoch: the epoch of the next batch (0-based).
        batch_in_epoch: batches of `epoch` already trained (skipped on resume).
        best: the best dev metric so far (fine-tuning), or None.
        best_step: the step that reached it.
        bad_evals: evaluations since the best one (early stopping).
        history: one dict of dev metrics per evaluation.
        totals: running totals across resumed runs (pretraining: ``tokens``, ``seconds``).
        stop_reason: why the loop was asked to stop early (not stored).
    """

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    history: list = field(default_factory=list)
    totals: dict = field(default_factory=dict)
    stop_reason: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "stop_reason"}

    @classmethod
    def from_dict(cls, data: dict) -> "TrainState":
        known = {f.name for f in fields(cls)} - {"stop_reason"}
        return cls(**{k: v for k, v in data.items() if k in known})


def _variables(model, optimizer) -> dict[str, object]:
    out = {f"model/{i:05d}": v for i, v in enumerate(model.weights)}
    if optimizer is not None:
        out.update({f"optimizer/{i:05d}": v for i, v in enumerate(optimizer.variables)})
    return out


def _write_tensors(path: Path, variables: dict) -> None:
    arrays = {k: np.ascontiguousarray(np.asarray(v)) for k, v in variables.items()}
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    try:
        save_file(arrays, str(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
    except Exception as exc:  # a full disk reaches us as safetensors' SafetensorError, not as OSError
        tmp.unlink(missing_ok=True)
        raise ModelError(f"{path}: cannot write the checkpoint ({' '.join(str(exc).split())[:200]})") from None
    os.replace(tmp, path)


def _assign(path: Path, arrays: dict, variables: dict) -> None:
    missing = sorted(set(variables) - set(arrays))
    extra = sorted(set(arrays) - set(variables))
    if missing or extra:
        raise ModelError(
            f"{path}: checkpoint does not match the model ({len(missing)} missing, {len(extra)} extra variables; "
            f"first: {(missing or extra)[0]}); was it written with other options?"
        )
    for key, var in variables.items():
        value = arrays[key]
        if value.shape == (1,) and tuple(var.shape) == ():  # safetensors stores scalars as [1]
            value = value.reshape(())
        if tuple(value.shape) != tuple(var.shape):
            raise ModelError(
                f"{path}: variable {key} ({getattr(var, 'path', '')}) has shape {value.shape}, "
                f"expected {tuple(var.shape)}"
            )
        var.assign(value)


def _read_tensors(path: Path) -> dict:
    try:
        return load_file(str(path))
    except Exception as exc:
        raise ModelError(f"{path}: corrupted checkpoint ({type(exc).__name__}: {exc})") from None


def save_checkpoint(directory: Path, model, optimizer, state: TrainState, keep: int = 2) -> Path:
    """Write checkpoint `state.step` into `directory`, keeping the newest `keep`; returns its JSON path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _write_tensors(directory / f"ckpt-{state.step}.safetensors", _variables(model, optimizer))
    meta = directory / f"ckpt-{state.step}.json"
    tmp = meta.with_name(meta.name + f".tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state.to_dict(), f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, meta)
    for old in list_checkpoints(directory)[:-keep] if keep > 0 else []:
        for path in (directory / f"ckpt-{old}.json", directory / f"ckpt-{old}.safetensors"):
            path.unlink(missing_ok=True)
    return meta


def list_checkpoints(directory: Path) -> list[int]:
    """The steps of the complete checkpoints in `directory`, oldest first."""
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


def restore_checkpoint(directory: Path, step: int, model, optimizer) -> TrainState:
    """Assign checkpoint `step` to the (already built) model and optimizer; returns its `TrainState`."""
    directory = Path(directory)
    tensors = directory / f"ckpt-{step}.safetensors"
    arrays = _read_tensors(tensors)
    try:
        state = json.loads((directory / f"ckpt-{step}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{tensors}: corrupted checkpoint ({type(exc).__name__}: {exc})") from None
    _assign(tensors, arrays, _variables(model, optimizer))
    return TrainState.from_dict(state)


def save_weights(path: Path, model) -> None:
    """The model's variables alone (the best weights of a fine-tuning run), in the checkpoint format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_tensors(path, _variables(model, None))


def load_weights(path: Path, model) -> None:
    """Assign what `save_weights` wrote."""
    _assign(Path(path), _read_tensors(Path(path)), _variables(model, None))
