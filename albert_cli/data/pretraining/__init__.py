"""ALBERT pretraining examples (masked LM + sentence-order prediction), streamed and masked afresh every epoch.

A re-implementation of google-research/albert ``create_pretraining_data.py`` with its ALBERT defaults
(SentencePiece whole-word masking, ``ngram=3`` favouring shorter n-grams, SOP instead of NSP,
``masked_lm_prob=0.15``, ``short_seq_prob=0.1``). Pure Python + NumPy (only :func:`make_tf_dataset` imports
TensorFlow), so the numpy iterator also feeds the JAX path. The steps, one module each:

* :mod:`.vocab` -- ``Vocab``: pieces, special ids, word starts.
* :mod:`.instances` -- ``iter_documents`` (blank line = document boundary, one document in memory at a time) and
  ``create_instances_from_document`` (unmasked ``[CLS] A [SEP] B [SEP]`` pairs, possibly swapped).
* :mod:`.masking` -- ``create_masked_lm_predictions`` (whole-word n-gram masking) and ``mask_instance``.
* :mod:`.stream` -- ``iter_examples`` / ``PretrainingStream``: seeded per document, sharded, shuffled, batched.

Deliberate deviations from the original (fixes):

1. Random replacement tokens are never special: pad, unk, CLS, SEP, MASK, SentencePiece control/unknown/unused
   pieces and any piece written ``<...>`` or ``[...]`` are left out (the original draws from the whole vocabulary).
2. All randomness comes from one seeded ``numpy.random.Generator``, derived per document from
   ``(seed, epoch, document index)`` (the original draws the n-gram length from the unseeded ``np.random``).
3. Special tokens are never mask candidates and break words (the original would glue a continuation piece right
   after ``[SEP]`` onto the last word of segment A).
4. Instances never borrow a segment from another document: a chunk of one sentence is split inside it at a random
   token, and a chunk of one one-token sentence is dropped.
"""

from __future__ import annotations

from albert_cli.data.pretraining.instances import (
    Instance,
    create_instances_from_document,
    iter_documents,
    truncate_seq_pair,
)
from albert_cli.data.pretraining.masking import (
    FEATURE_NAMES,
    MaskedLmPredictions,
    create_masked_lm_predictions,
    feature_spec,
    mask_instance,
)
from albert_cli.data.pretraining.stream import PretrainingStream, batch_examples, iter_examples, make_tf_dataset
from albert_cli.data.pretraining.vocab import Vocab, is_start_piece, vocab_from_sentencepiece

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
