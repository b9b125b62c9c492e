"""Dynamically masked pretraining streams: documents -> instances -> masked, padded examples, every epoch anew.

The same (seed, epoch) always gives identical examples; another epoch redraws the masks. ``shard_index`` /
``num_shards`` give document ``i`` to shard ``i % num_shards``. The examples are numpy dicts; only
:func:`make_tf_dataset` imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from albert_cli._tf import import_tf
from albert_cli.data.pretraining.instances import create_instances_from_document
from albert_cli.data.pretraining.masking import feature_spec, mask_instance
from albert_cli.data.pretraining.vocab import Vocab

# Tags that keep the generators of instances, masks and shuffling apart for the same (seed, epoch, document).
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


def _check_stream(max_seq_length, max_predictions_per_seq, seed, epoch, shard_index, num_shards) -> None:
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"need 0 <= shard_index < num_shards, got {shard_index}, {num_shards}")
    if seed < 0 or epoch < 0:
        raise ValueError("seed and epoch must be non-negative integers")
    if max_seq_length < 5:
        raise ValueError(f"max_seq_length must be >= 5, got {max_seq_length}")
    if max_predictions_per_seq < 0:
        raise ValueError(f"max_predictions_per_seq must be >= 0, got {max_predictions_per_seq}")


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
    _check_stream(max_seq_length, max_predictions_per_seq, seed, epoch, shard_index, num_shards)

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
        """The numpy examples of `epoch` (:func:`iter_examples`)."""
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
        """The examples of `epoch` stacked into batches (:func:`batch_examples`)."""
        return batch_examples(self.examples(epoch), batch_size, drop_remainder)

    def tf_dataset(self, epoch: int = 0, batch_size: int | None = None, drop_remainder: bool = False):
        """The same examples as a ``tf.data.Dataset`` (:func:`make_tf_dataset`)."""
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
        """``{name: (shape, numpy dtype)}`` of one example."""
        return feature_spec(self.max_seq_length, self.max_predictions_per_seq)
