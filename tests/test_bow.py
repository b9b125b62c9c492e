"""The bag-of-n-grams member of the classifier (`finetune --bow`, the default from scratch): a linear model on
token unigrams and hashed bigrams trained beside ALBERT with its own loss; the model's logits are the mean of
the two members'. Checked against numpy, through `predict`, HF-format round trips and `--init`."""

import json

import numpy as np
import pytest

from conftest import assert_served, mean_pooled, model_meta, run_albert, write_two_class_csv

TEXTS = ["good fine item 3", "bad poor item 5", "fine good good"]


def _np_bow(unigram, bigram, ids, mask, scale):
    """BagOfNgrams in numpy: scale x mean over real tokens and real adjacent pairs of their rows."""
    out = np.zeros((ids.shape[0], unigram.shape[1]))
    for b in range(ids.shape[0]):
        rows = [unigram[t] for t, m in zip(ids[b], mask[b]) if m]
        for i in range(ids.shape[1] - 1):
            if mask[b, i] and mask[b, i + 1]:
                rows.append(bigram[((ids[b, i] % 2**18) * 4093 + ids[b, i + 1] % 2**18) % bigram.shape[0]])
        out[b] = scale * np.mean(rows, axis=0)
    return out


def test_bag_of_ngrams_matches_numpy_and_the_classifier_averages_its_members():
    import keras

    from albert_cli.model import AlbertBackbone, AlbertConfig
    from albert_cli.model.heads import AlbertClassifier, BagOfNgrams, bow_buckets_for

    rng = np.random.default_rng(0)
    layer = BagOfNgrams(50, 3, buckets=64, scale=7.0)
    ids = rng.integers(0, 50, size=(4, 9)).astype("int32")
    mask = np.ones((4, 9), "int32")
    mask[1, 5:] = 0
    mask[2, 1:] = 0  # one token, no pair
    layer.build(ids.shape)
    layer.unigram.assign(rng.normal(size=(50, 3)).astype("float32"))
    layer.bigram.assign(rng.normal(size=(64, 3)).astype("float32"))
    got = keras.ops.convert_to_numpy(layer(ids, mask))
    np.testing.assert_allclose(got, _np_bow(layer.unigram.numpy(), layer.bigram.numpy(), ids, mask, 7.0), rtol=1e-5)
    # Padding is ignored: changing padded ids changes nothing.
    ids2 = ids.copy()
    ids2[1, 5:] = 3
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(ids2, mask)), got, rtol=1e-6)

    config = AlbertConfig(vocab_size=50, embedding_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=32, max_position_embeddings=16)
    model = AlbertClassifier(AlbertBackbone(config), num_labels=3, pooling="mean", bow_buckets=64)
    for v in model.weights:
        if v.path.startswith("bow/"):
            v.assign(rng.normal(size=v.shape).astype("float32"))
    x = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": mask}
    a, b = (keras.ops.convert_to_numpy(t) for t in model.members(x, training=False))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x, training=False)), (a + b) / 2, rtol=1e-5, atol=1e-6)
    assert not np.allclose(a, b)
    assert {v.path for v in model.weights if v.path.startswith("bow/")} == {"bow/unigram", "bow/bigram"}
    clone = AlbertClassifier.from_config(model.get_config())
    assert clone.bow_buckets == 64 and clone.members is not None
    assert AlbertClassifier(AlbertBackbone(config), num_labels=3).members is None  # off by default in the class
    assert bow_buckets_for(2) == 2**18 and bow_buckets_for(1000) == 2**13 and bow_buckets_for(10**6) == 1024


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
            if v.path.startswith("bow/"):
                v.assign(rng.normal(size=v.shape).astype("float32"))
        path = save_hf_dir(model, tmp_path / pooling)
        hf_config = json.loads((path / "config.json").read_text())
        # No HF class computes these logits: HF must not load it as AlbertForSequenceClassification.
        assert hf_config["architectures"] == ["AlbertModel"] and hf_config["albert_cli_pooling"] == pooling
        loaded = load_pretrained(path)
        assert loaded.bow_buckets == 128 and loaded.pooling == pooling
        again = AlbertClassifier(AlbertBackbone(loaded.config), num_labels=2, pooling=pooling, bow_buckets=128)
        apply_to(again, loaded)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(again(x)), keras.ops.convert_to_numpy(model(x)),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("extra", [(), ("--no-bow",)])
def test_finetune_default_has_the_bow_and_predict_serves_the_mean_of_the_members(tmp_path, extra):
    write_two_class_csv(tmp_path)
    res = run_albert("finetune", "d.csv", "-o", "m", "--config", "tiny", "--max-steps", "30", *extra, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    m = tmp_path / "m"
    meta = model_meta(m)
    loaded, x, pooled = mean_pooled(m, TEXTS)
    if extra:
        assert meta["bow_buckets"] == 0 and meta["training"]["bow"] is False and loaded.bow_buckets == 0
        assert not any(name.startswith("bow/") for name in loaded.weights)
        return
    assert meta["bow_buckets"] == 2**18 and meta["training"]["bow"] is True and loaded.bow_buckets == 2**18

    # What `predict` serves, recomputed from the assets: the mean of the mean-pooled head's and the bag's logits.
    pred = run_albert("predict", "m", "-", "--all-scores", input="\n".join(TEXTS) + "\n", cwd=tmp_path)
    assert pred.returncode == 0, pred.stderr
    albert = pooled @ loaded.weights["classifier/kernel"] + loaded.weights["classifier/bias"]
    bow = _np_bow(loaded.weights["bow/unigram"], loaded.weights["bow/bigram"], x["token_ids"], x["padding_mask"],
                  1000.0)
    labels = meta["labels"]
    assert_served(pred.stdout, (albert + bow) / 2, labels)
    # The bag learned on its own loss: alone it separates the two classes of this data.
    assert [labels[int(i)] for i in bow.argmax(-1)] == ["pos", "neg", "pos"]

    # --init keeps the bag and its weights (same labels); --no-bow drops it.
    cont = run_albert("finetune", "d.csv", "-o", "m2", "--init", "m", "--max-steps", "2", cwd=tmp_path)
    assert cont.returncode == 0, cont.stderr
    assert "continuing from the classifier head" in cont.stderr and model_meta(tmp_path / "m2")["bow_buckets"] == 2**18
    drop = run_albert("finetune", "d.csv", "-o", "m3", "--init", "m", "--no-bow", "--max-steps", "2", cwd=tmp_path)
    assert drop.returncode == 0, drop.stderr
    assert "continuing from the classifier head" not in drop.stderr and model_meta(tmp_path / "m3")["bow_buckets"] == 0
