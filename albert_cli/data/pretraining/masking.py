"""ALBERT's masked LM: whole-word n-gram masking of one sequence, and one instance made into a padded example.

As the original ``create_masked_lm_predictions``: word units from SentencePiece pieces (`vocab.is_start_piece`),
n-grams of 1..``max_ngram`` words with ``p(n) ∝ 1/n``, ``num_to_predict = min(max_predictions_per_seq,
max(1, round(len(tokens) * masked_lm_prob)))``, candidates visited in a random order, falling back to shorter
n-grams when the budget would be exceeded, overlapping spans skipped; each chosen position becomes ``[MASK]``
80%, a random token 10%, unchanged 10%. The draws and their order are the reference's (tests compare them
bit for bit); the fixes are listed in :mod:`albert_cli.data.pretraining`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from albert_cli.data.pretraining.instances import Instance
from albert_cli.data.pretraining.vocab import Vocab


class MaskedLmPredictions(NamedTuple):
    """One masked sequence, as `create_masked_lm_predictions` returns it."""

    token_ids: np.ndarray  # int32, input ids after masking
    masked_lm_positions: np.ndarray  # int32, sorted
    masked_lm_ids: np.ndarray  # int32, original ids at those positions
    spans: list  # selected n-grams: each a tuple of word units (tuples of positions)


def _word_units(token_ids: np.ndarray, vocab: Vocab) -> list[list[int]]:
    units: list[list[int]] = []
    after_special = True
    is_special, is_start = vocab.is_special, vocab.is_word_start
    for i, t in enumerate(token_ids.tolist()):
        if is_special[t]:
            after_special = True
            continue
        if units and not after_special and not is_start[t]:
            units[-1].append(i)
        else:
            units.append([i])
        after_special = False
    return units


def _ngram_probabilities(max_ngram: int, favor_shorter_ngram: bool) -> np.ndarray:
    """p(n) for n = 1..max_ngram: proportional to 1/n (reversed without `favor_shorter_ngram`)."""
    pvals = 1.0 / np.arange(1, max_ngram + 1)
    pvals /= pvals.sum()
    return pvals if favor_shorter_ngram else pvals[::-1]


def _choose_spans(units, order, drawn_n, num_to_predict: int, length: int):
    """The original's candidate loop: n-grams of word units in `order`, shortened to fit the budget, overlaps
    skipped. Returns (selected positions in choice order, spans)."""
    covered = np.zeros(length, dtype=bool)
    selected: list[int] = []
    spans: list[tuple[tuple[int, ...], ...]] = []
    for idx, n in zip(order.tolist(), drawn_n.tolist()):
        if len(selected) >= num_to_predict:
            break
        # cand_index_set[k] == units[idx : idx + k + 1] (shorter at the end).
        span = units[idx : idx + n]
        index_set = [p for u in span for p in u]
        n -= 1
        # Try shorter n-grams while the budget would be exceeded.
        while len(selected) + len(index_set) > num_to_predict:
            if n == 0:
                break
            span = units[idx : idx + n]
            index_set = [p for u in span for p in u]
            n -= 1
        if len(selected) + len(index_set) > num_to_predict:
            continue
        if covered[index_set].any():
            continue
        covered[index_set] = True
        selected.extend(index_set)
        spans.append(tuple(tuple(u) for u in span))
    assert len(selected) <= num_to_predict
    return selected, spans


def _replace(tokens: np.ndarray, output: np.ndarray, selected: list[int], vocab: Vocab, rng) -> np.ndarray:
    """Write [MASK] (80%), the token itself (10%) or a random non-special token (10%) at `selected` into
    `output`; returns the sorted positions."""
    k = len(selected)
    pos = np.asarray(selected, dtype=np.int64)
    u_mask = rng.random(k)
    u_keep = rng.random(k)
    random_ids = vocab.replacement_ids[rng.integers(0, vocab.replacement_ids.size, size=k)]
    new = np.where(u_mask < 0.8, vocab.mask_id, np.where(u_keep < 0.5, tokens[pos], random_ids))
    output[pos] = new.astype(np.int32)
    pos.sort()
    return pos.astype(np.int32)


def create_masked_lm_predictions(
    token_ids,
    vocab: Vocab,
    rng: np.random.Generator,
    *,
    masked_lm_prob: float = 0.15,
    max_predictions_per_seq: int = 20,
    max_ngram: int = 3,
    favor_shorter_ngram: bool = True,
) -> MaskedLmPredictions:
    """ALBERT's whole-word n-gram masking of one sequence (see the module docstring).

    Args:
        token_ids: one packed sequence, special tokens included.
        vocab: its vocabulary (special ids, word starts, replacement ids).
        rng: every random draw comes from it.

    Example:
        >>> pred = create_masked_lm_predictions(ids, vocab, np.random.default_rng(0))  # doctest: +SKIP
    """
    tokens = np.asarray(token_ids, dtype=np.int32)
    output = tokens.copy()
    empty = np.zeros(0, dtype=np.int32)
    if masked_lm_prob == 0 or max_predictions_per_seq <= 0:
        return MaskedLmPredictions(output, empty, empty, [])

    units = _word_units(tokens, vocab)
    num_to_predict = min(max_predictions_per_seq, max(1, int(round(len(tokens) * masked_lm_prob))))
    pvals = _ngram_probabilities(max_ngram, favor_shorter_ngram)
    # Visit the n-gram candidates (one per starting word) in a random order,
    # each with its drawn n (all draws from `rng`, unlike the original).
    order = rng.permutation(len(units))
    drawn_n = rng.choice(max_ngram, size=len(units), p=pvals) + 1
    selected, spans = _choose_spans(units, order, drawn_n, num_to_predict, len(tokens))
    positions = _replace(tokens, output, selected, vocab, rng) if selected else empty
    return MaskedLmPredictions(output, positions, tokens[positions].astype(np.int32), spans)


FEATURE_NAMES = (
    "token_ids",
    "segment_ids",
    "padding_mask",
    "masked_lm_positions",
    "masked_lm_ids",
    "masked_lm_weights",
    "sentence_order_label",
)


def feature_spec(max_seq_length: int, max_predictions_per_seq: int) -> dict[str, tuple[tuple[int, ...], Any]]:
    """``{name: (shape, numpy dtype)}`` of one example."""
    L, P = int(max_seq_length), int(max_predictions_per_seq)
    return {
        "token_ids": ((L,), np.int32),
        "segment_ids": ((L,), np.int32),
        "padding_mask": ((L,), np.int32),
        "masked_lm_positions": ((P,), np.int32),
        "masked_lm_ids": ((P,), np.int32),
        "masked_lm_weights": ((P,), np.float32),
        "sentence_order_label": ((), np.int32),
    }


def mask_instance(
    instance: Instance,
    vocab: Vocab,
    rng: np.random.Generator,
    *,
    max_seq_length: int,
    max_predictions_per_seq: int,
    masked_lm_prob: float = 0.15,
    max_ngram: int = 3,
) -> dict[str, np.ndarray]:
    """Mask one instance and pad it into a feature dict (see :func:`feature_spec`).

    ``padding_mask`` is 1 on real tokens, 0 on padding (pad id ``vocab.pad_id``);
    masked-LM slots beyond the real predictions have position 0, id 0, weight 0.
    """
    n = instance.token_ids.shape[0]
    if n > max_seq_length:
        raise ValueError(f"instance of length {n} exceeds max_seq_length={max_seq_length}")
    pred = create_masked_lm_predictions(
        instance.token_ids,
        vocab,
        rng,
        masked_lm_prob=masked_lm_prob,
        max_predictions_per_seq=max_predictions_per_seq,
        max_ngram=max_ngram,
    )
    L, P = max_seq_length, max_predictions_per_seq
    token_ids = np.full(L, vocab.pad_id, dtype=np.int32)
    token_ids[:n] = pred.token_ids
    segment_ids = np.zeros(L, dtype=np.int32)
    segment_ids[:n] = instance.segment_ids
    padding_mask = np.zeros(L, dtype=np.int32)
    padding_mask[:n] = 1
    k = pred.masked_lm_positions.shape[0]
    positions = np.zeros(P, dtype=np.int32)
    positions[:k] = pred.masked_lm_positions
    ids = np.zeros(P, dtype=np.int32)
    ids[:k] = pred.masked_lm_ids
    weights = np.zeros(P, dtype=np.float32)
    weights[:k] = 1.0
    return {
        "token_ids": token_ids,
        "segment_ids": segment_ids,
        "padding_mask": padding_mask,
        "masked_lm_positions": positions,
        "masked_lm_ids": ids,
        "masked_lm_weights": weights,
        "sentence_order_label": np.asarray(instance.sentence_order_label, dtype=np.int32),
    }
