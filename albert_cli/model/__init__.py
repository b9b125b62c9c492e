"""ALBERT model core: config, backbone and task heads (Keras 3, backend-agnostic).

Nothing in this package imports TensorFlow directly; it runs on any Keras
backend. Checkpoint conversion lives in `albert_cli.weights`.
"""

from albert_cli.model.config import PRESETS, AlbertConfig
from albert_cli.model.kinds import POOLINGS, TASKS

# Keras-dependent names load on first use, so that reading a config (or
# reporting a bad model directory) does not import Keras and its backend.
_LAZY = {
    "AlbertBackbone": "albert_cli.model.backbone",
    "AlbertTransformerBlock": "albert_cli.model.backbone",
    "PositionEmbedding": "albert_cli.model.backbone",
    "AlbertClassifier": "albert_cli.model.heads",
    "AlbertMaskedLMHead": "albert_cli.model.heads",
    "AlbertPretrainer": "albert_cli.model.heads",
    "AlbertSOPHead": "albert_cli.model.heads",
    "logits_to_probabilities": "albert_cli.model.heads",
}

__all__ = ["POOLINGS", "PRESETS", "TASKS", "AlbertConfig", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'albert_cli.model' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
