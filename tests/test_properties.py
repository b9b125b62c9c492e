"""Property-based tests (hypothesis): readers, normalizer, SentencePiece encoding and packing.

Arbitrary Unicode (combining marks, emoji, right-to-left scripts, control characters, very long
tokens) must never raise anything but a one-line DataError, and what is written is read back.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from albert_cli.data.readers import read_dataset
from albert_cli.errors import DataError
from albert_cli.text.normalize import NormalizerOptions, normalize_text, preprocess_text
from albert_cli.text.packing import pack, pack_batch
from conftest import FIXTURES

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SPECIAL = ["\u0301", "\u0308", "\U0001F600", "\U0001F468\u200d\U0001F469\u200d\U0001F467", "\u05e9\u05dc\u05d5\u05dd",
           "\u0645\u0631\u062d\u0628\u0627", "\u202e", "\u200b", "\ufeff", "\x07", "\x1b", "\t", "\r", "\u2028",
           "\ufffd", "\u4e2d\u6587", "e\u0301", "\ud7ff", "a" * 300]
unicode_text = st.lists(st.one_of(st.text(max_size=20), st.sampled_from(SPECIAL)), max_size=8).map("".join)
# texts that a line-oriented file can hold: no line breaks of any kind, not blank
line_text = unicode_text.map(lambda t: " ".join(t.splitlines())).filter(lambda t: t.strip() and "\x00" not in t)


@FAST
@given(texts=st.lists(line_text, min_size=1, max_size=6), fmt=st.sampled_from(["csv", "jsonl", "tsv"]))
def test_written_texts_read_back(texts, fmt):
    labels = [f"l{i % 2}" for i in range(len(texts))]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["text", "label"])
        w.writerows(zip(texts, labels))
        data = buf.getvalue()
    elif fmt == "jsonl":
        data = "".join(json.dumps({"text": t, "label": y}, ensure_ascii=False) + "\n" for t, y in zip(texts, labels))
    else:
        assume(not any(c in t for t in texts for c in "\t\r\n"))
        data = "text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in zip(texts, labels))
    try:
        ds = read_dataset(f"x.{fmt}", data=data.encode("utf-8"))
    except DataError as exc:  # e.g. a TSV cell that pandas splits differently: a clean error is fine
        assert "\n" not in exc.message
        return
    assert ds.texts == texts
    assert ds.labels == labels


@FAST
@given(raw=st.binary(max_size=200), fmt=st.sampled_from(["csv", "tsv", "jsonl", "txt"]))
def test_arbitrary_bytes_give_data_or_dataerror(raw, fmt):
    try:
        ds = read_dataset(f"x.{fmt}", data=raw, label_column="label" if fmt != "txt" else None)
    except DataError as exc:
        assert exc.message and "\n" not in exc.message
    else:
        assert all(isinstance(t, str) and t.strip() for t in ds.texts)


@FAST
@given(text=unicode_text, lower=st.booleans(), strip=st.booleans())
def test_normalizer_never_raises_and_is_deterministic(text, lower, strip):
    opts = NormalizerOptions(lowercase=lower, strip_accents=strip)
    a = normalize_text(text, opts)
    assert isinstance(a, str) and a == normalize_text(text, opts)
    assert preprocess_text(text, opts) == preprocess_text(text, opts)


@pytest.fixture(scope="module")
def spm_tok():
    from albert_cli.text.spm import SentencePieceTokenizer

    return SentencePieceTokenizer.from_file(FIXTURES / "spm" / "tiny.model")


@FAST
@given(text=unicode_text)
def test_encoding_never_raises_and_is_deterministic(spm_tok, text):
    ids = spm_tok.encode(text)
    assert ids == spm_tok.encode(text)
    assert all(0 <= i < spm_tok.vocab_size for i in ids)
    assert spm_tok.tokenize(text) == spm_tok.tokenize(text)


ids_list = st.lists(st.integers(5, 1000), max_size=80)


@FAST
@given(a=ids_list, b=st.one_of(st.none(), ids_list), max_len=st.integers(3, 64))
def test_pack_respects_max_length_and_segments(a, b, max_len):
    p = pack(a, b, max_seq_length=max_len, cls_id=2, sep_id=3)
    assert len(p.token_ids) == len(p.segment_ids) == len(p.padding_mask) == max_len
    n = int(p.padding_mask.sum())
    assert list(p.padding_mask) == [1] * n + [0] * (max_len - n)
    tok, seg = list(p.token_ids[:n]), list(p.segment_ids[:n])
    assert tok[0] == 2 and tok[-1] == 3
    if b is None:
        assert seg == [0] * n and tok[1:-1] == a[: max_len - 2]
    else:
        first_sep = tok.index(3)
        assert seg == [0] * (first_sep + 1) + [1] * (n - first_sep - 1)
        kept_a, kept_b = tok[1:first_sep], tok[first_sep + 1 : -1]
        assert kept_a == a[: len(kept_a)] and kept_b == b[: len(kept_b)]
        # the longer side is cut first: nothing is dropped while there is room
        assert len(kept_a) + len(kept_b) == min(len(a) + len(b), max_len - 3)
    assert not p.token_ids[n:].any()


@FAST
@given(batch=st.lists(ids_list, min_size=1, max_size=6), max_len=st.integers(2, 40))
def test_pack_batch_is_padded_to_longest(batch, max_len):
    p = pack_batch(batch, max_seq_length=max_len, cls_id=2, sep_id=3)
    longest = max(min(len(x), max_len - 2) + 2 for x in batch)
    assert p.token_ids.shape == (len(batch), longest)
    assert np.array_equal(p.padding_mask.sum(1), [min(len(x), max_len - 2) + 2 for x in batch])
