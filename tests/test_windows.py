"""Long documents as windows, in-process: the geometry (numpy and in-graph), the pooled logits against a numpy
recomputation, the bag counting each piece once, and short texts answered as without windows."""

import numpy as np
import pytest

from albert_cli.errors import UsageError
from albert_cli.text.windows import WindowSpec, choose_windows, count_windows, pad_windows, split_windows

CLS, SEP = 2, 3


@pytest.mark.parametrize("pieces,length,stride", [(0, 8, 3), (6, 8, 3), (7, 8, 3), (20, 8, 3), (21, 8, 6),
                                                  (100, 16, 14), (33, 10, 1)])
def test_windows_cover_every_piece_as_specified(pieces, length, stride):
    ids = list(range(100, 100 + pieces))
    content = length - 2
    windows = split_windows(ids, length, WindowSpec(stride, max_windows=1000), CLS, SEP)
    assert len(windows) == count_windows(pieces, length, stride)
    for k, w in enumerate(windows):
        assert w[0] == CLS and w[-1] == SEP and len(w) <= length
        assert w[1:-1] == ids[k * stride : k * stride + content]  # window k starts at piece k * stride
    covered = sorted({p for w in windows for p in w[1:-1]})
    assert covered == ids  # every piece is read
    if len(windows) > 1:  # the last window is the first that reaches the end; the one before it does not
        assert windows[-1][-2] == ids[-1] and windows[-2][-2] != ids[-1]
    else:
        assert windows[0] == [CLS, *ids, SEP]  # a short text is packed exactly as without windows


def test_max_windows_reads_the_first_windows():
    ids = list(range(100, 200))
    spec = WindowSpec(stride=5, max_windows=3)
    windows = split_windows(ids, 10, spec, CLS, SEP)
    assert len(windows) == 3 and windows[-1][1:-1] == ids[10:18]
    assert spec.pieces_read(10) == 18 and max(p for w in windows for p in w[1:-1]) == ids[17]


def test_choose_windows_follows_the_data():
    short = np.array([20] * 99 + [300])  # 1% longer than 64: cut, as before
    assert choose_windows(short, 64, pair=False) is None
    long = np.array([20] * 90 + [300] * 10)
    spec = choose_windows(long, 64, pair=False)
    assert spec.stride == (3 * 62) // 4 and spec.pooling == "mean"
    assert spec.max_windows == count_windows(298, 64, spec.stride)
    assert choose_windows(long, 64, pair=True) is None  # pairs are cut
    assert choose_windows(short, 64, pair=False, force=True) is not None
    assert choose_windows(long, 64, pair=False, force=False) is None
    assert choose_windows(np.array([5000] * 10), 64, pair=False).max_windows == 16  # the default cap
    with pytest.raises(UsageError, match="--window-stride must be between 1 and 62"):
        choose_windows(long, 64, pair=False, stride=63)
    with pytest.raises(UsageError, match="--window-pooling"):
        choose_windows(long, 64, pair=False, pooling="attention")


def test_in_graph_windows_equal_the_python_ones():
    import tensorflow as tf

    from albert_cli.text.tf_windows import window_ids

    rng = np.random.default_rng(0)
    docs = [list(rng.integers(5, 50, n)) for n in (0, 3, 6, 7, 19, 40, 41)]
    for spec in (WindowSpec(3, 100), WindowSpec(6, 100), WindowSpec(4, 2)):
        got = window_ids(tf.ragged.constant(docs, tf.int32), 8, spec, CLS, SEP, 0)
        for d, doc in enumerate(docs):
            want = pad_windows(split_windows(doc, 8, spec, CLS, SEP))
            w, n = want.shape
            np.testing.assert_array_equal(got["token_ids"].numpy()[d, :w, :n], want)
            assert not got["token_ids"].numpy()[d, w:].any() and not got["token_ids"].numpy()[d, :w, n:].any()
            np.testing.assert_array_equal(got["padding_mask"].numpy()[d, :w, :n], (want != 0).astype(np.int32))
            assert got["padding_mask"].numpy()[d].sum() == (want != 0).sum()


# ------------------------------------------------------------------ the model
def _classifiers(window_pooling="mean", overlap=2, bow=64):
    import keras

    from albert_cli.model.backbone import AlbertBackbone
    from albert_cli.model.config import AlbertConfig
    from albert_cli.model.heads import AlbertClassifier

    cfg = AlbertConfig(vocab_size=60, embedding_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=32, max_position_embeddings=64)
    keras.utils.set_random_seed(0)
    plain = AlbertClassifier(AlbertBackbone(cfg), 3, pooling="mean", bow_buckets=bow)
    windowed = AlbertClassifier(AlbertBackbone(cfg), 3, pooling="mean", bow_buckets=bow,
                                window_pooling=window_pooling, window_overlap=overlap)
    init = np.random.default_rng(0)  # the same weights on every backend
    plain.set_weights([np.asarray(init.normal(0, 0.2, np.shape(w)), np.float32) for w in plain.get_weights()])
    windowed.set_weights(plain.get_weights())
    if bow:
        rng = np.random.default_rng(1)
        boundaries = np.full(60, 3.0, np.float32)  # every piece a word (a word never spans the overlap)
        for model in (plain, windowed):
            layer = model.get_layer("bow")
            layer.set_boundaries(boundaries)
            layer.unigram.assign(np.asarray(rng.normal(size=layer.unigram.shape), np.float32))
            layer.bigram.assign(np.asarray(rng.normal(size=layer.bigram.shape), np.float32))
            rng = np.random.default_rng(1)  # the same tables in both
    return plain, windowed


