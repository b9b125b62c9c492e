"""Find, read and apply pretrained ALBERT weights, whatever their format.

Formats: "google" (TF1 checkpoint + `albert_config.json`), "hf"
(`config.json` + `model.safetensors`) and "albert_cli" (a model directory
whose `assets/` is an HF directory plus `spiece.model` and `albert_cli.json`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from albert_cli.artifacts.modeldir import ASSETS, recover
from albert_cli.errors import ModelError
from albert_cli.text.constants import HF_TOKENIZER_CONFIG, SPIECE_MODEL, VOCAB_TXT
from albert_cli.weights.common import LoadedWeights, find_tokenizer, head_of
from albert_cli.weights.google import CHECKPOINT_PREFIX, load_google_dir
from albert_cli.weights.google import CONFIG_FILE as GOOGLE_CONFIG
from albert_cli.weights.hf import CONFIG_FILE as HF_CONFIG
from albert_cli.weights.hf import WEIGHTS_FILE, load_hf_dir

_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_HUB_FILES = [HF_CONFIG, WEIGHTS_FILE, SPIECE_MODEL, HF_TOKENIZER_CONFIG, VOCAB_TXT]


def detect_format(path: str | Path) -> str:
    """"google", "hf" or "albert_cli" for a model directory; ModelError otherwise."""
    path = Path(path)
    recover(path)  # a model set aside by a save that crashed
    if not path.exists():
        raise ModelError(f"{path}: model directory does not exist")
    if not path.is_dir():
        raise ModelError(f"{path}: is a file, expected a model directory")
    assets = path / ASSETS
    if (assets / HF_CONFIG).is_file() and (assets / WEIGHTS_FILE).is_file():
        return "albert_cli"
    if (path / HF_CONFIG).is_file() and (
        (path / WEIGHTS_FILE).is_file() or (path / "pytorch_model.bin").is_file()
    ):
        return "hf"
    if (path / GOOGLE_CONFIG).is_file() and (
        any(path.glob(f"{CHECKPOINT_PREFIX}*.index")) or (path / "checkpoint").is_file()
    ):
        return "google"
    if not any(path.iterdir()):
        raise ModelError(f"{path}: model directory is empty")
    raise ModelError(
        f"{path}: not a recognised ALBERT model directory (expected albert_config.json + model.ckpt, "
        f"config.json + model.safetensors, or an albert-cli model with assets/)"
    )


def _download(name: str) -> Path:
    """Fetch an HF hub model `name` with huggingface_hub, or raise a one-line ModelError."""
    hint = "download it and pass a local directory"
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ModelError(f"{name}: not a local directory and huggingface_hub is not installed; {hint}") from None
    try:
        return Path(snapshot_download(repo_id=name, allow_patterns=_HUB_FILES))
    except Exception as exc:  # network, auth, missing repo: all end the same way for the user
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"{name}: not a local directory and the download failed ({first_line}); {hint}") from None


def load_pretrained(path: str | Path) -> LoadedWeights:
    """Read any supported checkpoint into canonical numpy weights + config + tokenizer info.

    A string that is not an existing path but looks like a hub id
    (e.g. `albert-base-v2`, `albert/albert-base-v2`) is downloaded when
    huggingface_hub is available.
    """
    path_str = str(path)
    path = Path(path)
    if not path.exists() and _HUB_NAME.match(path_str) and not path_str.startswith("."):
        path = _download(path_str)
    kind = detect_format(path)
    if kind == "google":
        return load_google_dir(path)
    if kind == "albert_cli":
        loaded = load_hf_dir(path / ASSETS, format_name="albert_cli")
        loaded.tokenizer = find_tokenizer(path / ASSETS, path)
        return loaded
    return load_hf_dir(path)


def build_backbone(loaded: LoadedWeights, dtype=None):
    """A new `AlbertBackbone` for `loaded.config` with the loaded backbone weights."""
    from albert_cli.model.backbone import AlbertBackbone  # imports Keras: only when a model is built

    backbone = AlbertBackbone(loaded.config, dtype=dtype)
    apply_to(backbone, loaded, heads=())
    return backbone


def apply_to(model, loaded: LoadedWeights, heads=None) -> None:
    """Copy `loaded` weights into `model` (backbone, classifier or pretrainer).

    Backbone weights are always required. `heads` names the head groups
    ("mlm", "sop", "classifier") to take from `loaded`; by default every head
    present in both. Heads not taken keep their initial values. Any missing,
    unexpected or mis-shaped variable raises ModelError naming it; nothing is
    assigned unless all checks pass.
    """
    variables = {v.path: v for v in model.weights}
    model_heads = {head_of(name) for name in variables} - {"backbone"}
    heads = (model_heads & loaded.heads) if heads is None else set(heads)
    absent = sorted(heads - model_heads)
    if absent:
        raise ModelError(f"model has no {absent[0]} head to load weights into")
    wanted = {"backbone"} | heads

    where = f"{loaded.path}:"
    for name in variables:
        if head_of(name) in wanted and name not in loaded.weights:
            raise ModelError(f"{where} weight {loaded.describe(name)} is missing from the checkpoint")
    for name in loaded.weights:
        if head_of(name) in wanted and name not in variables:
            raise ModelError(f"{where} checkpoint weight {loaded.describe(name)} has no matching model variable")
    for name, variable in variables.items():
        if head_of(name) in wanted:
            shape = tuple(np.shape(loaded.weights[name]))
            if shape != tuple(variable.shape):
                raise ModelError(
                    f"{where} weight {loaded.describe(name)} has shape {shape}, "
                    f"the model expects {tuple(variable.shape)}"
                )
    for name, variable in variables.items():
        if head_of(name) in wanted:
            variable.assign(np.asarray(loaded.weights[name], dtype=variable.dtype))
