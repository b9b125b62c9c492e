"""Encoding and length-grouped, dynamically padded batches (numpy)."""

from __future__ import annotations

import numpy as np


def encode_examples(tokenizer, texts, pairs, max_seq_length: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Token ids and segment ids per example (unpadded), ``[CLS] A [SEP] (B [SEP])``."""
    from albert_cli.text.packing import pack

    ids_a = tokenizer.encode_batch(texts)
    ids_b = tokenizer.encode_batch(pairs) if pairs is not None else [None] * len(ids_a)
    out = []
    for a, b in zip(ids_a, ids_b):
        packed = pack(a, b, max_seq_length=max_seq_length, cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id, pad=False)
        out.append((np.asarray(packed["token_ids"], np.int32), np.asarray(packed["segment_ids"], np.int32)))
    return out


def raw_lengths(tokenizer, texts, pairs=None) -> np.ndarray:
    """Full packed lengths before truncation (to choose a default max length)."""
    a = [len(x) for x in tokenizer.encode_batch(texts)]
    b = [len(x) + 1 for x in tokenizer.encode_batch(pairs)] if pairs is not None else [0] * len(a)
    return np.asarray([x + y + 2 for x, y in zip(a, b)])


def choose_max_seq_length(lengths: np.ndarray, cap: int, quantile: float = 0.99) -> int:
    """The `quantile` of token lengths, rounded up to a multiple of 8, capped."""
    if len(lengths) == 0:
        return min(cap, 128)
    q = int(np.ceil(np.quantile(lengths, quantile)))
    return int(min(cap, max(16, -(-q // 8) * 8)))


def length_grouped_batches(lengths, batch_size: int, rng: np.random.Generator | None, group: int = 50):
    """Batches of indices with similar lengths.

    With an RNG (training): shuffle, sort within windows of ``group`` batches,
    cut into batches, shuffle the batch order. Without (inference): sort all.
    """
    n = len(lengths)
    lengths = np.asarray(lengths)
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    perm = rng.permutation(n)
    window = batch_size * group
    batches = []
    for start in range(0, n, window):
        chunk = perm[start : start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def pad_batch(encoded, indices, multiple: int = 8, rows: int | None = None) -> dict[str, np.ndarray]:
    """Pad the selected examples to the longest of them (rounded up to `multiple`).

    `rows` pads the batch with empty rows (padding_mask 0) up to a fixed size,
    so that an XLA-compiled step sees one shape per length bucket.
    """
    longest = max(len(encoded[i][0]) for i in indices)
    width = -(-longest // multiple) * multiple
    token_ids = np.zeros((max(rows or 0, len(indices)), width), np.int32)
    segment_ids = np.zeros_like(token_ids)
    padding_mask = np.zeros_like(token_ids)
    for row, i in enumerate(indices):
        ids, seg = encoded[i]
        token_ids[row, : len(ids)] = ids
        segment_ids[row, : len(seg)] = seg
        padding_mask[row, : len(ids)] = 1
    return {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask}
