"""Whole documents: a text's windows (``albert_cli.text.windows``) encoded one by one and pooled into one vector.

A windowed classifier takes ``token_ids`` / ``segment_ids`` / ``padding_mask`` of shape ``[B, W, L]``: document
``b`` holds its windows in rows ``[b, :n_b]`` and empty windows (padding_mask all 0) after them. The encoder sees
``[B * W, L]`` (`FlattenWindows`); `WindowPooling` takes each window's vector back to its document and pools the
real windows (mean or max). The bag of n-grams counts each piece of the document once: `novel_pieces` marks, in
every window, the pieces that no earlier window read (keras.ops only: it runs on JAX and converts to TFLite).
"""

from __future__ import annotations

import keras
from keras import layers, ops

from albert_cli.text.windows import WINDOW_POOLINGS


def window_mask(padding_mask):
    """1 for the real windows of ``padding_mask`` [B, W, L], as float32 [B, W]."""
    return ops.max(ops.cast(padding_mask, "float32"), axis=2)


def novel_pieces(padding_mask, overlap: int):
    """float32 [B, W, L]: 1 at the pieces that count for the document's bag of n-grams.

    Window 0 counts all its pieces but its [SEP] (unless it is the only window); a later window counts the pieces
    after the `overlap` it shares with the previous one ([CLS] and the shared pieces are left out), and its [SEP]
    only when it is the document's last window. Every piece of the document, and [CLS] and [SEP] once, is then
    counted exactly once: the bag of a windowed document equals the bag of the whole text packed as one sequence.
    """
    mask = ops.cast(padding_mask, "float32")
    shape = ops.shape(mask)
    pos = ops.cast(ops.reshape(ops.arange(shape[2]), (1, 1, -1)), "float32")
    win = ops.cast(ops.reshape(ops.arange(shape[1]), (1, -1, 1)), "float32")
    windows = ops.sum(window_mask(padding_mask), axis=1)  # [B]
    last = ops.cast(ops.equal(win, ops.reshape(windows - 1.0, (-1, 1, 1))), "float32")
    sep = ops.cast(ops.equal(pos, ops.expand_dims(ops.sum(mask, axis=2) - 1.0, 2)), "float32")
    fresh = ops.maximum(ops.cast(ops.equal(win, 0.0), "float32"), ops.cast(pos >= 1.0 + overlap, "float32"))
    return mask * fresh * (1.0 - sep * (1.0 - last))


@keras.saving.register_keras_serializable(package="albert_cli")
class FlattenWindows(layers.Layer):
    """``[B, W, L]`` -> ``[B * W, L]``: every window is one row for the encoder."""

    def call(self, x):
        return ops.reshape(x, (-1, ops.shape(x)[2]))

    def compute_output_shape(self, input_shape):
        return (None, input_shape[2])


@keras.saving.register_keras_serializable(package="albert_cli")
class WindowPooling(layers.Layer):
    """Window vectors ``[B * W, H]`` and the windows' ``padding_mask`` ``[B, W, L]`` -> document vectors
    ``[B, H]``: the mean or the maximum over the document's real windows (float32).

    Args:
        pooling: one of `albert_cli.text.windows.WINDOW_POOLINGS`.
    """

    def __init__(self, pooling: str = "mean", **kwargs):
        super().__init__(**kwargs)
        if pooling not in WINDOW_POOLINGS:
            raise ValueError(f"unknown window pooling {pooling!r}; expected one of {WINDOW_POOLINGS}")
        self.pooling = pooling

    def call(self, vectors, padding_mask):
        shape = ops.shape(padding_mask)
        vectors = ops.reshape(ops.cast(vectors, "float32"), (shape[0], shape[1], -1))
        mask = ops.expand_dims(window_mask(padding_mask), 2)
        if self.pooling == "max":
            return ops.max(vectors * mask - 1e9 * (1.0 - mask), axis=1)
        return ops.sum(vectors * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)

    def compute_output_shape(self, vectors_shape, padding_mask_shape=None):
        return (None, vectors_shape[-1])

    def get_config(self):
        return {**super().get_config(), "pooling": self.pooling}
