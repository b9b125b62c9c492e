"""In-graph ALBERT tokenization: strings -> token_ids / segment_ids / padding_mask.

Only TensorFlow and tensorflow_text ops, so it runs inside ``tf.function`` and is saved with a SavedModel (the
SentencePiece model bytes are stored in it). It reproduces :class:`albert_cli.text.spm.SentencePieceTokenizer`
(itself HF 4.x ``AlbertTokenizer``) step by step: per-character lowercasing (``Σ`` -> ``σ`` first, as HF),
whitespace collapsing, ``````/``''`` -> ``"``, NFKD and combining marks removed, lowercasing again, SentencePiece
pieces with the digit-comma re-split, then ``[CLS] A [SEP] (B [SEP])`` truncated longest-first as
``packing.pack`` and padded to the longest in the batch.

Character classes (whitespace, combining marks, digits) are generated from Python's ``unicodedata`` when the
tokenizer is built, and characters whose ``tf.strings.lower`` differs from ``str.lower`` are fixed with a lookup
table, so that both sides use Python's Unicode tables. Known differences: tensorflow_text's ICU knows newer
code points than Python 3.11, which NFKD may decompose in-graph only; and, as in the Python tokenizer, special
tokens written in the text are ordinary text. The agreement is checked by ``tests/test_tf_tokenizer.py``.
"""

from __future__ import annotations

import functools
import sys
import unicodedata

import tensorflow as tf
import tensorflow_text as tf_text

from albert_cli.text.constants import CLS, SEP, SPIECE_UNDERLINE, SPM_PAD
from albert_cli.text.normalize import NormalizerOptions


def _ranges(pred) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    start = prev = None
    for cp in range(sys.maxunicode + 1):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        if pred(chr(cp)):
            if start is None:
                start = cp
            elif cp != prev + 1:
                out.append((start, prev))
                start = cp
            prev = cp
    if start is not None:
        out.append((start, prev))
    return out


def _char_class(ranges) -> str:
    parts = []
    for lo, hi in ranges:
        parts.append(f"\\x{{{lo:X}}}" if lo == hi else f"\\x{{{lo:X}}}-\\x{{{hi:X}}}")
    return "[" + "".join(parts) + "]"


@functools.lru_cache(maxsize=None)
def _classes() -> dict[str, str]:
    return {
        "space": _char_class(_ranges(str.isspace)),
        "combining": _char_class(_ranges(lambda c: unicodedata.combining(c) != 0)),
        "digit": _char_class(_ranges(str.isdigit)),
    }


@functools.lru_cache(maxsize=None)
def _cased_chars() -> tuple[str, ...]:
    return tuple(
        chr(cp)
        for cp in range(sys.maxunicode + 1)
        if not 0xD800 <= cp <= 0xDFFF and chr(cp).lower() != chr(cp)
    )


def _lower_mismatches() -> dict[int, int]:
    """Code points whose ``tf.strings.lower`` differs from Python's (single code point results only)."""
    chars = _cased_chars()
    got = tf.strings.lower(tf.constant([c.encode("utf-8") for c in chars]), encoding="utf-8").numpy()
    fixes = {}
    for c, g in zip(chars, got):
        want = c.lower()
        if want.encode("utf-8") != g:
            if len(want) != 1:  # pragma: no cover - not the case with TF 2.21 / Python 3.11
                raise RuntimeError(f"cannot reproduce lowercase of U+{ord(c):04X} in-graph")
            fixes[ord(c)] = ord(want)
    return fixes


def _apply_where(x, mask, fn):
    """fn(x[mask]) stitched back into x; fn runs only on the (usually empty) subset."""
    idx_t = tf.cast(tf.where(mask)[:, 0], tf.int32)
    idx_f = tf.cast(tf.where(tf.logical_not(mask))[:, 0], tf.int32)
    out = tf.dynamic_stitch([idx_f, idx_t], [tf.gather(x, idx_f), fn(tf.gather(x, idx_t))])
    return tf.reshape(out, tf.shape(x))


