"""`albert_cli.text.windows` in TensorFlow: raw strings -> ``[B, W, L]`` windows inside the SavedModel's graph.

Ragged ops only (no Python loop), so ``serving_default(text=...)`` of a windowed model still takes raw strings.
The ids equal `albert_cli.text.windows.split_windows` on the Python tokenizer's ids (tests check it).
"""

from __future__ import annotations

import tensorflow as tf

from albert_cli.text.windows import WindowSpec


def window_ids(ids, sequence_length: int, spec: WindowSpec, cls_id: int, sep_id: int, pad_id: int) -> dict:
    """Ragged piece ids [B, (n)] (without [CLS]/[SEP]) -> int32 ``token_ids`` / ``segment_ids`` /
    ``padding_mask`` [B, W, L]: each text's windows, then empty windows up to the batch's most."""
    content, stride = sequence_length - 2, spec.stride
    ids = tf.RaggedTensor.from_row_splits(tf.cast(ids.values, tf.int32), tf.cast(ids.row_splits, tf.int64))
    n = ids.row_lengths()
    count = tf.where(n <= content, tf.ones_like(n), 1 + (n - content + stride - 1) // stride)
    count = tf.minimum(count, spec.max_windows)
    starts = tf.ragged.range(count) * stride  # [B, (W)]
    doc = starts.value_rowids()
    first = starts.values
    last = tf.minimum(first + content, tf.gather(n, doc))
    positions = tf.ragged.range(first, last) + tf.expand_dims(tf.gather(ids.row_starts(), doc), 1)
    pieces = tf.gather(ids.values, positions)  # [windows, (pieces)]
    edge = tf.ones(tf.stack([tf.size(first, out_type=tf.int64), 1]), tf.int32)
    cls = tf.RaggedTensor.from_tensor(edge * cls_id, row_splits_dtype=tf.int64)
    sep = tf.RaggedTensor.from_tensor(edge * sep_id, row_splits_dtype=tf.int64)
    tokens = tf.RaggedTensor.from_row_lengths(tf.concat([cls, pieces, sep], axis=1), count)  # [B, (W), (L)]
    return {
        "token_ids": tokens.to_tensor(default_value=pad_id),
        "segment_ids": tf.zeros_like(tokens).to_tensor(default_value=0),
        "padding_mask": tf.ones_like(tokens).to_tensor(default_value=0),
    }


class WindowedTokenizer(tf.Module):
    """An in-graph tokenizer (its ``encode`` and special ids) whose ``tok(texts)`` gives windows.

    Args:
        tokenizer: ``TFAlbertTokenizer`` or ``TFWordPieceTokenizer``.
        sequence_length: the window length, [CLS] and [SEP] included.
        spec: stride, most windows.
    """

    def __init__(self, tokenizer, sequence_length: int, spec: WindowSpec):
        super().__init__(name="windowed_tokenizer")
        self.tokenizer = tokenizer
        self.sequence_length = int(sequence_length)
        self.spec = spec

    def __call__(self, texts, pairs=None):
        if pairs is not None:
            raise ValueError("windows read single texts")
        tok = self.tokenizer
        return window_ids(tok.encode(texts), self.sequence_length, self.spec, tok.cls_id, tok.sep_id, tok.pad_id)
