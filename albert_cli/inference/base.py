"""What every predictor shares: length-grouped batching and the serving post-processing rules.

:func:`serving_outputs` is the reference for the outputs of a model directory: the SavedModel computes the
same in its graph (``albert_cli.artifacts.savedmodel``; tests check the two agree), the TFLite predictor
applies it to its one raw output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from albert_cli.artifacts.modeldir import ModelMeta, open_model_dir
from albert_cli.errors import UsageError
from albert_cli.text.preprocessor import run_length_grouped

Outputs = dict[str, np.ndarray]


def check_batch_size(batch_size: int) -> int:
    """`batch_size`, or a one-line `UsageError` if it is not positive."""
    if batch_size < 1:
        raise UsageError(f"--batch-size must be positive, got {batch_size}")
    return int(batch_size)


def sequence_length(meta: ModelMeta) -> int:
    """The longest packed input (tokens, with [CLS]/[SEP]) of a model directory: its ``max_seq_length``."""
    return int(meta.max_seq_length)


def output_key(meta: ModelMeta) -> str:
    """The model's one raw output: ``value`` (regression) or ``probabilities``."""
    return "value" if meta.task == "regression" else "probabilities"


def text_lengths(texts: Sequence[str], pairs: Sequence[str] | None) -> list[int]:
    """The batching key of every predictor: characters of the text (plus its pair).

    Characters, not tokens: the SavedModel's batches (whose float roundoff depends on their padded shape) stay
    as they were, and the TFLite interpreter's outputs do not depend on batch composition at all.
    """
    return [len(t) + (len(pairs[i]) if pairs else 0) for i, t in enumerate(texts)]


def _label_names(names: list[bytes]) -> np.ndarray:
    out = np.empty(len(names), dtype=object)
    out[:] = names
    return out


def serving_outputs(meta: ModelMeta, raw) -> Outputs:
    """The ``serving_default`` outputs from the model's raw output (probabilities, or values for regression).

    * single_label: ``label`` (bytes, the most probable), ``score`` (its probability), ``probabilities``;
    * multi_label: ``predicted`` (0/1, probability >= the label's tuned threshold, 0.5 without), ``label``
      (the predicted labels joined with ``|``), ``score`` (the highest probability), ``probabilities``;
    * regression: ``value``.

    Args:
        meta: the model directory's metadata (task, labels, thresholds).
        raw: float array ``[batch, num_labels]`` (``[batch]`` or ``[batch, 1]`` for regression).
    """
    raw = np.asarray(raw, np.float32)
    if meta.task == "regression":
        return {"value": raw.reshape(-1)}
    labels = list(meta.labels)
    probs = raw
    if meta.task == "single_label":
        names = _label_names([labels[j].encode("utf-8") for j in probs.argmax(-1)])
        return {"label": names, "score": probs.max(-1), "probabilities": probs}
    thresholds = np.asarray(meta.thresholds or [0.5], np.float32)
    predicted = (probs >= thresholds[None, :]).astype(np.int32)
    names = _label_names(["|".join(l for l, p in zip(labels, row) if p and l).encode("utf-8") for row in predicted])
    return {"label": names, "score": probs.max(-1), "probabilities": probs, "predicted": predicted}


class BasePredictor:
    """A model directory's predictor: ``predict(texts, pairs)`` -> the ``serving_default`` outputs.

    Subclasses implement ``_run_batch(texts, pairs)`` for one batch; this class checks the inputs, groups the
    texts into batches of similar length and restores the input order.

    Args:
        model_dir: a model directory (`albert_cli.artifacts.modeldir.open_model_dir` accepts it).
        batch_size: texts per batch.
    """

    def __init__(self, model_dir, batch_size: int = 32):
        self.batch_size = check_batch_size(batch_size)
        self.path: Path
        self.meta: ModelMeta
        self.path, self.meta = open_model_dir(model_dir)

    @property
    def task(self) -> str:
        return self.meta.task

    @property
    def sequence_length(self) -> int:
        return sequence_length(self.meta)

    def _run_batch(self, texts: list[str], pairs: list[str] | None) -> Outputs:
        raise NotImplementedError

    def _before_first_batch(self) -> None:
        """Hook run once, right before the first batch."""

    def predict(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> Outputs:
        """Outputs for every text, in input order (batches grouped by length).

        Example:
            >>> out = make_predictor("news-model").predict(["Stocks fell", "A late goal"])  # doctest: +SKIP
            >>> out["label"], out["score"]  # doctest: +SKIP
        """
        if self.meta.pair and pairs is None:
            raise UsageError(f"{self.path}: this model classifies text pairs; set --text-pair-column")
        if len(texts) == 0:
            return {}
        if not getattr(self, "_started", False):
            self._before_first_batch()
            self._started = True
        pairs = pairs if self.meta.pair else None
        return run_length_grouped(
            text_lengths(texts, pairs), self.batch_size,
            lambda idx: self._run_batch([texts[i] for i in idx], [pairs[i] for i in idx] if pairs else None),
        )
