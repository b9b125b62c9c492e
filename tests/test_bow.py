"""The bag-of-n-grams member of the classifier (`finetune --bow`, the default from scratch): a linear model on
whole words (read out of the subword ids with the tokenizer's word-boundary table) and hashed word bigrams,
trained beside ALBERT with its own loss; the model's logits are a mix of the two members' with ALBERT's share
picked on dev data. Checked against a plain-Python re-implementation, through `predict`, HF-format round trips
and `--init`."""

import json

import numpy as np
import pytest

from conftest import FIXTURES, assert_served, mean_pooled, model_meta, run_albert, write_two_class_csv

TEXTS = ["good fine item 3", "bad poor item 5", "fine good good"]


def _hash(h, token):
    return (h * 4093 + token % 2**18) % 2**18


def _py_words(ids, mask, boundaries):
    """Each row's words, in plain Python: a word begins at the first piece, at a piece with the STARTS bit (1)
    and after a piece with the ENDS bit (2); its hash folds its last three pieces (one piece: its id)."""
    rows = []
    for row_ids, row_mask in zip(ids.tolist(), mask.tolist()):
        words, ends_before = [], True
        for token, real in zip(row_ids, row_mask):
            if not real:
                continue
            flags = int(boundaries[token])
            if ends_before or flags & 1:
                words.append([])
            words[-1].append(token)
            ends_before = bool(flags & 2)
        hashes = []
        for word in words:
            h = word[-3:][0] % 2**18
            for token in word[-3:][1:]:
                h = _hash(h, token)
            hashes.append(h)
        rows.append(hashes)
    return rows


def _np_bow(weights, ids, mask, scale=1000.0):
    """BagOfNgrams from its weights: scale x the mean of the rows of the words and of adjacent word pairs."""
    unigram, bigram = weights["bow/unigram"], weights["bow/bigram"]
    out = np.zeros((ids.shape[0], unigram.shape[1]))
    for b, words in enumerate(_py_words(ids, mask, weights["bow/boundaries"])):
        rows = [unigram[w % len(unigram)] for w in words]
        rows += [bigram[_hash(v, w) % len(bigram)] for v, w in zip(words, words[1:])]
        out[b] = scale * np.mean(rows, axis=0)
    return out


def test_word_boundaries_of_real_vocabularies():
    from albert_cli.text.spm import SentencePieceTokenizer
    from albert_cli.text.words import ENDS, STARTS, piece_boundaries, word_boundaries

    assert piece_boundaries("\u2581the") == STARTS and piece_boundaries("ing") == 0
    assert piece_boundaries(",") == piece_boundaries("\u2581(") == piece_boundaries("[CLS]") == STARTS | ENDS
    assert piece_boundaries("\u2581\u4e2d\u56fd") == STARTS | ENDS and piece_boundaries("\u597d") == STARTS | ENDS
    assert piece_boundaries("abc.") == ENDS and piece_boundaries("\u2581") == STARTS
    assert piece_boundaries("##ing", wordpiece=True) == 0 and piece_boundaries("the", wordpiece=True) == STARTS
    tok = SentencePieceTokenizer.from_file(FIXTURES / "spm" / "tiny.model")
    table = word_boundaries(tok)
    assert table.shape == (tok.vocab_size,) and table.dtype == np.float32
    assert [int(table[i]) for i in range(tok.vocab_size)] == [
        piece_boundaries(tok.id_to_piece(i)) for i in range(tok.vocab_size)
    ]
    # Words read from the table are the text's space-separated words (here: no punctuation, no CJK).
    text = "the quick brown foxes jumped over lazy dogs"
    ids = np.array([tok.encode(text)])
    words = _py_words(ids, np.ones_like(ids), table)[0]
    assert len(words) == len(text.split())


