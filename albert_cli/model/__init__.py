"""ALBERT model core: config, backbone and task heads (Keras 3, backend-agnostic).

Nothing in this package imports TensorFlow directly; it runs on any Keras
backend. Checkpoint conversion lives in `albert_cli.weights`.
"""

from albert_cli.model.backbone import AlbertBackbone, AlbertTransformerBlock, PositionEmbedding
from albert_cli.model.config import PRESETS, AlbertConfig
from albert_cli.model.heads import (
    TASKS,
    AlbertClassifier,
    AlbertMaskedLMHead,
    AlbertPretrainer,
    AlbertSOPHead,
    logits_to_probabilities,
)

__all__ = [
    "PRESETS",
    "TASKS",
    "AlbertBackbone",
    "AlbertClassifier",
    "AlbertConfig",
    "AlbertMaskedLMHead",
    "AlbertPretrainer",
    "AlbertSOPHead",
    "AlbertTransformerBlock",
    "PositionEmbedding",
    "logits_to_probabilities",
]
