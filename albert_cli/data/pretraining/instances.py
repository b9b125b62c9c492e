"""Documents and unmasked sentence-order instances, as the original ``create_pretraining_data.py`` cuts them.

`create_instances_from_document`: target length ``max_seq_length - 3`` (with probability ``short_seq_prob`` a
random target in ``[2, max]``); sentences accumulate into a chunk until the target is reached; the chunk is split
at a random sentence boundary ``a_end`` in ``[1, len(chunk) - 1]``, and -- SOP -- with probability 0.5 the two
segments are swapped. Label convention, as the original's ``next_sentence_labels``: ``sentence_order_label`` 0
means A, B in the original order, 1 means swapped. Then ``truncate_seq_pair`` and packing ``[CLS] A [SEP] B [SEP]``
(segment ids 0 for ``[CLS] A [SEP]``, 1 for ``B [SEP]``). Instances stay unmasked so that masks can be redrawn
every epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np


def iter_documents(
    lines: Iterable[str], encode: Callable[[str], Sequence[int]]
) -> Iterator[list[list[int]]]:
    """Stream documents from text lines: blank lines separate documents, every
    other line is one sentence (or paragraph) encoded with `encode`.

    Lines that encode to nothing are dropped, empty documents are skipped.
    Only the current document is held in memory.
    """
    document: list[list[int]] = []
    for line in lines:
        text = line.strip()
        if not text:
            if document:
                yield document
                document = []
            continue
        ids = [int(t) for t in encode(text)]
        if ids:
            document.append(ids)
    if document:
        yield document


@dataclass
class Instance:
    """One unmasked ``[CLS] A [SEP] B [SEP]`` pair.

    ``sentence_order_label``: 0 = original order, 1 = A and B swapped.
    """

    token_ids: np.ndarray  # int32, unpadded
    segment_ids: np.ndarray  # int32, unpadded
    sentence_order_label: int


def truncate_seq_pair(
    tokens_a: list[int], tokens_b: list[int], max_num_tokens: int, rng: np.random.Generator
) -> None:
    """Truncate in place to ``len(a) + len(b) <= max_num_tokens``, one token at a
    time from the longer list (``b`` on ties), randomly from its front or back."""
    a_lo, a_hi, b_lo, b_hi = 0, len(tokens_a), 0, len(tokens_b)
    while (a_hi - a_lo) + (b_hi - b_lo) > max_num_tokens:
        front = rng.random() < 0.5
        if (a_hi - a_lo) > (b_hi - b_lo):
            if front:
                a_lo += 1
            else:
                a_hi -= 1
        else:
            if front:
                b_lo += 1
            else:
                b_hi -= 1
    tokens_a[:] = tokens_a[a_lo:a_hi]
    tokens_b[:] = tokens_b[b_lo:b_hi]


def create_instances_from_document(
    document: Sequence[Sequence[int]],
    max_seq_length: int,
    rng: np.random.Generator,
    *,
    short_seq_prob: float = 0.1,
    cls_id: int = 2,
    sep_id: int = 3,
) -> list[Instance]:
    """Unmasked SOP instances of one document (see the module docstring)."""
    if max_seq_length < 5:
        raise ValueError(f"max_seq_length must be >= 5, got {max_seq_length}")
    document = [list(s) for s in document if len(s)]
    max_num_tokens = max_seq_length - 3  # [CLS], [SEP], [SEP]

    target_seq_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_seq_length = int(rng.integers(2, max_num_tokens + 1))

    instances: list[Instance] = []
    current_chunk: list[list[int]] = []
    current_length = 0
    for i, segment in enumerate(document):
        current_chunk.append(segment)
        current_length += len(segment)
        if i == len(document) - 1 or current_length >= target_seq_length:
            if len(current_chunk) >= 2:
                a_end = int(rng.integers(1, len(current_chunk)))  # [1, len-1]
                tokens_a = [t for seg in current_chunk[:a_end] for t in seg]
                tokens_b = [t for seg in current_chunk[a_end:] for t in seg]
            elif len(current_chunk[0]) >= 2:
                only = current_chunk[0]
                cut = int(rng.integers(1, len(only)))  # [1, len-1]
                tokens_a, tokens_b = only[:cut], only[cut:]
            else:
                tokens_a = tokens_b = None
            if tokens_a is not None:
                label = 0
                if rng.random() < 0.5:
                    tokens_a, tokens_b = tokens_b, tokens_a
                    label = 1
                truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
                assert tokens_a and tokens_b
                token_ids = np.asarray([cls_id, *tokens_a, sep_id, *tokens_b, sep_id], dtype=np.int32)
                segment_ids = np.zeros(token_ids.shape[0], dtype=np.int32)
                segment_ids[len(tokens_a) + 2 :] = 1
                instances.append(Instance(token_ids, segment_ids, label))
            current_chunk = []
            current_length = 0
    return instances
