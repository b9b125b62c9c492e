"""ALBERT pretraining examples (masked LM + sentence-order prediction).

A streaming, dynamically-masked re-implementation of google-research/albert
``create_pretraining_data.py`` (with its ALBERT defaults: SentencePiece
whole-word masking, ``ngram=3`` with ``favor_shorter_ngram``,
``random_next_sentence=False`` i.e. SOP, ``masked_lm_prob=0.15``,
``short_seq_prob=0.1``).  Pure Python + NumPy: importing this module does not
import TensorFlow (only :func:`make_tf_dataset` does, lazily), so the numpy
iterator also feeds the JAX path.

Pipeline
--------
``iter_documents(lines, encode)``
    Streams documents (blank line = document boundary, each other line = one
    sentence/paragraph, encoded with the caller's ``encode``); one document is
    held in memory at a time.
``create_instances_from_document(document, max_seq_length, rng)``
    The original's segmentation: target length ``max_seq_length - 3`` (with
    probability ``short_seq_prob`` a random target in ``[2, max]``),
    sentences accumulated into a chunk until the target is reached, a random
    split ``a_end`` in ``[1, len(chunk) - 1]``, then -- SOP -- with probability
    0.5 the two segments are swapped.  **Label convention (as the original,
    whose ``is_random_next`` is written as ``next_sentence_labels``):
    ``sentence_order_label = 0`` -> A, B in the original order;
    ``sentence_order_label = 1`` -> swapped (B's text came first).**  Then
    ``truncate_seq_pair`` (drop one token at a time from the longer segment,
    front or back at random) and packing ``[CLS] A [SEP] B [SEP]`` with
    segment ids 0 for ``[CLS] A [SEP]`` and 1 for ``B [SEP]``.  No MLM masks
    yet: instances are unmasked so masks can be redrawn every epoch.
``create_masked_lm_predictions(token_ids, vocab, rng, ...)``
    The original's whole-word n-gram masking: word units from SentencePiece
    pieces (the original ``_is_start_piece_sp`` rule: a piece starts a word
    when it starts with ``▁`` or ``<``, is a single punctuation character, or
    contains a character that is neither an ASCII letter nor that
    punctuation -- otherwise it continues the previous word), n-grams of 1..3
    words with ``p(n) ∝ 1/n`` (6/11, 3/11, 2/11), ``num_to_predict =
    min(max_predictions_per_seq, max(1, round(len(tokens) * masked_lm_prob)))``,
    candidates visited in a random order, falling back to shorter n-grams when
    the budget would be exceeded, overlapping spans skipped; each chosen
    position becomes ``[MASK]`` 80%, a random token 10%, unchanged 10%.
``iter_examples(...)`` / :class:`PretrainingStream`
    Dynamic masking: the same (seed, epoch) always gives identical examples, a
    different epoch redraws the masks.  ``shard_index/num_shards`` give
    document ``i`` to shard ``i % num_shards``.

Deliberate deviations from the original (fixes)
-----------------------------------------------
1. **Random replacement tokens are drawn from non-special ids only.**  The
   original draws from the whole vocabulary, so a "random" replacement could be
   ``<pad>``, ``<unk>``, ``[CLS]``, ``[SEP]`` or ``[MASK]``.  Here pad, unk,
   CLS, SEP, MASK, SentencePiece control/unknown/unused pieces and any piece
   written ``<...>`` or ``[...]`` are never used as replacements.
2. **All randomness comes from one seeded generator passed in** (a
   ``numpy.random.Generator``; per document it is derived from
   ``(seed, epoch, document index)``).  The original seeds a ``random.Random``
   but draws the n-gram length with the unseeded module-level
   ``np.random.choice``, so its output was not reproducible.
3. Special tokens are never mask candidates and break words: the original only
   skips ``[CLS]``/``[SEP]`` and would glue a continuation piece right after
   ``[SEP]`` onto the last word of segment A.
4. Instances never borrow a segment from another document (ALBERT's SOP only
   uses the same document).  The original, for a chunk holding a single
   sentence, falls back to a random *other* document; here a single-sentence
   chunk is split inside the sentence at a random token position
   (``[1, len - 1]``), and a chunk with a single one-token sentence is dropped.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "FEATURE_NAMES",
    "Instance",
    "MaskedLmPredictions",
    "PretrainingStream",
    "Vocab",
    "batch_examples",
    "create_instances_from_document",
    "create_masked_lm_predictions",
    "feature_spec",
    "is_start_piece",
    "iter_documents",
    "iter_examples",
    "make_tf_dataset",
    "mask_instance",
    "truncate_seq_pair",
    "vocab_from_sentencepiece",
]

SP_WORD_START = "\u2581"  # "▁"

# The original's `special_pieces` (note: no apostrophe, '<', '=', '>').
_ORIG_PUNCT = frozenset('!"#$%&()*+,-./:;?@[\\]^_`{|}~')
_WORD_CHARS = frozenset(string.ascii_lowercase) | _ORIG_PUNCT


def is_start_piece(piece: str) -> bool:
    """Whether a SentencePiece piece starts a new word (``_is_start_piece_sp``)."""
    if not piece:
        return True
    if piece.startswith(SP_WORD_START) or piece.startswith("<") or piece in _ORIG_PUNCT:
        return True
    # Pieces with digits / foreign characters are always whole words.
    return not all(ch.lower() in _WORD_CHARS for ch in piece)


def _looks_special(piece: str) -> bool:
    return len(piece) > 2 and (
        (piece.startswith("<") and piece.endswith(">"))
        or (piece.startswith("[") and piece.endswith("]"))
    )


class Vocab:
    """Piece strings and special ids, all that pretraining-data creation needs.

    Args:
        pieces: ``pieces[id]`` is the SentencePiece piece string of ``id``.
        pad_id, unk_id, cls_id, sep_id, mask_id: the special ids (ALBERT:
            0, 1, 2, 3, 4).
        control_ids: further ids to treat as special.

    Special ids (``special_ids``) -- the five above, ``control_ids`` and every
    piece written ``<...>`` or ``[...]`` -- are never mask candidates and never
    random replacements (``replacement_ids`` is everything else).
    """

    def __init__(
        self,
        pieces: Sequence[str],
        *,
        pad_id: int = 0,
        unk_id: int = 1,
        cls_id: int = 2,
        sep_id: int = 3,
        mask_id: int = 4,
        control_ids: Iterable[int] = (),
    ):
        self.pieces: list[str] = list(pieces)
        n = len(self.pieces)
        self.pad_id, self.unk_id = int(pad_id), int(unk_id)
        self.cls_id, self.sep_id, self.mask_id = int(cls_id), int(sep_id), int(mask_id)
        special = {self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id}
        special.update(int(i) for i in control_ids)
        special.update(i for i, p in enumerate(self.pieces) if _looks_special(p))
        bad = [i for i in special if not 0 <= i < n]
        if bad:
            raise ValueError(f"special ids {sorted(bad)} are outside the vocabulary (size {n})")
        self.special_ids: frozenset[int] = frozenset(special)
        self.is_special = np.zeros(n, dtype=bool)
        self.is_special[list(special)] = True
        self.is_word_start = np.array([is_start_piece(p) for p in self.pieces], dtype=bool)
        self.replacement_ids = np.flatnonzero(~self.is_special).astype(np.int32)
        if self.replacement_ids.size == 0:
            raise ValueError("the vocabulary has no non-special pieces")

    def __len__(self) -> int:
        return len(self.pieces)

    @property
    def size(self) -> int:
        return len(self.pieces)

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, special={sorted(self.special_ids)[:12]}...)"


def vocab_from_sentencepiece(model_path) -> Vocab:
    """A :class:`Vocab` from a SentencePiece ``.model`` (ALBERT's ``30k-clean.model``).

    ``[CLS]``, ``[SEP]`` and ``[MASK]`` must be pieces of the model; control,
    unknown and unused pieces are special.
    """
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor()
    sp.Load(str(model_path))
    n = sp.get_piece_size()
    pieces = [sp.id_to_piece(i) for i in range(n)]
    control = [i for i in range(n) if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i)]

    def piece_id(piece: str) -> int:
        i = sp.piece_to_id(piece)
        if i < 0 or i >= n or pieces[i] != piece:
            raise ValueError(f"SentencePiece model {model_path} has no {piece!r} piece")
        return i

    pad_id = sp.pad_id() if sp.pad_id() >= 0 else piece_id("<pad>")
    unk_id = sp.unk_id()
    return Vocab(
        pieces,
        pad_id=pad_id,
        unk_id=unk_id,
        cls_id=piece_id("[CLS]"),
        sep_id=piece_id("[SEP]"),
        mask_id=piece_id("[MASK]"),
        control_ids=control,
    )


# --------------------------------------------------------------------------
# Documents
# --------------------------------------------------------------------------
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


# --------------------------------------------------------------------------
# Instances (unmasked)
# --------------------------------------------------------------------------
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


# --------------------------------------------------------------------------
# Masked LM
# --------------------------------------------------------------------------
class MaskedLmPredictions(NamedTuple):
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
    """ALBERT's whole-word n-gram masking of one sequence (see module docstring)."""
    tokens = np.asarray(token_ids, dtype=np.int32)
    output = tokens.copy()
    empty = np.zeros(0, dtype=np.int32)
    if masked_lm_prob == 0 or max_predictions_per_seq <= 0:
        return MaskedLmPredictions(output, empty, empty, [])

    units = _word_units(tokens, vocab)
    num_to_predict = min(
        max_predictions_per_seq, max(1, int(round(len(tokens) * masked_lm_prob)))
    )
    pvals = 1.0 / np.arange(1, max_ngram + 1)
    pvals /= pvals.sum()
    if not favor_shorter_ngram:
        pvals = pvals[::-1]

    # Visit the n-gram candidates (one per starting word) in a random order,
    # each with its drawn n (all draws from `rng`, unlike the original).
    order = rng.permutation(len(units))
    drawn_n = rng.choice(max_ngram, size=len(units), p=pvals) + 1

    covered = np.zeros(len(tokens), dtype=bool)
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

    k = len(selected)
    if k:
        pos = np.asarray(selected, dtype=np.int64)
        u_mask = rng.random(k)
        u_keep = rng.random(k)
        random_ids = vocab.replacement_ids[rng.integers(0, vocab.replacement_ids.size, size=k)]
        new = np.where(
            u_mask < 0.8, vocab.mask_id, np.where(u_keep < 0.5, tokens[pos], random_ids)
        )
        output[pos] = new.astype(np.int32)
        pos.sort()
        positions = pos.astype(np.int32)
    else:
        positions = empty
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


# --------------------------------------------------------------------------
# Streams
# --------------------------------------------------------------------------
_TAG_INSTANCES, _TAG_MASKS, _TAG_SHUFFLE = 0x1A1, 0x2B2, 0x3C3


def _documents(documents_factory) -> Iterable[Sequence[Sequence[int]]]:
    return documents_factory() if callable(documents_factory) else documents_factory


def _shuffled(it: Iterator, buffer_size: int, rng: np.random.Generator) -> Iterator:
    buffer: list = []
    for item in it:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        j = int(rng.integers(0, buffer_size))
        buffer[j], item = item, buffer[j]
        yield item
    order = rng.permutation(len(buffer))
    for j in order.tolist():
        yield buffer[j]


def iter_examples(
    documents_factory,
    vocab: Vocab,
    max_seq_length: int = 512,
    max_predictions_per_seq: int = 20,
    seed: int = 12345,
    epoch: int = 0,
    *,
    masked_lm_prob: float = 0.15,
    short_seq_prob: float = 0.1,
    max_ngram: int = 3,
    shard_index: int = 0,
    num_shards: int = 1,
    shuffle_buffer_size: int = 0,
    vary_instances_per_epoch: bool = False,
) -> Iterator[dict[str, np.ndarray]]:
    """Yield masked, padded example dicts (numpy) for one epoch.

    Args:
        documents_factory: zero-argument callable returning a fresh iterable of
            documents (list of sentences, each a list of ids) -- e.g.
            ``lambda: iter_documents(open(path), encode)`` -- or a re-iterable
            such as a list (a one-shot iterator would be exhausted after the
            first epoch).
        seed, epoch: the instances of document ``i`` come from a generator
            seeded with ``(seed, i)`` (also ``epoch`` when
            `vary_instances_per_epoch`), its masks from ``(seed, epoch, i)``:
            the same seed and epoch reproduce every example exactly, another
            epoch redraws the masks (dynamic masking).  Per-document seeding
            also makes an example independent of sharding.
        shard_index, num_shards: this worker keeps documents with
            ``i % num_shards == shard_index``.
        shuffle_buffer_size: > 0 shuffles examples through a buffer of that
            size (seeded by ``(seed, epoch, shard_index)``).
    """
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"need 0 <= shard_index < num_shards, got {shard_index}, {num_shards}")
    if seed < 0 or epoch < 0:
        raise ValueError("seed and epoch must be non-negative integers")
    if max_seq_length < 5:
        raise ValueError(f"max_seq_length must be >= 5, got {max_seq_length}")
    if max_predictions_per_seq < 0:
        raise ValueError(f"max_predictions_per_seq must be >= 0, got {max_predictions_per_seq}")

    def generate() -> Iterator[dict[str, np.ndarray]]:
        for doc_index, document in enumerate(_documents(documents_factory)):
            if doc_index % num_shards != shard_index:
                continue
            inst_key = [seed, _TAG_INSTANCES, doc_index]
            if vary_instances_per_epoch:
                inst_key.append(epoch)
            instances = create_instances_from_document(
                document,
                max_seq_length,
                np.random.default_rng(inst_key),
                short_seq_prob=short_seq_prob,
                cls_id=vocab.cls_id,
                sep_id=vocab.sep_id,
            )
            if not instances:
                continue
            mask_rng = np.random.default_rng([seed, _TAG_MASKS, epoch, doc_index])
            for instance in instances:
                yield mask_instance(
                    instance,
                    vocab,
                    mask_rng,
                    max_seq_length=max_seq_length,
                    max_predictions_per_seq=max_predictions_per_seq,
                    masked_lm_prob=masked_lm_prob,
                    max_ngram=max_ngram,
                )

    if shuffle_buffer_size and shuffle_buffer_size > 1:
        rng = np.random.default_rng([seed, _TAG_SHUFFLE, epoch, shard_index])
        return _shuffled(generate(), int(shuffle_buffer_size), rng)
    return generate()


