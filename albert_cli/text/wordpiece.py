"""WordPiece vocabularies (Chinese ALBERT releases): BERT's tokenizer, in Python and in-graph.

Google's Chinese ALBERT (``vocab_chinese.txt``), brightmart's albert_zh
(``vocab.txt``) and the HF ports of both tokenize with BERT's tokenizer, not
SentencePiece. :class:`WordPieceTokenizer` reproduces HF 4.x
``BertTokenizer(vocab_file, do_lower_case=...)`` (``tokenize_chinese_chars=True``,
``strip_accents=None``):

1. with ``do_lower_case``: lowercase per character (HF's
   ``PreTrainedTokenizer.tokenize`` does this before ``_tokenize``; ``Σ`` -> ``σ``)
2. clean: drop NUL, U+FFFD and control/format characters (Unicode category
   ``C*`` except tab, LF, CR); whitespace (space, tab, LF, CR, ``Zs``) -> space
3. spaces around every CJK ideograph (the CJK Unified Ideographs blocks of BERT)
4. NFC, then split on Python whitespace
5. with ``do_lower_case``: ``str.lower`` per word, NFD and drop ``Mn`` marks
6. split off every punctuation character (ASCII non-alphanumerics and ``P*``)
7. greedy longest-match-first WordPiece with ``##`` continuations; a word of
   more than 100 characters, or one that cannot be covered, is ``[UNK]``.

Special ids are looked up in the vocabulary (``[PAD] [UNK] [CLS] [SEP] [MASK]``;
in Google's Chinese vocab they are 0, 100, 101, 102, 103).

Known difference from HF: the text ``[CLS]``, ``[SEP]``, ``[MASK]``, ``[PAD]`` or
``[UNK]`` inside an input string is ordinary text here (HF keeps it as the
special token), as with :class:`albert_cli.text.spm.SentencePieceTokenizer`.

:func:`make_tf_wordpiece_tokenizer` builds the in-graph version (TensorFlow and
tensorflow_text are imported only then). See its docstring for why it does not
use ``tensorflow_text.BertTokenizer``'s own normalization.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import Sequence

from albert_cli.errors import ModelError
from albert_cli.text.normalize import lower_per_char

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
MAX_INPUT_CHARS_PER_WORD = 100
SUFFIX = "##"

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
    """

    kind = "wordpiece"

    def __init__(self, vocab: dict[str, int], do_lower_case: bool = True, path: str | None = None):
        self.vocab = vocab
        self.do_lower_case = bool(do_lower_case)
        self.path = path
        self._inv = {i: p for p, i in vocab.items()}
        size = max(vocab.values()) + 1
        self._size = size
        if UNK not in vocab:
            raise ModelError(f"{path}: WordPiece vocabulary has no '{UNK}' entry")
        self._unk = vocab[UNK]

    @classmethod
    def from_file(cls, vocab_path: str | os.PathLike, do_lower_case: bool = True) -> "WordPieceTokenizer":
        return cls(load_vocab(vocab_path), do_lower_case=do_lower_case, path=str(vocab_path))

    # -- vocabulary
    @property
    def vocab_size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return self._size

    def id_to_piece(self, index: int) -> str:
        if not 0 <= int(index) < self._size:
            raise IndexError(f"token id {index} out of range [0, {self._size})")
        return self._inv.get(int(index), UNK)

    def piece_to_id(self, piece: str) -> int:
        return self.vocab.get(piece, self._unk)

    def _special(self, piece: str) -> int:
        if piece not in self.vocab:
            raise ModelError(f"{self.path}: WordPiece vocabulary has no '{piece}' entry (not a BERT/ALBERT vocab)")
        return self.vocab[piece]

    @property
    def pad_id(self) -> int:
        return self._special(PAD)

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
            return [UNK]
        vocab = self.vocab
        pieces = []
        start, n = 0, len(word)
        while start < n:
            end = n
            found = None
            while start < end:
                sub = word[start:end]
                if start > 0:
                    sub = SUFFIX + sub
                if sub in vocab:
                    found = sub
                    break
                end -= 1
            if found is None:
                return [UNK]
            pieces.append(found)
            start = end
        return pieces

    def tokenize(self, text: str) -> list[str]:
        out: list[str] = []
        for word in self.basic_tokenize(text):
            out.extend(self.wordpiece(word))
        return out

    def encode(self, text: str) -> list[int]:
        """Token ids without [CLS]/[SEP]."""
        unk, vocab = self._unk, self.vocab
        return [vocab.get(p, unk) for p in self.tokenize(text)]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Sequence[int]) -> str:
        """Pieces joined, ``##`` continuations glued to the previous piece (as HF, without cleanup)."""
        return " ".join(self.id_to_piece(i) for i in ids).replace(" " + SUFFIX, "").strip()


