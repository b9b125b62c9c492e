"""Tokenizer names that several modules share: marks, special pieces, kinds and vocabulary file names.

Plain strings only (no TensorFlow, Keras or sentencepiece), so that any module can import them.
"""

from __future__ import annotations

SPIECE_UNDERLINE = "\u2581"
""""▁": how SentencePiece marks a piece that starts a word (it stands for the space before it)."""

WORDPIECE_SUFFIX = "##"
"""How WordPiece marks a piece that continues the word of the piece before it."""

CLS, SEP, MASK = "[CLS]", "[SEP]", "[MASK]"
"""Special pieces of both vocabularies."""

SPM_PAD, SPM_UNK = "<pad>", "<unk>"
"""Padding and unknown pieces of ALBERT's SentencePiece vocabularies (ids 0 and 1)."""

WORDPIECE_PAD, WORDPIECE_UNK = "[PAD]", "[UNK]"
"""Padding and unknown pieces of BERT's WordPiece vocabularies."""

SENTENCEPIECE, WORDPIECE = "sentencepiece", "wordpiece"
TOKENIZER_KINDS = (SENTENCEPIECE, WORDPIECE)
"""The `kind` of a tokenizer (``TokenizerInfo.kind``, a model directory's ``tokenizer.kind``)."""

SPIECE_MODEL = "spiece.model"
"""SentencePiece model file of Hugging Face ALBERT directories and of our model directories' ``assets/``."""

SPIECE_SIDECAR = "spiece.json"
"""The normalizer sidecar of ``spiece.model`` (`albert_cli.text.spm.sidecar_path` of it)."""

VOCAB_TXT = "vocab.txt"
"""WordPiece vocabulary file of Hugging Face directories and of our model directories' ``assets/``."""

SENTENCEPIECE_FILES = (SPIECE_MODEL, "30k-clean.model")
"""SentencePiece file names looked for next to a checkpoint (Google's English releases use 30k-clean.model)."""

WORDPIECE_FILES = (VOCAB_TXT, "vocab_chinese.txt")
"""WordPiece file names looked for next to a checkpoint (Google's Chinese releases use vocab_chinese.txt)."""

TOKENIZER_META = "tokenizer.json"
"""In a model directory's ``assets/``: a WordPiece tokenizer's kind, file and normalizer (SentencePiece models
record their normalizer in the ``spiece.json`` sidecar instead)."""

HF_TOKENIZER_CONFIG = "tokenizer_config.json"
"""Hugging Face's tokenizer settings (``do_lower_case``, ``keep_accents``) next to a checkpoint."""


def default_vocab_file(kind: str) -> str:
    """The vocabulary file name a model directory uses for a tokenizer `kind`.

    Args:
        kind: "sentencepiece" or "wordpiece".

    Example:
        >>> default_vocab_file("wordpiece")
        'vocab.txt'
    """
    return SPIECE_MODEL if kind == SENTENCEPIECE else VOCAB_TXT