class TFAlbertTokenizer(tf.Module):
    """Callable: ``tok(texts)`` or ``tok(texts, pairs)`` with tf.string [B] -> dict of int32 [B, L].

    ``L`` is the longest packed example in the batch (at most `max_seq_length`).
    Also exported for SavedModel: ``call_single(texts)``, ``call_pair(texts, pairs)``
    and ``encode_ids(texts)`` (ragged ids without [CLS]/[SEP]).
    """

    def __init__(
        self,
        model_bytes: bytes,
        normalizer: NormalizerOptions | None = None,
        max_seq_length: int = 512,
        name: str | None = "albert_tokenizer",
        signatures: bool = True,
    ):
        """`signatures=False` leaves out the standalone ``call_single``/``call_pair``/``encode_ids``
        functions: a SavedModel that embeds the tokenizer in its own signatures then
        traces the tokenization graph once per signature instead of three more times."""
        super().__init__(name=name)
        if int(max_seq_length) < 3:
            raise ValueError("max_seq_length must be at least 3")
        self.normalizer = normalizer or NormalizerOptions()
        self.max_seq_length = int(max_seq_length)
        self._sp = tf_text.SentencepieceTokenizer(model=model_bytes, out_type=tf.string)
        specials = [SPM_PAD, CLS, SEP]
        ids = self._sp.string_to_id(tf.constant(specials)).numpy().tolist()
        back = [s.decode("utf-8") for s in self._sp.id_to_string(tf.constant(ids)).numpy()]
        for piece, got in zip(specials, back):
            if piece != got:
                raise ValueError(f"SentencePiece model has no '{piece}' piece (not an ALBERT vocabulary)")
        self.pad_id, self.cls_id, self.sep_id = (int(i) for i in ids)
        classes = _classes()
        self._space_re = classes["space"] + "+"
        self._combining_re = classes["combining"]
        self._digit_comma_re = "(?s).*" + classes["digit"] + ","
        self._set_lower_fixes(self.normalizer.lowercase)
        if signatures:
            self._add_signatures()

    def _set_lower_fixes(self, lowercase: bool) -> None:
        """The lookup table for the characters that ``tf.strings.lower`` lowercases unlike ``str.lower``."""
        fixes = _lower_mismatches() if lowercase else {}
        self._lower_fix_re = None
        if fixes:
            self._lower_fix_re = "(?s).*" + _char_class([(k, k) for k in sorted(fixes)]) + ".*"
            self._lower_table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(list(fixes), tf.int32), tf.constant(list(fixes.values()), tf.int32)
                ),
                default_value=-1,
            )

    def _add_signatures(self) -> None:
        """``call_single``, ``call_pair`` and ``encode_ids`` as ``tf.function``s, for a SavedModel."""
        string = tf.TensorSpec([None], tf.string)
        self.call_single = tf.function(self._call_single, input_signature=[string])
        self.call_pair = tf.function(self._call_pair, input_signature=[string, string])
        self.encode_ids = tf.function(self.encode, input_signature=[string])

    # ------------------------------------------------------------------ normalization
    def _lower(self, x, per_char: bool = False):
        if per_char:
            # tf.strings.lower (ICU) applies the Greek final-sigma rule, like str.lower;
            # HF's first, per-character pass does not.
            x = tf.strings.regex_replace(x, "\u03a3", "\u03c3")
        has_nul = tf.strings.regex_full_match(x, "(?s).*\\x00.*")
        x = _apply_where(
            x,
            has_nul,
            # (a NUL separator attribute would be cut, so append NUL to every part and drop the last)
            lambda s: tf.strings.regex_replace(
                tf.strings.reduce_join(
                    tf.strings.lower(tf.strings.split(s, "\x00"), encoding="utf-8") + tf.constant("\x00"), axis=-1
                ),
                "\\x00$",
                "",
            ),
        )
        x = tf.where(has_nul, x, tf.strings.lower(x, encoding="utf-8"))
        if self._lower_fix_re is not None:

            def fix(s):
                cps = tf.strings.unicode_decode(s, "UTF-8")
                mapped = tf.ragged.map_flat_values(self._lower_table.lookup, cps)
                cps = tf.ragged.map_flat_values(tf.where, mapped >= 0, mapped, cps)
                return tf.strings.unicode_encode(cps, "UTF-8")

            x = _apply_where(x, tf.strings.regex_full_match(x, self._lower_fix_re), fix)
        return x

    def normalize(self, texts):
        """tf.string [B] -> normalized tf.string [B] (what SentencePiece sees)."""
        x = tf.convert_to_tensor(texts, tf.string)
        opts = self.normalizer
        if opts.lowercase:
            x = self._lower(x, per_char=True)
        if opts.collapse_whitespace:
            x = tf.strings.regex_replace(x, self._space_re, " ")
            x = tf.strings.regex_replace(x, "^ | $", "")
        x = tf.strings.regex_replace(x, "``", '"')
        x = tf.strings.regex_replace(x, "''", '"')
        if opts.strip_accents:
            x = tf_text.normalize_utf8(x, "NFKD")
            x = tf.strings.regex_replace(x, self._combining_re, "")
        if opts.lowercase:
            x = self._lower(x)
        return x

    # ------------------------------------------------------------------ pieces and ids
    def tokenize(self, texts):
        """tf.string [B] -> ragged tf.string pieces [B, (n)] (HF ``AlbertTokenizer._tokenize``)."""
        pieces = self._sp.tokenize(self.normalize(texts))
        flat = pieces.flat_values
        m = tf.strings.regex_full_match(flat, self._digit_comma_re)
        sel = tf.boolean_mask(flat, m)
        core = tf.strings.regex_replace(tf.strings.regex_replace(sel, ",$", ""), SPIECE_UNDERLINE, "")
        sub = self._sp.tokenize(core)  # [M, (k)]
        sub = tf.RaggedTensor.from_row_splits(sub.values, tf.cast(sub.row_splits, tf.int64))
        # A piece without a leading "▁" must not gain one: strip it from the first sub-piece (drop a lone "▁").
        strip_row = tf.logical_not(tf.strings.regex_full_match(sel, "(?s)" + SPIECE_UNDERLINE + ".*"))
        vals = sub.values
        pos_in_row = tf.range(tf.size(vals, out_type=tf.int64)) - tf.gather(sub.row_starts(), sub.value_rowids())
        strip = tf.logical_and(tf.equal(pos_in_row, 0), tf.gather(strip_row, sub.value_rowids()))
        vals = tf.where(strip, tf.strings.regex_replace(vals, "^" + SPIECE_UNDERLINE, ""), vals)
        sub = tf.ragged.boolean_mask(sub.with_values(vals), sub.with_values(tf.not_equal(vals, "")))
        comma = tf.RaggedTensor.from_tensor(tf.fill(tf.stack([tf.size(sel), 1]), ","), row_splits_dtype=tf.int64)
        sub = tf.concat([sub, comma], axis=1)
        single = tf.RaggedTensor.from_tensor(tf.expand_dims(flat, 1), row_splits_dtype=tf.int64)
        stacked = tf.concat([single, sub], axis=0)  # [N + M, (c)]
        n = tf.size(flat, out_type=tf.int64)
        index = tf.where(m, n + tf.cumsum(tf.cast(m, tf.int64), exclusive=True), tf.range(n))
        expanded = tf.gather(stacked, index)  # [N, (c)]
        splits = tf.cast(pieces.row_splits, tf.int64)
        return tf.RaggedTensor.from_row_splits(expanded, splits).merge_dims(1, 2)

    def encode(self, texts):
        """tf.string [B] -> ragged int32 ids [B, (n)], without [CLS]/[SEP]."""
        pieces = self.tokenize(texts)
        return tf.ragged.map_flat_values(self._sp.string_to_id, pieces)

    # ------------------------------------------------------------------ packing
    def _pack(self, ids_a, ids_b=None):
        cls = tf.constant([[self.cls_id]], tf.int32)
        sep = tf.constant([[self.sep_id]], tf.int32)
        batch = ids_a.nrows()
        cls_col = tf.RaggedTensor.from_tensor(tf.tile(cls, tf.stack([batch, 1])), row_splits_dtype=tf.int64)
        sep_col = tf.RaggedTensor.from_tensor(tf.tile(sep, tf.stack([batch, 1])), row_splits_dtype=tf.int64)
        ids_a = tf.RaggedTensor.from_row_splits(ids_a.values, tf.cast(ids_a.row_splits, tf.int64))
        if ids_b is None:
            a = ids_a[:, : self.max_seq_length - 2]
            tokens = tf.concat([cls_col, a, sep_col], axis=1)
            segments = tf.zeros_like(tokens)
        else:
            ids_b = tf.RaggedTensor.from_row_splits(ids_b.values, tf.cast(ids_b.row_splits, tf.int64))
            budget = tf.constant(self.max_seq_length - 3, tf.int64)
            la, lb = ids_a.row_lengths(), ids_b.row_lengths()
            shorter = tf.minimum(la, lb)
            over = la + lb > budget
            one_side = budget >= 2 * shorter
            na = tf.where(over, tf.where(one_side, tf.where(la > lb, budget - lb, la), (budget + 1) // 2), la)
            nb = tf.where(over, tf.where(one_side, tf.where(la > lb, lb, budget - la), budget // 2), lb)
            a = tf.ragged.boolean_mask(ids_a, tf.ragged.range(la) < tf.expand_dims(na, 1))
            b = tf.ragged.boolean_mask(ids_b, tf.ragged.range(lb) < tf.expand_dims(nb, 1))
            first = tf.concat([cls_col, a, sep_col], axis=1)
            second = tf.concat([b, sep_col], axis=1)
            tokens = tf.concat([first, second], axis=1)
            segments = tf.concat([tf.zeros_like(first), tf.ones_like(second)], axis=1)
        return {
            "token_ids": tokens.to_tensor(default_value=self.pad_id),
            "segment_ids": segments.to_tensor(default_value=0),
            "padding_mask": tf.ones_like(tokens).to_tensor(default_value=0),
        }

    def _call_single(self, texts):
        return self._pack(self.encode(texts))

    def _call_pair(self, texts, pairs):
        return self._pack(self.encode(texts), self.encode(pairs))

    def __call__(self, texts, pairs=None):
        if pairs is None:
            return self._call_single(texts)
        return self._call_pair(texts, pairs)


def make_tf_tokenizer(
    model_bytes: bytes, normalizer: NormalizerOptions | None = None, max_seq_length: int = 512, signatures: bool = True
) -> TFAlbertTokenizer:
    """Build the in-graph tokenizer from SentencePiece model bytes.

    Args:
        model_bytes: ``SentencePieceTokenizer.serialized_model()``.
        normalizer: the normalization of the Python tokenizer (ALBERT's defaults when None).
        max_seq_length: the longest packed example, [CLS] and [SEP]s included.
        signatures: False leaves out the standalone ``call_single`` / ``call_pair`` / ``encode_ids``.

    Example:
        >>> tok = make_tf_tokenizer(sp.serialized_model(), sp.normalizer, 128)  # doctest: +SKIP
        >>> tok(tf.constant(["Hello world"]))["token_ids"]  # doctest: +SKIP
    """
    return TFAlbertTokenizer(model_bytes, normalizer=normalizer, max_seq_length=max_seq_length, signatures=signatures)
