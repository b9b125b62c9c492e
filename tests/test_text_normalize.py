"""Unit tests for albert_cli.text.normalize and albert_cli.text.packing (no TensorFlow)."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from albert_cli.text.normalize import NormalizerOptions, lower_per_char, normalize_text, preprocess_text
from albert_cli.text.packing import pack, pack_batch, truncated_lengths


def hf_preprocess_text(inputs, remove_space=True, keep_accents=False, do_lower_case=True):
    # verbatim logic of transformers 4.57 AlbertTokenizer.preprocess_text
    if remove_space:
        outputs = " ".join(inputs.strip().split())
    else:
        outputs = inputs
    outputs = outputs.replace("``", '"').replace("''", '"')
    if not keep_accents:
        outputs = unicodedata.normalize("NFKD", outputs)
        outputs = "".join([c for c in outputs if not unicodedata.combining(c)])
    if do_lower_case:
        outputs = outputs.lower()
    return outputs


@pytest.mark.parametrize(
    "text, expected",
    [
        ("  Hello\t\tWORLD \n", "hello world"),
        ("café naïve Zürich", "cafe naive zurich"),
        ("``quoted'' ''x''", '"quoted" "x"'),
        ("'''", "\"'"),
        ("\u3000a\u00a0b\u2003c\x1c", "a b c"),
        ("ΟΔΟΣ", "οδος"),
        ("", ""),
        ("ﬁ ½ Ⅻ", "fi 1⁄2 xii"),
    ],
)
def test_preprocess_text_defaults(text, expected):
    assert preprocess_text(text) == expected


def test_preprocess_text_options():
    opts = NormalizerOptions(lowercase=False, strip_accents=False)
    assert preprocess_text("  Café  ``x'' ", opts) == 'Café "x"'
    opts = NormalizerOptions(collapse_whitespace=False)
    assert preprocess_text(" a  B ", opts) == " a  b "


def test_options_round_trip():
    opts = NormalizerOptions(lowercase=False, strip_accents=True, collapse_whitespace=False)
    assert NormalizerOptions.from_dict(opts.to_dict()) == opts
    assert NormalizerOptions.from_dict(None) == NormalizerOptions()
    assert NormalizerOptions.from_dict({"lowercase": False, "future_option": 1}) == NormalizerOptions(lowercase=False)
    with pytest.raises(ValueError):
        NormalizerOptions.from_dict({"lowercase": "yes"})
    with pytest.raises(Exception):
        opts.lowercase = True  # frozen


def test_normalize_text_lowercases_per_char_like_hf():
    # HF lowercases the raw text one character at a time before preprocess_text: no final sigma.
    assert normalize_text("ΟΔΟΣ ΣΟΦΟΣ.") == "οδοσ σοφοσ."
    assert normalize_text("ΟΔΟΣ", NormalizerOptions(lowercase=False)) == "ΟΔΟΣ"
    assert lower_per_char("AΣ b") == "aσ b"


texts = st.text(
    alphabet=st.sampled_from(list("aZ Σ\t\n\u3000\u00a0`'\"éÉ\u0301İ1,中") + [chr(0x1D6BA), "\x00"]), max_size=30
)


@settings(max_examples=300, deadline=None)
@given(texts, st.booleans(), st.booleans(), st.booleans())
def test_preprocess_text_matches_hf(text, lower, strip, collapse):
    opts = NormalizerOptions(lowercase=lower, strip_accents=strip, collapse_whitespace=collapse)
    assert preprocess_text(text, opts) == hf_preprocess_text(text, collapse, not strip, lower)
    hf_tokenize = "".join(c.lower() for c in text) if lower else text  # PreTrainedTokenizer.tokenize
    assert normalize_text(text, opts) == hf_preprocess_text(hf_tokenize, collapse, not strip, lower)


# ----------------------------------------------------------------------------- packing


def bert_truncate_seq_pair(a, b, max_length):
    a, b = list(a), list(b)
    while len(a) + len(b) > max_length:
        if len(a) > len(b):
            a.pop()
        else:
            b.pop()
    return a, b


def test_pack_single_and_pair():
    p = pack([10, 11, 12], max_seq_length=8, cls_id=2, sep_id=3)
    assert p.token_ids.tolist() == [2, 10, 11, 12, 3, 0, 0, 0]
    assert p.segment_ids.tolist() == [0] * 8
    assert p.padding_mask.tolist() == [1] * 5 + [0] * 3
    assert p.token_ids.dtype == np.int32 and p.padding_mask.dtype == np.int32
    p = pack([10, 11], [20], max_seq_length=8, cls_id=2, sep_id=3, pad_id=9)
    assert p.token_ids.tolist() == [2, 10, 11, 3, 20, 3, 9, 9]
    assert p.segment_ids.tolist() == [0, 0, 0, 0, 1, 1, 0, 0]
    token_ids, segment_ids, mask = pack(list(range(100, 120)), max_seq_length=6, cls_id=2, sep_id=3, pad=False)
    assert token_ids.tolist() == [2, 100, 101, 102, 103, 3]
    with pytest.raises(ValueError):
        pack([1], [2], max_seq_length=2, cls_id=2, sep_id=3)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 40), st.integers(0, 40), st.integers(3, 40))
def test_pair_truncation_is_bert_truncate_seq_pair(la, lb, max_len):
    a, b = list(range(100, 100 + la)), list(range(200, 200 + lb))
    ta, tb = bert_truncate_seq_pair(a, b, max_len - 3)
    assert truncated_lengths(la, lb, max_len - 3) == (len(ta), len(tb))
    p = pack(a, b, max_seq_length=max_len, cls_id=2, sep_id=3, pad=False)
    assert p.token_ids.tolist() == [2, *ta, 3, *tb, 3]
    assert p.segment_ids.tolist() == [0] * (len(ta) + 2) + [1] * (len(tb) + 1)


def test_pack_batch_dynamic_padding():
    batch = pack_batch([[5, 6, 7], [5], ([5, 6], [7, 8, 9])], max_seq_length=64, cls_id=2, sep_id=3)
    assert batch.token_ids.shape == (3, 8)
    assert batch.token_ids[1].tolist() == [2, 5, 3, 0, 0, 0, 0, 0]
    assert batch.segment_ids[2].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert batch.padding_mask.sum(axis=1).tolist() == [5, 3, 8]
    batch = pack_batch([[5] * 9], max_seq_length=64, cls_id=2, sep_id=3, pad_to_multiple_of=8)
    assert batch.token_ids.shape == (1, 16)
    batch = pack_batch([[5] * 100], max_seq_length=20, cls_id=2, sep_id=3, pad_to_multiple_of=8)
    assert batch.token_ids.shape == (1, 20)  # capped at max_seq_length
    empty = pack_batch([], max_seq_length=16, cls_id=2, sep_id=3)
    assert empty.token_ids.shape == (0, 0)


def test_packed_is_tuple_attr_and_mapping():
    p = pack([7], None, 6, 2, 3)  # all positional
    token_ids, segment_ids, mask = p
    assert p["token_ids"] is p.token_ids is token_ids
    assert p[2] is mask
    assert set(dict(**p)) == {"token_ids", "segment_ids", "padding_mask"}
    with pytest.raises(KeyError):
        p["nope"]
    with pytest.raises(TypeError):
        pack([7])
