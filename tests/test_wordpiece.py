"""WordPiece (BERT tokenizer) compatibility with HF `BertTokenizer` (fixture: tests/fixtures/wordpiece)."""

from __future__ import annotations

import json

import pytest

from albert_cli.errors import ModelError
from albert_cli.text.tokenizers import load_tokenizer
from albert_cli.text.wordpiece import WordPieceTokenizer, load_vocab
from albert_cli.weights import TokenizerInfo
from conftest import FIXTURES

WP = FIXTURES / "wordpiece"
VOCAB = WP / "vocab.txt"
SETTINGS = {"lower": True, "cased": False}


@pytest.fixture(scope="module")
def expected():
    return json.loads((WP / "expected.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_ids_equal_hf_bert_tokenizer(setting, expected):
    tok = WordPieceTokenizer.from_file(VOCAB, do_lower_case=SETTINGS[setting])
    mismatches = []
    for case in expected["cases"]:
        want = case[setting]
        got_tokens = tok.tokenize(case["text"])
        got_ids = tok.encode(case["text"])
        if got_ids != want["ids"] or got_tokens != want["tokens"]:
            mismatches.append((case["text"], got_tokens, want["tokens"]))
    assert not mismatches, mismatches[:3]
    assert len(expected["cases"]) >= 30


def test_special_ids_come_from_the_vocab(expected):
    tok = WordPieceTokenizer.from_file(VOCAB)
    special = expected["special_ids"]
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (
        special["[PAD]"], special["[UNK]"], special["[CLS]"], special["[SEP]"], special["[MASK]"]
    )
    assert tok.unk_id != 1 and tok.cls_id != 2  # not SentencePiece's layout
    assert tok.vocab_size == len(VOCAB.read_text(encoding="utf-8").splitlines())


def test_long_words_and_uncoverable_words_are_unk():
    tok = WordPieceTokenizer({"[UNK]": 0, "a": 1, "##a": 2, "b": 3}, do_lower_case=True)
    assert tok.tokenize("a" * 100) == ["a"] + ["##a"] * 99
    assert tok.tokenize("a" * 101) == ["[UNK]"]
    assert tok.tokenize("ab aa") == ["[UNK]", "a", "##a"]  # no "##b": the whole word is unknown
    assert tok.tokenize("中a") == ["[UNK]", "a"]  # CJK characters are words of their own


def test_decode_glues_continuations():
    tok = WordPieceTokenizer.from_file(VOCAB)
    assert tok.tokenize("hello world") == ["hel", "##l", "##o", "wor", "##ld"]
    assert tok.decode(tok.encode("hello world")) == "hello world"


def test_bad_vocab_files(tmp_path):
    with pytest.raises(ModelError, match="no such WordPiece"):
        load_vocab(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ModelError, match="empty"):
        load_vocab(tmp_path / "empty.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ModelError, match="not UTF-8"):
        load_vocab(tmp_path / "bin.txt")
    (tmp_path / "nounk.txt").write_text("[PAD]\nhello\n")
    with pytest.raises(ModelError, match=r"\[UNK\]"):
        WordPieceTokenizer.from_file(tmp_path / "nounk.txt")
    (tmp_path / "nocls.txt").write_text("[PAD]\n[UNK]\nhello\n")
    with pytest.raises(ModelError, match=r"\[CLS\]"):
        WordPieceTokenizer.from_file(tmp_path / "nocls.txt").cls_id


def test_factory_follows_the_checkpoint_tokenizer(expected):
    from albert_cli.text.spm import SentencePieceTokenizer

    wp = load_tokenizer(TokenizerInfo(kind="wordpiece", path=VOCAB, do_lower_case=False))
    assert isinstance(wp, WordPieceTokenizer) and not wp.do_lower_case
    case = expected["cases"][6]
    assert wp.encode(case["text"]) == case["cased"]["ids"]
    # a recorded normalizer overrides do_lower_case
    assert load_tokenizer(TokenizerInfo(kind="wordpiece", path=VOCAB, do_lower_case=False), {"lowercase": True}).do_lower_case
    sp = load_tokenizer(TokenizerInfo(kind="sentencepiece", path=FIXTURES / "spm" / "tiny.model", keep_accents=True))
    assert isinstance(sp, SentencePieceTokenizer)
    assert sp.normalizer.lowercase and not sp.normalizer.strip_accents
    with pytest.raises(ModelError, match="no tokenizer"):
        load_tokenizer(None)


# ------------------------------------------------------------------ in-graph


@pytest.fixture(scope="module")
def tf_tokenizers():
    from albert_cli.text.tf_wordpiece import make_tf_wordpiece_tokenizer

    return {name: make_tf_wordpiece_tokenizer(VOCAB, lower, max_seq_length=24) for name, lower in SETTINGS.items()}


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_in_graph_ids_equal_hf(setting, expected, tf_tokenizers):
    import tensorflow as tf

    tok = tf_tokenizers[setting]
    texts = [c["text"] for c in expected["cases"]]
    got = tok.encode_ids(tf.constant(texts)).to_list()
    bad = [(c["text"], g, c[setting]["ids"]) for c, g in zip(expected["cases"], got) if g != c[setting]["ids"]]
    assert not bad, bad[:3]


def test_in_graph_packing_matches_python_packing(expected, tf_tokenizers):
    import numpy as np
    import tensorflow as tf

    from albert_cli.text.packing import pack_batch

    tok = tf_tokenizers["lower"]
    py = WordPieceTokenizer.from_file(VOCAB)
    texts = [c["text"] for c in expected["cases"][:8]]
    pairs = [c["text"] for c in expected["cases"][8:16]]
    for b in (None, pairs):
        out = tok(tf.constant(texts), None if b is None else tf.constant(b))
        examples = [(py.encode(a), None if b is None else py.encode(b[i])) for i, a in enumerate(texts)]
        want = pack_batch(examples, max_seq_length=24, cls_id=py.cls_id, sep_id=py.sep_id, pad_id=py.pad_id)
        for key in ("token_ids", "segment_ids", "padding_mask"):
            np.testing.assert_array_equal(out[key].numpy(), want[key])


def test_in_graph_tokenizer_survives_saved_model(tmp_path, expected, tf_tokenizers):
    import numpy as np
    import tensorflow as tf

    tok = tf_tokenizers["cased"]
    tf.saved_model.save(tok, str(tmp_path / "sm"), signatures={"serving_default": tok.call_single})
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    texts = tf.constant([c["text"] for c in expected["cases"]])
    got = loaded.signatures["serving_default"](texts)
    want = tok(texts)
    for key in want:
        np.testing.assert_array_equal(got[key].numpy(), want[key].numpy())


def test_make_in_graph_tokenizer_follows_the_tokenizer(expected):
    import tensorflow as tf

    from albert_cli.text.spm import SentencePieceTokenizer
    from albert_cli.text.tokenizers import make_in_graph_tokenizer

    wp = WordPieceTokenizer.from_file(VOCAB, do_lower_case=False)
    tf_wp = make_in_graph_tokenizer(wp, max_seq_length=32)
    texts = [c["text"] for c in expected["cases"][:5]]
    assert tf_wp.encode_ids(tf.constant(texts)).to_list() == [wp.encode(t) for t in texts]
    sp = SentencePieceTokenizer.from_file(FIXTURES / "spm" / "tiny.model")
    tf_sp = make_in_graph_tokenizer(sp, max_seq_length=32)
    assert tf_sp.encode_ids(tf.constant(texts)).to_list() == [sp.encode(t) for t in texts]