def _batch(docs, length, spec):
    windows = [pad_windows(split_windows(d, length, spec, CLS, SEP)) for d in docs]
    shape = (len(docs), max(w.shape[0] for w in windows), max(w.shape[1] for w in windows))
    token_ids = np.zeros(shape, np.int32)
    for i, w in enumerate(windows):
        token_ids[i, : w.shape[0], : w.shape[1]] = w
    return {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids),
            "padding_mask": (token_ids != 0).astype(np.int32)}, windows


@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_pooled_logits_match_numpy(pooling):
    plain, windowed = _classifiers(pooling, bow=0)
    spec = WindowSpec(stride=6, max_windows=10, pooling=pooling)
    rng = np.random.default_rng(2)
    docs = [list(rng.integers(5, 60, n)) for n in (4, 9, 25, 31)]
    x, windows = _batch(docs, 10, spec)
    got = np.asarray(windowed(x, training=False))
    kernel, bias = (np.asarray(v) for v in windowed.get_layer("classifier").weights)
    for d, w in enumerate(windows):  # each window alone through the backbone, its token mean, then numpy
        seq = np.asarray(plain.backbone({"token_ids": w, "segment_ids": np.zeros_like(w),
                                         "padding_mask": (w != 0).astype(np.int32)}, training=False)["sequence_output"])
        mask = (w != 0)[..., None]
        vectors = (seq * mask).sum(1) / mask.sum(1)
        doc = vectors.mean(0) if pooling == "mean" else vectors.max(0)
        np.testing.assert_allclose(got[d], doc @ kernel + bias, atol=1e-5)


def _document_bag_numpy(bag_layer, doc: list[int]) -> np.ndarray:
    """The document bag of `[CLS] doc [SEP]` in numpy (every piece a word): log(1 + count) of each hashed word
    and pair, scaled to unit length, times the tables."""
    from albert_cli.model.heads import DOCUMENT_BOW_SCALE

    words = np.asarray([CLS, *doc, SEP], np.int64)
    buckets = bag_layer.buckets
    counts = np.zeros(2 * buckets)
    np.add.at(counts, words % buckets, 1.0)
    np.add.at(counts, buckets + ((words[:-1] * 4093 + words[1:]) % 2**18) % buckets, 1.0)
    features = np.log1p(counts)
    features /= np.linalg.norm(features)
    table = np.concatenate([np.asarray(bag_layer.unigram), np.asarray(bag_layer.bigram)])
    return DOCUMENT_BOW_SCALE * features @ table


def test_document_bag_counts_each_piece_once():
    _, windowed = _classifiers("mean", overlap=4)
    spec = WindowSpec(stride=4, max_windows=50)  # windows of 10: 8 pieces, 4 shared
    rng = np.random.default_rng(3)
    docs = [list(rng.integers(5, 60, n)) for n in (3, 8, 9, 30, 47)]
    x, _ = _batch(docs, 10, spec)
    got = np.asarray(windowed.members(x, training=False)[1])
    for d, doc in enumerate(docs):
        np.testing.assert_allclose(got[d], _document_bag_numpy(windowed.get_layer("bow"), doc), rtol=1e-4, atol=1e-3)


def test_short_texts_get_alberts_answer_as_without_windows():
    plain, windowed = _classifiers("mean", overlap=4)
    rng = np.random.default_rng(4)
    short, _ = _batch([list(rng.integers(5, 60, n)) for n in (3, 8)], 10, WindowSpec(stride=4, max_windows=50))
    plain_x = {k: v[:, 0] for k, v in short.items()}  # one window each: the text packed as without windows
    np.testing.assert_allclose(np.asarray(windowed.members(short, training=False)[0]),
                               np.asarray(plain.members(plain_x, training=False)[0]), atol=1e-5)
    plain, windowed = _classifiers("max", bow=0)
    np.testing.assert_allclose(np.asarray(windowed(short, training=False)), np.asarray(plain(plain_x, training=False)),
                               atol=1e-5)


def test_windowed_classifier_gives_the_same_logits_on_jax():
    """The model core runs on JAX: the windowed classifier (ALBERT, window pooling, document bag) there equals
    TensorFlow's on the same weights."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("jax")
    root = Path(__file__).resolve().parents[1]
    code = (
        "import json, numpy as np\n"
        "from test_windows import _classifiers, _batch, WindowSpec\n"
        "_, model = _classifiers('max', overlap=4)\n"
        "rng = np.random.default_rng(5)\n"
        "x, _ = _batch([list(rng.integers(5, 60, n)) for n in (3, 20, 47)], 10, WindowSpec(4, 50, 'max'))\n"
        "print(json.dumps(np.asarray(model(x, training=False)).tolist()))\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": f"{root}{os.pathsep}{root / 'tests'}"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    _, model = _classifiers("max", overlap=4)
    rng = np.random.default_rng(5)
    x, _ = _batch([list(rng.integers(5, 60, n)) for n in (3, 20, 47)], 10, WindowSpec(4, 50, "max"))
    np.testing.assert_allclose(json.loads(res.stdout.strip().splitlines()[-1]), np.asarray(model(x, training=False)),
                               rtol=1e-4, atol=1e-3)
