"""WordPiece vocabularies (Chinese ALBERT releases): BERT's tokenizer in Python.

Google's Chinese ALBERT (``vocab_chinese.txt``), brightmart's albert_zh (``vocab.txt``) and the HF ports of both
tokenize with BERT's tokenizer, not SentencePiece. :class:`WordPieceTokenizer` reproduces HF 4.x
``BertTokenizer(vocab_file, do_lower_case=...)`` (``tokenize_chinese_chars=True``, ``strip_accents=None``):

1. with ``do_lower_case``: lowercase per character (as HF's ``PreTrainedTokenizer.tokenize``; ``Σ`` -> ``σ``)
2. clean: drop NUL, U+FFFD and control/format characters (category ``C*`` except tab, LF, CR); whitespace
   (space, tab, LF, CR, ``Zs``) -> space
3. spaces around every CJK ideograph (the CJK Unified Ideographs blocks of BERT)
4. NFC, then split on Python whitespace
5. with ``do_lower_case``: ``str.lower`` per word, NFD and drop ``Mn`` marks
6. split off every punctuation character (ASCII non-alphanumerics and ``P*``)
7. greedy longest-match-first WordPiece with ``##`` continuations; a word of more than 100 characters, or one
   that cannot be covered, is ``[UNK]``.

Special ids are looked up in the vocabulary. Unlike HF, special tokens written in the text are ordinary text (as
with :class:`albert_cli.text.spm.SentencePieceTokenizer`). The in-graph version is
:mod:`albert_cli.text.tf_wordpiece` (imports TensorFlow).
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import Sequence

from albert_cli.errors import ModelError
from albert_cli.text.constants import CLS, MASK, SEP, WORDPIECE, WORDPIECE_PAD, WORDPIECE_SUFFIX, WORDPIECE_UNK
from albert_cli.text.normalize import lower_per_char

MAX_INPUT_CHARS_PER_WORD = 100

# BERT's "Chinese character" ranges (CJK Unified Ideographs + extensions + compatibility).
CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def _is_cjk(cp: int) -> bool:
    for lo, hi in CJK_RANGES:
        if lo <= cp <= hi:
            return True
    return False


def _is_whitespace(ch: str) -> bool:
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch).startswith("C")


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def load_vocab(path: str | os.PathLike) -> dict[str, int]:
    """``vocab.txt`` -> {piece: id} (one piece a line; ids are line numbers, as HF ``load_vocab``)."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"{p}: no such WordPiece vocabulary file")
    if p.is_dir():
        raise ModelError(f"{p}: is a directory, expected a WordPiece vocab.txt")
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(f"{p}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ModelError(f"{p}: not a WordPiece vocabulary (not UTF-8 text)") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    vocab: dict[str, int] = {}
    for index, piece in enumerate(lines):
        vocab[piece] = index  # a duplicate keeps its last id, as HF
    if not vocab:
        raise ModelError(f"{p}: empty WordPiece vocabulary")
    return vocab


class WordPieceTokenizer:
    """BERT tokenization with a WordPiece ``vocab.txt`` (HF 4.x ``BertTokenizer`` semantics).

    Same interface as :class:`albert_cli.text.spm.SentencePieceTokenizer`:
    ``encode`` / ``encode_batch`` (ids without [CLS]/[SEP]), ``tokenize``,
    ``decode``, ``vocab_size``, ``pad_id`` / ``unk_id`` / ``cls_id`` /
    ``sep_id`` / ``mask_id``, ``id_to_piece`` / ``piece_to_id``.

    Args:
        vocab: {piece: id}, as `load_vocab` reads it.
        do_lower_case: BERT's lowercasing (and accent stripping).
        path: where the vocabulary came from (for messages).

    Example:
        >>> tok = WordPieceTokenizer.from_file("vocab_chinese.txt")  # doctest: +SKIP
        >>> tok.tokenize("你好, unaffable")  # doctest: +SKIP
    """

    kind = WORDPIECE

    def __init__(self, vocab: dict[str, int], do_lower_case: bool = True, path: str | None = None):
        self.vocab = vocab
        self.do_lower_case = bool(do_lower_case)
        self.path = path
        self._inv = {i: p for p, i in vocab.items()}
        size = max(vocab.values()) + 1
        self._size = size
        if WORDPIECE_UNK not in vocab:
            raise ModelError(f"{path}: WordPiece vocabulary has no '{WORDPIECE_UNK}' entry")
        self._unk = vocab[WORDPIECE_UNK]

    @classmethod
    def from_file(cls, vocab_path: str | os.PathLike, do_lower_case: bool = True) -> "WordPieceTokenizer":
        """Load a ``vocab.txt`` (see `load_vocab`)."""
        return cls(load_vocab(vocab_path), do_lower_case=do_lower_case, path=str(vocab_path))

    # -- vocabulary
    @property
    def vocab_size(self) -> int:
        """Largest id + 1."""
        return self._size

    def __len__(self) -> int:
        return self._size

    def id_to_piece(self, index: int) -> str:
        """The piece of `index` ([UNK] for an id no line has; IndexError outside the vocabulary)."""
        if not 0 <= int(index) < self._size:
            raise IndexError(f"token id {index} out of range [0, {self._size})")
        return self._inv.get(int(index), WORDPIECE_UNK)

    def piece_to_id(self, piece: str) -> int:
        """Id of `piece`, or the [UNK] id when the vocabulary lacks it."""
        return self.vocab.get(piece, self._unk)

    def _special(self, piece: str) -> int:
        if piece not in self.vocab:
            raise ModelError(f"{self.path}: WordPiece vocabulary has no '{piece}' entry (not a BERT/ALBERT vocab)")
        return self.vocab[piece]

    @property
    def pad_id(self) -> int:
        """Id of [PAD] (special ids: a ModelError when the vocabulary lacks the entry)."""
        return self._special(WORDPIECE_PAD)

    @property
    def unk_id(self) -> int:
        return self._unk

    @property
    def cls_id(self) -> int:
        return self._special(CLS)

    @property
    def sep_id(self) -> int:
        return self._special(SEP)

    @property
    def mask_id(self) -> int:
        return self._special(MASK)

    # -- tokenization
    def basic_tokenize(self, text: str) -> list[str]:
        """BERT ``BasicTokenizer``: words and punctuation, normalized (steps 1-6)."""
        if self.do_lower_case:
            text = lower_per_char(text)
        out = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or _is_control(ch):
                continue
            if _is_whitespace(ch):
                out.append(" ")
            elif _is_cjk(cp):
                out.append(f" {ch} ")
            else:
                out.append(ch)
        text = unicodedata.normalize("NFC", "".join(out))
        words: list[str] = []
        for word in text.split():
            if self.do_lower_case:
                word = unicodedata.normalize("NFD", word.lower())
                word = "".join(c for c in word if unicodedata.category(c) != "Mn")
            current: list[str] = []
            for ch in word:
                if _is_punctuation(ch):
                    if current:
                        words.append("".join(current))
                        current = []
                    words.append(ch)
                else:
                    current.append(ch)
            if current:
                words.append("".join(current))
        return [w for w in words if w]

    def wordpiece(self, word: str) -> list[str]:
        """Greedy longest-match-first pieces of one word (``[UNK]`` if it cannot be covered)."""
        if len(word) > MAX_INPUT_CHARS_PER_WORD:
            return [WORDPIECE_UNK]
        vocab = self.vocab
        pieces = []
        start, n = 0, len(word)
        while start < n:
            end = n
            found = None
            while start < end:
                sub = word[start:end]
                if start > 0:
                    sub = WORDPIECE_SUFFIX + sub
                if sub in vocab:
                    found = sub
                    break
                end -= 1
            if found is None:
                return [WORDPIECE_UNK]
            pieces.append(found)
            start = end
        return pieces

    def tokenize(self, text: str) -> list[str]:
        """Pieces, as HF 4.x ``BertTokenizer.tokenize``."""
        out: list[str] = []
        for word in self.basic_tokenize(text):
            out.extend(self.wordpiece(word))
        return out

    def encode(self, text: str) -> list[int]:
        """Token ids without [CLS]/[SEP]."""
        unk, vocab = self._unk, self.vocab
        return [vocab.get(p, unk) for p in self.tokenize(text)]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """`encode` of each text."""
        return [self.encode(t) for t in texts]

    def decode(self, ids: Sequence[int]) -> str:
        """Pieces joined, ``##`` continuations glued to the previous piece (as HF, without cleanup)."""
        return " ".join(self.id_to_piece(i) for i in ids).replace(" " + WORDPIECE_SUFFIX, "").strip()
