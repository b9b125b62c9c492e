"""The in-graph tokenizer gives the same ids as SentencePieceTokenizer / HF, and saves in a SavedModel."""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = pytest.importorskip("tensorflow")
pytest.importorskip("tensorflow_text")

from albert_cli.text.normalize import NormalizerOptions  # noqa: E402
from albert_cli.text.packing import pack  # noqa: E402
from albert_cli.text.spm import SentencePieceTokenizer  # noqa: E402
from albert_cli.text.tf_tokenizer import make_tf_tokenizer  # noqa: E402
from conftest import FIXTURES  # noqa: E402

MODEL = FIXTURES / "spm" / "tiny.model"
EXPECTED = json.loads((FIXTURES / "spm" / "expected.json").read_text(encoding="utf-8"))
CASES = EXPECTED["cases"]
TEXTS = [c["text"] for c in CASES]
SETTINGS = {
    "default": NormalizerOptions(),
    "cased_keep_accents": NormalizerOptions(lowercase=False, strip_accents=False),
}
MAX_LEN = 24


@pytest.fixture(scope="module", params=sorted(SETTINGS))
def tokenizers(request):
    name = request.param
    py = SentencePieceTokenizer.from_file(MODEL, normalizer=SETTINGS[name])
    return name, py, make_tf_tokenizer(py.serialized_model(), SETTINGS[name], MAX_LEN)


def test_ids_match_fixture_eager(tokenizers):
    name, py, tt = tokenizers
    got = tt.encode(tf.constant(TEXTS)).to_list()
    assert got == [c[name]["ids"] for c in CASES]
    pieces = [[p.decode("utf-8") for p in row] for row in tt.tokenize(tf.constant(TEXTS)).to_list()]
    assert pieces == [c[name]["tokens"] for c in CASES]


def test_normalize_matches_python(tokenizers):
    name, py, tt = tokenizers
    got = [s.decode("utf-8") for s in tt.normalize(tf.constant(TEXTS)).numpy()]
    assert got == [py.preprocess(t) for t in TEXTS]


def test_exotic_strings_match_python(tokenizers):
    name, py, tt = tokenizers
    rng = random.Random(3)
    alphabet = list("aZ ΣΑΟς019,,''``\"\t\n\x0b\x1c\x85\xa0\u3000éÉ\u0301İǅﬁ½²٣中，😀\x00\u2c2fϹ") + ["\U0001d6ba"]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 20))) for _ in range(300)]
    texts += ["ΑΣ ΑΣ. Α\U0001d6ba", "a\x00B Σ\x00c", "\u2c2f\ua7c0\U00010570 X", "12,345,678, 9,"]
    got = tt.encode(tf.constant([t.encode("utf-8") for t in texts])).to_list()
    assert got == [py.encode(t) for t in texts]


def _expected_batch(py, texts, pairs=None):
    packed = [
        pack(py.encode(a), None if pairs is None else py.encode(pairs[i]), max_seq_length=MAX_LEN,
             cls_id=py.cls_id, sep_id=py.sep_id, pad_id=py.pad_id, pad=False)
        for i, a in enumerate(texts)
    ]
    width = max(len(p.token_ids) for p in packed)
    out = {k: np.zeros((len(packed), width), np.int32) for k in ("token_ids", "segment_ids", "padding_mask")}
    out["token_ids"][:] = py.pad_id
    for i, p in enumerate(packed):
        n = len(p.token_ids)
        out["token_ids"][i, :n] = p.token_ids
        out["segment_ids"][i, :n] = p.segment_ids
        out["padding_mask"][i, :n] = 1
    return out


def _assert_outputs(got, want):
    for key in ("token_ids", "segment_ids", "padding_mask"):
        assert got[key].dtype == tf.int32, key
        np.testing.assert_array_equal(got[key].numpy(), want[key], err_msg=key)


def test_packing_matches_numpy_in_tf_function(tokenizers):
    name, py, tt = tokenizers
    single = tf.function(lambda x: tt(x), input_signature=[tf.TensorSpec([None], tf.string)])
    pair = tf.function(lambda x, y: tt(x, y), input_signature=[tf.TensorSpec([None], tf.string)] * 2)
    texts = TEXTS[:20]
    pairs = TEXTS[20:40]
    _assert_outputs(single(tf.constant(texts)), _expected_batch(py, texts))
    _assert_outputs(pair(tf.constant(texts), tf.constant(pairs)), _expected_batch(py, texts, pairs))
    short = single(tf.constant(["hi", "a b"]))
    assert short["token_ids"].shape[1] < MAX_LEN  # padded to the longest in the batch, not max_seq_length
    empty = tt.call_single(tf.constant([], tf.string))
    assert empty["token_ids"].shape[0] == 0


def test_pair_truncation_many_lengths():
    py = SentencePieceTokenizer.from_file(MODEL)
    tt = make_tf_tokenizer(py.serialized_model(), NormalizerOptions(), max_seq_length=12)
    rng = random.Random(0)
    words = "a bb ccc the market 1,000, rose".split()
    a = [" ".join(rng.choice(words) for _ in range(rng.randrange(0, 12))) for _ in range(60)]
    b = [" ".join(rng.choice(words) for _ in range(rng.randrange(0, 12))) for _ in range(60)]
    out = tt(tf.constant(a), tf.constant(b))
    for i in range(len(a)):
        p = pack(py.encode(a[i]), py.encode(b[i]), max_seq_length=12, cls_id=2, sep_id=3, pad=False)
        n = len(p.token_ids)
        assert out["token_ids"][i, :n].numpy().tolist() == p.token_ids.tolist()
        assert out["segment_ids"][i, :n].numpy().tolist() == p.segment_ids.tolist()
        assert int(out["padding_mask"][i].numpy().sum()) == n


def test_saved_model_round_trip(tmp_path):
    py = SentencePieceTokenizer.from_file(MODEL)
    tt = make_tf_tokenizer(py.serialized_model(), NormalizerOptions(), MAX_LEN)

    class Wrapper(tf.Module):
        def __init__(self, tok):
            super().__init__()
            self.tok = tok

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, texts):
            out = self.tok(texts)
            return {**out, "length": tf.reduce_sum(out["padding_mask"], axis=1)}

    wrapper = Wrapper(tt)
    want = _expected_batch(py, TEXTS)
    tf.saved_model.save(wrapper, str(tmp_path / "sm"))
    del wrapper, tt
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    got = loaded.serve(tf.constant(TEXTS))
    _assert_outputs(got, want)
    # the tokenizer's own exported functions survive too
    got2 = loaded.tok.call_pair(tf.constant(TEXTS[:5]), tf.constant(TEXTS[5:10]))
    _assert_outputs(got2, _expected_batch(py, TEXTS[:5], TEXTS[5:10]))
    ids = loaded.tok.encode_ids(tf.constant(TEXTS)).to_list()
    assert ids == [c["default"]["ids"] for c in CASES]


def test_rejects_model_without_albert_symbols(tmp_path):
    import sentencepiece as spm

    lines = ["the quick brown fox jumps over the lazy dog %d" % i for i in range(200)]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(tmp_path / "plain"), vocab_size=40, minloglevel=2
    )
    with pytest.raises(ValueError, match="not an ALBERT vocabulary"):
        make_tf_tokenizer((tmp_path / "plain.model").read_bytes(), NormalizerOptions(), 16)