# --------------------------------------------------------------------------- in-graph


def make_tf_wordpiece_tokenizer(
    vocab_path: str | os.PathLike, lower_case: bool = True, max_seq_length: int = 512, signatures: bool = True
):
    """In-graph WordPiece tokenizer with the call interface of ``tf_tokenizer.TFAlbertTokenizer``.

    ``tok(texts)`` / ``tok(texts, pairs)``: tf.string [B] -> dict of int32
    ``token_ids`` / ``segment_ids`` / ``padding_mask`` [B, L], L = longest
    packed example (at most `max_seq_length`); also ``call_single``,
    ``call_pair`` and ``encode_ids`` as ``tf.function``s for a SavedModel.
    Imports TensorFlow; the vocabulary is stored in the graph as lookup tables.
    ``signatures=False`` leaves out those three standalone functions (for a
    SavedModel that calls the tokenizer inside its own signatures).

    Why not ``tensorflow_text.BertTokenizer(vocab, lower_case=...)`` alone: on
    the 33 fixture strings (tests/fixtures/wordpiece) it gives other ids than HF
    ``BertTokenizer`` for 10 with ``lower_case=True`` (including plain Chinese
    sentences: full-width ``，`` becomes ``,``) and 7 with ``lower_case=False``, because its
    ``lower_case`` is ICU ``NFKC_Casefold`` (``ß`` -> ``ss``, ``ﬁ`` -> ``fi``,
    full-width -> ASCII, ``①`` -> ``1``), it turns format characters (``Cf``,
    e.g. U+200B) into spaces where HF deletes them, splits on ASCII ``\\s``
    only (U+3000, U+2003 are not separators with ``lower_case=False``), never
    applies NFC, and its word limit is 100 *bytes* (HF: 100 characters). So
    the normalization and word splitting are done here with regex ops whose
    character classes are generated from Python's ``unicodedata`` (as in
    ``tf_tokenizer``), and only ``tensorflow_text.WordpieceTokenizer`` (the
    greedy longest match) is used from tensorflow_text. This version gives
    HF's ids on all 33 fixture strings in both settings and survives a
    SavedModel round trip. Remaining known differences: Unicode-version
    differences between Python's ``unicodedata`` and tensorflow_text's ICU for
    NFC/NFD of newly assigned characters, and (as the Python tokenizer) special
    tokens written in the text are ordinary text.
    """
    return TFWordPieceTokenizer(
        load_vocab(vocab_path), lower_case=lower_case, max_seq_length=max_seq_length, signatures=signatures
    )