def test_bag_of_words_matches_python_and_the_classifier_mixes_its_members():
    import keras

    from albert_cli.model import AlbertBackbone, AlbertConfig
    from albert_cli.model.heads import AlbertClassifier, BagOfNgrams, bow_buckets_for, words_from_pieces

    rng = np.random.default_rng(0)
    layer = BagOfNgrams(50, 3, buckets=64, scale=7.0)
    ids = rng.integers(0, 50, size=(5, 12)).astype("int32")
    mask = np.ones((5, 12), "int32")
    mask[1, 5:] = 0
    mask[2, 1:] = 0  # one token, no pair
    boundaries = rng.choice([0, 1, 2, 3], size=50, p=[0.5, 0.3, 0.1, 0.1]).astype("float32")  # long words too
    layer.build(ids.shape)
    layer.set_boundaries(boundaries)
    layer.unigram.assign(rng.normal(size=(64, 3)).astype("float32"))
    layer.bigram.assign(rng.normal(size=(64, 3)).astype("float32"))
    words, word_mask = (keras.ops.convert_to_numpy(t) for t in words_from_pieces(ids, mask, layer.boundaries))
    expected = _py_words(ids, mask, boundaries)
    assert [list(w[m > 0]) for w, m in zip(words, word_mask)] == expected
    assert max(len(w) for w in expected) < 12 and any(len(w) > 3 for w in expected)  # words of several pieces
    got = keras.ops.convert_to_numpy(layer(ids, mask))
    weights = {"bow/unigram": layer.unigram.numpy(), "bow/bigram": layer.bigram.numpy(), "bow/boundaries": boundaries}
    np.testing.assert_allclose(got, _np_bow(weights, ids, mask, 7.0), rtol=1e-5)
    # Padding is ignored: changing padded ids changes nothing.
    ids2 = ids.copy()
    ids2[1, 5:] = 3
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(ids2, mask)), got, rtol=1e-6)
    with pytest.raises(ValueError, match="expected \\(50,\\)"):
        layer.set_boundaries(np.ones(49, "float32"))

    config = AlbertConfig(vocab_size=50, embedding_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=32, max_position_embeddings=16)
    model = AlbertClassifier(AlbertBackbone(config), num_labels=3, pooling="mean", bow_buckets=64)
    for v in model.weights:
        if v.path in ("bow/unigram", "bow/bigram"):
            v.assign(rng.normal(size=v.shape).astype("float32"))
    x = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": mask}
    a, b = (keras.ops.convert_to_numpy(t) for t in model.members(x, training=False))
    assert not np.allclose(a, b)
    for share in (0.5, 0.2):  # 0.5 until fine-tuning picks another share
        np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x, training=False)), share * a + (1 - share) * b,
                                   rtol=1e-5, atol=1e-6)
        model.get_layer("bow_mix").share.assign([0.2])
    names = {v.path for v in model.weights if v.path.startswith("bow")}
    assert names == {"bow/unigram", "bow/bigram", "bow/boundaries", "bow_mix/share"}
    assert {v.path for v in model.trainable_weights if v.path.startswith("bow")} == {"bow/unigram", "bow/bigram"}
    clone = AlbertClassifier.from_config(model.get_config())
    assert clone.bow_buckets == 64 and clone.members is not None
    assert AlbertClassifier(AlbertBackbone(config), num_labels=3).members is None  # off by default in the class
    assert bow_buckets_for(2) == 2**18 and bow_buckets_for(1000) == 2**13 and bow_buckets_for(10**6) == 1024


def test_gradients_are_clipped_per_member():
    import tensorflow as tf

    from albert_cli.training.objectives import clip_by_group_norm

    grads = [tf.constant([30.0, 40.0]), tf.constant([0.3, 0.4]), tf.constant([0.0, 0.0]), tf.constant([60.0, 80.0])]
    groups = [True, False, False, True]  # the bag's norm is 100 x sqrt(1.25); ALBERT's 0.5
    out = [g.numpy() for g in clip_by_group_norm(grads, groups, 1.0)]
    np.testing.assert_allclose(out[1], [0.3, 0.4], rtol=1e-6)  # ALBERT's, below the norm: untouched
    bag_norm = np.sqrt(np.sum(out[0] ** 2) + np.sum(out[3] ** 2))
    np.testing.assert_allclose(bag_norm, 1.0, rtol=1e-5)
    np.testing.assert_allclose(out[0] / out[3], [0.5, 0.5], rtol=1e-6)  # one factor for the whole group
    # One global norm instead would have shrunk ALBERT's gradients by the bag's norm.
    assert np.linalg.norm(tf.clip_by_global_norm(grads, 1.0)[0][1].numpy()) < 0.01


def test_pick_share_takes_the_best_mix_and_breaks_ties_towards_even():
    from albert_cli.training.finetune.selection import pick_share

    y = np.array([0, 1, 1, 0])
    albert = np.array([[1.0, 0], [1, 0], [0, 1], [0, 1]])  # right on rows 0 and 2
    bag = np.array([[0.0, 3], [0, 0.5], [0, 3], [3, 0]])  # right on rows 1 (barely), 2 and 3
    members = np.stack([albert, bag], axis=1)
    accuracy = lambda logits: float((logits.argmax(-1) == y).mean())  # noqa: E731
    # Shares 0 to 0.3 get 3 of 4 (row 1 needs share < 1/3), 0.4 and above 2 of 4: the tie goes to 0.3.
    assert [accuracy(s * albert + (1 - s) * bag) for s in (0.0, 0.3, 0.4, 0.5, 1.0)] == [0.75, 0.75, 0.5, 0.5, 0.5]
    assert pick_share(members, accuracy) == 0.3
    assert pick_share(members, lambda logits: 1.0) == 0.5  # all equal: the even mix
    error = lambda logits: -accuracy(logits)  # noqa: E731
    assert pick_share(members, error, lower_is_better=True) == 0.3
    assert pick_share(members, lambda logits: -float(logits[0, 0])) == 0.0  # ALBERT's row-0 logit lowest at 0
    assert pick_share(members, lambda logits: float(logits[0, 0])) == 1.0


