"""Pack token ids into ALBERT inputs: ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``.

Truncation follows BERT/ALBERT ``_truncate_seq_pair``: while the pair is too
long, pop the last token of the longer segment (of B when they are equally
long). ``albert_cli.text.tf_tokenizer`` implements the same rule in-graph.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np


class Packed(NamedTuple):
    """int32 arrays: [L] from :func:`pack`, [B, L] from :func:`pack_batch`."""

    token_ids: np.ndarray
    segment_ids: np.ndarray
    padding_mask: np.ndarray  # 1 for real tokens, 0 for padding

    def __getitem__(self, key):
        """Also a mapping: ``packed["token_ids"]`` (and ``dict(**packed)``)."""
        if isinstance(key, str):
            if key not in self._fields:
                raise KeyError(key)
            return getattr(self, key)
        return tuple.__getitem__(self, key)

    def keys(self):
        return self._fields


def truncated_lengths(len_a: int, len_b: int, budget: int) -> tuple[int, int]:
    """Lengths kept by ``_truncate_seq_pair`` for a budget of `budget` tokens (closed form)."""
    if len_a + len_b <= budget:
        return len_a, len_b
    shorter = min(len_a, len_b)
    if budget >= 2 * shorter:  # only the longer one is cut (here len_a != len_b)
        return (budget - len_b, len_b) if len_a > len_b else (len_a, budget - len_a)
    return (budget + 1) // 2, budget // 2


def _check(max_seq_length: int, pair: bool) -> None:
    need = 3 if pair else 2
    if int(max_seq_length) < need:
        raise ValueError(f"max_seq_length must be at least {need} for {'pairs' if pair else 'single texts'}")


def pack(
    ids_a: Sequence[int],
    ids_b: Sequence[int] | None = None,
    max_seq_length: int | None = None,
    cls_id: int | None = None,
    sep_id: int | None = None,
    pad_id: int = 0,
    pad: bool = True,
) -> Packed:
    """One example -> (token_ids, segment_ids, padding_mask), each int32 [max_seq_length]
    (or just the packed length with ``pad=False``). The result unpacks as a tuple and
    also has attribute and ``["token_ids"]`` access."""
    if max_seq_length is None or cls_id is None or sep_id is None:
        raise TypeError("pack() needs max_seq_length, cls_id and sep_id")
    pair = ids_b is not None
    _check(max_seq_length, pair)
    a = list(ids_a)
    if pair:
        b = list(ids_b)
        na, nb = truncated_lengths(len(a), len(b), max_seq_length - 3)
        a, b = a[:na], b[:nb]
        tokens = [cls_id, *a, sep_id, *b, sep_id]
        segments = [0] * (len(a) + 2) + [1] * (len(b) + 1)
    else:
        a = a[: max_seq_length - 2]
        tokens = [cls_id, *a, sep_id]
        segments = [0] * len(tokens)
    n = len(tokens)
    length = max_seq_length if pad else n
    token_ids = np.full(length, pad_id, dtype=np.int32)
    token_ids[:n] = tokens
    segment_ids = np.zeros(length, dtype=np.int32)
    segment_ids[:n] = segments
    mask = np.zeros(length, dtype=np.int32)
    mask[:n] = 1
    return Packed(token_ids, segment_ids, mask)


def pack_batch(
    examples: Sequence,
    *,
    max_seq_length: int,
    cls_id: int,
    sep_id: int,
    pad_id: int = 0,
    pad_to_multiple_of: int | None = None,
) -> Packed:
    """Pack a batch with dynamic padding: length = longest packed example (capped at
    `max_seq_length`), rounded up to `pad_to_multiple_of` (e.g. 8) but never past
    `max_seq_length`. Each example is ``ids_a`` or a ``(ids_a, ids_b_or_None)`` pair.
    Returns int32 arrays [B, L]."""
    packed = []
    for ex in examples:
        if isinstance(ex, tuple) and len(ex) == 2 and (ex[1] is None or not np.isscalar(ex[1])):
            ids_a, ids_b = ex
        else:
            ids_a, ids_b = ex, None
        packed.append(
            pack(ids_a, ids_b, max_seq_length=max_seq_length, cls_id=cls_id, sep_id=sep_id, pad_id=pad_id, pad=False)
        )
    longest = max((len(p.token_ids) for p in packed), default=0)
    if pad_to_multiple_of and longest:
        m = int(pad_to_multiple_of)
        longest = min(-(-longest // m) * m, int(max_seq_length))
    shape = (len(packed), longest)
    token_ids = np.full(shape, pad_id, dtype=np.int32)
    segment_ids = np.zeros(shape, dtype=np.int32)
    mask = np.zeros(shape, dtype=np.int32)
    for i, p in enumerate(packed):
        n = len(p.token_ids)
        token_ids[i, :n] = p.token_ids
        segment_ids[i, :n] = p.segment_ids
        mask[i, :n] = 1
    return Packed(token_ids, segment_ids, mask)