def _tf_wordpiece_class():
    """Define the TensorFlow class on first use (keeps this module free of TensorFlow)."""
    cls = globals().get("_TF_CLASS")
    if cls is not None:
        return cls

    import tensorflow as tf
    import tensorflow_text as tf_text

    from albert_cli.text.tf_tokenizer import TFAlbertTokenizer, _char_class, _lower_mismatches, _ranges

    classes = {
        # removed by HF _clean_text (NUL, U+FFFD, category C* except tab/LF/CR)
        "drop": _char_class(_ranges(lambda c: c not in "\t\n\r" and (ord(c) in (0, 0xFFFD) or _is_control(c)))),
        # separators: HF whitespace plus what str.split() also splits on (U+2028, U+2029, ...)
        "space": _char_class(
            _ranges(lambda c: (_is_whitespace(c) or c.isspace()) and not _is_control(c) and ord(c) not in (0, 0xFFFD))
        ),
        "mn": _char_class(_ranges(lambda c: unicodedata.category(c) == "Mn")),
        "punct": _char_class(_ranges(_is_punctuation)),
        "cjk": _char_class(list(CJK_RANGES)),
    }

    class _TFWordPieceTokenizer(TFAlbertTokenizer):
        """``tok(texts)`` or ``tok(texts, pairs)``: tf.string [B] -> dict of int32 [B, L] (see ``make_tf_wordpiece_tokenizer``)."""

        def __init__(
            self,
            vocab: dict,
            lower_case: bool = True,
            max_seq_length: int = 512,
            name: str | None = "wordpiece_tokenizer",
            signatures: bool = True,
        ):
            tf.Module.__init__(self, name=name)
            if int(max_seq_length) < 3:
                raise ValueError("max_seq_length must be at least 3")
            for piece in (PAD, UNK, CLS, SEP):
                if piece not in vocab:
                    raise ValueError(f"WordPiece vocabulary has no '{piece}' entry")
            self.lower_case = bool(lower_case)
            self.max_seq_length = int(max_seq_length)
            self.pad_id, self.unk_id, self.cls_id, self.sep_id = (int(vocab[p]) for p in (PAD, UNK, CLS, SEP))
            self.normalizer = None
            keys = list(vocab)
            # membership table (dense ids, as the WordPiece kernel wants) and piece -> HF id table
            self._member = tf.lookup.StaticVocabularyTable(
                tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.range(len(keys), dtype=tf.int64)),
                num_oov_buckets=1,
            )
            self._ids = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant([vocab[k] for k in keys], tf.int64)),
                default_value=self.unk_id,
            )
            self._wordpiece = tf_text.WordpieceTokenizer(
                self._member,
                suffix_indicator=SUFFIX,
                max_bytes_per_word=4 * MAX_INPUT_CHARS_PER_WORD + 4,
                token_out_type=tf.string,
                unknown_token=UNK,
                split_unknown_characters=False,
            )
            self._drop_re = classes["drop"]
            self._space_re = classes["space"]
            self._mn_re = classes["mn"]
            self._punct_re = classes["punct"]
            self._cjk_re = "(" + classes["cjk"] + ")"
            self._lower_fix_re = None
            fixes = _lower_mismatches() if self.lower_case else {}
            if fixes:
                self._lower_fix_re = "(?s).*" + _char_class([(k, k) for k in sorted(fixes)]) + ".*"
                self._lower_table = tf.lookup.StaticHashTable(
                    tf.lookup.KeyValueTensorInitializer(
                        tf.constant(list(fixes), tf.int32), tf.constant(list(fixes.values()), tf.int32)
                    ),
                    default_value=-1,
                )
            if signatures:
                string = tf.TensorSpec([None], tf.string)
                self.call_single = tf.function(self._call_single, input_signature=[string])
                self.call_pair = tf.function(self._call_pair, input_signature=[string, string])
                self.encode_ids = tf.function(self.encode, input_signature=[string])

        def normalize(self, texts):
            """tf.string [B] -> cleaned, CJK-spaced, NFC (and lowercased, accent-stripped) text."""
            x = tf.convert_to_tensor(texts, tf.string)
            x = tf.strings.regex_replace(x, self._drop_re, "")  # (NUL goes first: tf lower stops at NUL)
            if self.lower_case:
                x = self._lower(x, per_char=True)
            x = tf.strings.regex_replace(x, self._space_re, " ")
            x = tf.strings.regex_replace(x, self._cjk_re, " \\1 ")
            x = tf_text.normalize_utf8(x, "NFC")
            if self.lower_case:
                x = tf_text.normalize_utf8(x, "NFD")
                x = tf.strings.regex_replace(x, self._mn_re, "")
            return x

        def words(self, texts):
            """tf.string [B] -> ragged words and punctuation [B, (w)] (HF ``BasicTokenizer``)."""
            x = self.normalize(texts)
            return tf_text.regex_split(x, " +|" + self._punct_re, self._punct_re)

        def tokenize(self, texts):
            """tf.string [B] -> ragged WordPiece strings [B, (n)]."""
            words = self.words(texts)
            flat = words.flat_values
            too_long = tf.strings.length(flat, unit="UTF8_CHAR") > MAX_INPUT_CHARS_PER_WORD
            flat = tf.where(too_long, tf.constant(UNK), flat)
            pieces = self._wordpiece.tokenize(flat)  # [N, (k)]
            return words.with_flat_values(pieces).merge_dims(1, 2)

        def encode(self, texts):
            """tf.string [B] -> ragged int32 ids [B, (n)], without [CLS]/[SEP]."""
            pieces = self.tokenize(texts)
            return tf.ragged.map_flat_values(lambda p: tf.cast(self._ids.lookup(p), tf.int32), pieces)

    _TFWordPieceTokenizer.__name__ = _TFWordPieceTokenizer.__qualname__ = "TFWordPieceTokenizer"
    globals()["_TF_CLASS"] = _TFWordPieceTokenizer
    return _TFWordPieceTokenizer


def TFWordPieceTokenizer(  # noqa: N802
    vocab: dict, lower_case: bool = True, max_seq_length: int = 512, signatures: bool = True
):
    """Build the in-graph tokenizer from a loaded vocabulary (see ``make_tf_wordpiece_tokenizer``)."""
    return _tf_wordpiece_class()(vocab, lower_case=lower_case, max_seq_length=max_seq_length, signatures=signatures)
