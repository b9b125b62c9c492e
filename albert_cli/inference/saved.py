"""The SavedModel predictor: raw strings into the model directory's ``serving_default`` signature."""

from __future__ import annotations

import numpy as np

from albert_cli._tf import apply_inference_precision, import_tf, inference_precision
from albert_cli.artifacts.modeldir import load_saved_model
from albert_cli.errors import ModelError
from albert_cli.inference.base import BasePredictor, Outputs


class SavedModelPredictor(BasePredictor):
    """Loads the SavedModel once and runs its ``serving_default`` signature (tokenization is in the graph).

    Args:
        model_dir: a model directory written by ``albert finetune``.
        batch_size: texts per batch.

    Example:
        >>> p = SavedModelPredictor("news-model")  # doctest: +SKIP
        >>> p.predict(["Stocks fell sharply"])["label"]  # doctest: +SKIP
        array([b'money'], dtype=object)
    """

    def __init__(self, model_dir, batch_size: int = 32):
        super().__init__(model_dir, batch_size)
        self.tf = import_tf()
        loaded = load_saved_model(self.path)
        try:
            self.fn = loaded.signatures["serving_default"]
        except KeyError:
            raise ModelError(f"{self.path}: the SavedModel has no serving_default signature") from None
        self._loaded = loaded  # keep the resources alive

    def _before_first_batch(self) -> None:
        # $ALBERT_PRECISION=bf16|auto: bfloat16 matmuls (set before the signature's first run).
        apply_inference_precision(inference_precision())

    def _run_batch(self, texts: list[str], pairs: list[str] | None) -> Outputs:
        tf = self.tf
        kwargs = {"text": tf.constant(texts, tf.string)}
        if self.meta.pair:
            kwargs["text_pair"] = tf.constant(pairs, tf.string)
        return {k: np.asarray(v.numpy()) for k, v in self.fn(**kwargs).items()}
