"""Text layer: ALBERT normalization, SentencePiece vocabularies, packing, in-graph tokenizer.

* :mod:`albert_cli.text.normalize` - ``NormalizerOptions``, ``preprocess_text``, ``normalize_text``
* :mod:`albert_cli.text.spm` - ``train_sentencepiece``, ``SentencePieceTokenizer``
* :mod:`albert_cli.text.packing` - ``pack``, ``pack_batch``
* :mod:`albert_cli.text.wordpiece` - ``WordPieceTokenizer`` (Chinese releases' BERT vocabularies)
* :mod:`albert_cli.text.tokenizers` - the tokenizer of a checkpoint or model directory, either kind
* :mod:`albert_cli.text.tf_tokenizer`, :mod:`albert_cli.text.tf_wordpiece` - in-graph versions (import TensorFlow)
* :mod:`albert_cli.text.constants` - marks, special pieces and vocabulary file names

Importing this package imports neither TensorFlow nor sentencepiece; the names
below are loaded on first use.
"""

from __future__ import annotations

from albert_cli.text.normalize import NormalizerOptions, normalize_text, preprocess_text

_LAZY = {
    "SentencePieceTokenizer": "albert_cli.text.spm",
    "train_sentencepiece": "albert_cli.text.spm",
    "pack": "albert_cli.text.packing",
    "pack_batch": "albert_cli.text.packing",
    "Packed": "albert_cli.text.packing",
    "make_tf_tokenizer": "albert_cli.text.tf_tokenizer",
    "make_tf_wordpiece_tokenizer": "albert_cli.text.tf_wordpiece",
}

__all__ = ["NormalizerOptions", "normalize_text", "preprocess_text", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'albert_cli.text' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
