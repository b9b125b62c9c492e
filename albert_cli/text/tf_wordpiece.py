"""In-graph WordPiece tokenization (imports TensorFlow), with the ids of `albert_cli.text.wordpiece`.

Why not ``tensorflow_text.BertTokenizer(vocab, lower_case=...)`` alone: it gives other ids than HF's
``BertTokenizer`` for some strings, plain Chinese sentences included, because its ``lower_case`` is ICU
``NFKC_Casefold`` (``ß`` -> ``ss``, full-width -> ASCII, ``①`` -> ``1``), it turns format characters (``Cf``) into
spaces where HF deletes them, splits on ASCII ``\\s`` only, never applies NFC, and limits words to 100 *bytes*
(HF: characters). So normalization and word splitting are regex ops whose character classes come from Python's
``unicodedata`` (as in `tf_tokenizer`), and only the greedy longest match is tensorflow_text's
``WordpieceTokenizer``. The ids are checked against HF's by ``tests/test_wordpiece.py``. Remaining known
differences: Unicode-version differences between Python and tensorflow_text's ICU for NFC/NFD of newly assigned
characters, and (as in the Python tokenizer) special tokens written in the text are ordinary text.
"""

from __future__ import annotations

import functools
import os
import unicodedata

import tensorflow as tf
import tensorflow_text as tf_text

from albert_cli.text.constants import CLS, SEP, WORDPIECE_PAD, WORDPIECE_SUFFIX, WORDPIECE_UNK
from albert_cli.text.tf_tokenizer import TFAlbertTokenizer, _char_class, _ranges
from albert_cli.text.wordpiece import (
    CJK_RANGES,
    MAX_INPUT_CHARS_PER_WORD,
    _is_control,
    _is_punctuation,
    _is_whitespace,
    load_vocab,
)


def _dropped(c: str) -> bool:
    # removed by HF _clean_text: NUL, U+FFFD, category C* except tab/LF/CR
    return c not in "\t\n\r" and (ord(c) in (0, 0xFFFD) or _is_control(c))


def _separator(c: str) -> bool:
    # HF whitespace plus what str.split() also splits on (U+2028, U+2029, ...)
    return (_is_whitespace(c) or c.isspace()) and not _is_control(c) and ord(c) not in (0, 0xFFFD)


@functools.lru_cache(maxsize=None)
def _classes() -> dict[str, str]:
    """Regex character classes of BERT's basic tokenizer (built once: each scans every code point)."""
    return {
        "drop": _char_class(_ranges(_dropped)),
        "space": _char_class(_ranges(_separator)),
        "mn": _char_class(_ranges(lambda c: unicodedata.category(c) == "Mn")),
        "punct": _char_class(_ranges(_is_punctuation)),
        "cjk": _char_class(list(CJK_RANGES)),
    }


class TFWordPieceTokenizer(TFAlbertTokenizer):
    """``tok(texts)`` or ``tok(texts, pairs)``: tf.string [B] -> dict of int32 [B, L].

    Same call interface, packing and SavedModel functions as `TFAlbertTokenizer`.

    Args:
        vocab: {piece: id}, as `albert_cli.text.wordpiece.load_vocab` reads it.
        lower_case: BERT's ``do_lower_case`` (lowercase, strip accents).
        max_seq_length: the longest packed example, [CLS] and [SEP]s included.
        signatures: False leaves out the standalone ``call_single`` / ``call_pair`` / ``encode_ids``.
    """

    def __init__(
        self,
        vocab: dict,
        lower_case: bool = True,
        max_seq_length: int = 512,
        name: str | None = "wordpiece_tokenizer",
        signatures: bool = True,
    ):
        tf.Module.__init__(self, name=name)  # not TFAlbertTokenizer's: there is no SentencePiece model
        if int(max_seq_length) < 3:
            raise ValueError("max_seq_length must be at least 3")
        specials = (WORDPIECE_PAD, WORDPIECE_UNK, CLS, SEP)
        for piece in specials:
            if piece not in vocab:
                raise ValueError(f"WordPiece vocabulary has no '{piece}' entry")
        self.lower_case = bool(lower_case)
        self.max_seq_length = int(max_seq_length)
        self.pad_id, self.unk_id, self.cls_id, self.sep_id = (int(vocab[p]) for p in specials)
        self.normalizer = None
        self._set_tables(vocab)
        classes = _classes()
        self._drop_re = classes["drop"]
        self._space_re = classes["space"]
        self._mn_re = classes["mn"]
        self._punct_re = classes["punct"]
        self._cjk_re = "(" + classes["cjk"] + ")"
        self._set_lower_fixes(self.lower_case)
        if signatures:
            self._add_signatures()

    def _set_tables(self, vocab: dict) -> None:
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
            suffix_indicator=WORDPIECE_SUFFIX,
            max_bytes_per_word=4 * MAX_INPUT_CHARS_PER_WORD + 4,
            token_out_type=tf.string,
            unknown_token=WORDPIECE_UNK,
            split_unknown_characters=False,
        )

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
        flat = tf.where(too_long, tf.constant(WORDPIECE_UNK), flat)
        pieces = self._wordpiece.tokenize(flat)  # [N, (k)]
        return words.with_flat_values(pieces).merge_dims(1, 2)

    def encode(self, texts):
        """tf.string [B] -> ragged int32 ids [B, (n)], without [CLS]/[SEP]."""
        pieces = self.tokenize(texts)
        return tf.ragged.map_flat_values(lambda p: tf.cast(self._ids.lookup(p), tf.int32), pieces)


def make_tf_wordpiece_tokenizer(
    vocab_path: str | os.PathLike, lower_case: bool = True, max_seq_length: int = 512, signatures: bool = True
) -> TFWordPieceTokenizer:
    """In-graph WordPiece tokenizer read from a ``vocab.txt`` (the vocabulary is stored in the graph).

    Args:
        vocab_path: the WordPiece vocabulary file.
        lower_case: BERT's ``do_lower_case``.
        max_seq_length: the longest packed example (``tok(texts)`` pads to the longest in the batch).
        signatures: False leaves out the standalone ``call_single`` / ``call_pair`` / ``encode_ids`` (for a
            SavedModel that calls the tokenizer inside its own signatures).

    Example:
        >>> tok = make_tf_wordpiece_tokenizer("vocab.txt", lower_case=True)  # doctest: +SKIP
        >>> tok(tf.constant(["你好"]))["token_ids"]  # doctest: +SKIP
    """
    return TFWordPieceTokenizer(
        load_vocab(vocab_path), lower_case=lower_case, max_seq_length=max_seq_length, signatures=signatures
    )