def batch_examples(
    examples: Iterable[dict[str, np.ndarray]], batch_size: int, drop_remainder: bool = False
) -> Iterator[dict[str, np.ndarray]]:
    """Group example dicts into dicts of stacked arrays (``[batch, ...]``)."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}")
    batch: list[dict[str, np.ndarray]] = []
    for example in examples:
        batch.append(example)
        if len(batch) == batch_size:
            yield {k: np.stack([e[k] for e in batch]) for k in batch[0]}
            batch = []
    if batch and not drop_remainder:
        yield {k: np.stack([e[k] for e in batch]) for k in batch[0]}


def make_tf_dataset(
    documents_factory,
    vocab: Vocab,
    max_seq_length: int = 512,
    max_predictions_per_seq: int = 20,
    seed: int = 12345,
    epoch: int = 0,
    *,
    batch_size: int | None = None,
    drop_remainder: bool = False,
    prefetch: bool = True,
    **kwargs,
):
    """``tf.data.Dataset`` over :func:`iter_examples` (same arguments, same
    arrays), optionally batched.  TensorFlow is imported here, lazily."""
    from albert_cli._tf import import_tf

    tf = import_tf()
    spec = feature_spec(max_seq_length, max_predictions_per_seq)
    signature = {
        name: tf.TensorSpec(shape=shape, dtype=tf.as_dtype(dtype)) for name, (shape, dtype) in spec.items()
    }

    def generator():
        return iter_examples(
            documents_factory,
            vocab,
            max_seq_length,
            max_predictions_per_seq,
            seed,
            epoch,
            **kwargs,
        )

    ds = tf.data.Dataset.from_generator(generator, output_signature=signature)
    if batch_size:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if prefetch:
        ds = ds.prefetch(tf.data.AUTOTUNE)
    return ds


@dataclass
class PretrainingStream:
    """Configuration of a dynamically-masked pretraining stream.

    ``stream.examples(epoch)`` / ``stream.batches(epoch, batch_size)`` are plain
    numpy iterators (no TensorFlow); ``stream.tf_dataset(epoch, batch_size)``
    wraps the same examples in ``tf.data``.
    """

    documents_factory: Any
    vocab: Vocab
    max_seq_length: int = 512
    max_predictions_per_seq: int = 20
    seed: int = 12345
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    max_ngram: int = 3
    shard_index: int = 0
    num_shards: int = 1
    shuffle_buffer_size: int = 0
    vary_instances_per_epoch: bool = False

    def _kwargs(self) -> dict[str, Any]:
        return {
            "masked_lm_prob": self.masked_lm_prob,
            "short_seq_prob": self.short_seq_prob,
            "max_ngram": self.max_ngram,
            "shard_index": self.shard_index,
            "num_shards": self.num_shards,
            "shuffle_buffer_size": self.shuffle_buffer_size,
            "vary_instances_per_epoch": self.vary_instances_per_epoch,
        }

    def examples(self, epoch: int = 0) -> Iterator[dict[str, np.ndarray]]:
        return iter_examples(
            self.documents_factory,
            self.vocab,
            self.max_seq_length,
            self.max_predictions_per_seq,
            self.seed,
            epoch,
            **self._kwargs(),
        )

    __call__ = examples

    def batches(self, epoch: int, batch_size: int, drop_remainder: bool = False):
        return batch_examples(self.examples(epoch), batch_size, drop_remainder)

    def tf_dataset(self, epoch: int = 0, batch_size: int | None = None, drop_remainder: bool = False):
        return make_tf_dataset(
            self.documents_factory,
            self.vocab,
            self.max_seq_length,
            self.max_predictions_per_seq,
            self.seed,
            epoch,
            batch_size=batch_size,
            drop_remainder=drop_remainder,
            **self._kwargs(),
        )

    def feature_spec(self):
        return feature_spec(self.max_seq_length, self.max_predictions_per_seq)
