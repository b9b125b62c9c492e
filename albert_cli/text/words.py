"""Where words begin and end in a subword vocabulary: the table the classifier's bag of n-grams
(`albert_cli.model.heads.BagOfNgrams`) uses to read whole words out of token ids.

A piece *starts* a word when SentencePiece marks it with "▁" (WordPiece: when it does not begin with "##"), or
when its first character is not a letter or digit (punctuation, brackets of special tokens) or is CJK; it *ends*
one when its last character is not a letter or digit or is CJK, so that punctuation and every Chinese, Japanese
or Korean piece stand alone, as in fastText's or TF-IDF's word tokens.
"""

from __future__ import annotations

import numpy as np

from albert_cli.text.constants import SPIECE_UNDERLINE, WORDPIECE, WORDPIECE_SUFFIX

STARTS, ENDS = 1, 2  # bits of a piece's entry in the table


def _breaks(char: str) -> bool:
    return not char.isalnum() or ord(char) >= 0x2E80  # CJK radicals onwards (CJK ideographs are alphabetic)


def piece_boundaries(piece: str, wordpiece: bool = False) -> int:
    """STARTS | ENDS bits of one vocabulary piece.

    Args:
        piece: the piece as the vocabulary writes it ("▁the", "##ing", ",").
        wordpiece: True for a WordPiece vocabulary (continuations marked "##"), False for SentencePiece.

    Example:
        >>> piece_boundaries("\u2581the") == STARTS
        True
    """
    if wordpiece:
        marked, body = not piece.startswith(WORDPIECE_SUFFIX), piece.removeprefix(WORDPIECE_SUFFIX)
    else:
        marked, body = piece.startswith(SPIECE_UNDERLINE), piece.lstrip(SPIECE_UNDERLINE)
    starts = marked or not body or _breaks(body[0])
    ends = bool(body) and _breaks(body[-1])
    return STARTS * starts + ENDS * ends


def word_boundaries(tokenizer) -> np.ndarray:
    """float32 [vocab_size] table of `piece_boundaries` for every id of `tokenizer` (SentencePiece or WordPiece)."""
    wordpiece = getattr(tokenizer, "kind", None) == WORDPIECE
    return np.array([piece_boundaries(tokenizer.id_to_piece(i), wordpiece) for i in range(tokenizer.vocab_size)],
                    dtype=np.float32)