def test_bow_survives_the_hf_format_with_either_pooling(tmp_path):
    import keras

    from albert_cli.model import AlbertBackbone, AlbertConfig
    from albert_cli.model.heads import AlbertClassifier
    from albert_cli.weights import apply_to, load_pretrained, save_hf_dir

    config = AlbertConfig(vocab_size=40, embedding_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=32, max_position_embeddings=16)
    rng = np.random.default_rng(1)
    x = {"token_ids": rng.integers(5, 40, size=(2, 6)).astype("int32"), "segment_ids": np.zeros((2, 6), "int32"),
         "padding_mask": np.ones((2, 6), "int32")}
    for pooling in ("pooler", "mean"):
        model = AlbertClassifier(AlbertBackbone(config), num_labels=2, pooling=pooling, bow_buckets=128)
        for v in model.weights:
            if v.path in ("bow/unigram", "bow/bigram"):
                v.assign(rng.normal(size=v.shape).astype("float32"))
        model.get_layer("bow").set_boundaries(rng.choice([0.0, 1.0, 2.0, 3.0], size=40).astype("float32"))
        model.get_layer("bow_mix").share.assign([0.3])
        path = save_hf_dir(model, tmp_path / pooling)
        hf_config = json.loads((path / "config.json").read_text())
        # No HF class computes these logits: HF must not load it as AlbertForSequenceClassification.
        assert hf_config["architectures"] == ["AlbertModel"] and hf_config["albert_cli_pooling"] == pooling
        loaded = load_pretrained(path)
        assert loaded.bow_buckets == 128 and loaded.pooling == pooling
        again = AlbertClassifier(AlbertBackbone(loaded.config), num_labels=2, pooling=pooling, bow_buckets=128)
        apply_to(again, loaded)
        assert float(again.get_layer("bow_mix").share[0]) == pytest.approx(0.3)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(again(x)), keras.ops.convert_to_numpy(model(x)),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("extra", [(), ("--no-bow",)])
def test_finetune_default_has_the_bow_and_predict_serves_the_mix_of_the_members(tmp_path, extra):
    write_two_class_csv(tmp_path)
    res = run_albert("finetune", "d.csv", "--dev", "d.csv", "-o", "m", "--config", "tiny", "--max-steps", "30", *extra,
                     cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    m = tmp_path / "m"
    meta = model_meta(m)
    loaded, x, pooled = mean_pooled(m, TEXTS)
    if extra:
        assert meta["bow_buckets"] == 0 and meta["training"]["bow"] is False and loaded.bow_buckets == 0
        assert not any(name.startswith("bow") for name in loaded.weights) and meta["training"]["ensemble_share"] is None
        return
    assert meta["bow_buckets"] == 2**18 and meta["training"]["bow"] is True and loaded.bow_buckets == 2**18
    # The word-boundary table is the tokenizer's; ALBERT's share was picked on dev and is the one stored.
    from albert_cli.text.tokenizers import tokenizer_for_pretrained
    from albert_cli.text.words import word_boundaries

    np.testing.assert_array_equal(loaded.weights["bow/boundaries"], word_boundaries(tokenizer_for_pretrained(loaded)))
    share = float(loaded.weights["bow_mix/share"][0])
    assert meta["training"]["ensemble_share"] == pytest.approx(share) and share in np.round(np.arange(11) / 10, 1)
    assert f"ALBERT's logits weigh {share:.1f}" in res.stderr

    # What `predict` serves, recomputed from the assets: the mix of the mean-pooled head's and the bag's logits.
    pred = run_albert("predict", "m", "-", "--all-scores", input="\n".join(TEXTS) + "\n", cwd=tmp_path)
    assert pred.returncode == 0, pred.stderr
    albert = pooled @ loaded.weights["classifier/kernel"] + loaded.weights["classifier/bias"]
    bow = _np_bow(loaded.weights, x["token_ids"], x["padding_mask"])
    labels = meta["labels"]
    assert_served(pred.stdout, share * albert + (1 - share) * bow, labels)
    # The bag learned on its own loss: alone it separates the two classes of this data.
    assert [labels[int(i)] for i in bow.argmax(-1)] == ["pos", "neg", "pos"]

    # --init keeps the bag and its weights (same labels); --no-bow drops it.
    cont = run_albert("finetune", "d.csv", "-o", "m2", "--init", "m", "--max-steps", "2", cwd=tmp_path)
    assert cont.returncode == 0, cont.stderr
    assert "continuing from the classifier head" in cont.stderr and model_meta(tmp_path / "m2")["bow_buckets"] == 2**18
    assert model_meta(tmp_path / "m2")["training"]["ensemble_share"] == pytest.approx(share)  # kept (no --dev)
    drop = run_albert("finetune", "d.csv", "-o", "m3", "--init", "m", "--no-bow", "--max-steps", "2", cwd=tmp_path)
    assert drop.returncode == 0, drop.stderr
    assert "continuing from the classifier head" not in drop.stderr and model_meta(tmp_path / "m3")["bow_buckets"] == 0
